"""The schema of a PostgreSQL source taken from ``pg_dump``, inside the dump's own snapshot.

pg_dump carries two decades of catalog cases (casts, operator classes, base types, partition index
attachment, NOT VALID constraints, dependency loops...), so for PostgreSQL sources ybrewind does
what pgcopydb does: it asks ``pg_dump --snapshot=<exported snapshot> --section=pre-data`` /
``--section=post-data`` (plain format) for the schema, and does the data itself. The post-data text
is split into pg_dump's TOC entries by the comment header pg_dump prints before each one
(``-- Name: ...; Type: FK CONSTRAINT; Schema: ...; Owner: ...``) and every statement gets the
loader phase of its entry's type, so the load can still build indexes in parallel across tables.

Statement boundaries come from ybrewind's psql-compatible lexer (``script``), never from the
header lines alone: a header-like comment inside a function body is not an entry.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import make_conninfo

from ybrewind.endpoints import PgEndpoint
from ybrewind.errors import DatabaseError
from ybrewind.ysql import script
from ybrewind.ysql.catalog import Filters
from ybrewind.ysql.ddl import (
    PHASE_FOREIGN_KEYS,
    PHASE_INDEXES,
    PHASE_PRIVILEGES,
    PHASE_REFRESH,
    PHASE_TABLE_EXTRAS,
    PostDataStatement,
)

HEADER = re.compile(r"-- (?:Data for )?Name: (?P<name>.*); Type: (?P<type>[A-Z ]+); Schema: (?P<schema>.*?); Owner: ")

# Loader phase of each post-data entry type. Index-like work is spread over
# tables in parallel; everything else runs in one ordered stream (key ""), in pg_dump's own order,
# which is dependency-safe: a partition's trigger state after its parent's trigger, index
# attachments before the foreign keys that need the parent index valid, event triggers last
# before the refreshes (pg_dump_sort.c orders them so too).
PHASES: dict[str, int] = {
    "INDEX": PHASE_INDEXES,
    "CONSTRAINT": PHASE_INDEXES,
    "CHECK CONSTRAINT": PHASE_INDEXES,
    "INDEX ATTACH": PHASE_FOREIGN_KEYS,
    "FK CONSTRAINT": PHASE_FOREIGN_KEYS,
    "TRIGGER": PHASE_TABLE_EXTRAS,
    "RULE": PHASE_TABLE_EXTRAS,
    "POLICY": PHASE_TABLE_EXTRAS,
    "ROW SECURITY": PHASE_TABLE_EXTRAS,
    "STATISTICS": PHASE_TABLE_EXTRAS,
    "PUBLICATION": PHASE_PRIVILEGES,
    "PUBLICATION TABLE": PHASE_PRIVILEGES,
    "PUBLICATION TABLES IN SCHEMA": PHASE_PRIVILEGES,
    "SUBSCRIPTION": PHASE_PRIVILEGES,
    "DEFAULT ACL": PHASE_PRIVILEGES,
    "ACL": PHASE_PRIVILEGES,
    "EVENT TRIGGER": PHASE_REFRESH,
    "MATERIALIZED VIEW DATA": PHASE_REFRESH,
}
# Entries that describe another entry follow it and share its phase and group.
ATTACHED_TYPES = ("COMMENT", "SECURITY LABEL")
DATA_ONLY_TYPES = ("MATERIALIZED VIEW DATA",)

_NAME = r'(?:"(?:[^"]|"")*"|[^\s".(]+)'
_QUALIFIED = rf"({_NAME}(?:\.{_NAME})?)"
# The table an index-phase statement works on, as pg_dump prints it (its group: one table's
# statements run on one connection, different tables' in parallel).
_TARGET = re.compile(
    rf"^(?:CREATE (?:UNIQUE )?INDEX {_NAME} ON (?:ONLY )?{_QUALIFIED}|ALTER (?:TABLE|DOMAIN) (?:ONLY )?{_QUALIFIED})"
)


@dataclass(frozen=True)
class PgDumpTool:
    path: str
    major: int


def _candidates() -> list[list[str]]:
    """Where pg_dump may be, in order of preference: ``pg_config --bindir`` and
    /usr/lib/postgresql/*/bin (as the sandbox looks), then PATH (on Debian a version-picking wrapper)."""
    found: list[str] = []
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            found.append(str(Path(out.stdout.strip()) / "pg_dump"))
        except (OSError, subprocess.CalledProcessError):
            pass
    found += sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))
    on_path = shutil.which("pg_dump")
    def usable(path: str) -> bool:  # pg_restore prints the sections of pg_dump's archive
        return os.access(path, os.X_OK) and os.access(Path(path).with_name("pg_restore"), os.X_OK)

    return [[p for p in dict.fromkeys(found) if usable(p)], [on_path] if on_path and usable(on_path) else []]


def _major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\)\s+(\d+)", out)
    return int(m.group(1)) if m else None


@functools.cache
def find_pg_dump(server_version_num: int) -> tuple[PgDumpTool | None, str]:
    """The newest pg_dump whose major version is at least the server's, or None and why not.

    pg_dump refuses servers newer than itself, and an older one would not know the server's
    catalog anyway.
    """
    need = server_version_num // 10000
    best: PgDumpTool | None = None
    for group in _candidates():
        for path in group:
            major = _major(path)
            if major is not None and (best is None or major > best.major):
                best = PgDumpTool(path, major)
        if best is not None and best.major >= need:
            return best, ""
    if best is None:
        return None, "pg_dump not found (looked in pg_config --bindir, /usr/lib/postgresql/*/bin and on PATH)"
    return None, f"pg_dump {best.major} ({best.path}) is older than the server ({need})"


def filter_args(filters: Filters) -> list[str]:
    """ybrewind's -n/-N/-t/-T patterns as pg_dump patterns with the same meaning.

    ybrewind patterns are case-sensitive names with ``*``/``?`` wildcards, and an unqualified table
    pattern matches in every schema; pg_dump folds unquoted text and matches an unqualified table
    pattern only on the search path. So literal runs are double-quoted and ``*.`` is prefixed.
    """

    def quote(p: str) -> str:
        return "".join(run if run in ("*", "?") else '"' + run.replace('"', '""') + '"' for run in re.findall(r"[*?]|[^*?]+", p))

    def table(p: str) -> str:
        schema, name = p.split(".", 1) if "." in p else ("*", p)
        return f"{quote(schema)}.{quote(name)}"

    args: list[str] = []
    args += [f"--schema={quote(p)}" for p in filters.schemas]
    args += [f"--exclude-schema={quote(p)}" for p in filters.exclude_schemas]
    args += [f"--table={table(p)}" for p in filters.tables]
    args += [f"--exclude-table={table(p)}" for p in filters.exclude_tables]
    return args


def child_connection(source: PgEndpoint) -> tuple[dict[str, str], list[str]]:
    """(environment, ``--dbname`` arguments) for a libpq client child process (pg_dump, psql).

    The password goes through the child's environment, never its command line.
    """
    params = source.params()
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    env.setdefault("PGAPPNAME", "ybrewind")
    return env, (["--dbname", make_conninfo(**params)] if params else [])


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, env=env)
    if proc.returncode != 0:
        errors = proc.stderr.decode(errors="replace").splitlines()
        lines = [ln for ln in errors if "error:" in ln] or errors or [f"exited with {proc.returncode}"]
        raise DatabaseError(f"{Path(argv[0]).name}: " + lines[0].split("error:", 1)[-1].strip())
    return proc.stdout.decode()


def run_pg_dump(tool: PgDumpTool, source: PgEndpoint, args: list[str]) -> str:
    """pg_dump's plain output for ``args`` (in UTF-8 whatever the database's encoding); a failure
    is a one-line DatabaseError."""
    env, dbname = child_connection(source)
    return _run([tool.path, "--format=plain", "--encoding=UTF8", *args, *dbname], env)


def schema_sections(tool: PgDumpTool, source: PgEndpoint, args: list[str], sections: list[str]) -> list[str]:
    """The plain text of each of ``sections`` (pre-data, post-data), from one pg_dump run.

    pg_dump reads the whole catalog whatever sections it prints, so it runs once into a custom-format
    archive, and pg_restore (a local file read, no server) prints each section as pg_dump would.
    """
    env, dbname = child_connection(source)
    pg_restore = str(Path(tool.path).with_name("pg_restore"))
    with tempfile.TemporaryDirectory(prefix="ybrewind-schema-") as work:
        archive = str(Path(work) / "schema.dump")
        selected = [f"--section={s}" for s in sections]
        _run([tool.path, "--format=custom", "--compress=0", "--encoding=UTF8", "--file", archive, *selected, *args, *dbname], env)
        return [_run([pg_restore, f"--section={s}", "--file=-", archive]) for s in sections]


@dataclass
class Entry:
    """One TOC entry of pg_dump's plain output: its header and statements (without ';')."""

    name: str
    type: str
    schema: str
    header: str
    statements: list[str] = field(default_factory=list)


def parse(text: str) -> tuple[list[str], list[Entry]]:
    """(statements before the first entry, entries) of a pg_dump plain script.

    ``SET default_tablespace`` / ``default_table_access_method`` are printed before the header of
    the entry they apply to; they are kept with that entry.
    """
    lines = text.splitlines()
    items = [i for i in script.iter_script(io.BytesIO(text.encode()), "pg_dump") if isinstance(i, script.Statement)]
    spans = [(s.line, s.line + s.sql.count("\n")) for s in items]
    headers: list[tuple[int, re.Match[str]]] = []
    k = 0
    for n, line in enumerate(lines, start=1):
        m = HEADER.match(line)
        if not m or n < 2 or lines[n - 2] != "--" or n >= len(lines) or lines[n] != "--":
            continue
        while k < len(spans) and spans[k][1] < n:
            k += 1
        if k < len(spans) and spans[k][0] <= n:
            continue  # inside a statement (a function body, say), not a header
        headers.append((n, m))
    preamble: list[str] = []
    entries: list[Entry] = []
    pending: list[str] = []
    h = 0
    for s in items:
        while h < len(headers) and headers[h][0] < s.line:
            n, m = headers[h]
            entries.append(Entry(m.group("name"), m.group("type"), m.group("schema"), lines[n - 1], pending))
            pending = []
            h += 1
        if re.match(r"SET (default_tablespace|default_table_access_method) ", s.sql):
            pending.append(s.sql)
        elif entries:
            entries[-1].statements.append(s.sql)
        else:
            preamble.append(s.sql)
    while h < len(headers):
        n, m = headers[h]
        entries.append(Entry(m.group("name"), m.group("type"), m.group("schema"), lines[n - 1], pending))
        pending = []
        h += 1
    return preamble, entries


def without_bookkeeping(entries: list[Entry]) -> list[Entry]:
    """Drop ybrewind's own objects that ``-N ybrewind`` does not exclude: the archiver's DDL-capture
    event triggers and its publication (named ``ybrewind...``, as the built-in reader assumes)."""
    kept: list[Entry] = []
    dropped = False
    for e in entries:
        if e.type not in ATTACHED_TYPES:
            dropped = e.type in ("EVENT TRIGGER", "PUBLICATION") and e.name.startswith("ybrewind")
        if not dropped:
            kept.append(e)
    return kept


def _group(statement: str, entry: Entry) -> str:
    m = _TARGET.match(statement)
    return (m.group(1) or m.group(2)) if m else f"{entry.schema}.{entry.name}"


def post_data_statements(
    preamble: list[str], entries: list[Entry], data_only: bool = False
) -> list[PostDataStatement]:
    """Every statement with its loader phase and group, sorted by phase (stable: pg_dump's order)."""
    out = [PostDataStatement(s, "", 0) for s in preamble]
    phase, group, skip = PHASE_TABLE_EXTRAS, "", False
    for e in without_bookkeeping(entries):
        if e.type not in ATTACHED_TYPES:  # a comment or label shares the phase and group of its object
            skip = data_only and e.type not in DATA_ONLY_TYPES
            phase = PHASES.get(e.type, PHASE_TABLE_EXTRAS)
            real = [s for s in e.statements if not s.startswith("SET ")]
            group = _group(real[0], e) if phase == PHASE_INDEXES and real else ""
        if skip:
            continue
        for i, s in enumerate(e.statements):
            out.append(PostDataStatement(s, group, phase, header=e.header if i == 0 else ""))
        if any(s.startswith("SET default_tablespace") for s in e.statements):
            # One connection runs many entries of its group: do not leak the tablespace to the next.
            out.append(PostDataStatement("SET default_tablespace = ''", group, phase))
    return sorted(out, key=lambda p: p.phase)
