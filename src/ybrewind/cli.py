"""The ``ybrewind`` command line: parse options, call the library, print. No logic lives here.

Conventions shared by every command: progress on stderr (``--quiet`` silences it), a one-line
human summary on stderr, ``--json`` prints a machine summary on stdout, and every failure is one
line ``ybrewind: error: ...`` with a non-zero exit code (see ``errors.py`` for the codes).
Set ``YBREWIND_DEBUG=1`` to get tracebacks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import psycopg

from ybrewind import __version__, sandbox
from ybrewind import manifest as mf
from ybrewind.endpoints import PgEndpoint, YcqlEndpoint, is_ycql_url
from ybrewind.errors import DumpIntegrityError, UsageError, YbrewindError
from ybrewind.progress import Progress, TerminalProgress
from ybrewind.ysql import compare as ysql_compare
from ybrewind.ysql import dump as ysql_dump
from ybrewind.ysql import load as ysql_load
from ybrewind.ysql.catalog import Filters
from ybrewind.ysql.subset import SubsetSpec


def _emit(ctx_json: bool, quiet: bool, summary: Any, human: str) -> None:
    if ctx_json:
        data = dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else summary
        click.echo(json.dumps(data, indent=2, default=str))
    if not quiet:
        click.echo(human, err=True)


def _report(as_json: bool, quiet: bool, data: Any, human: str) -> None:
    """For commands whose output is the answer (status, lists): stdout, JSON or text."""
    if as_json:
        click.echo(
            json.dumps(dataclasses.asdict(data) if dataclasses.is_dataclass(data) else data, indent=2, default=str)
        )
    elif not quiet:
        click.echo(human)


def _progress(quiet: bool) -> Progress:
    return Progress() if quiet else TerminalProgress()


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ybrewind")
def cli() -> None:
    """Logical backup and point-in-time recovery for YugabyteDB (YSQL, YCQL) and PostgreSQL.

    Endpoints are postgresql:// URLs or libpq key=value strings; when omitted, libpq's
    environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, .pgpass) is used.
    """


# -- sandbox ------------------------------------------------------------------------------------
@cli.group("sandbox")
def sandbox_group() -> None:
    """A throwaway local PostgreSQL (wal_level=logical) for demos and experiments."""


def _sandbox_dir(directory: str | None) -> Path:
    return Path(directory) if directory else sandbox.default_dir()


@sandbox_group.command("start")
@click.option("--dir", "directory", help="Where the cluster lives (default: a per-user temp dir).")
@click.option("--port", type=int, help="TCP port on 127.0.0.1 (default: a free one).")
@common_options
def sandbox_start(directory: str | None, port: int | None, quiet: bool, as_json: bool) -> None:
    """Start the sandbox (or report the running one)."""
    sb = sandbox.start(_sandbox_dir(directory), port)
    _emit(
        as_json,
        quiet,
        {"running": True, "url": sb.url(), **dataclasses.asdict(sb)},
        f"sandbox running: {sb.url()}\n  export DATABASE_URL={sb.url()}",
    )


@sandbox_group.command("stop")
@click.option("--dir", "directory", help="The sandbox directory.")
@common_options
def sandbox_stop(directory: str | None, quiet: bool, as_json: bool) -> None:
    """Stop the sandbox and delete its data."""
    was_running = sandbox.stop(_sandbox_dir(directory))
    _emit(as_json, quiet, {"stopped": was_running}, "sandbox stopped" if was_running else "no sandbox was running")


@sandbox_group.command("status")
@click.option("--dir", "directory", help="The sandbox directory.")
@common_options
def sandbox_status(directory: str | None, quiet: bool, as_json: bool) -> None:
    """Tell whether the sandbox runs, and its URL. Exit code 1 when it does not."""
    sb = sandbox.status(_sandbox_dir(directory))
    if sb is None:
        _emit(as_json, quiet, {"running": False}, "sandbox is not running")
        sys.exit(1)
    _emit(as_json, quiet, {"running": True, "url": sb.url(), **dataclasses.asdict(sb)}, f"sandbox running: {sb.url()}")


# -- dump / load / verify / compare -----------------------------------------------------------------
@cli.command()
@click.argument("args", nargs=-1, metavar="[SOURCE] OUTDIR")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Parallel workers.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["directory", "plain", "csv"]),
    default="directory",
    show_default=True,
    help="plain: one script on stdout or -f FILE (like pg_dump -Fp); csv: YCQL data for ycqlsh COPY FROM.",
)
@click.option("--with-writetime", is_flag=True, help="YCQL: keep each cell's write time and TTL.")
@click.option("-f", "--file", "out_file", type=click.Path(dir_okay=False), help="With --format plain: write here.")
@click.option("--compress", type=click.Choice(["none", "zstd"]), default="none", show_default=True)
@click.option("--inserts", is_flag=True, help="Multi-row INSERT statements instead of COPY.")
@click.option("--dialect", type=click.Choice(["postgres", "yugabyte"]), help="Target dialect (default: the source's).")
@click.option("--no-owner", is_flag=True, help="Do not set object owners.")
@click.option("--no-privileges", "--no-acl", is_flag=True, help="Do not dump GRANT/REVOKE.")
@click.option("-n", "--schema", "schemas", multiple=True, help="Only this schema (pattern; repeatable).")
@click.option("-N", "--exclude-schema", "exclude_schemas", multiple=True, help="Not this schema (pattern).")
@click.option("-t", "--table", "tables", multiple=True, help="Only this table (pattern, may be schema-qualified).")
@click.option("-T", "--exclude-table", "exclude_tables", multiple=True, help="Not this table (pattern).")
@click.option("--exclude-table-data", multiple=True, help="Schema but no data for this table (pattern).")
@click.option("-s", "--schema-only", is_flag=True)
@click.option("-a", "--data-only", is_flag=True)
@click.option(
    "--slice-size",
    type=int,
    default=ysql_dump.DEFAULT_SLICE_BYTES >> 20,
    show_default=True,
    help="MiB: tables bigger than this are split into slices dumped in parallel.",
)
@click.option("--subset", "subsets", multiple=True, help="'schema.table: condition': these rows plus what FKs need.")
@click.option("--mask", "masks", multiple=True, help="schema.table.column=email|hash|null|fixed:VALUE (repeatable).")
@common_options
def dump(
    args: tuple[str, ...],
    jobs: int,
    fmt: str,
    out_file: str | None,
    compress: str,
    inserts: bool,
    dialect: str | None,
    no_owner: bool,
    no_privileges: bool,
    schemas: tuple[str, ...],
    exclude_schemas: tuple[str, ...],
    tables: tuple[str, ...],
    exclude_tables: tuple[str, ...],
    exclude_table_data: tuple[str, ...],
    schema_only: bool,
    data_only: bool,
    slice_size: int,
    subsets: tuple[str, ...],
    masks: tuple[str, ...],
    with_writetime: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Dump a database (or a ycql:// keyspace) into a directory of plain scripts (parallel)."""
    if (args and is_ycql_url(args[0])) or fmt == "csv":
        ysql_only = {"--inserts": inserts, "--dialect": dialect, "--no-owner": no_owner, "--no-privileges": no_privileges,
                     "-n/--schema": schemas, "-N/--exclude-schema": exclude_schemas, "-f/--file": out_file,
                     "--format plain": fmt == "plain", "--subset": subsets, "--mask": masks}  # fmt: skip
        if len(args) != 2 or not is_ycql_url(args[0]) or any(ysql_only.values()):
            bad = ", ".join(k for k, v in ysql_only.items() if v)
            raise UsageError(
                f"{bad} not for YCQL" if bad else "usage: ybrewind dump ycql://host[:port]/KEYSPACE OUTDIR"
            )
        from ybrewind.ycql import dump as ycql_dump

        ycql_options = ycql_dump.DumpOptions(
            jobs=jobs, with_writetime=with_writetime, format="csv" if fmt == "csv" else "cql",
            compress=compress == "zstd", tables=list(tables), exclude_tables=list(exclude_tables),
            exclude_table_data=list(exclude_table_data), schema_only=schema_only, data_only=data_only,
        )  # fmt: skip
        with _progress(quiet) as progress:
            yresult = ycql_dump.dump(YcqlEndpoint.parse(args[0]), args[1], ycql_options, progress)
        scan = yresult.scan
        _emit(as_json, quiet, yresult, f"dumped {yresult.tables} tables, {yresult.rows} rows, "
              f"{yresult.bytes / 1e6:.1f} MB to {yresult.output} in {yresult.seconds:.2f}s "
              f"(scanned {scan['scan_started']} .. {scan['scan_finished']})")  # fmt: skip
        return
    if with_writetime:
        raise UsageError("--with-writetime is for ycql:// sources")
    plain = fmt == "plain"
    if plain:
        if len(args) > 1:
            raise UsageError("--format plain takes at most SOURCE; write to a file with -f FILE")
        source, output = (args[0] if args else None), (out_file or "-")
    else:
        if not 1 <= len(args) <= 2:
            raise UsageError("usage: ybrewind dump [SOURCE] OUTDIR")
        source, output = (args[0] if len(args) == 2 else None), args[-1]
    options = ysql_dump.DumpOptions(
        jobs=jobs,
        compress=compress == "zstd",
        inserts=inserts,
        dialect=dialect,  # type: ignore[arg-type]
        owners=not no_owner,
        privileges=not no_privileges,
        schema_only=schema_only,
        data_only=data_only,
        filters=Filters(
            list(schemas), list(exclude_schemas), list(tables), list(exclude_tables), list(exclude_table_data)
        ),
        slice_bytes=slice_size << 20,
        subset=SubsetSpec.parse(subsets, masks) if subsets or masks else None,
    )
    with _progress(quiet) as progress:
        result = ysql_dump.dump(PgEndpoint.parse(source), output, options, progress, plain=plain)
    _emit(
        as_json,
        quiet,
        result,
        f"dumped {result.tables} tables, {result.rows} rows, {result.bytes / 1e6:.1f} MB to {result.output} "
        f"in {result.seconds:.2f}s (snapshot {result.snapshot['time']})",
    )


@cli.command()
@click.argument("dump_path", metavar="DUMP", type=click.Path(path_type=Path))
@click.argument("target", required=False)
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Parallel workers.")
@click.option("-C", "--create", is_flag=True, help="Create the target database if it does not exist.")
@click.option("-c", "--clean", is_flag=True, help="Drop the dump's schemas in the target before loading.")
@click.option("--no-analyze", is_flag=True, help="Skip ANALYZE after loading.")
@click.option("-1", "--single-transaction", is_flag=True, help="Plain scripts: all or nothing.")
@common_options
def load(
    dump_path: Path,
    target: str | None,
    jobs: int,
    create: bool,
    clean: bool,
    no_analyze: bool,
    single_transaction: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Load a dump directory, or a plain .sql/.cql script, into TARGET (postgresql:// or ycql://)."""
    if is_ycql_url(target):
        if single_transaction:
            raise UsageError("--single-transaction is not available for YCQL targets")
        from ybrewind.ycql import load as ycql_load

        with _progress(quiet) as progress:
            yresult = ycql_load.load(
                dump_path, YcqlEndpoint.parse(target or ""), ycql_load.LoadOptions(jobs, clean, create), progress
            )
        ysteps = ", ".join(f"{k} {v:.2f}s" for k, v in yresult.steps.items())
        _emit(as_json, quiet, yresult, f"loaded {yresult.rows} rows ({yresult.statements} statements) into "
              f"{yresult.target} in {yresult.seconds:.2f}s" + (f" ({ysteps})" if ysteps else ""))  # fmt: skip
        return
    options = ysql_load.LoadOptions(jobs, create, clean, not no_analyze, single_transaction)
    with _progress(quiet) as progress:
        result = ysql_load.load(dump_path, PgEndpoint.parse(target), options, progress)
    steps = ", ".join(f"{k} {v:.2f}s" for k, v in result.steps.items())
    _emit(
        as_json,
        quiet,
        result,
        f"loaded {result.rows} rows into {result.target} in {result.seconds:.2f}s" + (f" ({steps})" if steps else ""),
    )


@cli.command()
@click.argument("dump_path", metavar="DUMP", type=click.Path(path_type=Path))
@common_options
def verify(dump_path: Path, quiet: bool, as_json: bool) -> None:
    """Check every file of a dump against its manifest (sha256, size)."""
    manifest = mf.verify(dump_path)
    summary = {
        "ok": True,
        "files": len(manifest.files),
        "rows": manifest.total_rows,
        "bytes": sum(f.bytes for f in manifest.files),
        "format_version": manifest.format_version,
    }
    _emit(as_json, quiet, summary, f"{dump_path}: {len(manifest.files)} files OK, {manifest.total_rows} rows")


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--no-owner", is_flag=True, help="Ignore ownership.")
@click.option("--no-privileges", is_flag=True, help="Ignore GRANTs.")
@click.option("--with-writetime", is_flag=True, help="YCQL: compare cell write times too.")
@common_options
def compare(
    a: str, b: str, no_owner: bool, no_privileges: bool, with_writetime: bool, quiet: bool, as_json: bool
) -> None:
    """Compare two databases (or two ycql:// keyspaces): schema, and per table row count and content checksum.

    Exit code 0 when identical, 1 when they differ.
    """
    result: Any
    if is_ycql_url(a) or is_ycql_url(b):
        if not (is_ycql_url(a) and is_ycql_url(b)):
            raise UsageError("compare needs two ycql:// endpoints or two PostgreSQL endpoints")
        from ybrewind.ycql import compare as ycql_compare

        result = ycql_compare.compare(YcqlEndpoint.parse(a), YcqlEndpoint.parse(b), with_writetime=with_writetime)
    else:
        result = ysql_compare.compare(
            PgEndpoint.parse(a), PgEndpoint.parse(b), owners=not no_owner, privileges=not no_privileges
        )
    if as_json:
        data = dataclasses.asdict(result) | {"identical": result.identical}
        click.echo(json.dumps(data, indent=2))
    if not quiet:
        if result.identical:
            click.echo(f"identical: schema and {len(result.tables)} tables", err=True)
        else:
            for line in result.schema_diff[:50]:
                click.echo(line, err=True)
            for t in result.differing_tables:
                click.echo(
                    f"table {t.table}: rows {t.rows_a} vs {t.rows_b}, checksum "
                    f"{'same' if t.checksum_a == t.checksum_b else 'differs'}",
                    err=True,
                )
    sys.exit(0 if result.identical else 1)


# -- archive / backup ------------------------------------------------------------------------------
def repo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--endpoint-url", help="S3-compatible endpoint (MinIO...); or AWS_ENDPOINT_URL.")(f)
    f = click.option("--region", help="S3 region; or AWS_DEFAULT_REGION.")(f)
    f = click.option("--profile", help="AWS profile; or AWS_PROFILE.")(f)
    return f


def _repository(repo: str, endpoint_url: str | None, region: str | None, profile: str | None) -> Any:
    from ybrewind.archive.repo import Repository, RepositoryOptions

    return Repository.open(repo, RepositoryOptions(endpoint_url, region, profile))


def _require_api(repository: Any, api: str) -> None:
    """A YCQL repository with a postgresql:// endpoint (or the reverse) is a one-line error."""
    from ybrewind.ycql.capture import repository_api

    found = repository_api(repository)
    if found is not None and found != api:
        want = "ycql://host/KEYSPACE" if found == "ycql" else "postgresql://"
        raise UsageError(f"{repository.url} archives a {found.upper()} source: use a {want} endpoint with it")


@cli.command("check")
@click.argument("source")
@click.option("--repo", help="A repository to check against SOURCE (directory or s3://bucket/prefix).")
@click.option(
    "--yb-history-retention",
    type=int,
    default=900,
    show_default=True,
    help="YugabyteDB: timestamp_history_retention_interval_sec of the cluster, in seconds.",
)
@repo_options
@common_options
def check_command(
    source: str,
    repo: str | None,
    yb_history_retention: int,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Preflight: will dump, archive, restore and clone work on SOURCE, and if not, why.

    One line per check (ok, warn, fail); exit code 1 when something required is missing.
    """
    from ybrewind import check as chk

    if is_ycql_url(source):
        report = chk.ycql_checks(YcqlEndpoint.parse(source))
    else:
        repository = _repository(repo, endpoint_url, region, profile) if repo else None
        report = chk.check(PgEndpoint.parse(source), repository, yb_history_retention)
    _report(as_json, quiet and not as_json, report.to_dict(), "\n".join(c.line() for c in report.checks))
    if not report.ok:
        sys.exit(1)


def retention_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--recovery-window", help="Keep every restore point of this last period (e.g. 7d, 36h).")(f)
    f = click.option("--keep-bases", type=int, help="Keep the newest N base backups (and what they need).")(f)
    return f


def _retention(keep_bases: int | None, recovery_window: str | None) -> Any:
    from ybrewind.archive.retention import RetentionPolicy
    from ybrewind.archive.schedule import parse_duration

    window = parse_duration(recovery_window, "--recovery-window") if recovery_window else None
    return RetentionPolicy(keep_bases, int(window * 1e6) if window else None)


@cli.group("archive")
def archive_group() -> None:
    """Continuous archiving of every committed change (the change log)."""


@archive_group.command("start")
@click.argument("source")
@click.argument("repo")
@click.option("--slot", default="ybrewind", show_default=True, help="Logical replication slot name.")
@click.option("--publication", default="ybrewind", show_default=True)
@click.option("--segment-size", type=int, default=16, show_default=True, help="MiB: rotate segments at this size.")
@click.option("--segment-age", type=float, default=60.0, show_default=True, help="Seconds: rotate segments this old.")
@click.option("--replica-identity-full", is_flag=True, help="Set REPLICA IDENTITY FULL on tables without a key.")
@click.option("-j", "--jobs", type=int, default=2, show_default=True, help="Workers for the first base backup.")
@click.option("--scan-interval", help="ycql:// sources: time between scans (e.g. 30s, 5m, 1h; default 5m).")
@click.option("--max-scans", type=int, help="ycql:// sources: stop after this many scans.")
@click.option("--base-every", help="Take a new base backup this often (e.g. 24h, 6h, 30m), beside the stream.")
@click.option("--base-at", help="With --base-every: anchor the schedule at this time of day, HH:MM UTC.")
@retention_options
@repo_options
@common_options
def archive_start(
    source: str,
    repo: str,
    slot: str,
    publication: str,
    segment_size: int,
    segment_age: float,
    replica_identity_full: bool,
    jobs: int,
    scan_interval: str | None,
    max_scans: int | None,
    base_every: str | None,
    base_at: str | None,
    keep_bases: int | None,
    recovery_window: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Archive SOURCE's changes into REPO (a directory or s3://bucket/prefix) until stopped.

    The first start takes a base backup; later starts resume from the slot. SIGINT/SIGTERM stop
    cleanly, storing what is held. A ycql://host/KEYSPACE source is scanned every --scan-interval.
    --base-every takes further base backups on schedule; --keep-bases / --recovery-window then
    prune what no restore inside the kept window needs.
    """
    import signal
    import threading

    from ybrewind.archive.schedule import parse_clock, parse_duration
    from ybrewind.ysql.archiver import ArchiveOptions, Archiver

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if is_ycql_url(source):
        from ybrewind.ycql import capture as ycap

        with _progress(quiet) as cprogress:
            cresult = ycap.capture(
                YcqlEndpoint.parse(source),
                _repository(repo, endpoint_url, region, profile),
                ycap.CaptureOptions(
                    interval=ycap.parse_interval(scan_interval or "5m"), jobs=jobs, max_scans=max_scans
                ),
                cprogress,
                stop,
            )
        _emit(as_json, quiet, cresult, ycap.describe_result(cresult))
        return
    if scan_interval is not None or max_scans is not None:
        raise UsageError("--scan-interval and --max-scans are for ycql:// sources")
    if base_at is not None and base_every is None:
        raise UsageError("--base-at needs --base-every")
    retention = _retention(keep_bases, recovery_window)
    if retention.active and base_every is None:
        raise UsageError("--keep-bases and --recovery-window prune after each scheduled base backup: add --base-every")
    _require_api(_repository(repo, endpoint_url, region, profile), "ysql")
    options = ArchiveOptions(
        slot=slot,
        publication=publication,
        segment_bytes=segment_size << 20,
        segment_seconds=segment_age,
        replica_identity_full=replica_identity_full,
        base_jobs=jobs,
        base_every_seconds=parse_duration(base_every, "--base-every") if base_every else None,
        base_at_us=parse_clock(base_at) if base_at else None,
        retention=retention,
    )
    progress = Progress() if quiet else TerminalProgress()
    if not quiet:
        click.echo(f"archiving {PgEndpoint.parse(source).display()} into {repo} (Ctrl-C to stop)", err=True)
    archiver = Archiver(PgEndpoint.parse(source), _repository(repo, endpoint_url, region, profile), options, progress)
    result = archiver.run(stop)
    _emit(
        as_json,
        quiet,
        result,
        f"archiver stopped: {result.transactions} transactions in {result.segments} "
        f"segments this run, confirmed up to {result.flushed_lsn}",
    )


@archive_group.command("status")
@click.argument("repo")
@repo_options
@common_options
def archive_status(
    repo: str, endpoint_url: str | None, region: str | None, profile: str | None, quiet: bool, as_json: bool
) -> None:
    """Is the archiver running, how far behind, what the repository holds."""
    from ybrewind.archive.status import repository_status
    from ybrewind.ycql.capture import repository_api, scan_status

    repository = _repository(repo, endpoint_url, region, profile)
    if repository_api(repository) == "ycql":
        yst = scan_status(repository)
        _report(as_json, quiet, yst, yst["text"])
        return
    st = repository_status(repository)
    _report(as_json, quiet, st, st.describe())


@archive_group.command("drop")
@click.argument("source")
@click.argument("repo")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@repo_options
@common_options
def archive_drop(
    source: str,
    repo: str,
    yes: bool,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Drop the archiver's slot, publication and DDL capture from SOURCE (the repository is kept)."""
    from ybrewind.ysql.archiver import drop

    if is_ycql_url(source):
        raise UsageError("a ycql:// archiver installs nothing on its source: there is nothing to drop")
    repository = _repository(repo, endpoint_url, region, profile)
    _require_api(repository, "ysql")
    endpoint = PgEndpoint.parse(source)
    if not yes:
        click.confirm(
            f"drop the replication slot and publication of {repository.url} on {endpoint.display()}? "
            "Archiving stops for good",
            abort=True,
            err=True,
        )
    dropped = drop(endpoint, repository)
    _emit(as_json, quiet, {"dropped": dropped}, "dropped: " + (", ".join(dropped) or "nothing"))


@cli.group("repo")
def repo_group() -> None:
    """Look after a change-log repository: prune, info, verify."""


def _require_ysql_repository(repository: Any, command: str) -> None:
    from ybrewind.ycql.capture import repository_api

    if repository_api(repository) == "ycql":
        raise UsageError(f"repo {command} supports YSQL repositories; {repository.url} is a YCQL one (see archive status)")


@repo_group.command("prune")
@click.argument("repo")
@click.option("--dry-run", is_flag=True, help="Only say what would be dropped.")
@retention_options
@repo_options
@common_options
def repo_prune(
    repo: str,
    dry_run: bool,
    keep_bases: int | None,
    recovery_window: str | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Drop base backups and segments no restore inside the kept window needs.

    The policy is --keep-bases / --recovery-window, or else the archiver's (from its status).
    Safe while the archiver runs; a prune killed midway is finished by the next one.
    """
    from ybrewind.archive.retention import RetentionPolicy, prune

    repository = _repository(repo, endpoint_url, region, profile)
    _require_ysql_repository(repository, "prune")
    policy = _retention(keep_bases, recovery_window)
    if not policy.active:
        policy = RetentionPolicy.from_dict((repository.status() or {}).get("retention"))
    if not policy.active:
        raise UsageError(f"{repository.url} has no retention policy: pass --keep-bases N and/or --recovery-window D")
    with _progress(quiet) as progress:
        result = prune(repository, policy, dry_run=dry_run, progress=progress)
    _report(as_json, quiet, result, result.describe())


@repo_group.command("info")
@click.argument("repo")
@repo_options
@common_options
def repo_info(
    repo: str, endpoint_url: str | None, region: str | None, profile: str | None, quiet: bool, as_json: bool
) -> None:
    """Base backups, segments, restorable windows, sizes, retention policy, the archiver's health."""
    from ybrewind.archive.inventory import repository_inventory

    repository = _repository(repo, endpoint_url, region, profile)
    _require_ysql_repository(repository, "info")
    inventory = repository_inventory(repository)
    _report(as_json, quiet, inventory, inventory.describe())


@repo_group.command("verify")
@click.argument("repo")
@repo_options
@common_options
def repo_verify(
    repo: str, endpoint_url: str | None, region: str | None, profile: str | None, quiet: bool, as_json: bool
) -> None:
    """Check every object's checksum and the segment chain; name whatever is damaged or missing (exit 5)."""
    from ybrewind.archive.verify import verify_repository

    repository = _repository(repo, endpoint_url, region, profile)
    _require_ysql_repository(repository, "verify")
    result = verify_repository(repository)
    _report(as_json, quiet, {**dataclasses.asdict(result), "ok": result.ok}, result.describe())
    if not result.ok:
        raise DumpIntegrityError(f"{repository.url}: {len(result.problems)} problem(s): {result.problems[0]}")


@cli.command("backup")
@click.argument("source")
@click.argument("repo")
@click.option("-j", "--jobs", type=int, default=2, show_default=True)
@repo_options
@common_options
def backup_command(
    source: str,
    repo: str,
    jobs: int,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Take another base backup into REPO at an exact position, so restores replay less."""
    from ybrewind.ysql.archiver import ArchiveOptions, backup

    if is_ycql_url(source):
        raise UsageError("a ycql:// repository's base is its first scan; `ybrewind backup` is for YSQL sources")
    repository = _repository(repo, endpoint_url, region, profile)
    _require_api(repository, "ysql")
    with _progress(quiet) as progress:
        name = backup(
            PgEndpoint.parse(source),
            repository,
            ArchiveOptions(base_jobs=jobs),
            progress,
        )
    _emit(as_json, quiet, {"base_backup": name}, f"base backup {name} stored")


# -- restore / clone ---------------------------------------------------------------------------------
def _target_time(to_time: str | None, timezone: str | None) -> int | None:
    from ybrewind.pitr import parse_time

    return parse_time(to_time, timezone) if to_time is not None else None


@cli.command("restore")
@click.argument("repo")
@click.argument("target", required=False)
@click.option("--to-time", help="ISO-8601 with offset, now-15m, or Unix microseconds.")
@click.option("--to-lsn", help="Replay up to and including the transaction committed at this LSN.")
@click.option("--latest", is_flag=True, help="Replay everything archived.")
@click.option("--timezone", help="Time zone for --to-time values without an offset (e.g. Europe/Paris).")
@click.option("--list", "list_only", is_flag=True, help="Show the restorable window(s) and base backups.")
@click.option("-j", "--jobs", type=int, default=2, show_default=True)
@click.option(
    "--batch-changes",
    type=int,
    default=20_000,
    show_default=True,
    help="Source changes per target transaction (and per resumable step).",
)
@repo_options
@common_options
def restore_command(
    repo: str,
    target: str | None,
    to_time: str | None,
    to_lsn: str | None,
    latest: bool,
    timezone: str | None,
    list_only: bool,
    jobs: int,
    batch_changes: int,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Restore REPO into TARGET (a new or empty database) as of a time, an LSN, or the latest commit."""
    from ybrewind import pitr
    from ybrewind.ysql.pgoutput import str_to_lsn
    from ybrewind.ysql.restore import RestoreOptions, restore

    repository = _repository(repo, endpoint_url, region, profile)
    if repository.require_info().source.get("api") == "ycql":
        _restore_ycql(repository, target, to_time, to_lsn, latest, timezone, list_only, jobs, quiet, as_json)
        return
    if target is not None and is_ycql_url(target):
        _require_api(repository, "ycql")
    if list_only:
        complete_us, bases, segments = repository.restore_listing()
        windows = pitr.restorable_windows(bases, segments, complete_us)
        summary = {
            "windows": [{"from": pitr.to_iso(w.start_us), "to": pitr.to_iso(w.end_us)} for w in windows],
            "base_backups": [{"name": b.name, "time": pitr.to_iso(b.time_us), "lsn": f"{b.lsn:X}"} for b in bases],
            "segments": len(segments),
            "transactions": sum(s.transactions for s in segments),
        }
        human = "\n".join(
            [f"restorable: {w.describe()}" for w in windows]
            or ["nothing restorable yet"] + [f"base backup {b['name']} at {b['time']}" for b in summary["base_backups"]]
        )
        _report(as_json, quiet, summary, human)
        return
    chosen = [x for x in (to_time, to_lsn, latest or None) if x]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --to-time, --to-lsn, --latest (or --list)")
    try:
        lsn = str_to_lsn(to_lsn) if to_lsn else None
    except ValueError:
        raise UsageError(f"invalid LSN {to_lsn!r} (expected X/X, e.g. 0/1A2B3C4)") from None
    options = RestoreOptions(
        target_us=_target_time(to_time, timezone), target_lsn=lsn, jobs=jobs, batch_changes=batch_changes
    )
    with _progress(quiet) as progress:
        result = restore(repository, PgEndpoint.parse(target), options, progress)
    _emit(
        as_json,
        quiet,
        result,
        f"restored {result.target} to {result.restored_to or 'its base backup'} ({result.transactions} "
        f"transactions replayed on base {result.base_backup}) in {result.seconds:.2f}s",
    )


def _restore_ycql(
    repository: Any,
    target: str | None,
    to_time: str | None,
    to_lsn: str | None,
    latest: bool,
    timezone: str | None,
    list_only: bool,
    jobs: int,
    quiet: bool,
    as_json: bool,
) -> None:
    from ybrewind.ycql import rewind

    if list_only:
        summary = rewind.list_scans(repository)
        _report(as_json, quiet, summary, rewind.describe_list(summary))
        return
    if to_lsn:
        raise UsageError("--to-lsn is for YSQL repositories; a YCQL repository restores --to-time or --latest")
    if bool(to_time) == bool(latest):
        raise UsageError("give exactly one of --to-time, --latest (or --list)")
    if target is None or not is_ycql_url(target):
        _require_api(repository, "ysql")
    assert target is not None
    with _progress(quiet) as progress:
        result = rewind.restore(
            repository,
            YcqlEndpoint.parse(target),
            rewind.RestoreOptions(target_us=_target_time(to_time, timezone), jobs=jobs),
            progress,
        )
    _emit(
        as_json,
        quiet,
        result,
        f"restored {result.target} to {result.restored_to} ({result.rows} rows, {result.scans_read} scans read) "
        f"in {result.seconds:.2f}s; precision: {result.precision}",
    )


@cli.command("clone")
@click.argument("source")
@click.argument("new_db")
@click.option("--as-of", "as_of", required=True, help="ISO-8601 with offset, now-15m, or Unix microseconds.")
@click.option("--timezone", help="Time zone for --as-of values without an offset.")
@click.option("--repo", help="The source's change-log repository (needed on PostgreSQL).")
@click.option("--target", help="Create the clone on this server instead of the source's.")
@click.option("--native", is_flag=True, help="YugabyteDB: CREATE DATABASE ... TEMPLATE ... AS OF (snapshot schedule).")
@click.option("--yb-admin", help="ycql:// with --native: the yb-admin executable (default: yb-admin on PATH).")
@click.option("--master-addresses", help="ycql:// with --native: YB-Master addresses host:7100[,...].")
@click.option("-j", "--jobs", type=int, default=2, show_default=True)
@repo_options
@common_options
def clone_command(
    source: str,
    new_db: str,
    as_of: str,
    timezone: str | None,
    repo: str | None,
    target: str | None,
    native: bool,
    yb_admin: str | None,
    master_addresses: str | None,
    jobs: int,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Create NEW_DB as SOURCE was at --as-of."""
    from ybrewind.ysql.clone import clone

    as_of_us = _target_time(as_of, timezone)
    assert as_of_us is not None
    if is_ycql_url(source):
        _clone_ycql(source, new_db, as_of_us, repo, target, native, yb_admin, master_addresses, jobs, quiet, as_json,
                    (endpoint_url, region, profile))  # fmt: skip
        return
    repository = _repository(repo, endpoint_url, region, profile) if repo else None
    with _progress(quiet) as progress:
        result = clone(
            PgEndpoint.parse(source),
            new_db,
            as_of_us,
            repo=repository,
            target=PgEndpoint.parse(target) if target else None,
            native=native,
            jobs=jobs,
            progress=progress,
        )
    _emit(
        as_json,
        quiet,
        result,
        f"cloned {result.source} as of {result.as_of} into {result.clone} ({result.method}) in {result.seconds:.2f}s",
    )


def _clone_ycql(
    source: str,
    new_keyspace: str,
    as_of_us: int,
    repo: str | None,
    target: str | None,
    native: bool,
    yb_admin: str | None,
    master_addresses: str | None,
    jobs: int,
    quiet: bool,
    as_json: bool,
    s3: tuple[str | None, str | None, str | None],
) -> None:
    from ybrewind.ycql import rewind

    endpoint = YcqlEndpoint.parse(source)
    if native:
        argv = rewind.native_clone(yb_admin, master_addresses or "", endpoint.keyspace or "", new_keyspace, as_of_us)
        _emit(as_json, quiet, {"clone": new_keyspace, "method": "native", "command": argv},
              f"cloned {endpoint.display()} as {new_keyspace} (yb-admin clone_namespace)")  # fmt: skip
        return
    if not repo:
        raise UsageError("cloning a ycql:// keyspace needs --repo (its scan repository) or --native")
    repository = _repository(repo, *s3)
    _require_api(repository, "ycql")
    base = YcqlEndpoint.parse(target) if target else endpoint
    if repository.require_info().source.get("keyspace") != endpoint.keyspace:
        raise UsageError(f"{repository.url} does not archive keyspace {endpoint.keyspace}")
    with _progress(quiet) as progress:
        result = rewind.restore(
            repository, base.with_keyspace(new_keyspace), rewind.RestoreOptions(target_us=as_of_us, jobs=jobs), progress
        )
    _emit(as_json, quiet, result, f"cloned {endpoint.display()} as of {result.restored_to} into {result.target} "
          f"in {result.seconds:.2f}s; precision: {result.precision}")  # fmt: skip


# -- entry point ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    debug = bool(os.environ.get("YBREWIND_DEBUG"))
    try:
        cli.main(args=argv, prog_name="ybrewind", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except click.Abort:
        click.echo("ybrewind: aborted", err=True)
        sys.exit(130)
    except YbrewindError as e:
        if debug:
            raise
        click.echo(f"ybrewind: error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("ybrewind: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except OSError as e:
        if debug:
            raise
        click.echo(
            f"ybrewind: error: {e.filename or ''}: {e.strerror or e}"
            if e.filename
            else f"ybrewind: error: {e.strerror or e}",
            err=True,
        )
        sys.exit(8)
    except psycopg.Error as e:
        if debug:
            raise
        click.echo(f"ybrewind: error: {' '.join(str(e).split())}", err=True)
        sys.exit(4)
    except Exception as e:
        if debug:
            raise
        click.echo(
            f"ybrewind: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
            "(set YBREWIND_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
