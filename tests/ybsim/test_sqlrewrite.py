"""Unit tests of the endpoint's SQL rewrite (pure: text in, upstream steps out)."""

from __future__ import annotations

import pytest

from tests.support.ybsim.sqlrewrite import Step, YbError, rewrite_query


class Session:
    def __init__(self, superuser: bool = True, colocated: bool = False, in_transaction: bool = False) -> None:
        self.superuser = superuser
        self.colocated = colocated
        self.in_transaction = in_transaction
        self.read_time_us: int | None = None
        self.truncate_streamed_allowed = False
        self.asked: list[str] = []

    def snapshot_for(self, value: str) -> str:
        self.asked.append(value)
        return f"snap-{len(self.asked)}"


def texts(steps: list[Step]) -> list[list[str]]:
    return [[s.sql.decode() for s in step.stmts] for step in steps]


def test_hash_key_and_split_into_become_postgres_ddl_and_a_note() -> None:
    steps = rewrite_query(
        b'CREATE TABLE "public"."t" ("a" int, "b" int, "c" text, '
        b'CONSTRAINT "t_pkey" PRIMARY KEY (("a", "b") HASH, "c" ASC))\nSPLIT INTO 3 TABLETS',
        Session(),
    )
    assert texts(steps) == [
        ['CREATE TABLE "public"."t" ("a" int, "b" int, "c" text, CONSTRAINT "t_pkey" PRIMARY KEY ("a", "b", "c"))'],
        ["SELECT pg_catalog.yb_sim_note_table('\"public\".\"t\"', '{HASH,HASH,ASC}'::text[], 3, NULL, NULL, NULL)"],
    ]
    assert steps[1].stmts[0].hide and not steps[0].stmts[0].hide


def test_split_at_values_is_normalised_and_counts_tablets() -> None:
    steps = rewrite_query(b"CREATE TABLE r (id int, v text, PRIMARY KEY (id ASC)) SPLIT AT VALUES ((100),(200))", Session())
    assert texts(steps)[0] == ["CREATE TABLE r (id int, v text, PRIMARY KEY (id))"]
    assert "3, 'SPLIT AT VALUES ((100), (200))'" in texts(steps)[1][0]


@pytest.mark.parametrize(
    ("ddl", "message"),
    [
        (b"CREATE TABLE r (id int, PRIMARY KEY (id ASC)) SPLIT INTO 3 TABLETS",
         "HASH columns must be present to split by number of tablets"),
        (b"CREATE TABLE h (id int, PRIMARY KEY (id HASH)) SPLIT AT VALUES ((1))",
         "SPLIT AT option is not yet supported for hash partitioned tables"),
        (b"CREATE TABLE n (id int) SPLIT AT VALUES ((1))", "cannot split table that does not have primary key"),
        (b"CREATE TABLE c (id int PRIMARY KEY) WITH (colocation = true)",
         "cannot set colocation true on a non-colocated database"),
        (b"CREATE TABLE g (id int PRIMARY KEY) TABLEGROUP tg SPLIT INTO 2 TABLETS",
         "cannot create colocated table with split option"),
        (b"ALTER TABLE t REPLICA IDENTITY USING INDEX t_pkey", "replica identity INDEX is not supported"),
        (b"CREATE INDEX NONCONCURRENTLY i ON t (a ASC) SPLIT INTO 2 TABLETS",
         "HASH columns must be present to split by number of tablets"),
    ],
)
def test_yugabyte_refusals(ddl: bytes, message: str) -> None:
    with pytest.raises(YbError, match=message):
        rewrite_query(ddl, Session())


def test_colocated_database_accepts_colocation_false_and_tablegroups() -> None:
    steps = rewrite_query(b"CREATE TABLE t (id int PRIMARY KEY) WITH (colocation = false, fillfactor = 90)",
                          Session(colocated=True))
    assert texts(steps)[0] == ["CREATE TABLE t (id int PRIMARY KEY) WITH (fillfactor = 90)"]
    assert texts(steps)[1][0].endswith("NULL, NULL, NULL, false)")
    steps = rewrite_query(b"CREATE TABLE u (id int PRIMARY KEY) TABLEGROUP \"g\"", Session())
    assert texts(steps)[0] == ["SELECT pg_catalog.yb_sim_check_tablegroup('g')"]
    assert texts(steps)[1] == ["CREATE TABLE u (id int PRIMARY KEY)"]
    assert "'g', NULL)" in texts(steps)[2][0]


def test_no_explicit_tablegroup_in_a_colocated_database() -> None:
    with pytest.raises(YbError, match="cannot use tablegroups in a colocated database"):
        rewrite_query(b'CREATE TABLEGROUP "default"', Session(colocated=True))


def test_index_hash_lsm_and_nonconcurrently() -> None:
    steps = rewrite_query(
        b"CREATE UNIQUE INDEX NONCONCURRENTLY i ON s.t USING lsm ((a, b) HASH, c DESC NULLS LAST) INCLUDE (d) "
        b"SPLIT INTO 4 TABLETS",
        Session(),
    )
    assert texts(steps) == [
        ["CREATE UNIQUE INDEX i ON s.t USING btree (a, b, c DESC NULLS LAST) INCLUDE (d)"],
        ["SELECT pg_catalog.yb_sim_note_index('s.t', 'i', '{HASH,HASH,DESC}'::text[], 4, NULL)"],
    ]


def test_names_and_unsupported_functions() -> None:
    [step] = rewrite_query(
        b"SELECT version(), yb_hash_code(a, b), txid_current(), c.relreplident FROM pg_replication_slots, pg_class c "
        b"WHERE c.relreplident IN ('d') AND pg_catalog.pg_get_indexdef(1) <> 'version()'",
        Session(),
    )
    assert texts([step]) == [[
        "SELECT pg_catalog.yb_sim_version(), (pg_catalog.hashtextextended(ROW(a, b)::text, 0) & 65535)::integer, "
        "pg_catalog.yb_sim_unsupported_bigint('txid_current'), "
        "pg_catalog.yb_sim_relreplident(c.oid, c.relreplident) AS relreplident "
        "FROM pg_catalog.yb_sim_replication_slots, pg_class c "
        "WHERE pg_catalog.yb_sim_relreplident(c.oid, c.relreplident) IN ('d') "
        "AND pg_catalog.yb_sim_get_indexdef(1) <> 'version()'"
    ]]


def test_function_bodies_call_what_yugabyte_has() -> None:
    [step] = rewrite_query(
        b"CREATE FUNCTION f() RETURNS bigint LANGUAGE plpgsql AS $b$ BEGIN RETURN txid_current(); END $b$", Session()
    )
    assert "$b$ BEGIN RETURN pg_catalog.yb_sim_unsupported_bigint('txid_current'); END $b$" in texts([step])[0][0]


def test_yb_read_time_needs_a_superuser_and_maps_to_a_snapshot() -> None:
    with pytest.raises(YbError, match='permission denied to set parameter "yb_read_time"'):
        rewrite_query(b"SET yb_read_time TO 1700000000000000", Session(superuser=False))
    s = Session(in_transaction=True)
    [step] = rewrite_query(b"SET LOCAL yb_read_time TO '7000 ht'", s)
    assert texts([step]) == [["SET TRANSACTION SNAPSHOT 'snap-1'"]] and step.stmts[0].tag == b"SET"
    assert s.asked == ["7000 ht"]
    s = Session()
    rewrite_query(b"SET yb_read_time TO 1700000000000000", s)
    assert s.read_time_us == 1700000000000000
    [step] = rewrite_query(b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", s)
    assert texts([step])[0][-1] == "SET TRANSACTION SNAPSHOT 'snap-2'" and step.stmts[-1].hide
    rewrite_query(b"SET yb_read_time TO 0", s)
    assert s.read_time_us is None


def test_other_yb_settings_become_placeholders() -> None:
    [step] = rewrite_query(b"SET yb_disable_catalog_version_check = true", Session())
    assert texts([step]) == [["SET yb_sim.yb_disable_catalog_version_check = true"]]


def test_create_database_colocation_and_template_release() -> None:
    [step] = rewrite_query(b"CREATE DATABASE d TEMPLATE src WITH COLOCATION = true", Session())
    assert step.after == [("colocate", "d")] and step.before == [("release", "src")]
    assert "COLOCATION" not in texts([step])[0][0]
    with pytest.raises(YbError, match="AS OF"):
        rewrite_query(b"CREATE DATABASE d TEMPLATE src AS OF 1700000000000000", Session())


def test_non_ascii_text_keeps_its_bytes() -> None:
    [step] = rewrite_query("SELECT 'größe', version() FROM \"Ünï\"".encode(), Session())
    assert texts([step]) == [["SELECT 'größe', pg_catalog.yb_sim_version() FROM \"Ünï\""]]


def test_comments_before_a_statement_do_not_hide_it() -> None:
    steps = rewrite_query(b"SELECT 1;\n-- why\n/* more */ ALTER TABLE t REPLICA IDENTITY DEFAULT", Session())
    assert texts(steps)[0] == ["SELECT 1", "ALTER TABLE t REPLICA IDENTITY DEFAULT"]
    assert texts(steps)[1] == ["SELECT pg_catalog.yb_sim_set_identity('t', 'DEFAULT')"]


def test_truncate_is_checked_against_cdc_streams() -> None:
    steps = rewrite_query(b'TRUNCATE TABLE ONLY a, s."B" * RESTART IDENTITY CASCADE', Session())
    assert texts(steps) == [
        [
            """SELECT pg_catalog.yb_sim_check_truncate(ARRAY['a', 's."B"']::text[])""",
            'TRUNCATE TABLE ONLY a, s."B" * RESTART IDENTITY CASCADE',
        ]
    ]
    assert steps[0].stmts[0].hide
    allowed = Session()
    allowed.truncate_streamed_allowed = True  # yb-master enable_truncate_cdcsdk_table=true
    assert texts(rewrite_query(b"TRUNCATE t", allowed)) == [["TRUNCATE t"]]
