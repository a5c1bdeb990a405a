"""The CQL splitter: strings, comments, $$ bodies, BATCH, shell commands, lines, chunk boundaries."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from ybrewind.errors import ScriptError
from ybrewind.ycql.script import iter_script_file, iter_statements, split_text

SCRIPT = """-- leading comment; with a semicolon
CREATE TABLE t (k int PRIMARY KEY, v text);   INSERT INTO t (k, v) VALUES (1, 'a;b''c
d');
/* block; comment
 spanning lines */ BEGIN UNLOGGED BATCH
  INSERT INTO t (k) VALUES (2);
  UPDATE t SET v = $$x;y$$ WHERE k = 3;
APPLY BATCH;
BEGIN TRANSACTION
  INSERT INTO t (k) VALUES (4);
END TRANSACTION;
SOURCE 'other.cql'
CONSISTENCY LOCAL_QUORUM
SELECT "a;""b" FROM t // trailing; comment
;
CREATE FUNCTION f(x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return x; $$;
"""


def test_split() -> None:
    got = [(s.line, s.keyword, s.shell, s.sql) for s in split_text(SCRIPT, "f.cql")]
    assert got == [
        (2, "CREATE TABLE", False, "CREATE TABLE t (k int PRIMARY KEY, v text)"),
        (2, "INSERT", False, "INSERT INTO t (k, v) VALUES (1, 'a;b''c\nd')"),
        (
            5,
            "BEGIN",
            False,
            "BEGIN UNLOGGED BATCH\n  INSERT INTO t (k) VALUES (2);\n"
            "  UPDATE t SET v = $$x;y$$ WHERE k = 3;\nAPPLY BATCH",
        ),
        (9, "BEGIN", False, "BEGIN TRANSACTION\n  INSERT INTO t (k) VALUES (4);\nEND TRANSACTION"),
        (12, "SOURCE", True, "SOURCE 'other.cql'"),
        (13, "CONSISTENCY", True, "CONSISTENCY LOCAL_QUORUM"),
        (14, "SELECT", False, 'SELECT "a;""b" FROM t'),
        (
            16,
            "CREATE FUNCTION",
            False,
            "CREATE FUNCTION f(x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return x; $$",
        ),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_chunk_boundaries_do_not_matter(size: int) -> None:
    chunks = [SCRIPT[i : i + size] for i in range(0, len(SCRIPT), size)]
    expected = [(s.line, s.sql) for s in split_text(SCRIPT)]
    assert [(s.line, s.sql) for s in iter_statements(chunks, "f.cql")] == expected


def test_tokens_carry_literals() -> None:
    (stmt,) = split_text('INSERT INTO "K s".t ("a""b", c) VALUES (-1.5e3, 0xcafe, \'it\'\'s\', $$x$$, null, 3h)')
    kinds = [(t.kind, t.value()) for t in stmt.tokens if t.kind != "op"]
    assert ("qident", "K s") in kinds and ("qident", 'a"b') in kinds and ("float", "1.5e3") in kinds
    assert ("hex", "0xcafe") in kinds and ("string", "it's") in kinds and ("string", "x") in kinds
    assert ("duration", "3h") in kinds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 'open FROM t;", "f.cql:1: unterminated string"),
        ('INSERT INTO t (k) VALUES (1);\nSELECT "open FROM t;', "f.cql:2: unterminated quoted identifier"),
        ("SELECT 1; /* never closed", "f.cql:1: unterminated comment"),
        ("BEGIN BATCH INSERT INTO t (k) VALUES (1);", "f.cql:1: BEGIN without APPLY BATCH"),
    ],
)
def test_unterminated(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        split_text(text, "f.cql")


def test_files_source_and_zstd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.cql").write_text("INSERT INTO t (k) VALUES (2);\n")
    (tmp_path / "main.cql").write_text("INSERT INTO t (k) VALUES (1);\nSOURCE 'sub/inner.cql';\n")
    got = [(Path(s.file).name, s.line, s.sql) for s in iter_script_file(tmp_path / "main.cql")]
    assert got == [("main.cql", 1, "INSERT INTO t (k) VALUES (1)"), ("inner.cql", 1, "INSERT INTO t (k) VALUES (2)")]
    (tmp_path / "z.cql.zst").write_bytes(zstandard.ZstdCompressor().compress(SCRIPT.encode()))
    assert len(list(iter_script_file(tmp_path / "z.cql.zst", follow_source=False))) == 8
    (tmp_path / "bad.cql").write_text("SOURCE 'missing.cql';\n")
    with pytest.raises(ScriptError, match=r"bad\.cql:1: SOURCE file missing\.cql not found"):
        list(iter_script_file(tmp_path / "bad.cql"))
    (tmp_path / "loop.cql").write_text("SOURCE 'loop.cql';\n")
    with pytest.raises(ScriptError, match="nested more than"):
        list(iter_script_file(tmp_path / "loop.cql"))
    (tmp_path / "latin1.cql").write_bytes(b"SELECT '\xe9' FROM t;")
    with pytest.raises(ScriptError, match="not valid UTF-8"):
        list(iter_script_file(tmp_path / "latin1.cql"))
