"""What the database layer raises, so that no module outside `connector/db/` needs SQLAlchemy.

Every engine made by `engine.make_engine` turns SQLAlchemy's errors into these at the boundary
(its `handle_error` hook), whatever statement failed: callers catch `Conflict` or `Unavailable`
and never `sqlalchemy.exc.*`. The original error stays attached as `__cause__`.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError


class DatabaseError(Exception):
    """Base of the errors the database layer raises."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason  # the driver's message, first line (no statement, no parameters)
        self.kind = kind  # the driver's exception class name, e.g. "OperationalError"


class Conflict(DatabaseError):
    """A write broke a uniqueness or foreign-key rule: another writer got there first."""


class Unavailable(DatabaseError):
    """The database cannot serve now (locked by another writer, lock timeout, disk full, server
    gone). Nothing of the failed transaction was written; the caller may retry later."""


def _reason(original: BaseException) -> str:
    return (str(original).strip().splitlines() or [type(original).__name__])[0][:300]


def _translate(context: Any) -> BaseException | None:
    if getattr(context, "is_pre_ping", False):
        return None  # the pool's liveness probe must see the driver's own error
    error = context.sqlalchemy_exception
    original = context.original_exception
    if isinstance(error, IntegrityError):
        return Conflict(_reason(original), type(original).__name__)
    if isinstance(error, OperationalError):
        return Unavailable(_reason(original), type(original).__name__)
    return None


def translate_errors(engine: Engine) -> None:
    """Raise `Conflict` / `Unavailable` instead of SQLAlchemy's errors on this engine."""
    event.listen(engine, "handle_error", _translate, retval=True)
