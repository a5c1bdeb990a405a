"""Upstream snapshots that serve ``yb_read_time``.

YugabyteDB reads at any hybrid time within the history retention. PostgreSQL can only import a
snapshot some session exported and still holds, so per database the keeper holds:

- the snapshot of each replication slot (CREATE_REPLICATION_SLOT ... USE_SNAPSHOT returns its
  hybrid time), re-exported from a session of its own so it outlives the walsender;
- a ring of snapshots taken every ``interval`` seconds and kept for ``retention`` seconds. A new
  one is only taken when the database's transaction state changed (``pg_current_snapshot()``), so
  one snapshot stands exactly for a whole idle period. ``pg_current_snapshot()`` is cluster-wide,
  so writes in other databases also count as changes: at most ``max_held`` snapshots are held per
  database (each is an open session), thinned where they are closest in time. A read time between two snapshots (something
  committed in between) is served by the later one: it misses nothing committed before the read
  time but may hold commits of the next ``interval`` seconds, the emulator's limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass

import psycopg

from tests.support.ybsim.sqlrewrite import YbError


@dataclass
class Held:
    name: str
    state: str  # pg_current_snapshot() text when taken
    valid_from: float  # unix seconds: taken after this
    valid_until: float  # unix seconds: nothing changed until then
    conn: psycopg.AsyncConnection


async def _export(url: str) -> tuple[psycopg.AsyncConnection, str, str]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    cur = await conn.execute("SELECT pg_export_snapshot(), pg_current_snapshot()::text")
    row = await cur.fetchone()
    assert row is not None
    return conn, str(row[0]), str(row[1])


class DatabaseSnapshots:
    def __init__(
        self, url: str, interval: float, retention: float, slot_retention: float, max_held: int = 16
    ) -> None:
        self.url = url
        self.max_held = max(3, max_held)
        self.interval = interval
        self.retention = retention
        self.slot_retention = slot_retention
        self.ring: list[Held] = []
        self.slots: dict[int, tuple[Held, float]] = {}  # hybrid time -> (snapshot, expires)
        self.task: asyncio.Task[None] | None = None
        self.probe: psycopg.AsyncConnection | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except (psycopg.Error, OSError) as e:  # database dropped or restarted: try again later
                print(f"ybsim: snapshot keeper for {self.url.rsplit('/', 1)[-1]}: {e}", file=sys.stderr)
                await self._close_probe()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        if self.probe is None or self.probe.closed:
            self.probe = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        before = time.time()
        cur = await self.probe.execute("SELECT pg_current_snapshot()::text")
        row = await cur.fetchone()
        state = str(row[0]) if row else ""
        if self.ring and self.ring[-1].state == state:
            self.ring[-1].valid_until = before
        else:
            taken = time.time()
            conn, name, state = await _export(self.url)
            self.ring.append(Held(name, state, taken, taken, conn))
        now = time.time()
        while len(self.ring) > 1 and self.ring[0].valid_until < now - self.retention:
            await self.ring.pop(0).conn.close()
        while len(self.ring) > self.max_held:
            # drop the snapshot whose neighbours are closest: resolution spread over the history
            i = min(
                range(1, len(self.ring) - 1),
                key=lambda k: self.ring[k + 1].valid_from - self.ring[k - 1].valid_until,
            )
            await self.ring.pop(i).conn.close()
        for ht, (held, expires) in list(self.slots.items()):
            if expires < now:
                del self.slots[ht]
                await held.conn.close()

    async def keep_slot_snapshot(self, exported: str, ht: int) -> None:
        """Re-export a walsender's snapshot from a session of our own."""
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        await conn.execute(psycopg.sql.SQL("SET TRANSACTION SNAPSHOT {}").format(psycopg.sql.Literal(exported)))
        cur = await conn.execute("SELECT pg_export_snapshot(), pg_current_snapshot()::text")
        row = await cur.fetchone()
        assert row is not None
        now = time.time()
        self.slots[ht] = (Held(str(row[0]), str(row[1]), now, now, conn), now + self.slot_retention)

    def lookup(self, value: str) -> str:
        """The snapshot for yb_read_time ``value``: '<n> ht' (hybrid time) or unix microseconds."""
        text = value.strip().strip("'").strip()
        if text.endswith("ht"):
            ht = int(text[:-2].strip())
            if ht in self.slots:
                return self.slots[ht][0].name
            at = (ht >> 12) / 1e6
        else:
            try:
                at = int(text) / 1e6
            except ValueError:
                raise YbError(f'invalid value for parameter "yb_read_time": "{value}"', "22023") from None
        if at > time.time() + 1:
            raise YbError("cannot read at a time in the future (yb_read_time)", "22023")
        if not self.ring or at < self.ring[0].valid_from:
            raise YbError(
                "Snapshot too old: the read time is older than the history the emulator retains "
                f"({self.retention:.0f} s)",
                "72000",
            )
        for held in self.ring:
            if held.valid_from <= at <= held.valid_until:
                return held.name  # nothing committed between the snapshot and the read time: exact
        # Something committed between the two snapshots around the read time: the later one holds
        # every commit before it (and possibly a few after it).
        later = [h for h in self.ring if h.valid_from >= at]
        held = later[0] if later else self.ring[-1]
        print(f"ybsim: read time {at:.3f} served by the snapshot of {held.valid_from:.3f} (inexact)", file=sys.stderr)
        return held.name

    async def _close_probe(self) -> None:
        if self.probe is not None:
            with contextlib.suppress(psycopg.Error):
                await self.probe.close()
            self.probe = None

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        await self._close_probe()
        for held in self.ring:
            await held.conn.close()
        for held, _ in self.slots.values():
            await held.conn.close()
        self.ring, self.slots = [], {}
