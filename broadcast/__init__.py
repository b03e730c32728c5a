"""SMS emergency-alert broadcast: a producer, a sender pool and a progress monitor on PostgreSQL."""
