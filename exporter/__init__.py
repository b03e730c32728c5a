"""The ECM exporter: incremental rollups of emergency calls, published as Prometheus metrics."""
