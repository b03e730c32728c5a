"""Synthetic emergency calls: a vectorised call model and a bounded write path into PostgreSQL.

Data flows through the modules in this order: ``config`` (options) -> ``scenario`` (phases) ->
``model`` (columnar batches) -> ``pipeline`` (bounded queue, retries, ``spool``) -> ``encode`` +
``writer`` (binary COPY) ; ``runner`` paces live traffic, ``backfill`` writes history.
"""
