"""Every SQL statement of the broadcast, with bound parameters only.

Guarantee kept here: a message changes state only under its current lease. A claim and a
reclaim bump lease_token; recording an outcome or renewing a lease names the token it holds,
so the UPDATE matches nothing once the lease has passed to someone else.
"""

from __future__ import annotations

from typing import Final

INSERT_CAMPAIGN: Final = """
INSERT INTO broadcast_campaigns
    (name, body, encoding, segments, priority, total, max_attempts, created_at)
VALUES (%(name)s, %(body)s, %(encoding)s, %(segments)s, %(priority)s, %(total)s,
        %(max_attempts)s, %(now)s)
RETURNING campaign_id
"""

COPY_MESSAGES: Final = """
COPY broadcast_messages (campaign_id, recipient, priority, next_attempt_at) FROM STDIN
"""

CLAIM: Final = """
WITH picked AS (
    SELECT message_id FROM broadcast_messages
    WHERE state = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY priority DESC, next_attempt_at, message_id
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE broadcast_messages m
SET state = 'in_flight', lease_owner = %(owner)s, lease_token = m.lease_token + 1,
    lease_expires_at = %(now)s + make_interval(secs => %(lease)s),
    attempts = m.attempts + 1, claimed_at = %(now)s
FROM picked, broadcast_campaigns c
WHERE m.message_id = picked.message_id AND c.campaign_id = m.campaign_id
RETURNING m.message_id, m.campaign_id, m.recipient, m.lease_token, m.attempts,
    c.cancelled_at IS NOT NULL
"""

# Expired leases go back to pending with a new token: the old holder can no longer record.
RECLAIM: Final = """
WITH expired AS (
    SELECT message_id FROM broadcast_messages
    WHERE state = 'in_flight' AND lease_expires_at < %(now)s
    ORDER BY lease_expires_at
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
)
UPDATE broadcast_messages m
SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL,
    lease_token = m.lease_token + 1, next_attempt_at = %(now)s
FROM expired
WHERE m.message_id = expired.message_id
RETURNING m.campaign_id
"""

RENEW: Final = """
UPDATE broadcast_messages m
SET lease_expires_at = %(now)s + make_interval(secs => %(lease)s)
FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS v(message_id, token)
WHERE m.message_id = v.message_id AND m.lease_token = v.token AND m.state = 'in_flight'
RETURNING m.message_id
"""

# outcome: 'delivered', 'withdrawn' or a failure reason. A retryable reason goes back to pending
# with an exponential backoff while attempts remain and the campaign is not cancelled.
RECORD: Final = """
WITH v AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(outcomes)s::text[],
                         %(seconds)s::float8[]) AS v(message_id, token, outcome, seconds)
), d AS (
    SELECT v.message_id, v.token, v.outcome, v.seconds, m.attempts,
        CASE WHEN v.outcome = 'delivered' THEN 'delivered'
             WHEN v.outcome = 'withdrawn' THEN 'cancelled'
             WHEN v.outcome = ANY(%(retryable)s::text[]) AND m.attempts < c.max_attempts
                  AND c.cancelled_at IS NULL THEN 'pending'
             ELSE 'failed' END AS new_state
    FROM v
    JOIN broadcast_messages m ON m.message_id = v.message_id
    JOIN broadcast_campaigns c ON c.campaign_id = m.campaign_id
)
UPDATE broadcast_messages m
SET state = d.new_state,
    failure_reason = CASE WHEN d.new_state = 'failed' THEN d.outcome END,
    lease_owner = NULL, lease_expires_at = NULL,
    next_attempt_at = CASE WHEN d.new_state = 'pending'
        THEN %(now)s + make_interval(
            secs => least(%(max_delay)s, %(base_delay)s * 2 ^ (d.attempts - 1)))
        ELSE m.next_attempt_at END,
    finished_at = CASE WHEN d.new_state <> 'pending' THEN %(now)s END,
    send_seconds = d.seconds
FROM d
WHERE m.message_id = d.message_id AND m.lease_token = d.token AND m.state = 'in_flight'
RETURNING m.message_id, m.campaign_id, d.outcome, m.state, d.seconds
"""

# Progress counters: rows are summed per key in Python first (one row per key per statement),
# and written in key order so two writers of the same rows cannot deadlock.
ADD_COUNTS: Final = """
INSERT INTO broadcast_counts AS b (campaign_id, sender_id, kind, n, seconds, first_at, last_at)
SELECT v.campaign_id, %(sender)s, v.kind, v.n, v.seconds, %(now)s, %(now)s
FROM unnest(%(campaigns)s::bigint[], %(kinds)s::text[], %(ns)s::bigint[], %(secs)s::float8[])
    AS v(campaign_id, kind, n, seconds)
ON CONFLICT (campaign_id, sender_id, kind) DO UPDATE
SET n = b.n + excluded.n, seconds = b.seconds + excluded.seconds, last_at = excluded.last_at
"""

CAMPAIGN_BY_NAME: Final = """
SELECT campaign_id, cancelled_at FROM broadcast_campaigns WHERE name = %(name)s FOR UPDATE
"""

CANCEL_CAMPAIGN: Final = """
UPDATE broadcast_campaigns SET cancelled_at = %(now)s
WHERE campaign_id = %(campaign)s AND cancelled_at IS NULL
"""

CANCEL_PENDING: Final = """
UPDATE broadcast_messages SET state = 'cancelled', finished_at = %(now)s
WHERE campaign_id = %(campaign)s AND state = 'pending'
"""

REGISTER_SENDER: Final = """
INSERT INTO broadcast_senders
    (sender_id, mean_time, failure_rate, "window", started_at, last_seen_at)
VALUES (%(sender)s, %(mean_time)s, %(failure_rate)s, %(window)s, %(now)s, %(now)s)
ON CONFLICT (sender_id) DO UPDATE
SET mean_time = excluded.mean_time, failure_rate = excluded.failure_rate,
    "window" = excluded."window", started_at = excluded.started_at,
    last_seen_at = excluded.last_seen_at
"""

HEARTBEAT: Final = """
UPDATE broadcast_senders SET last_seen_at = %(now)s WHERE sender_id = %(sender)s
"""

# Both partial indexes answer these without reading a finished message.
QUEUE_EMPTY: Final = """
SELECT NOT EXISTS (SELECT 1 FROM broadcast_messages WHERE state = 'pending')
   AND NOT EXISTS (SELECT 1 FROM broadcast_messages WHERE state = 'in_flight')
"""

# The campaigns shown: the most recent ones, bounded, plus their counters (never the messages).
CAMPAIGNS: Final = """
SELECT campaign_id, name, total, priority, segments, encoding, created_at, cancelled_at
FROM broadcast_campaigns
WHERE %(name)s::text IS NULL OR name = %(name)s
ORDER BY campaign_id DESC
LIMIT %(limit)s
"""

COUNTS: Final = """
SELECT campaign_id, sender_id, kind, n, seconds, first_at, last_at
FROM broadcast_counts
WHERE campaign_id = ANY(%(campaigns)s::bigint[])
"""

SENDERS: Final = """
SELECT sender_id, mean_time, failure_rate, "window", started_at, last_seen_at
FROM broadcast_senders
ORDER BY last_seen_at DESC
LIMIT %(limit)s
"""
