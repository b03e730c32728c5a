"""One bounded, exactly-once fold of newly committed rows into rollups (ecm_common/snapshots.py):
read the stored snapshot, fold the rows committed since it up to a snapshot that holds about
max_rows of them, store that snapshot; all in one REPEATABLE READ transaction, so the rollups and
the snapshot they are complete up to commit together or not at all.

Two folds at once (two API replicas) cannot both commit: the second fails on the state row with
a serialization failure and leaves the rows to its next run. Each rollup names its statements in
a FoldSql; the API's PM rollup and call rollup both fold through here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import LiteralString

import psycopg
from psycopg import IsolationLevel

from ecm_common.snapshots import COMMITTED_SINCE, CONTINUOUS, snapshot_below

log = logging.getLogger(__name__)


def fold_bound(table: LiteralString) -> LiteralString:
    """FoldSql.bound for a table with a txid column (range-scans its txid index)."""
    return (
        "SELECT (SELECT txid::text FROM "
        + table
        + " WHERE "
        + COMMITTED_SINCE
        + " ORDER BY txid LIMIT 1),\n       (SELECT txid::text FROM "
        + table
        + " WHERE "
        + COMMITTED_SINCE
        + " ORDER BY txid OFFSET %(n)s LIMIT 1)"
    )


@dataclass(frozen=True)
class FoldSql:
    """The statements of one rollup; each binds the parameters named below."""

    # The transaction's first statement: (stored snapshot, pg_current_snapshot()) as text.
    state: LiteralString
    # (first, (n+1)-th) writing transaction of the rows committed since %(prev)s, or NULLs.
    bound: LiteralString
    # Folds the rows committed since %(prev)s and visible in %(upto)s; first column: rows.
    fold: LiteralString
    # Stores %(snapshot)s and adds %(rows)s to the rows folded.
    save: LiteralString
    what: str


def fold_once(conn: psycopg.Connection, q: FoldSql, max_rows: int) -> tuple[int, bool]:
    """Fold about max_rows of the rows committed since the stored snapshot; returns how many,
    and whether that was all of them."""
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = False
    with conn.transaction():
        row = conn.execute(q.state).fetchone()
        assert row is not None
        prev, current = str(row[0]), str(row[1])
        same = conn.execute(CONTINUOUS, {"prev": prev}).fetchone()
        folded = 0
        upto = current
        if same and same[0]:
            upto = _bounded(conn, q, prev, current, max_rows)
            out = conn.execute(q.fold, {"prev": prev, "upto": upto}).fetchone()
            folded = int(out[0]) if out else 0
        else:
            # A restore into another cluster: its transaction ids start over. The rows
            # restored with the rollups are in them already; fold from now on.
            log.warning("the database's transaction ids went back; %s restart here", q.what)
        conn.execute(q.save, {"snapshot": upto, "rows": folded})
    return folded, upto == current


def _bounded(conn: psycopg.Connection, q: FoldSql, prev: str, current: str, max_rows: int) -> str:
    """current, or a snapshot below it that holds about max_rows of the new rows."""
    row = conn.execute(q.bound, {"prev": prev, "n": max_rows})
    first, nth = row.fetchone() or (None, None)
    if first is None or nth is None:
        return current
    # One transaction's rows are never split: past the first, stop at the n-th's.
    bound = int(nth) if int(nth) > int(first) else int(first) + 1
    return snapshot_below(current, bound)
