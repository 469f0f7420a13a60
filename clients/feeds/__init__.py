"""Feeds: Abri polls operators' own systems (hotel inventories, CPAS spreadsheets, EDXL-HAVE
bed status) and turns good documents into availability reports with source ``feed:<name>``.

Modules: ``base`` (Reading, FeedRejected), one module per adapter, ``registry`` (format ->
adapter), ``service`` (feed rows: create, change, health), ``ingest`` (one document, one
transaction), ``poller`` (conditional requests, retries, circuit breaker).
"""
