"""Status comes back: the helpdesk's status of our tickets, and their first public agent reply.

Two ways in, the same store call (`store.ticket_status.record`):
- the helpdesk's webhook on a status change (`POST /zendesk/status`, `POST /freshdesk/status`,
  in each helpdesk's webhook.py), within seconds;
- the catch-up sweep here (`yorisoi sync-status`, and `yorisoi poll` every SWEEP_EVERY): the
  helpdesk's export of changed tickets from a stored cursor — Zendesk's incremental ticket
  export, Freshdesk's `updated_since` list — so a missed webhook call is caught up.

A helpdesk takes part by having `status_page(cursor, since) -> StatusPage` (helpdesks/base.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from connector.db import Store, utcnow
from connector.helpdesks.base import HelpdeskError

log = logging.getLogger(__name__)

#: How often `yorisoi poll` sweeps (Zendesk allows 10 incremental-export calls a minute).
SWEEP_EVERY = timedelta(minutes=10)
#: Pages per sweep; the cursor is saved after each, so a long backlog continues next time.
MAX_PAGES = 20
#: Where a first sweep starts when no ticket exists yet.
FIRST_SWEEP_BACK = timedelta(hours=1)


@dataclass
class SyncReport:
    helpdesk: str
    supported: bool = True
    pages: int = 0
    changes: int = 0  # changes the helpdesk reported
    matched: int = 0  # of them, about tickets Yorisoi created
    more: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def supports_status(helpdesk: Any) -> bool:
    return callable(getattr(helpdesk, "status_page", None))


def cursor_key(helpdesk: Any) -> str:
    return f"helpdesk_status:{helpdesk.name}:cursor"


def sync_status(store: Store, helpdesk: Any, *, clock: Callable[[], datetime] = utcnow,
                max_pages: int = MAX_PAGES) -> SyncReport:
    report = SyncReport(helpdesk.name, supported=supports_status(helpdesk))
    if not report.supported:
        return report
    key = cursor_key(helpdesk)
    cursor = store.sources.get_state(key)
    since = store.ticket_status.first_ticket_at(helpdesk.name) or clock() - FIRST_SWEEP_BACK
    for _ in range(max_pages):
        try:
            page = helpdesk.status_page(cursor, since)
        except HelpdeskError as exc:
            report.errors.append(exc.message)
            break
        report.pages += 1
        report.changes += len(page.updates)
        report.matched += store.ticket_status.record(helpdesk.name, page.updates, via="sweep")
        cursor = page.cursor
        store.sources.set_state(key, cursor)
        report.more = page.more
        if not page.more:
            break
    store.sources.set_state(f"helpdesk_status:{helpdesk.name}:last_run", clock().isoformat())
    log.info("status sweep of %s: %d pages, %d changes, %d of our tickets", helpdesk.name, report.pages,
             report.changes, report.matched)
    return report


def last_sweep_at(store: Store, helpdesk_name: str) -> datetime | None:
    """When the catch-up sweep of this helpdesk last ran (None: never)."""
    last = store.sources.get_state(f"helpdesk_status:{helpdesk_name}:last_run")
    return datetime.fromisoformat(last) if last else None


def sweep_due(store: Store, helpdesk: Any, clock: Callable[[], datetime] = utcnow) -> bool:
    if not supports_status(helpdesk):
        return False
    last = store.sources.get_state(f"helpdesk_status:{helpdesk.name}:last_run")
    return not last or datetime.fromisoformat(last) <= clock() - SWEEP_EVERY
