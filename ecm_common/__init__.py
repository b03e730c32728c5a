"""Code shared by every ECM part: errors, configuration, logging, database access."""
