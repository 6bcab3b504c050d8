"""Compatibility entry point: the database layer lives in `connector/db/` now.

`Store` holds one repository per concern (`store.posts`, `store.outbox`, …); import the
tables and repositories from `connector.db.*` directly.
"""
from __future__ import annotations

from connector.db import Conflict, Store, Unavailable, utcnow, worker_id
from connector.db.reports import ReportFilter
from connector.db.schema import LABEL_COLUMNS

__all__ = ["LABEL_COLUMNS", "Conflict", "ReportFilter", "Store", "Unavailable", "utcnow", "worker_id"]
