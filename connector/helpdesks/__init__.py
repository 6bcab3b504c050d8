"""Helpdesks behind one interface (`base.Helpdesk`); `make_helpdesk` picks one by name.

Each helpdesk has one home: `local.py` (tickets kept in Yorisoi's database), `zendesk/` and
`freshdesk/`, each a package with its client, its inbound webhook blueprint, `ENV` (the
variables it reads) and `blueprints()`. `HELPDESK_PACKAGES` lists the packages; the app
factory registers their blueprints and the configuration registry collects their `ENV`.
Nothing here imports the pipeline: the pipeline depends on helpdesks, not the other way round.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from connector.config import Settings
from connector.db import Store
from connector.helpdesks.base import CommentDraft, Helpdesk, HelpdeskError, Requester, TicketDraft

__all__ = ["CommentDraft", "Helpdesk", "HelpdeskError", "Requester", "TicketDraft", "helpdesk_packages",
           "make_helpdesk"]

#: Helpdesks with a package of their own (client, webhook, ENV, blueprints()), in route order.
HELPDESK_PACKAGES = ("zendesk", "freshdesk")


def helpdesk_packages() -> list[ModuleType]:
    return [importlib.import_module(f"connector.helpdesks.{name}") for name in HELPDESK_PACKAGES]


def make_helpdesk(settings: Settings, store: Store) -> Helpdesk:
    if settings.helpdesk == "local":
        from connector.helpdesks.local import LocalHelpdesk
        return LocalHelpdesk(store.tickets)
    if settings.helpdesk == "zendesk":
        from connector.helpdesks.zendesk.client import make_zendesk
        return make_zendesk(settings.env)  # ConfigError names any bad ZENDESK_* variable
    if settings.helpdesk == "freshdesk":
        from connector.helpdesks.freshdesk.client import FreshdeskHelpdesk
        return FreshdeskHelpdesk.from_settings(settings, store)
    raise ValueError(f"unknown helpdesk {settings.helpdesk!r}")  # Settings already validated it
