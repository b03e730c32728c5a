"""Every SQL statement of the pager (schema: db/migrations/0003_pager.sql); values are bound."""

from __future__ import annotations

MARK_SERVICE = """
INSERT INTO pager_services (service_id, healthy, changed_at)
VALUES (%(service)s, %(healthy)s, %(now)s)
ON CONFLICT (service_id) DO UPDATE SET healthy = EXCLUDED.healthy, changed_at = EXCLUDED.changed_at
    WHERE pager_services.healthy IS DISTINCT FROM EXCLUDED.healthy
"""

ENSURE_SERVICE = """
INSERT INTO pager_services (service_id, healthy, changed_at) VALUES (%(service)s, true, %(now)s)
ON CONFLICT (service_id) DO NOTHING
"""

# The partial unique index decides: a second opener gets no row back and attaches instead.
OPEN_INCIDENT = """
INSERT INTO pager_incidents (service_id, state, title, policy, opened_at)
VALUES (%(service)s, 'triggered', %(title)s, %(policy)s, %(now)s)
ON CONFLICT (service_id) WHERE state <> 'resolved' DO NOTHING
RETURNING incident_id
"""

SHARE_OPEN_INCIDENT = """
SELECT incident_id FROM pager_incidents
WHERE service_id = %(service)s AND state <> 'resolved'
FOR KEY SHARE
"""

LOCK_OPEN_INCIDENT = """
SELECT incident_id FROM pager_incidents
WHERE service_id = %(service)s AND state <> 'resolved'
FOR UPDATE
"""

INCIDENT_COLUMNS = """incident_id, service_id, state, title, policy, opened_at, acknowledged_at,
    acknowledged_by, resolved_at, resolved_by, next_level, pass AS pass_, step,
    next_escalation_at"""

LOCK_INCIDENT = f"SELECT {INCIDENT_COLUMNS} FROM pager_incidents WHERE incident_id = %s FOR UPDATE"

GET_INCIDENT = f"SELECT {INCIDENT_COLUMNS} FROM pager_incidents WHERE incident_id = %s"

# Keyset pagination: newest first, the page after incident `before`.
LIST_INCIDENTS = f"""
SELECT {INCIDENT_COLUMNS} FROM pager_incidents
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(service)s::text IS NULL OR service_id = %(service)s)
  AND (%(before)s::bigint IS NULL OR incident_id < %(before)s)
ORDER BY incident_id DESC
LIMIT %(limit)s
"""

CLAIM_DUE = f"""
SELECT {INCIDENT_COLUMNS} FROM pager_incidents
WHERE next_escalation_at <= %(now)s AND state <> 'resolved'
ORDER BY next_escalation_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

SAVE_ESCALATION = """
UPDATE pager_incidents
SET state = %(state)s, next_level = %(next_level)s, pass = %(pass)s, step = %(step)s,
    next_escalation_at = %(next_at)s
WHERE incident_id = %(incident_id)s
"""

ACKNOWLEDGE = """
UPDATE pager_incidents
SET state = 'acknowledged', acknowledged_at = %(now)s, acknowledged_by = %(by)s,
    next_escalation_at = %(next_at)s
WHERE incident_id = %(incident_id)s
"""

RESOLVE = """
UPDATE pager_incidents
SET state = 'resolved', resolved_at = %(now)s, resolved_by = %(by)s, next_escalation_at = NULL
WHERE incident_id = %(incident_id)s
"""

FIND_ALERTS = """
SELECT a.fingerprint, a.starts_at FROM pager_incident_alerts a
JOIN unnest(%s::text[], %s::timestamptz[]) AS k (fingerprint, starts_at)
  ON a.fingerprint = k.fingerprint AND a.starts_at = k.starts_at
"""

ATTACH_ALERTS = """
INSERT INTO pager_incident_alerts
    (fingerprint, starts_at, incident_id, alertname, labels, status, received_at)
SELECT fingerprint, starts_at, incident_id, alertname, labels, 'firing', %(now)s
FROM unnest(%(fingerprints)s::text[], %(starts)s::timestamptz[], %(incidents)s::bigint[],
            %(alertnames)s::text[], %(labels)s::jsonb[])
     AS n (fingerprint, starts_at, incident_id, alertname, labels)
ON CONFLICT (fingerprint, starts_at) DO NOTHING
RETURNING fingerprint, starts_at
"""

RESOLVE_ALERT = """
UPDATE pager_incident_alerts SET status = 'resolved', resolved_at = %(now)s
WHERE fingerprint = %(fingerprint)s AND starts_at = %(starts_at)s AND status = 'firing'
RETURNING incident_id
"""

FIRING_ALERTS = """
SELECT count(*) FROM pager_incident_alerts WHERE incident_id = %s AND status = 'firing'
"""

INCIDENT_ALERTS = """
SELECT fingerprint, starts_at, alertname, labels, status, received_at, resolved_at
FROM pager_incident_alerts WHERE incident_id = %s ORDER BY received_at, fingerprint LIMIT 1000
"""

ADD_EVENT = """
INSERT INTO pager_events (incident_id, at, kind, detail) VALUES (%s, %s, %s, %s)
"""

ADD_EVENTS = """
INSERT INTO pager_events (incident_id, at, kind, detail)
SELECT incident_id, %(now)s, %(kind)s, detail
FROM unnest(%(incidents)s::bigint[], %(details)s::text[]) AS e (incident_id, detail)
"""

TIMELINE = """
SELECT at, kind, detail FROM pager_events WHERE incident_id = %s ORDER BY event_id LIMIT 10000
"""

QUEUE_NOTIFICATION = """
INSERT INTO pager_outbox (incident_id, step, level, channel, target, subject, body, ack_url,
                          next_attempt_at, created_at)
VALUES (%(incident_id)s, %(step)s, %(level)s, %(channel)s, %(target)s, %(subject)s, %(body)s,
        %(ack_url)s, %(now)s, %(now)s)
ON CONFLICT (incident_id, step, channel, target) DO NOTHING
"""

CANCEL_PENDING = """
UPDATE pager_outbox SET state = 'cancelled' WHERE incident_id = %s AND state = 'pending'
"""

CLAIM_NOTIFICATION = """
SELECT notification_id, incident_id, level, channel, target, subject, body, ack_url, attempts
FROM pager_outbox
WHERE state = 'pending' AND next_attempt_at <= %(now)s
ORDER BY next_attempt_at, notification_id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

NOTIFICATION_SENT = """
UPDATE pager_outbox SET state = 'sent', attempts = attempts + 1, sent_at = %(now)s,
    last_error = NULL
WHERE notification_id = %(id)s
"""

NOTIFICATION_RETRY = """
UPDATE pager_outbox SET attempts = attempts + 1, last_error = %(error)s,
    next_attempt_at = %(next_at)s
WHERE notification_id = %(id)s
"""

NOTIFICATION_FAILED = """
UPDATE pager_outbox SET state = 'failed', attempts = attempts + 1, last_error = %(error)s
WHERE notification_id = %(id)s
"""

TOUCH_HEARTBEAT = """
INSERT INTO pager_heartbeats (name, last_seen_at) VALUES (%(name)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET last_seen_at = greatest(pager_heartbeats.last_seen_at,
                                                         EXCLUDED.last_seen_at)
"""

# The switch starts armed at the pager's first start: a Watchdog that never came is silence too.
ARM_HEARTBEAT = """
INSERT INTO pager_heartbeats (name, last_seen_at) VALUES (%(name)s, %(now)s)
ON CONFLICT (name) DO NOTHING
"""

LAST_HEARTBEAT = "SELECT last_seen_at FROM pager_heartbeats WHERE name = %s"

SERVICES = """
SELECT s.service_id, s.healthy, s.changed_at, i.incident_id, i.state
FROM pager_services s
LEFT JOIN pager_incidents i ON i.service_id = s.service_id AND i.state <> 'resolved'
ORDER BY s.service_id
LIMIT 10000
"""

OPEN_BY_STATE = """
SELECT service_id, state, count(*) FROM pager_incidents WHERE state <> 'resolved'
GROUP BY service_id, state
"""

OUTBOX_DEPTH = """
SELECT count(*), min(created_at) FROM pager_outbox WHERE state = 'pending'
"""
