"""Helpdesk modules behind one interface (`base.Helpdesk`); `make_helpdesk` picks one by name."""
from __future__ import annotations

from connector.config import Settings
from connector.helpdesks.base import CommentDraft, Helpdesk, HelpdeskError, Requester, TicketDraft
from connector.db import Store

__all__ = ["CommentDraft", "Helpdesk", "HelpdeskError", "Requester", "TicketDraft", "make_helpdesk"]


def make_helpdesk(settings: Settings, store: Store) -> Helpdesk:
    if settings.helpdesk == "local":
        from connector.helpdesks.local import LocalHelpdesk
        return LocalHelpdesk(store.tickets)
    if settings.helpdesk == "zendesk":
        from connector.helpdesks.zendesk import make_zendesk
        return make_zendesk(settings.env)  # ConfigError names any bad ZENDESK_* variable
    if settings.helpdesk == "freshdesk":
        from connector.helpdesks.freshdesk import FreshdeskHelpdesk
        return FreshdeskHelpdesk.from_settings(settings, store)
    raise ValueError(f"unknown helpdesk {settings.helpdesk!r}")  # Settings already validated it
