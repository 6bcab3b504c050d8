"""The listening dashboard: tickets created, the qualification log and the outbox."""
from __future__ import annotations

from flask import Blueprint, abort, g, render_template, request

from connector.services import services

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def tickets():
    svc = services()
    return render_template("tickets.html", tickets=svc.store.list_tickets(limit=500),
                           counts=svc.store.counts(), outbox_counts=svc.store.outbox_counts())


@bp.get("/posts/<path:key>")
def post_detail(key: str):
    svc = services()
    loaded = svc.store.load_post(key)
    if loaded is None:
        abort(404)
    post, decision, analysis = loaded
    ref = svc.store.ticket_for(key)
    local_ticket = None
    if ref is not None and ref.helpdesk == "local" and hasattr(svc.helpdesk, "ticket"):
        local_ticket = svc.helpdesk.ticket(int(ref.ticket_id))
    return render_template("post.html", post=post, decision=decision, analysis=analysis, ref=ref,
                           local_ticket=local_ticket, thread=svc.store.thread_posts(key),
                           exchanges=svc.store.list_exchanges(key))


@bp.get("/decisions")
def decisions():
    only = request.args.get("only")
    qualified = {"qualified": True, "dropped": False}.get(only or "")
    return render_template("decisions.html", decisions=services().store.decisions(qualified=qualified),
                           only=only)


@bp.get("/outbox")
def outbox():
    svc = services()
    return render_template("outbox.html", rows=svc.store.outbox_rows(), counts=svc.store.outbox_counts())


@bp.get("/healthz")
def healthz():
    svc = services()
    return {"ok": True, "helpdesk": svc.helpdesk.name, "outbox": svc.store.outbox_counts()}
