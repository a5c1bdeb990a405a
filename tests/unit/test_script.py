"""Tests for the streaming psql script splitter (ybrewind.ysql.script)."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pglast
import pytest
import zstandard

from ybrewind.errors import DumpIntegrityError, ScriptError
from ybrewind.ysql import script
from ybrewind.ysql.script import CopyIn, MetaCommand, Statement, iter_script, iter_script_file, parse_psql_bool

Item = tuple[object, ...]


def items(text: str | bytes, file: str = "t.sql", **kw: object) -> list[Item]:
    """Split ``text`` and flatten items to tuples, reading COPY data as it comes."""
    data = text.encode() if isinstance(text, str) else text
    out: list[Item] = []
    for it in iter_script(io.BytesIO(data), file, **kw):  # type: ignore[arg-type]
        if isinstance(it, CopyIn):
            out.append(("copy", it.sql, it.line, b"".join(it.data)))
        elif isinstance(it, MetaCommand):
            out.append(("meta", it.name, it.args, it.line, it.argv))
        else:
            out.append(("sql", it.sql, it.line))
    return out


def sqls(text: str | bytes, **kw: object) -> list[str]:
    return [str(i[1]) for i in items(text, **kw)]


def error(text: str | bytes, **kw: object) -> str:
    with pytest.raises(ScriptError) as exc:
        items(text, **kw)
    return exc.value.message


# ---------------------------------------------------------------------------------------------
# Statement boundaries


def test_basic_split_blank_statements_and_trailing_statement() -> None:
    assert sqls("SELECT 1;;  ;\nSELECT 2 ; \n\n  SELECT\n 3") == ["SELECT 1", "SELECT 2", "SELECT\n 3"]


def test_empty_and_comment_only_scripts() -> None:
    assert items("") == []
    assert items("\n\n-- nothing\n/* at all */\n;\n") == []


def test_single_quotes() -> None:
    assert sqls("SELECT 'a;b', 'it''s; fine';SELECT ''';';") == ["SELECT 'a;b', 'it''s; fine'", "SELECT ''';'"]


def test_multiline_string() -> None:
    assert sqls("SELECT 'line1;\nline2;\n';\nSELECT 2;") == ["SELECT 'line1;\nline2;\n'", "SELECT 2"]


def test_e_strings_backslash_escapes() -> None:
    assert sqls(r"SELECT E'a\'; b', e'\\';SELECT 2;") == [r"SELECT E'a\'; b', e'\\'", "SELECT 2"]
    # ...but only as a prefix: in "fooe'...'" the e ends an identifier and the string is standard.
    assert sqls(r"SELECT fooe'\'; SELECT 2;") == [r"SELECT fooe'\'", "SELECT 2"]
    # ...and after a closing quote a new token starts, so this E is a prefix again.
    assert sqls(r"SELECT 'x'E'\''; SELECT 2;") == [r"SELECT 'x'E'\''", "SELECT 2"]


def test_e_string_continuation_keeps_escapes() -> None:
    # psql: a string continued after a newline keeps its kind, so \' still escapes.
    assert sqls("SELECT E'a'\n  -- c\n '\\'; SELECT 1;';\nSELECT 2;") == [
        "SELECT E'a'\n  -- c\n '\\'; SELECT 1;'",
        "SELECT 2",
    ]
    # Without a newline in between it is no continuation: the second string is a standard one.
    assert sqls("SELECT E'a' '\\'; SELECT 2;") == ["SELECT E'a' '\\'", "SELECT 2"]


def test_e_string_continuation_inside_a_multiline_statement() -> None:
    assert sqls("SELECT 1,\nE'abc'\n'\\'; SELECT 2;'\n;\n") == ["SELECT 1,\nE'abc'\n'\\'; SELECT 2;'"]


def test_standard_conforming_strings_off() -> None:
    script_text = (
        "SET standard_conforming_strings = off;\n"
        "SELECT 'a\\'; b';\n"  # backslash escapes the quote now
        "SELECT U&'\\'; SELECT X'\\'; SELECT B'\\';\n"  # ...but never in U&, X and B strings
        "SET standard_conforming_strings TO 'on';\n"
        "SELECT 'c\\'; SELECT 3;\n"
    )
    assert sqls(script_text) == [
        "SET standard_conforming_strings = off",
        "SELECT 'a\\'; b'",
        "SELECT U&'\\'",
        "SELECT X'\\'",
        "SELECT B'\\'",
        "SET standard_conforming_strings TO 'on'",
        "SELECT 'c\\'",
        "SELECT 3",
    ]
    assert sqls("SELECT 'a\\'; b';", standard_conforming_strings=False) == ["SELECT 'a\\'; b'"]
    assert sqls("RESET standard_conforming_strings;\nSELECT 'a\\'; SELECT 2;", standard_conforming_strings=False) == [
        "RESET standard_conforming_strings",
        "SELECT 'a\\'",
        "SELECT 2",
    ]
    # Like psql, the new setting applies from the next line: the rest of this one is lexed as before.
    assert sqls("SET standard_conforming_strings = off; SELECT 'a\\'; SELECT 2;") == [
        "SET standard_conforming_strings = off",
        "SELECT 'a\\'",
        "SELECT 2",
    ]


def test_double_quoted_identifiers() -> None:
    assert sqls('SELECT 1 AS "a;""b";SELECT U&"d;";') == ['SELECT 1 AS "a;""b"', 'SELECT U&"d;"']


def test_dollar_quotes() -> None:
    text = (
        "SELECT $$a;'b$$;\n"
        "SELECT $fn$ x; $$ nested; $$ $fn$;\n"
        "SELECT $_$ $_ $ $_$;\n"
        "PREPARE p AS SELECT $1; SELECT 2;\n"  # $1 is a parameter, not a tag
        "SELECT a$b$ FROM t; SELECT 3;\n"  # $ continues an identifier
        "SELECT 1$$;$$;\n"  # after a number a new token starts
        "SELECT $1$$;$$;\n"  # ...and after a parameter
        "SELECT $a$ $A$ ; $a$;\n"  # tags are case sensitive
    )
    assert sqls(text) == [
        "SELECT $$a;'b$$",
        "SELECT $fn$ x; $$ nested; $$ $fn$",
        "SELECT $_$ $_ $ $_$",
        "PREPARE p AS SELECT $1",
        "SELECT 2",
        "SELECT a$b$ FROM t",
        "SELECT 3",
        "SELECT 1$$;$$",
        "SELECT $1$$;$$",
        "SELECT $a$ $A$ ; $a$",
    ]


def test_comments() -> None:
    text = (
        "-- leading; 'comment\n"
        "SELECT 1 -- trailing; comment\n"
        ", '--not a comment;' /* block; 'x' */;\n"
        "/* outer /* nested; */ still ; comment */ SELECT 2;\n"
        "SELECT 3 -- the statement ends in a comment\n"
        ";\n"
        "SELECT 4 -/* an operator may not swallow a comment start; */;\n"
    )
    assert sqls(text) == [
        "SELECT 1 -- trailing; comment\n, '--not a comment;' /* block; 'x' */",
        "SELECT 2",
        "SELECT 3 -- the statement ends in a comment\n",
        "SELECT 4 -/* an operator may not swallow a comment start; */",
    ]


def test_line_comment_ends_at_carriage_return() -> None:
    # The CR ends the comment; the text keeps a newline so the comment cannot swallow anything.
    assert sqls("SELECT 1 -- c\r; SELECT 2;\r\n") == ["SELECT 1 -- c\n", "SELECT 2"]


def test_parentheses_hold_semicolons_as_in_psql() -> None:
    # CREATE RULE ... DO (a; b) is one statement: psql does not end a statement inside parentheses.
    rule = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))"
    assert sqls(rule + ";\nSELECT 1;") == [rule, "SELECT 1"]
    assert sqls("SELECT (1;\n2);") == ["SELECT (1;\n2)"]
    # A stray ')' is ignored, as psql does.
    assert sqls("SELECT 1); SELECT 2;") == ["SELECT 1)", "SELECT 2"]


def test_begin_atomic() -> None:
    text = (
        "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n"
        "  SELECT 1;\n"
        "  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n"
        "END;\n"
        "create or replace procedure p() language sql begin atomic insert into t values (1); end;\n"
        "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n"
        "BEGIN;\n"
        'CREATE TABLE begin_end ("begin" int);\n'
        "END;\n"
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql RETURN 1;\n"
    )
    assert sqls(text) == [
        "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n"
        "  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\nEND",
        "create or replace procedure p() language sql begin atomic insert into t values (1); end",
        "CREATE OR REPLACE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
        "BEGIN",
        'CREATE TABLE begin_end ("begin" int)',
        "END",
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql RETURN 1",
    ]


def test_line_numbers() -> None:
    text = "\n\n-- c\n  /* c\n */  SELECT\n1; SELECT 2;\n\n\nSELECT 'a\nb'; SELECT\n3"
    assert [(i[1], i[2]) for i in items(text)] == [
        ("SELECT\n1", 5),
        ("SELECT 2", 6),
        ("SELECT 'a\nb'", 9),
        ("SELECT\n3", 10),
    ]


def test_crlf_script() -> None:
    assert items("SELECT 1;\r\nSELECT\r\n 2;\r\n") == [("sql", "SELECT 1", 1), ("sql", "SELECT\r\n 2", 2)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1;\nSELECT 'abc\n;\n", "t.sql:2: unterminated quoted string starting here"),
        ("SELECT E'abc\\';\n", "t.sql:1: unterminated quoted string starting here"),
        ('\n\nSELECT "abc;\n', "t.sql:3: unterminated quoted identifier starting here"),
        ("SELECT $x$ abc $y$;\n\n", "t.sql:1: unterminated dollar-quoted string starting here"),
        ("SELECT 1;\n/* a /* b */\n", "t.sql:2: unterminated /* comment starting here"),
    ],
)
def test_unterminated_constructs(text: str, expected: str) -> None:
    assert error(text) == expected


def test_invalid_utf8_names_the_line() -> None:
    assert error(b"SELECT 1;\nSELECT\n'\xff';\n") == "t.sql:3: invalid UTF-8"
    assert error(b"SELECT '\xc3';\n") == "t.sql:1: invalid UTF-8"  # fast path defers to the general one
    assert error(b"\\echo \xff\n") == "t.sql:1: invalid UTF-8"


def test_non_ascii_identifiers_and_text() -> None:
    assert sqls("SELECT 'Zoë;', ü$x$ FROM tæble; SELECT $é$;$é$;") == [
        "SELECT 'Zoë;', ü$x$ FROM tæble",
        "SELECT $é$;$é$",
    ]


def test_utf8_bom_is_dropped() -> None:
    assert items(b"\xef\xbb\xbfSELECT 1;\n") == [("sql", "SELECT 1", 1)]
    assert list(iter_script(io.StringIO("\ufeffSELECT 1;"), "s")) == [Statement("SELECT 1", "s", 1)]


def test_text_stream_input() -> None:
    got = list(iter_script(io.StringIO("SELECT 'é';\nSELECT 2"), "<stdin>"))
    assert got == [Statement("SELECT 'é'", "<stdin>", 1), Statement("SELECT 2", "<stdin>", 2)]


def test_text_stream_encoding_error_is_placed_approximately() -> None:
    stream = io.TextIOWrapper(io.BytesIO(b"SELECT 1;\nSELECT '\xff';\n"), encoding="utf-8")
    with pytest.raises(ScriptError, match=r"^<stdin>:1: invalid UTF-8 \(at or after this line\)$"):
        list(iter_script(stream, "<stdin>"))


PGLAST_CORPUS = [
    "SELECT 1",
    "SELECT 'a;b', E'c\\';d', $$e;f$$, $t$ $$ ; $t$",
    'SELECT 1 AS "x;""y"',
    "CREATE TABLE t (a int DEFAULT 1, b text CHECK (b <> ';'), c numeric(10, 2))",
    "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))",
    "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT x; SELECT CASE WHEN x > 1 THEN 2 END; END",
    "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END",
    "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $_$ BEGIN RETURN 1; END; $_$",
    "DO $$ BEGIN PERFORM 1; END $$",
    "SELECT a::text, b[1:2] FROM t /* c; */ WHERE c = ';' -- tail;\n",
    "INSERT INTO t VALUES (1, 'x'), (2, 'y;')",
    "BEGIN",
    "COMMIT",
    "SELECT U&'d\\0061t\\+000061'",
    "SELECT X'1F', B'101'",
    "PREPARE q AS SELECT $1::int + $2",
]


def _pglast_normal(stmt: str) -> str:
    return stmt.strip()


@pytest.mark.parametrize("sep", [";\n", " ; ", ";\n-- comment; 'x\n", ";/* c; */\n\n"])
def test_agrees_with_pglast_on_pure_sql(sep: str) -> None:
    text = sep.join(PGLAST_CORPUS) + sep
    expected = [_pglast_normal(s) for s in pglast.split(text)]
    assert [_pglast_normal(s) for s in sqls(text)] == expected
    assert len(expected) == len(PGLAST_CORPUS)


def test_random_scripts_agree_with_pglast_scanner_boundaries() -> None:
    """Random soups of tokens: every boundary we find, pglast's own lexer finds too."""
    rng = random.Random(20240601)
    pieces = [
        "SELECT ",
        "x",
        " ",
        "\n",
        "'a;b'",
        "''",
        " E'\\';'",  # the blank keeps the E a prefix, so no backslash lands outside a string
        '"q;"',
        "$$ ; $$",
        "$t$;$t$",
        "-- c;\n",
        "/* ; */",
        "1",
        "::int",
        "$1",
        ",",
    ]
    for _ in range(300):
        stmts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(1, 5))]
        text = ";".join("SELECT " + s for s in stmts) + ";"
        try:
            expected = [s.strip() for s in pglast.split(text, with_parser=False)]
        except pglast.parser.ParseError:
            continue
        assert [s.strip() for s in sqls(text)] == expected, text


# ---------------------------------------------------------------------------------------------
# The whole-line fast path must never change the result.


def _without_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    never = re.compile(rb"(?!)")
    for name in ("_FAST_LINE", "_FAST_CONTINUATION", "_SKIP_LINE"):
        monkeypatch.setattr(script, name, never)


def _outcome(text: str) -> list[Item] | str:
    try:
        return items(text)
    except ScriptError as e:
        return e.message


FAST_PATH_LINES = [
    "SELECT 1;",
    "INSERT INTO t VALUES (1, 'a;(b', 'it''s', \"c)\", NULL);  ",
    "SELECT (1;",
    "SELECT 1);",
    "SELECT ')' , (';');",
    "SELECT ((((1))));",
    "SELECT a::int, b[1:2], c:=1 FROM t;",
    "SELECT :foo;",
    "SELECT 'x' -- c;",
    "SELECT 'a--b';",
    "CREATE TABLE t (a int);",
    "copy t from stdin;",
    "SET x = 1;",
    "SELECT E'\\'';",
    "SELECT $1, a$b;",
    "SELECT 'é';",
    "  SELECT 1 ;\t\r",
    "SELECT 1; SELECT 2;",
    "SELECT 1;x",
]


def test_fast_path_matches_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [
        "\n".join(FAST_PATH_LINES) + "\n\\.\n",
        *(line + "\n" for line in FAST_PATH_LINES),
        PG_DUMP,
        YSQL_DUMP,
        "INSERT INTO t VALUES\n\t(1, 'a;b', (2)),\n\t(3, ')', 4);\n\n-- c\n\r\n  \nSELECT 1;\n",
        "CREATE TABLE t (\n  a int,\n  b numeric(1,2)\n);\nCREATE FUNCTION f() RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n  SELECT 1;\n  SELECT (2);\nEND;\n",
        "SELECT E'a'\n'\\';'\n, 1;\n-- c\rSELECT 2;\n",
        "SELECT 1,\nE'abc'\n'\\'; SELECT 2;'\n;\n",
        "\\if false\nSELECT 1;\n  -- c\nSELECT\n(2);\n\\endif\n",
    ]
    fast = [_outcome(t) for t in texts]
    _without_fast_path(monkeypatch)
    assert [_outcome(t) for t in texts] == fast


def test_fast_path_fuzz(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    alphabet = ["SELECT ", "x", " ", "'", "''", '"', "(", ")", ";", "--", "-", "/", "*", ":", "::", "$", "E", "\\", "é"]
    endings = [";\n", ";\n", "\n", ",\n", ";\r\n", "\r\n", "\n\n", "\n-- c\n"]
    texts = []
    for _ in range(600):
        lines = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) + rng.choice(endings)
            for _ in range(rng.randint(1, 6))
        ]
        texts.append("".join(lines))
    fast = [_outcome(t) for t in texts]
    _without_fast_path(monkeypatch)
    assert [_outcome(t) for t in texts] == fast


# ---------------------------------------------------------------------------------------------
# COPY FROM STDIN


def test_copy_from_stdin_detection() -> None:
    text = (
        'COPY "weird ""name""" (a, "b c") FROM stdin WITH (FORMAT csv);\n'
        "1,2\n"
        "\\.\n"
        "copy  public.t\n  from /* comment */ STDIN ;\n"
        "x\n"
        "\\.\n"
        "COPY t FROM '/tmp/file';\n"
        "COPY t TO STDOUT;\n"
        "COPY (SELECT 1 FROM stdin) TO stdout;\n"
        "COPY stdin FROM '/x';\n"
    )
    assert items(text) == [
        ("copy", 'COPY "weird ""name""" (a, "b c") FROM stdin WITH (FORMAT csv)', 1, b"1,2\n"),
        ("copy", "copy  public.t\n  from /* comment */ STDIN", 4, b"x\n"),
        ("sql", "COPY t FROM '/tmp/file'", 8),
        ("sql", "COPY t TO STDOUT", 9),
        ("sql", "COPY (SELECT 1 FROM stdin) TO stdout", 10),
        ("sql", "COPY stdin FROM '/x'", 11),
    ]


def test_copy_data_passes_through_verbatim() -> None:
    data = (
        b"1\t\\N\tsemi;colon 'quote' $$ -- not sql\n"
        b"2\tescaped\\ttab\\\\\tline1\\nline2\n"
        b"\\.x is data\n"
        b"\\\\.\n"  # an escaped backslash followed by a dot: data too
        b" \\.\n"
    )
    text = b"COPY t FROM stdin;\n" + data + b"\\.\nSELECT 1;\n"
    assert items(text) == [("copy", "COPY t FROM stdin", 1, data), ("sql", "SELECT 1", 8)]


def test_copy_csv_quoted_field_spanning_lines() -> None:
    data = b'1,"multi\nline; field"\n2,"x"\n'
    text = b"COPY t FROM STDIN (FORMAT csv);\n" + data + b"\\.\n"
    assert items(text) == [("copy", "COPY t FROM STDIN (FORMAT csv)", 1, data)]


def test_copy_terminator_variants() -> None:
    assert items("COPY t FROM stdin;\r\na\r\n\\.\r\nSELECT 1;\r\n") == [
        ("copy", "COPY t FROM stdin", 1, b"a\r\n"),
        ("sql", "SELECT 1", 4),
    ]
    assert items("COPY t FROM stdin;\n\\.\nSELECT 1;") == [
        ("copy", "COPY t FROM stdin", 1, b""),
        ("sql", "SELECT 1", 3),
    ]
    assert items("COPY t FROM stdin;\na\n\\.") == [("copy", "COPY t FROM stdin", 1, b"a\n")]


def test_rest_of_copy_line_is_lexed_after_the_data() -> None:
    assert items("COPY t FROM stdin; SELECT 1;\n1\n\\.\nSELECT 2;\n") == [
        ("copy", "COPY t FROM stdin", 1, b"1\n"),
        ("sql", "SELECT 1", 1),
        ("sql", "SELECT 2", 4),
    ]


def test_truncated_copy_names_the_copy_line() -> None:
    text = "SELECT 1;\n\nCOPY t FROM stdin;\n1\n2\n"
    assert error(text) == "t.sql:3: COPY data is truncated: end of file before the \\. line"
    # ...also when the consumer never reads the data
    it = iter_script(io.BytesIO(text.encode()), "t.sql")
    assert next(it) == Statement("SELECT 1", "t.sql", 1)
    assert isinstance(next(it), CopyIn)
    with pytest.raises(ScriptError, match=r"^t\.sql:3: COPY data is truncated"):
        next(it)
    # ...and for a COPY without ';' at the end of the file
    assert error("COPY t FROM stdin") == "t.sql:1: COPY data is truncated: end of file before the \\. line"


def test_copy_skipped_when_not_consumed() -> None:
    rows = b"".join(b"%d\t%s\n" % (i, b"x" * 100) for i in range(30_000))  # > 1 read chunk
    text = b"COPY a FROM stdin;\n" + rows + b"\\.\nCOPY b FROM stdin;\n" + rows + b"\\.\nSELECT 1;\n"
    it = iter_script(io.BytesIO(text), "t.sql")
    first = next(it)
    assert isinstance(first, CopyIn) and first.line == 1
    second = next(it)  # nothing of the first block read
    assert isinstance(second, CopyIn) and second.line == 30_003
    chunk = next(second.data)  # read a part only
    assert rows.startswith(chunk) and len(chunk) < len(rows)
    assert next(it) == Statement("SELECT 1", "t.sql", 60_005)
    for skipped in (first.data, second.data):
        with pytest.raises(RuntimeError, match="moved past it"):
            next(skipped)


def test_copy_data_is_streamed_in_bounded_chunks() -> None:
    rows = b"".join(b"%d\tsome text value\n" % i for i in range(200_000))  # about 4 MB
    text = b"COPY t FROM stdin;\n" + rows + b"\\.\n"
    copy = next(iter_script(io.BytesIO(text), "t.sql"))
    assert isinstance(copy, CopyIn)
    chunks = list(copy.data)
    assert b"".join(chunks) == rows
    assert len(chunks) > 2
    assert all(len(c) <= (1 << 20) + 64 and c.endswith(b"\n") for c in chunks)


def test_copy_line_longer_than_buffer() -> None:
    big = b"x" * (3 << 20)
    text = b"COPY t FROM stdin;\n" + big + b"\n\\.\nSELECT 1;\n"
    got = []
    for it in iter_script(io.BytesIO(text), "t.sql"):
        got.append(b"".join(it.data) if isinstance(it, CopyIn) else it)
    assert got == [big + b"\n", Statement("SELECT 1", "t.sql", 4)]


def test_copy_invalid_utf8() -> None:
    assert error(b"COPY t FROM stdin;\nok\nbad\xff\n\\.\n") == "t.sql:3: invalid UTF-8 in COPY data"


def test_copy_binary_is_refused() -> None:
    assert error("COPY t FROM stdin WITH (FORMAT binary);\n") == (
        "t.sql:1: COPY FROM STDIN in binary format cannot be read from a script"
    )
    assert "binary format" in error("COPY BINARY t FROM stdin;\n")
    assert "binary format" in error("COPY t FROM stdin (format 'binary');\n")


# ---------------------------------------------------------------------------------------------
# Meta-commands


def test_unsupported_meta_commands() -> None:
    assert error("SELECT 1;\n\n\\gset\n") == "t.sql:3: unsupported psql meta-command \\gset"
    assert error("\\copy t from 'x'\n") == "t.sql:1: unsupported psql meta-command \\copy"
    assert error("\\o /tmp/x\n") == "t.sql:1: unsupported psql meta-command \\o"
    assert error("SELECT 1 \\g\n") == "t.sql:1: unsupported psql meta-command \\g"
    assert error("SELECT 1 \\;\nSELECT 2;") == "t.sql:1: unsupported psql meta-command \\;"
    assert error("\\set AUTOCOMMIT off\n") == "t.sql:1: unsupported psql meta-command \\set AUTOCOMMIT"


def test_meta_command_inside_a_statement() -> None:
    assert error("SELECT\n\\echo hi\n1;") == (
        "t.sql:2: psql meta-command \\echo inside an unfinished SQL statement (started at line 1)"
    )
    # Ignorable ones are dropped from the statement text.
    assert items("SELECT\n\\set ON_ERROR_STOP on\n1 \\encoding UTF8\n;") == [("sql", "SELECT\n1", 1)]


def test_ignored_settings() -> None:
    text = "\\set ON_ERROR_STOP on\n\\set ECHO all\n\\set VERBOSITY verbose\n\\set QUIET\n\\encoding 'utf-8'\nSELECT 1;"
    assert sqls(text) == ["SELECT 1"]


def test_encoding() -> None:
    assert sqls("\\encoding UTF8\n\\encoding unicode\nSELECT 1;") == ["SELECT 1"]
    assert error("\\encoding LATIN1\n") == "t.sql:1: \\encoding LATIN1: only UTF8 scripts are supported"


def test_yielded_meta_commands() -> None:
    text = (
        "\\connect -reuse-previous=on \"dbname='my db'\"\n"
        "\\c other;\n"
        "\\echo 'hello world' \"q\" plain\n"
        "\\qecho x \\\\ SELECT 1;\n"
        "\\warn w\n"
    )
    assert items(text) == [
        ("meta", "connect", "-reuse-previous=on \"dbname='my db'\"", 1, ("-reuse-previous=on", "dbname='my db'")),
        ("meta", "connect", "other;", 2, ("other",)),
        ("meta", "echo", "'hello world' \"q\" plain", 3, ("hello world", '"q"', "plain")),
        ("meta", "qecho", "x", 4, ("x",)),
        ("sql", "SELECT 1", 4),
        ("meta", "warn", "w", 5, ("w",)),
    ]


def test_meta_command_after_a_statement_on_the_same_line() -> None:
    assert items("SELECT 1; \\echo done\nSELECT 2;") == [
        ("sql", "SELECT 1", 1),
        ("meta", "echo", "done", 1, ("done",)),
        ("sql", "SELECT 2", 2),
    ]


def test_several_meta_commands_on_a_line() -> None:
    assert items("\\set ON_ERROR_STOP on \\echo 'a\\'b' \\echo c\n") == [
        ("meta", "echo", "'a\\'b'", 1, ("a'b",)),
        ("meta", "echo", "c", 1, ("c",)),
    ]


def test_backslash_colon_is_a_literal_colon() -> None:
    assert sqls("SELECT 'a'\\:\\:text;") == ["SELECT 'a'::text"]


def test_restrict() -> None:
    key = "6VdmbKzBq2ZkvPf1"
    assert sqls(f"\\restrict {key}\nSELECT 1;\n\\unrestrict {key}\n\\echo ok\n") == ["SELECT 1", "echo"]
    assert error(f"\\restrict {key}\n\\echo nope\n") == "t.sql:2: meta-command \\echo not allowed after \\restrict"
    assert error(f"\\restrict {key}\n\\unrestrict other\n") == "t.sql:2: \\unrestrict: wrong key"
    assert error("\\unrestrict k\n") == "t.sql:1: \\unrestrict: not currently in restricted mode"


def test_variables_are_not_interpolated_into_sql() -> None:
    assert sqls("SELECT :undefined, a[1:n], x::int;") == ["SELECT :undefined, a[1:n], x::int"]
    assert (
        error("\\set tbl users\nSELECT * FROM :tbl;")
        == "t.sql:2: psql variable interpolation (:tbl) in SQL is not supported"
    )
    assert "(:'tbl')" in error("\\set tbl users\nSELECT :'tbl';")
    assert "(:DBNAME)" in error("ALTER DATABASE :DBNAME SET x = 1;")
    assert sqls("SELECT ':tbl', $$:tbl$$ -- :tbl\n;", variables={"tbl": "x"}) == ["SELECT ':tbl', $$:tbl$$ -- :tbl\n"]


def test_conditionals() -> None:
    text = (
        "\\if true\n"
        "SELECT 1;\n"
        "\\if false\n"
        "SELECT 2;\n"
        "\\gset whatever_is_skipped\n"
        "\\elif yes\n"
        "SELECT 3;\n"
        "\\else\n"
        "SELECT 4;\n"
        "\\endif\n"
        "\\elif on\n"
        "SELECT 5;\n"
        "\\else\n"
        "SELECT 6;\n"
        "\\endif\n"
        "\\if :{?nope}\n\\else\nSELECT 7;\n\\endif\n"
    )
    assert sqls(text) == ["SELECT 1", "SELECT 3", "SELECT 7"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\if true\nSELECT 1;\n", "t.sql:1: \\if without a matching \\endif"),
        ("\\endif\n", "t.sql:1: \\endif: no matching \\if"),
        ("\\if 1\n\\else\n\\else\n\\endif\n", "t.sql:3: \\else: cannot occur after \\else"),
        ("\\if maybe\n\\endif\n", "t.sql:1: unrecognized value 'maybe' for \\if expression: Boolean expected"),
        ("\\if :x\n\\endif\n", "t.sql:1: unrecognized value ':x' for \\if expression: Boolean expected"),
        (
            "SELECT\n\\if true\n",
            "t.sql:2: psql meta-command \\if inside an unfinished SQL statement (started at line 1)",
        ),
    ],
)
def test_conditional_errors(text: str, expected: str) -> None:
    assert error(text) == expected


def test_variables_preset_by_the_caller_win_over_script_defaults() -> None:
    text = "\\if :{?use_roles}\n\\else\n\\set use_roles true\n\\endif\n\\if :use_roles\nSELECT 'owner';\n\\endif\n"
    assert sqls(text) == ["SELECT 'owner'"]
    assert sqls(text, variables={"use_roles": "off"}) == []


def test_parse_psql_bool() -> None:
    assert [parse_psql_bool(v) for v in ("t", "TRUE", "y", "on", "1", "f", "no", "of", "off", "0")] == [
        True, True, True, True, True, False, False, False, False, False,
    ]  # fmt: skip
    assert [parse_psql_bool(v) for v in ("o", "", "2", "onn", "maybe")] == [None] * 5


# ---------------------------------------------------------------------------------------------
# Files and includes


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _collect(it: Iterator[object]) -> list[tuple[str, str, int]]:
    out = []
    for x in it:
        assert isinstance(x, Statement | CopyIn | MetaCommand)
        if isinstance(x, CopyIn):
            b"".join(x.data)
        out.append((x.sql if not isinstance(x, MetaCommand) else "\\" + x.name, Path(x.file).name, x.line))
    return out


def test_includes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "top" / "sub" / "child.sql", "SELECT 'child';\n\\ir grandchild.sql\n")
    _write(tmp_path / "top" / "sub" / "grandchild.sql", "\n-- gc\nSELECT 'grandchild'\n")  # no final ';'
    _write(tmp_path / "cwd.sql", "SELECT 'cwd';\nCOPY t FROM stdin;\n1\n\\.\n")
    main = _write(
        tmp_path / "top" / "main.sql",
        "SELECT 'main';\n\\ir sub/child.sql\n\\i cwd.sql\n\\include_relative sub/grandchild.sql\nSELECT 'end';\n",
    )
    assert _collect(iter_script_file(main)) == [
        ("SELECT 'main'", "main.sql", 1),
        ("SELECT 'child'", "child.sql", 1),
        ("SELECT 'grandchild'", "grandchild.sql", 3),
        ("SELECT 'cwd'", "cwd.sql", 1),
        ("COPY t FROM stdin", "cwd.sql", 2),
        ("SELECT 'grandchild'", "grandchild.sql", 3),
        ("SELECT 'end'", "main.sql", 5),
    ]


def test_include_file_names_in_items(tmp_path: Path) -> None:
    _write(tmp_path / "b.sql", "SELECT 2;\n")
    main = _write(tmp_path / "a.sql", "\\ir 'b.sql'\n")
    assert list(iter_script_file(main)) == [Statement("SELECT 2", str(tmp_path / "b.sql"), 1)]


def test_include_relative_from_a_stream_uses_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "inc.sql", "SELECT 'inc';\n")
    got = list(iter_script(io.BytesIO(b"\\ir inc.sql\n\\include inc.sql\n"), "<stdin>"))
    assert got == [Statement("SELECT 'inc'", "inc.sql", 1)] * 2


def test_include_loop(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.sql", "SELECT 1;\n\\ir b.sql\n")
    _write(tmp_path / "b.sql", "\n\\ir a.sql\n")
    with pytest.raises(ScriptError, match=r"b\.sql:2: include loop: .*a\.sql -> .*b\.sql -> .*a\.sql$"):
        list(iter_script_file(a))
    self_loop = _write(tmp_path / "self.sql", "\\ir self.sql\n")
    with pytest.raises(ScriptError, match="include loop"):
        list(iter_script_file(self_loop))


def test_include_errors(tmp_path: Path) -> None:
    main = _write(tmp_path / "a.sql", "SELECT 1;\n\\ir missing.sql\n")
    with pytest.raises(ScriptError, match=r"a\.sql:2: cannot open included file .*missing\.sql"):
        list(iter_script_file(main))
    mid = _write(tmp_path / "m.sql", "SELECT\n\\ir a.sql\n1;")
    with pytest.raises(ScriptError, match=r"m\.sql:2: psql meta-command \\ir inside an unfinished SQL statement"):
        list(iter_script_file(mid))
    with pytest.raises(ScriptError, match=r"nope\.sql: cannot open script"):
        list(iter_script_file(tmp_path / "nope.sql"))


def test_unterminated_construct_in_included_file(tmp_path: Path) -> None:
    _write(tmp_path / "b.sql", "SELECT 'open\n")
    main = _write(tmp_path / "a.sql", "\\ir b.sql\nSELECT 2;\n")
    with pytest.raises(ScriptError, match=r"b\.sql:1: unterminated quoted string starting here"):
        list(iter_script_file(main))


def test_zstd_input_multiple_frames(tmp_path: Path) -> None:
    cctx = zstandard.ZstdCompressor()
    part1 = "SELECT 1;\nCOPY t FROM stdin;\n1\tone\n"
    part2 = "2\ttwo\n\\.\nSELECT 'é';\n"
    path = tmp_path / "dump.sql.zst"
    path.write_bytes(cctx.compress(part1.encode()) + cctx.compress(part2.encode()))
    got = []
    for it in iter_script_file(path):
        got.append((type(it).__name__, it.sql, it.line, b"".join(it.data) if isinstance(it, CopyIn) else None))
    assert got == [
        ("Statement", "SELECT 1", 1, None),
        ("CopyIn", "COPY t FROM stdin", 2, b"1\tone\n2\ttwo\n"),
        ("Statement", "SELECT 'é'", 6, None),
    ]


def test_zstd_include(tmp_path: Path) -> None:
    (tmp_path / "inc.sql.zst").write_bytes(zstandard.ZstdCompressor().compress(b"SELECT 'inc';\n"))
    main = _write(tmp_path / "main.sql", "\\ir inc.sql.zst\n")
    assert [s.sql for s in iter_script_file(main)] == ["SELECT 'inc'"]


def test_truncated_or_corrupt_zstd(tmp_path: Path) -> None:
    frame = zstandard.ZstdCompressor().compress(b"SELECT 1;\n" * 1000)
    path = tmp_path / "bad.sql.zst"
    for broken in (frame[:-3], frame + frame[: len(frame) // 2], frame[:8] + b"garbage" * 10):
        path.write_bytes(broken)
        with pytest.raises(DumpIntegrityError, match=r"^.*bad\.sql\.zst: corrupt zstd data: "):
            list(iter_script_file(path))


# ---------------------------------------------------------------------------------------------
# Real-world shaped scripts

PG_DUMP = (
    "--\n"
    "-- PostgreSQL database dump\n"
    "--\n"
    "\n"
    "\\restrict 6VdmbKzBq2ZkvPf1xqH7tcPXhPP3uHvVoBOCpHnpQk3l8oo1y0BrEF0A2mNw4hV\n"
    "\n"
    "-- Dumped from database version 17.6 (Debian 17.6-1.pgdg120+1)\n"
    "-- Dumped by pg_dump version 17.6 (Debian 17.6-1.pgdg120+1)\n"
    "\n"
    "SET statement_timeout = 0;\n"
    "SET lock_timeout = 0;\n"
    "SET idle_in_transaction_session_timeout = 0;\n"
    "SET transaction_timeout = 0;\n"
    "SET client_encoding = 'UTF8';\n"
    "SET standard_conforming_strings = on;\n"
    "SELECT pg_catalog.set_config('search_path', '', false);\n"
    "SET check_function_bodies = false;\n"
    "SET xmloption = content;\n"
    "SET client_min_messages = warning;\n"
    "SET row_security = off;\n"
    "\n"
    "--\n"
    "-- Name: shop; Type: SCHEMA; Schema: -; Owner: app\n"
    "--\n"
    "\n"
    "CREATE SCHEMA shop;\n"
    "\n"
    "\n"
    "ALTER SCHEMA shop OWNER TO app;\n"
    "\n"
    "--\n"
    "-- Name: order_total(integer); Type: FUNCTION; Schema: shop; Owner: app\n"
    "--\n"
    "\n"
    "CREATE FUNCTION shop.order_total(order_id integer) RETURNS numeric\n"
    "    LANGUAGE plpgsql STABLE\n"
    "    AS $_$\n"
    "DECLARE\n"
    "    total numeric;\n"
    "BEGIN\n"
    "    -- a ; and a ' inside the body\n"
    "    SELECT sum(qty * price) INTO total FROM shop.order_line WHERE order_line.order_id = $1;\n"
    "    RETURN coalesce(total, 0);\n"
    "END;\n"
    "$_$;\n"
    "\n"
    "\n"
    "ALTER FUNCTION shop.order_total(order_id integer) OWNER TO app;\n"
    "\n"
    "--\n"
    "-- Name: add_one(integer); Type: FUNCTION; Schema: shop; Owner: app\n"
    "--\n"
    "\n"
    "CREATE FUNCTION shop.add_one(x integer) RETURNS integer\n"
    "    LANGUAGE sql IMMUTABLE\n"
    "    BEGIN ATOMIC\n"
    " SELECT (x + 1);\n"
    "END;\n"
    "\n"
    "\n"
    "SET default_tablespace = '';\n"
    "\n"
    "SET default_table_access_method = heap;\n"
    "\n"
    "--\n"
    "-- Name: customer; Type: TABLE; Schema: shop; Owner: app\n"
    "--\n"
    "\n"
    "CREATE TABLE shop.customer (\n"
    "    id integer NOT NULL,\n"
    "    name text NOT NULL,\n"
    '    "Note; with semicolon" text,\n'
    "    CONSTRAINT customer_name_check CHECK ((name <> ''::text))\n"
    ");\n"
    "\n"
    "\n"
    "ALTER TABLE shop.customer OWNER TO app;\n"
    "\n"
    "ALTER TABLE ONLY shop.customer ALTER COLUMN id SET DEFAULT nextval('shop.customer_id_seq'::regclass);\n"
    "\n"
    "--\n"
    "-- Data for Name: customer; Type: TABLE DATA; Schema: shop; Owner: app\n"
    "--\n"
    "\n"
    'COPY shop.customer (id, name, "Note; with semicolon") FROM stdin;\n'
    "1\tAlice\t\\N\n"
    "2\tBob\\tTab\tline1\\nstill line1\n"
    "3\tZoë\tsemi;colon 'quote' $$dollar$$ -- not a comment\n"
    "\\.\n"
    "\n"
    "\n"
    "SELECT pg_catalog.setval('shop.customer_id_seq', 3, true);\n"
    "\n"
    "ALTER TABLE ONLY shop.customer\n"
    "    ADD CONSTRAINT customer_pkey PRIMARY KEY (id);\n"
    "\n"
    "--\n"
    "-- PostgreSQL database dump complete\n"
    "--\n"
    "\n"
    "\\unrestrict 6VdmbKzBq2ZkvPf1xqH7tcPXhPP3uHvVoBOCpHnpQk3l8oo1y0BrEF0A2mNw4hV\n"
    "\n"
)


def test_pg_dump_excerpt() -> None:
    got = items(PG_DUMP, file="dump.sql")
    assert [(i[0], i[2]) for i in got] == [
        *(("sql", n) for n in range(10, 21)),
        ("sql", 26),
        ("sql", 29),
        ("sql", 35),
        ("sql", 48),
        ("sql", 54),
        ("sql", 61),
        ("sql", 63),
        ("sql", 69),
        ("sql", 77),
        ("sql", 79),
        ("copy", 85),
        ("sql", 92),
        ("sql", 94),
    ]
    by_line = {i[2]: i for i in got}
    assert by_line[16][1] == "SELECT pg_catalog.set_config('search_path', '', false)"
    assert by_line[35][1].startswith("CREATE FUNCTION shop.order_total(order_id integer) RETURNS numeric\n")
    assert by_line[35][1].endswith("RETURN coalesce(total, 0);\nEND;\n$_$")
    assert by_line[54][1].endswith("BEGIN ATOMIC\n SELECT (x + 1);\nEND")
    assert by_line[69][1].endswith("CHECK ((name <> ''::text))\n)")
    assert by_line[85] == (
        "copy",
        'COPY shop.customer (id, name, "Note; with semicolon") FROM stdin',
        85,
        "1\tAlice\t\\N\n2\tBob\\tTab\tline1\\nstill line1\n3\tZoë\tsemi;colon 'quote' $$dollar$$ -- not a comment\n".encode(),
    )
    assert by_line[94][1] == "ALTER TABLE ONLY shop.customer\n    ADD CONSTRAINT customer_pkey PRIMARY KEY (id)"
    # pglast parses every statement we produced as exactly one statement.
    for i in got:
        assert len(pglast.parse_sql(str(i[1]))) == 1


YSQL_DUMP = (
    "--\n"
    "-- YSQL database dump\n"
    "--\n"
    "\n"
    "SET yb_binary_restore = true;\n"
    "DO $$\n"
    "BEGIN\n"
    "  IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'yb_ignore_relfilenode_ids') THEN\n"
    "    EXECUTE 'SET yb_ignore_relfilenode_ids TO false';\n"
    "  END IF;\n"
    "END $$;\n"
    "SET standard_conforming_strings = on;\n"
    "\n"
    "-- Set variable use_tablespaces (if not already set)\n"
    "\\if :{?use_tablespaces}\n"
    "\\else\n"
    "\\set use_tablespaces true\n"
    "\\endif\n"
    "\n"
    "-- Set variable use_roles (if not already set)\n"
    "\\if :{?use_roles}\n"
    "\\else\n"
    "\\set use_roles true\n"
    "\\endif\n"
    "\n"
    "\\if :use_tablespaces\n"
    "    SET default_tablespace = '';\n"
    "\\endif\n"
    "\n"
    "CREATE TABLE public.t (\n"
    "    id bigint NOT NULL,\n"
    "    CONSTRAINT t_pkey PRIMARY KEY((id) HASH)\n"
    ")\n"
    "SPLIT INTO 3 TABLETS;\n"
    "\n"
    "\\if :use_roles\n"
    "    ALTER TABLE public.t OWNER TO yugabyte;\n"
    "\\endif\n"
    "\n"
    "COPY public.t (id) FROM stdin;\n"
    "1\n"
    "\\.\n"
)


def test_ysql_dump_excerpt() -> None:
    assert [(i[0], i[2]) for i in items(YSQL_DUMP)] == [
        ("sql", 5),
        ("sql", 6),
        ("sql", 12),
        ("sql", 27),
        ("sql", 30),
        ("sql", 37),
        ("copy", 40),
    ]
    assert [i[1] for i in items(YSQL_DUMP, variables={"use_roles": "false", "use_tablespaces": "0"})] == [
        "SET yb_binary_restore = true",
        "DO $$\nBEGIN\n  IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'yb_ignore_relfilenode_ids') THEN\n"
        "    EXECUTE 'SET yb_ignore_relfilenode_ids TO false';\n  END IF;\nEND $$",
        "SET standard_conforming_strings = on",
        "CREATE TABLE public.t (\n    id bigint NOT NULL,\n    CONSTRAINT t_pkey PRIMARY KEY((id) HASH)\n)\n"
        "SPLIT INTO 3 TABLETS",
        "COPY public.t (id) FROM stdin",
    ]
