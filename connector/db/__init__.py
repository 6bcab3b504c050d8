"""The only place that speaks SQL (see README, Layout).

Every state change is one transaction, and the outbox is written in the same transaction as
the post it delivers, so a crash can never leave a qualifying post without its outbox row (or a
half-stored post). `Store` holds one repository per concern; errors reach callers as
`Conflict` / `Unavailable` (connector.db.errors), never as SQLAlchemy's.
"""
from __future__ import annotations

from connector.db.engine import utcnow, worker_id
from connector.db.errors import Conflict, Unavailable
from connector.db.store import Store

__all__ = ["Conflict", "Store", "Unavailable", "utcnow", "worker_id"]
