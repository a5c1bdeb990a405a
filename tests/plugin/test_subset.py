"""dump --subset / --mask on the project's fixture database, loaded back into a fresh database."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import PgServer
from tests.support.cli import assert_one_line_error, run_cli
from ybrewind.errors import UsageError
from ybrewind.ysql.dump import DumpOptions, dump
from ybrewind.ysql.load import load
from ybrewind.ysql.subset import SubsetSpec, split_name

ORPHANS = """
SELECT fk.conname, format('SELECT count(*) FROM ONLY %s c WHERE (%s) IS NOT NULL AND NOT EXISTS
    (SELECT 1 FROM ONLY %s p WHERE (%s) = (%s))', fk.conrelid::regclass,
    (SELECT string_agg(format('c.%I', attname), ', ') FROM unnest(fk.conkey) k JOIN pg_attribute a
       ON a.attrelid = fk.conrelid AND a.attnum = k),
    fk.confrelid::regclass,
    (SELECT string_agg(format('p.%I', attname), ', ') FROM unnest(fk.confkey) k JOIN pg_attribute a
       ON a.attrelid = fk.confrelid AND a.attnum = k),
    (SELECT string_agg(format('c.%I', attname), ', ') FROM unnest(fk.conkey) k JOIN pg_attribute a
       ON a.attrelid = fk.conrelid AND a.attnum = k))
FROM pg_constraint fk WHERE fk.contype = 'f' AND fk.conparentid = 0
"""


def values(conn: psycopg.Connection, query: str) -> list[object]:
    return [r[0] for r in conn.execute(query.encode()).fetchall()]


def test_subset_follows_foreign_keys_and_masks_consistently(pg: PgServer, fixture_db: str, db: str,
                                                            tmp_path: Path) -> None:
    spec = SubsetSpec.parse(
        ['"Sales".orders: id <= 12 AND region <> \'east\''],
        ['"Sales".orders.region=hash', '"Sales".order_lines.region=hash', "public.customers.email=email",
         "public.employees.email=null"],
    )
    dump(pg.endpoint(fixture_db), tmp_path / "subset", DumpOptions(subset=spec))
    load(tmp_path / "subset", pg.endpoint(db))  # post-data adds every FK: a broken reference fails here
    with pg.connect(fixture_db) as src, pg.connect(db) as dst:
        # every foreign key holds (checked again explicitly, NULL references excepted)
        for name, query in dst.execute(ORPHANS).fetchall():
            assert dst.execute(query.encode()).fetchone()[0] == 0, name
        # the roots, and nothing else, from the root table
        want_orders = values(src, "SELECT id FROM \"Sales\".orders WHERE id <= 12 AND region <> 'east' ORDER BY id")
        assert values(dst, 'SELECT id FROM "Sales".orders ORDER BY id') == want_orders
        # downward: all their lines, only theirs
        assert values(dst, 'SELECT count(*) FROM "Sales".order_lines') == values(
            src, "SELECT count(*) FROM \"Sales\".order_lines WHERE order_id <= 12 AND region <> 'east'")
        # upward: exactly the customers of those orders (not the customers' other orders' lines)
        assert sorted(values(dst, "SELECT id FROM customers")) == values(
            src, "SELECT DISTINCT customer_id FROM \"Sales\".orders WHERE id <= 12 AND region <> 'east' "
            "AND customer_id IS NOT NULL ORDER BY 1")
        # upward through a second level: exactly the items those lines use
        assert sorted(values(dst, "SELECT sku::text FROM inventory.items")) == values(
            src, "SELECT DISTINCT sku::text FROM \"Sales\".order_lines WHERE order_id <= 12 AND region <> 'east' ORDER BY 1")
        # connected by foreign keys (however indirectly) but not needed: no rows; unconnected: whole
        assert values(dst, "SELECT count(*) FROM events") == [0]
        assert values(dst, "SELECT count(*) FROM inventory.stock") == [0]
        assert values(dst, 'SELECT count(*) FROM "Ünïcode ""schema"""."Tåble ""quoted"" \'single\'"') == [0]
        assert values(dst, "SELECT count(*) FROM tickets") == values(src, "SELECT count(*) FROM tickets")
        # masks: no original value survives, and equal inputs stay equal across tables (the composite
        # FK order_lines(region, order_id) -> orders(region, id) held through the load above)
        masked_regions = set(values(dst, 'SELECT region FROM "Sales".orders'))
        assert masked_regions and not masked_regions & set(values(src, 'SELECT region FROM "Sales".orders'))
        assert len(masked_regions) == len(set(values(
            src, "SELECT region FROM \"Sales\".orders WHERE id <= 12 AND region <> 'east'")))
        emails = values(dst, "SELECT email::text FROM customers")
        assert all(e.endswith("@example.invalid") for e in emails)  # type: ignore[union-attr]
        assert not set(emails) & set(values(src, "SELECT email::text FROM customers"))
        assert values(dst, "SELECT count(*) FROM employees WHERE email IS NOT NULL") == [0]
        assert values(dst, "SELECT count(*) FROM employees") == values(src, "SELECT count(*) FROM employees")


def test_self_reference_is_followed_upward(pg: PgServer, fixture_db: str, db: str, tmp_path: Path) -> None:
    spec = SubsetSpec.parse(["employees: manager_id IS NOT NULL AND id = (SELECT max(id) FROM public.employees "
                             "WHERE manager_id IS NOT NULL)"], [])
    dump(pg.endpoint(fixture_db), tmp_path / "emp", DumpOptions(subset=spec))
    load(tmp_path / "emp", pg.endpoint(db))
    with pg.connect(fixture_db) as src, pg.connect(db) as dst:
        chain = values(src, """WITH RECURSIVE up AS (
            SELECT id, manager_id FROM employees WHERE id = (SELECT max(id) FROM employees WHERE manager_id IS NOT NULL)
            UNION SELECT e.id, e.manager_id FROM employees e JOIN up ON e.id = up.manager_id) SELECT id FROM up""")
        assert len(chain) >= 2
        assert sorted(values(dst, "SELECT id FROM employees")) == sorted(chain)


def test_bad_subset_and_mask_input_is_one_line(
    pg: PgServer, fixture_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert split_name('"Sales".orders', 2) == ["Sales", "orders"]
    assert split_name('"a.b"."c""d".e', 3) == ["a.b", 'c"d', "e"]
    for subsets, masks, message in [
        (["orders"], [], "expected 'schema.table: condition'"),
        ([], ["public.customers.email"], "expected schema.table.column=KIND"),
        ([], ["public.customers.email=faker:email"], "Faker"),
        ([], ["public.customers.email=rot13"], "unknown kind"),
    ]:
        with pytest.raises(UsageError, match=message):
            SubsetSpec.parse(subsets, masks)
    for args, message in [
        (["--subset", "public.nope: true"], "not among the dumped tables"),
        (["--subset", "public.customers: no_such_column > 1"], "no_such_column"),
        (["--mask", "public.customers.id=hash"], "needs a text column"),
        (["--mask", "public.customers.name=null"], "NOT NULL"),
        (["--subset", "public.customers: true", "--inserts"], "not --inserts"),
        (["--subset", "public.customers: true", "--format", "plain"], "not --format plain"),
    ]:
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        target = [] if "plain" in args else [str(out)]
        code, _, err = run_cli(capsys, "dump", "-q", *args, pg.url(fixture_db), *target)
        assert_one_line_error(code, err, message)
