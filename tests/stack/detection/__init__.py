"""Detection tests: scenarios turned into the exporter's series and judged by the real rules."""
