"""Hypothesis strategies for random PostgreSQL schemas with hostile names and edge-case data.

``schema_script(schema)`` draws the SQL that builds one schema: types (enum, composite, domain
with a NOT VALID constraint), sequences, functions and an aggregate, tables (serial and identity
columns, generated columns, defaults, CHECKs, storage/compression, unlogged, zero columns),
constraints and indexes (primary, unique, partial, expression, foreign keys), range partitions (one
attached with its own column order, a DEFAULT one, an ``ON ONLY`` parent index), inheritance,
views and materialized views (populated or not), triggers (some disabled), row-level security and
policies, statistics, comments and grants. Every name is drawn from hostile shapes (quotes, dots,
mixed case, unicode, reserved words, spaces, semicolons); rows hold NULLs, empty strings,
NaN/Infinity, extreme numerics and timestamps, TOASTed text, and arrays of composites.
"""

from __future__ import annotations

from hypothesis import strategies as st
from psycopg import sql

HOSTILE = [
    "select", "Order", "user", "a.b", 'q"uote', 'tail"', "Sales Ops", "Ünïcode", "日本語", "x y", "a;b", "--c",
    "$1", "1abc", "end", "table", "UPPER", "mixedCase", "trailing ", "'single'", "back\\slash", "%s", "😀",
    "public", "pg_x", "ALL", "null", "a,b", "(paren", "col)", "*", "\\.",
]
READER_ROLE = 'gen "reader" Rôle'

name_strategy = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(list('."; \\$')),
        min_size=1,
        max_size=10,
    ),
).filter(lambda s: len(s.encode()) <= 30 and s.strip() != "")


def ident(*names: str) -> str:
    return sql.Identifier(*names).as_string(None)


def lit(value: object) -> str:
    return sql.Literal(value).as_string(None)


BIG_TEXT = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 4000) i)"  # ~128 kB, TOASTed

# column type -> SQL literals of its edge values (NULL is added for nullable columns)
VALUES: dict[str, list[str]] = {
    "integer": ["0", "-2147483648", "2147483647"],
    "bigint": ["-9223372036854775808", "9223372036854775807", "1"],
    "numeric": ["'NaN'", "'Infinity'", "'-Infinity'", "'-0.000000000000000000000000000001'", "repeat('9', 1000)::numeric",
                "'123456789012345678901234567890.123456789'"],
    "numeric(7,3)": ["'-9999.999'", "0", "'NaN'"],
    "double precision": ["'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "'1e308'", "'4.9e-324'"],
    "real": ["'NaN'", "'-Infinity'", "'3.4e38'"],
    "text": ["''", lit("tab\there"), lit("new\nline\r"), lit("\\"), lit("\\."), lit("quote's \"d\""), lit("ünï😀"),
             BIG_TEXT, lit("\\N")],
    "character varying(5)": ["''", lit("abcde"), lit("é")],
    "bytea": ["'\\x'::bytea", "'\\x00ff10'::bytea", "decode(repeat('ab', 5000), 'hex')"],
    "boolean": ["true", "false"],
    "timestamp with time zone": ["'infinity'", "'-infinity'", "'4713-01-01 00:00:00+00 BC'",
                                 "'294276-12-31 23:59:59.999999+00'", "'2000-01-01 00:00:00.000001+14'"],
    "timestamp without time zone": ["'infinity'", "'1999-12-31 23:59:59.999999'", "'0001-01-01 00:00:00 BC'"],
    "date": ["'infinity'", "'-infinity'", "'4713-01-01 BC'", "'5874897-12-31'"],
    "interval": ["'-178000000 years'", "'1 day -00:00:00.000001'"],
    "jsonb": ["'{}'", "'[null, \"\\u00e9\"]'", "'{\"a\": {\"b\": [1, 2.5e10]}}'", "'\"\"'"],
    "integer[]": ["'{}'", "'{1,NULL,3}'", "'[0:1]={1,2}'", "'{{1,2},{3,4}}'"],
    "text[]": ["ARRAY['', NULL, 'a,b', 'q\"x', '{}', " + lit("b\\s") + "]", "ARRAY[]::text[]"],
    "uuid": ["'00000000-0000-0000-0000-000000000000'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"],
    "inet": ["'::1/128'", "'10.0.0.1/8'"],
    "int4range": ["'empty'", "'[1,)'", "'(,)'"],
}


@st.composite
def schema_script(draw: st.DrawFn, schema: str) -> str:
    used: set[str] = set()

    def name() -> str:
        n = draw(name_strategy.filter(lambda s: s not in used))
        used.add(n)
        return n

    s = ident(schema)
    out = [f"CREATE SCHEMA {s}"]
    if draw(st.booleans()):
        out.append(f"COMMENT ON SCHEMA {s} IS {lit(draw(name_strategy))}")
    types = dict(VALUES)

    # -- types -------------------------------------------------------------------------------
    if draw(st.booleans()):
        enum, labels = name(), draw(st.lists(name_strategy, min_size=1, max_size=4, unique=True))
        out.append(f"CREATE TYPE {ident(schema, enum)} AS ENUM ({', '.join(lit(x) for x in labels)})")
        types[ident(schema, enum)] = [lit(x) for x in labels]
    comp = None
    if draw(st.booleans()):
        comp, f1, f2 = name(), name(), name()
        out.append(f"CREATE TYPE {ident(schema, comp)} AS ({ident(f1)} integer, {ident(f2)} text)")
        arr = f"{ident(schema, comp)}[]"
        types[arr] = [
            f"ARRAY[ROW(1, {lit('x,y')})::{ident(schema, comp)}, NULL, ROW(NULL, NULL)::{ident(schema, comp)}]",
            f"ARRAY[]::{arr}",
        ]
        types[ident(schema, comp)] = [f"ROW(-1, '')::{ident(schema, comp)}", f"ROW(NULL, {lit('(')})::{ident(schema, comp)}"]
    if draw(st.booleans()):
        dom, con = name(), name()
        out.append(f"CREATE DOMAIN {ident(schema, dom)} AS integer DEFAULT 1 CHECK (VALUE > -100)")
        out.append(f"ALTER DOMAIN {ident(schema, dom)} ADD CONSTRAINT {ident(con)} CHECK (VALUE < 1000) NOT VALID")
        types[ident(schema, dom)] = ["0", "999", "-99"]

    # -- sequences, functions ----------------------------------------------------------------
    if draw(st.booleans()):
        seq = ident(schema, name())
        inc = draw(st.sampled_from([1, -1, 7]))
        unlogged = draw(st.sampled_from(["", "UNLOGGED "]))
        out.append(f"CREATE {unlogged}SEQUENCE {seq} INCREMENT BY {inc} {draw(st.sampled_from(['', 'CYCLE', 'CACHE 5']))}")
        for _ in range(draw(st.integers(0, 3))):
            out.append(f"SELECT nextval({lit(seq)})")
    fn = None
    if draw(st.booleans()):
        fn, arg = name(), name()
        out.append(
            f"CREATE FUNCTION {ident(schema, fn)}({ident(arg)} integer) RETURNS integer LANGUAGE sql IMMUTABLE "
            f"AS {lit('SELECT $1 / 2')}"
        )
        if draw(st.booleans()):
            agg = name()
            out.append(
                f"CREATE AGGREGATE {ident(schema, agg)}(integer) (SFUNC = int4pl, STYPE = integer, INITCOND = '0')"
            )

    # -- tables ------------------------------------------------------------------------------
    tables: list[tuple[str, list[tuple[str, str]], bool]] = []  # (name, columns, has pk)
    unlogged_tables: set[str] = set()
    for _ in range(draw(st.integers(1, 3))):
        t = name()
        qt = ident(schema, t)
        ncols = draw(st.integers(0, 5))
        cols: list[tuple[str, str]] = []
        defs: list[str] = []
        for i in range(ncols):
            c = name()
            typ = draw(st.sampled_from(sorted(types)))
            extra = ""
            if i == 0 and draw(st.booleans()):
                kind = draw(st.sampled_from(["serial", "identity always", "identity", "plain"]))
                if kind == "serial":
                    typ = "serial"
                elif kind.startswith("identity"):
                    typ = "bigint"
                    extra = f" GENERATED {'ALWAYS' if kind == 'identity always' else 'BY DEFAULT'} AS IDENTITY"
            elif typ in ("text", "integer") and draw(st.integers(0, 4)) == 0:
                extra = f" DEFAULT {VALUES[typ][1]}"
            if typ == "text" and draw(st.integers(0, 3)) == 0:  # before DEFAULT, as the grammar wants
                extra = draw(st.sampled_from([" COMPRESSION lz4", " COMPRESSION pglz", " COLLATE \"C\""])) + extra
            defs.append(f"{ident(c)} {typ}{extra}")
            cols.append((c, typ if not extra.startswith(" GENERATED") else "identity"))
        if cols and cols[-1][1] == "integer" and draw(st.booleans()):
            g = name()
            defs.append(f"{ident(g)} bigint GENERATED ALWAYS AS ({ident(cols[-1][0])}::bigint * 2) STORED")
        pk = bool(cols) and cols[0][1] in ("serial", "identity", "integer", "bigint") and draw(st.booleans())
        if pk:
            defs.append(f"CONSTRAINT {ident(name())} PRIMARY KEY ({ident(cols[0][0])})")
        unlogged = "UNLOGGED " if draw(st.integers(0, 5)) == 0 else ""
        if unlogged:
            unlogged_tables.add(t)
        out.append(f"CREATE {unlogged}TABLE {qt} ({', '.join(defs)})")
        for c, typ in cols:
            if typ == "text" and draw(st.integers(0, 4)) == 0:
                out.append(f"ALTER TABLE {qt} ALTER COLUMN {ident(c)} SET STORAGE {draw(st.sampled_from(['EXTERNAL', 'MAIN']))}")
        # rows
        insertable = [(c, typ) for c, typ in cols if typ not in ("serial", "identity")]
        for _ in range(draw(st.integers(0, 4))):
            if not insertable:
                out.append(f"INSERT INTO {qt} DEFAULT VALUES")
                continue
            vals = [draw(st.sampled_from(["NULL", *types[typ]])) for _, typ in insertable]
            if pk and cols[0][1] in ("integer", "bigint"):
                vals[0] = str(draw(st.integers(-1000, 1000)))
            column_list = ", ".join(ident(c) for c, _ in insertable)
            out.append(f"INSERT INTO {qt} ({column_list}) VALUES ({', '.join(vals)}) ON CONFLICT DO NOTHING")
        # constraints, indexes, triggers, comments, grants
        ints = [c for c, typ in cols if typ in ("integer", "bigint", "serial", "identity")]
        texts = [c for c, typ in cols if typ == "text"]
        if ints and draw(st.booleans()):
            out.append(
                f"ALTER TABLE {qt} ADD CONSTRAINT {ident(name())} CHECK ({ident(ints[-1])} IS NULL OR {ident(ints[-1])} >= -9223372036854775808) "
                + draw(st.sampled_from(["", "NOT VALID"]))
            )
        if texts and draw(st.booleans()):
            idx = name()
            # expressions keep index rows small: the data holds TOASTed values
            how = draw(st.sampled_from(["USING hash ({c})", "(lower(left({c}, 50)))",
                                        "(left({c}, 20) DESC NULLS LAST) WHERE {c} <> ''", "(md5({c})) WITH (fillfactor = 70)"]))
            out.append(f"CREATE INDEX {ident(idx)} ON {qt} " + how.format(c=ident(texts[0])))
        if ints and not pk and draw(st.booleans()):
            out.append(f"CREATE INDEX {ident(name())} ON {qt} ({ident(ints[0])}) WHERE {ident(ints[0])} IS NOT NULL")
        plain_ints = [c for c, typ in cols if typ in ("integer", "bigint")]
        # a permanent table's foreign key may not reference an unlogged one
        can_reference = tables and (tables[0][0] not in unlogged_tables or t in unlogged_tables)
        if plain_ints and not pk and can_reference and tables[0][2] and draw(st.booleans()):
            parent, pcols, _ = tables[0]
            out.append(f"UPDATE {qt} SET {ident(plain_ints[0])} = NULL")  # rows must not break the key
            out.append(
                f"ALTER TABLE {qt} ADD CONSTRAINT {ident(name())} FOREIGN KEY ({ident(plain_ints[0])}) "
                f"REFERENCES {ident(schema, parent)} ({ident(pcols[0][0])}) ON DELETE SET NULL"
            )
        if draw(st.integers(0, 3)) == 0:
            trg, tfn = name(), name()
            out.append(
                f"CREATE FUNCTION {ident(schema, tfn)}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$body$BEGIN RETURN NEW; END$body$"
            )
            out.append(
                f"CREATE TRIGGER {ident(trg)} BEFORE INSERT OR UPDATE ON {qt} FOR EACH ROW "
                f"EXECUTE FUNCTION {ident(schema, tfn)}()"
            )
            if draw(st.booleans()):
                out.append(f"ALTER TABLE {qt} {draw(st.sampled_from(['DISABLE', 'ENABLE ALWAYS', 'ENABLE REPLICA']))} TRIGGER {ident(trg)}")
        if draw(st.integers(0, 3)) == 0:
            out.append(f"ALTER TABLE {qt} ENABLE ROW LEVEL SECURITY")
            out.append(f"CREATE POLICY {ident(name())} ON {qt} AS {draw(st.sampled_from(['PERMISSIVE', 'RESTRICTIVE']))} "
                       f"FOR SELECT TO {ident(READER_ROLE)} USING (true)")
        if len(ints) + len(texts) >= 2 and draw(st.integers(0, 3)) == 0:
            a, b = (ints + texts)[:2]
            out.append(f"CREATE STATISTICS {ident(schema, name())} (dependencies) ON {ident(a)}, {ident(b)} FROM {qt}")
        if draw(st.booleans()):
            out.append(f"COMMENT ON TABLE {qt} IS {lit(draw(name_strategy))}")
        if cols and draw(st.booleans()):
            out.append(f"COMMENT ON COLUMN {qt}.{ident(cols[0][0])} IS {lit(draw(name_strategy))}")
        if draw(st.integers(0, 2)) == 0:
            col = f" ({ident(cols[0][0])})" if cols and draw(st.booleans()) else ""
            out.append(f"GRANT SELECT{col} ON {qt} TO {ident(READER_ROLE)}")
        tables.append((t, cols, pk))

    # -- partitions and inheritance ----------------------------------------------------------
    if draw(st.booleans()):
        p, p1, p2, k, v = name(), name(), name(), name(), name()
        qp = ident(schema, p)
        out.append(f"CREATE TABLE {qp} ({ident(k)} integer NOT NULL, {ident(v)} text DEFAULT {lit('d')}) PARTITION BY RANGE ({ident(k)})")
        out.append(f"CREATE TABLE {ident(schema, p1)} PARTITION OF {qp} FOR VALUES FROM (MINVALUE) TO (0)")
        out.append(f"CREATE TABLE {ident(schema, p2)} ({ident(v)} text NOT NULL, {ident(k)} integer NOT NULL)")
        out.append(f"ALTER TABLE {qp} ATTACH PARTITION {ident(schema, p2)} FOR VALUES FROM (0) TO (MAXVALUE)")
        if draw(st.booleans()):
            pi, ci = name(), name()
            out.append(f"CREATE INDEX {ident(pi)} ON ONLY {qp} ({ident(k)})")
            out.append(f"CREATE INDEX {ident(ci)} ON {ident(schema, p2)} ({ident(k)})")
            if draw(st.booleans()):
                out.append(f"ALTER INDEX {ident(schema, pi)} ATTACH PARTITION {ident(schema, ci)}")
        out.append(f"INSERT INTO {qp} VALUES (-5, NULL), (5, ''), (2147483647, {BIG_TEXT})")
    if draw(st.booleans()):
        par, chi, a, b = name(), name(), name(), name()
        out.append(f"CREATE TABLE {ident(schema, par)} ({ident(a)} integer, {ident(b)} text)")
        out.append(f"CREATE TABLE {ident(schema, chi)} ({ident(b)} text NOT NULL DEFAULT '') INHERITS ({ident(schema, par)})")
        out.append(f"INSERT INTO {ident(schema, par)} VALUES (1, 'p')")
        out.append(f"INSERT INTO {ident(schema, chi)} VALUES (2, 'c'), (NULL, '')")

    # -- views -------------------------------------------------------------------------------
    if tables and draw(st.booleans()):
        t, cols, _ = tables[0]
        select = ", ".join(ident(c) for c, _ in cols[:2]) or "1 AS one"
        if fn and cols and cols[0][1] in ("integer", "serial"):
            select += f", {ident(schema, fn)}({ident(cols[0][0])}) AS {ident(name())}"
        v = name()
        out.append(f"CREATE VIEW {ident(schema, v)} AS SELECT {select} FROM {ident(schema, t)}")
        if draw(st.booleans()):
            mv = name()
            out.append(
                f"CREATE MATERIALIZED VIEW {ident(schema, mv)} AS SELECT * FROM {ident(schema, v)} "
                + draw(st.sampled_from(["WITH DATA", "WITH NO DATA"]))
            )
    return ";\n".join(out) + ";\n"
