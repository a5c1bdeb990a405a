"""Which tables replay may batch by net effect (pure part of ybrewind.ysql.apply, no server)."""

from __future__ import annotations

import pytest

from ybrewind.ysql.apply import net_effect_exact


@pytest.mark.parametrize(
    ("keys", "indexes", "exact"),
    [
        (["id"], [], True),  # no index at all (the key is the replica identity)
        (["id"], [(False, False, ["id"])], True),  # pgbench shape: the primary key only
        (["id"], [(False, False, ["id"]), (False, False, ["id", "n"])], True),  # implied by the key
        (["a", "b"], [(False, False, ["b", "a"])], True),  # same columns, another order
        (["id"], [(False, False, ["id"]), (False, False, ["slug"])], False),  # docs(slug unique)
        (["a", "b"], [(False, False, ["a"])], False),  # stricter than the key
        (["id"], [(False, False, ["id"]), (False, True, ["slug"])], True),  # deferrable: checked at commit
        (["id"], [(True, False, ["during"])], False),  # exclusion constraint
        (["id"], [(True, False, ["id"])], False),  # unique expression index on the key column
        (["id"], [(True, True, ["during"])], True),  # deferrable exclusion
    ],
)
def test_net_effect_exact(keys: list[str], indexes: list[tuple[bool, bool, list[str]]], exact: bool) -> None:
    assert net_effect_exact(keys, indexes) is exact
