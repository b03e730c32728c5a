"""The ECM HTTP API (`ecm-api`): RAN PM counters in, KPIs kept in PostgreSQL."""
