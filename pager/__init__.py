"""The pager: incidents, escalation policies and acknowledgement behind Alertmanager."""
