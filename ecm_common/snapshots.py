"""Exactly-once incremental reading of a table whose rows carry their writing transaction id
(a column `txid xid8 DEFAULT pg_current_xact_id()`): the rows visible in the reader's snapshot
but not in its previous one are exactly the rows committed in between, whatever order the
writers committed in; aborted rows are never visible.

The exporter reads emergency_calls this way and the API folds pm_events into its rollups this
way. The reader keeps the previous snapshot (pg_snapshot text) and binds it as %(prev)s.
"""

from __future__ import annotations

from typing import LiteralString

# The WHERE condition of "committed since snapshot prev" (range-scans an index on txid).
COMMITTED_SINCE: LiteralString = (
    "txid >= pg_snapshot_xmin(%(prev)s::pg_snapshot)\n"
    "   AND NOT pg_visible_in_snapshot(txid, %(prev)s::pg_snapshot)"
)

# Is the database still on the same transaction-id timeline as a previous snapshot? (A restore
# into another cluster starts over: reading from prev there would miss rows.)
CONTINUOUS: LiteralString = (
    "SELECT pg_snapshot_xmin(%(prev)s::pg_snapshot) <= pg_snapshot_xmin(pg_current_snapshot())"
)

# With COMMITTED_SINCE: only the rows a (possibly bounded, see snapshot_below) snapshot sees.
VISIBLE_UPTO: LiteralString = "pg_visible_in_snapshot(txid, %(upto)s::pg_snapshot)"


def snapshot_below(snapshot: str, bound: int) -> str:
    """The snapshot that sees what `snapshot` sees among transactions below `bound`, and none
    from `bound` on: a reader that stops there folds a bounded share of a backlog and takes
    the rest, exactly once, from this snapshot on.

    pg_snapshot text is "xmin:xmax:xip,..."; transactions in progress below the bound stay
    invisible (in xip) and are read later, as with any snapshot.
    """
    xmin_text, xmax_text, xip_text = snapshot.split(":")
    xmin, xmax = int(xmin_text), int(xmax_text)
    top = min(xmax, bound)
    low = min(xmin, top)
    xip = [x for x in (int(v) for v in xip_text.split(",") if v) if x < top]
    return f"{low}:{top}:{','.join(map(str, xip))}"
