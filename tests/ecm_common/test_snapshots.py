"""snapshot_below: a bounded snapshot sees exactly what the full one sees below the bound, as
PostgreSQL itself judges visibility."""

from __future__ import annotations

import pytest

from ecm_common.snapshots import snapshot_below
from tests.fixtures.postgres import PgServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("snapshot", "bound", "expected"),
    [
        ("100:110:102,105", 104, "100:104:102"),
        ("100:110:102,105", 120, "100:110:102,105"),
        ("100:110:", 95, "95:95:"),
        ("100:100:", 100, "100:100:"),
    ],
)
def test_bounded_snapshot_text(snapshot: str, bound: int, expected: str) -> None:
    assert snapshot_below(snapshot, bound) == expected


def test_visibility_below_and_above_the_bound(pg_server: PgServer) -> None:
    full, bound = "100:110:102,105", 104
    cut = snapshot_below(full, bound)
    with pg_server.admin() as conn:
        for xid in range(95, 115):
            seen_full, seen_cut = conn.execute(
                "SELECT pg_visible_in_snapshot(%s::text::xid8, %s::pg_snapshot),"
                " pg_visible_in_snapshot(%s::text::xid8, %s::pg_snapshot)",
                (str(xid), full, str(xid), cut),
            ).fetchone() or (None, None)
            assert seen_cut == (seen_full and xid < bound), xid
