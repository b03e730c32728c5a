"""The performance benchmark of issue 5: `python -m bench` (or `make bench`)."""
