"""An agent's public reply goes back to the network: signed with the agent's own name, sent
through the post's source module, and recorded as an exchange exactly once.

Helpdesk webhooks (Zendesk, Freshdesk) and the CLI call `send_reply` with the helpdesk's ticket;
the Zendesk Channel framework's channelback knows the post instead (Zendesk creates the ticket
there, we never learn its id) and calls `send_reply_to_post`. `send_reply_to_post` is the one
place that knows the order: record `sending` → post to the network → record the outcome. A
webhook retried by the helpdesk finds the exchange by its dedupe key and posts nothing again.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from connector.config import DEFAULT_REPLY_SIGNATURE
from connector.db import Store, utcnow
from connector.sources.base import ReplyLookup, ReplyRefused, ReplyResult, ReplyUnknown, Source, SourceError

log = logging.getLogger(__name__)



class UnknownTicket(LookupError):
    """The helpdesk ticket is not one Yorisoi created."""


class ReplyFailed(RuntimeError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def sign_reply(text: str, agent: str, brand: str | None, template: str = DEFAULT_REPLY_SIGNATURE) -> str:
    """Append the agent's signature unless the agent already signed (named themselves).

    Active support answers as a person (「ソラモバイルの佐藤です」), never as a faceless centre.
    """
    text = text.strip()
    agent = agent.strip()
    if not agent or agent in text:
        return text
    signature = template.format(agent=agent, brand=brand or "").replace("  ", " ").replace("（ ", "（")
    return f"{text}\n{signature}" if "\n" in text or len(text) > 60 else f"{text} {signature}"


#: A reply still `sending` after this long is taken as interrupted (crash, timeout) and may be
#: retried; a younger one is in flight in another request and must not be sent twice.
SENDING_STALE_AFTER = timedelta(seconds=60)


def _worth_retrying(row: Mapping[str, Any]) -> bool:
    if row["status"] in ("failed", "unknown"):
        return True
    return row["status"] == "sending" and row["created_at"] < utcnow() - SENDING_STALE_AFTER


def _outcome_unknown(row: Mapping[str, Any]) -> bool:
    """The last attempt may have been posted: it timed out (`unknown`) or the process died
    while sending (a stale `sending`)."""
    return row["status"] in ("unknown", "sending")


def _already_posted(source: Source, post: Any, row: Mapping[str, Any], dedupe_key: str) -> ReplyResult | None:
    """Before resending a reply whose outcome is unknown: the brand's reply if it is on the
    network. Networks whose resend cannot post twice (Mastodon's Idempotency-Key, Bluesky's
    record key from the dedupe key) need no look. Raises ReplyFailed when nobody can tell."""
    if getattr(source, "idempotent_replies", False):
        return None
    if not isinstance(source, ReplyLookup):
        raise ReplyFailed(f"{post.platform}: the last attempt may have been posted and cannot be checked; "
                          f"check the conversation by hand", retryable=False)
    try:
        return source.find_reply(post, row["text"], dedupe_key)
    except SourceError as exc:
        raise ReplyFailed(f"cannot tell whether the last attempt was posted: {exc}", retryable=True) from exc


@dataclass(frozen=True)
class ReplyOutcome:
    exchange: dict[str, Any]
    duplicate: bool  # True: this dedupe key was seen before, nothing was posted now


def send_reply(store: Store, sources: Mapping[str, Source], *, helpdesk: str, ticket_id: str,
               agent: str, text: str, dedupe_key: str, signature: str = DEFAULT_REPLY_SIGNATURE) -> ReplyOutcome:
    """Reply to the customer of a helpdesk ticket that Yorisoi created."""
    ticket_post_key = store.exchanges.post_key_for_ticket(helpdesk, str(ticket_id))
    if ticket_post_key is None:
        raise UnknownTicket(f"{helpdesk} ticket {ticket_id} was not created by Yorisoi")
    return send_reply_to_post(store, sources, ticket_post_key=ticket_post_key, helpdesk=helpdesk,
                              ticket_id=str(ticket_id), agent=agent, text=text, dedupe_key=dedupe_key,
                              signature=signature)


def send_reply_to_post(store: Store, sources: Mapping[str, Source], *, ticket_post_key: str, helpdesk: str,
                       ticket_id: str, agent: str, text: str, dedupe_key: str,
                       signature: str = DEFAULT_REPLY_SIGNATURE) -> ReplyOutcome:
    """Reply in the conversation whose ticket post is `ticket_post_key`, once per dedupe key.

    The reply answers the newest customer post of the conversation. `ticket_id` is recorded
    with the exchange as the helpdesk knows it (for the Channel framework: the instance id).
    An empty `agent` leaves the text unsigned.
    """
    reply_to_key = store.exchanges.latest_customer_post(ticket_post_key)
    loaded = store.posts.load_post(reply_to_key)
    if loaded is None:
        raise UnknownTicket(f"post {ticket_post_key} is not stored")
    post, decision, _ = loaded
    signed = sign_reply(text, agent, decision.brand, signature)
    row, created = store.exchanges.begin_exchange(dedupe_key=dedupe_key, ticket_post_key=ticket_post_key,
                                        reply_to_key=reply_to_key, helpdesk=helpdesk, ticket_id=str(ticket_id),
                                        agent=agent, text=signed)
    if not created and not _worth_retrying(row):
        return ReplyOutcome(row, duplicate=True)
    # A new reply, or a retry of one that failed or whose outcome is unknown: send it with the
    # same idempotency key, so networks that honour one never post it twice.
    source = sources[post.platform]
    if not created and _outcome_unknown(row):
        # The last attempt timed out or was cut off: it may be public already. X and Bluesky
        # have no idempotency key, so look before posting again (issue 16 #3).
        found = _already_posted(source, post, row, dedupe_key)
        if found is not None:
            log.info("reply %s to %s was already posted; not sending it again", dedupe_key, post.key)
            store.exchanges.finish_exchange(row["id"], status=found.status, network_id=found.network_id, url=found.url)
            return ReplyOutcome(store.exchanges.exchange(dedupe_key) or row, duplicate=False)
    try:
        result = source.post_reply(post, row["text"], idempotency_key=dedupe_key)
    except ReplyRefused as exc:
        store.exchanges.finish_exchange(row["id"], status="failed", error=str(exc))
        raise ReplyFailed(str(exc), retryable=exc.retryable) from exc
    except ReplyUnknown as exc:
        # No answer after sending: not `failed` (which is resent blindly) but `unknown`,
        # checked on the network before any resend.
        log.warning("reply to %s: outcome unknown (%s)", post.key, exc)
        store.exchanges.finish_exchange(row["id"], status="unknown", error=f"outcome unknown: {exc}")
        raise ReplyFailed(f"{post.platform} did not answer; the reply may have been posted: {exc}",
                          retryable=True) from exc
    except Exception as exc:  # an error of ours or an unforeseen one: we cannot tell either
        log.exception("reply to %s failed", post.key)
        store.exchanges.finish_exchange(row["id"], status="unknown", error=f"unexpected error: {exc}")
        raise ReplyFailed(f"could not reach {post.platform}: {exc}", retryable=True) from exc
    store.exchanges.finish_exchange(row["id"], status=result.status, network_id=result.network_id, url=result.url)
    return ReplyOutcome(store.exchanges.exchange(dedupe_key) or row, duplicate=False)
