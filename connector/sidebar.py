"""What the agent sidebar shows about a ticket, assembled from the store: the post with its
analysis and evidence, the author's public profile, their earlier posts about the brand, the
team's earlier replies to them, their other tickets and a sentiment history.

The API (connector/web/api.py) serialises these dicts as they are, so every value here is JSON
ready. Text from posts and profiles is hostile: it is returned as plain strings (the extension
renders it as text only), and only http(s) links — avatars https only — are passed on.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Collection, Iterable
from urllib.parse import quote, urlsplit

from connector.db import Store, utcnow
from connector.draft_check import DEFAULT_SIMILARITY, DraftContext, RecentReply
from connector.evidence import render as render_evidence
from connector.labels import LABEL_NAMES, VALUE_NAMES
from connector.models import ANALYSIS_LABELS
from connector.reply_draft import suggest_draft
from connector.similar_cases import CaseText, LaterPost, rank_similar, reaction_after, situations_of
from connector.sources import PLATFORM_NAMES, PLATFORMS
from connector.sources.hints import x_intent_url
from connector.watch import Brand, WatchConfig

#: Labels an agent may correct from the sidebar. Risk and priority are computed from these and
#: the author's reach, so they are not corrected directly.
CORRECTABLE_LABELS = ("sentiment", "intent", "expectation_type", "expectation_content", "quality_axis")
#: How far back (and how many) team replies a draft is compared with.
RECENT_REPLIES_WINDOW = timedelta(days=30)
RECENT_REPLIES_LIMIT = 300
HISTORY_LIMIT = 20
TEXT_LIMIT = 1000
#: How many of the brand's answered posts the similar cases are ranked from (newest first).
SIMILAR_POOL = 300
SIMILAR_LIMIT = 5
#: A storm is shown as an outage in progress while posts still join it within its grouping
#: window (YORISOI_STORM_WINDOW_MINUTES), or while the brand's spike alert is on.
DEFAULT_STORM_WINDOW = timedelta(minutes=120)


class TicketNotFound(LookupError):
    """Not a ticket Yorisoi created (or not in this connector's database)."""

    def __init__(self, helpdesk: str, ticket: str) -> None:
        super().__init__(f"{helpdesk} ticket {ticket} was not created by Yorisoi")
        self.message_ja = f"{helpdesk} のチケット {ticket} は Yorisoi が作成したものではありません（この接続先のデータベースにありません）。"
        self.message_en = f"{helpdesk} ticket {ticket} was not created by Yorisoi (it is not in this connector's database)."


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def http_url(url: str | None, *, https_only: bool = False) -> str | None:
    """The URL if it is an absolute http(s) URL (https only for images), else None."""
    if not url or not isinstance(url, str) or len(url) > 2000:
        return None
    parts = urlsplit(url.strip())
    allowed = ("https",) if https_only else ("http", "https")
    return url.strip() if parts.scheme.lower() in allowed and parts.netloc else None


def profile_url(platform: str, handle: str | None, author_id: str, post_url: str | None) -> str | None:
    """The author's public profile page on their network (None where there is none), from the
    network's `PlatformInfo.profile_url` template."""
    info = PLATFORMS.get(platform)
    template = info.profile_url if info else None
    if not template:
        return None
    values: dict[str, str] = {}
    if "{handle}" in template:
        if not handle:
            return None
        values["handle"] = quote(handle.lstrip("@"), safe="_")
    if "{handle_or_id}" in template:
        values["handle_or_id"] = quote((handle or author_id).lstrip("@"), safe=".:-_")
    if "{user}" in template or "{host}" in template:  # a fediverse handle, user@host
        if not handle:
            return None
        user, _, host = handle.lstrip("@").partition("@")
        host = host or (urlsplit(post_url).hostname if post_url else None) or ""
        if not host:
            return None
        values.update(user=quote(user, safe="_.-"), host=host)
    return http_url(template.format(**values))


def _truncate(text: str | None, limit: int = TEXT_LIMIT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def label_sets() -> dict[str, list[dict[str, str]]]:
    """Every correctable label's values with their names, for the correction buttons."""
    return {label: [{"value": value, "ja": ja, "en": en} for value, (ja, en) in VALUE_NAMES[label].items()]
            for label in CORRECTABLE_LABELS}


def _analysis(detail: dict[str, Any] | None) -> dict[str, Any] | None:
    if not detail:
        return None
    labels = {}
    for name in ANALYSIS_LABELS:
        label = detail.get(name) or {}
        value = label.get("value")
        names = VALUE_NAMES.get(name, {}).get(value, (value, value))
        labels[name] = {"value": value, "value_ja": names[0], "value_en": names[1],
                        "name_ja": LABEL_NAMES[name][0], "name_en": LABEL_NAMES[name][1],
                        "score": label.get("score"), "evidence": [str(e) for e in label.get("evidence", [])]}
        # The same lines as the dashboard shows them in Japanese (one template per kind of line,
        # connector/evidence.py); `evidence` stays the stored English form for scripts.
        labels[name]["evidence_ja"] = [render_evidence(e, "ja") for e in labels[name]["evidence"]]
        confidence = label.get("confidence")
        if isinstance(confidence, (int, float)):  # a model's probability; rules (risk, priority) have none
            labels[name]["confidence"] = confidence
            labels[name]["unsure"] = confidence < float(detail.get("confidence_threshold") or 0.0)
    return {"labels": labels, "language": detail.get("language"), "version": detail.get("version")}


def _reply_link(store: Store, post_key: str, platform: str, post_url: str | None,
                live_sources: Collection[str]) -> dict[str, Any]:
    """How this ticket's reply reaches the network: through the API from the helpdesk, or a
    prepared link the agent opens (X, where the API refuses), or not at all (RSS: on the site)."""
    info = PLATFORMS.get(platform)
    if info and info.reply_intent:  # X: the API answers only where the customer allowed it
        reply_to = store.exchanges.latest_customer_post(post_key)
        allowed = bool(store.sources.post_extras(reply_to).get("reply_allowed")) and platform in live_sources
        if allowed:
            return {"mode": "api", "url": None}
        return {"mode": "prepared", "url": x_intent_url(reply_to.split(":", 1)[1])}
    if info and info.replies:
        return {"mode": "api" if platform in live_sources else "recorded", "url": None}
    return {"mode": "none", "url": http_url(post_url)}


def _exchange(row: dict[str, Any]) -> dict[str, Any]:
    return {"agent": row["agent"], "text": _truncate(row["text"]), "status": row["status"],
            "url": http_url(row.get("url")), "created_at": iso(row["created_at"]), "sent_at": iso(row.get("sent_at")),
            "helpdesk": row["helpdesk"], "ticket_id": row["ticket_id"]}


def resolve_ticket(store: Store, helpdesk: str, ticket: str | None, external_id: str | None) -> str:
    """The ticket post's key for a helpdesk ticket id, or for a Channel framework external id
    (Zendesk creates those tickets, so only the external id names the post)."""
    if ticket:
        key = store.exchanges.post_key_for_ticket(helpdesk, ticket)
        if key is None:
            raise TicketNotFound(helpdesk, ticket)
        return key
    from connector.helpdesks.zendesk.channel.resources import post_key_from_external_id
    assert external_id is not None
    key = post_key_from_external_id(external_id) or store.channel.post_key_for_external_id(external_id)
    key = key and (store.outbox.ticket_post_key_of(key) or key)
    if not key or not store.posts.post_exists(key):
        raise TicketNotFound(helpdesk, external_id)
    return key


def build_context(store: Store, post_key: str, *, live_sources: Collection[str] = (),
                  now: datetime | None = None, watch: WatchConfig | None = None, agent: str | None = None,
                  storm_window: timedelta = DEFAULT_STORM_WINDOW) -> dict[str, Any]:
    """Everything the sidebar shows for a ticket. `watch` brings the brand's reply guidelines
    (and its names, left out when comparing posts); `agent` signs the suggested draft."""
    now = now or utcnow()
    post_row = store.posts.post_row(post_key)
    if post_row is None:
        raise TicketNotFound("?", post_key)
    ticket = store.outbox.ticket_row(post_key)
    author = store.posts.author_of(post_key) or {}
    loaded = store.posts.load_post(post_key)
    detail = loaded[2].to_dict() if loaded and loaded[2] else None
    platform = post_row.platform
    created = author.get("created_at")
    history_rows = store.posts.author_posts(post_row.author_key, brand=post_row.brand, limit=HISTORY_LIMIT + 1)
    earlier = [r for r in history_rows if r["key"] != post_key][:HISTORY_LIMIT]
    series = sorted((r for r in history_rows if r["sentiment"] is not None), key=lambda r: r["created_at"])
    return {
        "ticket": None if ticket is None else {
            "helpdesk": ticket["helpdesk"], "id": ticket["ticket_id"], "url": http_url(ticket["url"]),
            "subject": ticket["subject"], "priority": ticket["priority"], "tags": list(ticket["tags"]),
            "external_id": ticket["external_id"], "created_at": iso(ticket["created_at"])},
        "post": {
            "key": post_key, "platform": platform, "platform_name": PLATFORM_NAMES.get(platform, platform),
            "url": http_url(post_row.url), "text": post_row.text, "created_at": iso(post_row.created_at),
            "lang": post_row.lang, "brand": post_row.brand, "metrics": post_row.metrics,
            "reply": _reply_link(store, post_key, platform, post_row.url, live_sources)},
        "analysis": _analysis(detail),
        "author": {
            "name": author.get("name"), "handle": author.get("handle"), "bio": author.get("bio"),
            "location": author.get("location"), "followers": author.get("followers"),
            "following": author.get("following"), "account_created_at": iso(created),
            "account_age_days": (now - created).days if created else None,
            "avatar_url": http_url(author.get("avatar_url"), https_only=True),
            "profile_url": profile_url(platform, author.get("handle"), author.get("author_id", ""), post_row.url)},
        "history": [{
            "key": r["key"], "url": http_url(r["url"]), "text": _truncate(r["text"], 500),
            "created_at": iso(r["created_at"]), "sentiment": r["sentiment"], "sentiment_score": r["sentiment_score"],
            "intent": r["intent"],
            "ticket": {"helpdesk": r["helpdesk"], "id": r["ticket_id"]} if r["ticket_id"] else None,
        } for r in earlier],
        "exchanges": [_exchange(r) for r in store.exchanges.author_exchanges(post_row.author_key)],
        "other_tickets": [{
            "helpdesk": r["helpdesk"], "id": r["ticket_id"], "url": http_url(r["url"]), "subject": r["subject"],
            "priority": r["priority"], "sentiment": r["sentiment"], "intent": r["intent"],
            "created_at": iso(r["created_at"]),
        } for r in store.outbox.author_tickets(post_row.author_key, exclude_post_key=post_key)],
        "sentiment_history": [{"at": iso(r["created_at"]), "score": r["sentiment_score"], "sentiment": r["sentiment"],
                               "key": r["key"], "current": r["key"] == post_key} for r in series],
        "label_sets": label_sets(),
        "corrections": _latest_corrections(store, post_key),
        "storm": storm_summary(store, post_key, now=now, window=storm_window),
        **reply_help(store, post_key, watch=watch, agent=agent, analysis=detail, author=author),
    }


def _brand(watch: WatchConfig | None, name: str | None) -> Brand | None:
    return watch.brand(name) if watch is not None and name else None


def _brand_terms(brand: Brand | None, name: str | None) -> tuple[str, ...]:
    if brand is None:
        return (name,) if name else ()
    return (brand.name, *brand.keywords, *(h.lstrip("#＃") for h in brand.hashtags), *brand.mentions)


def _label_values(detail: dict[str, Any] | None) -> dict[str, str | None]:
    detail = detail or {}
    return {name: (detail.get(name) or {}).get("value") for name in CORRECTABLE_LABELS}


def reply_help(store: Store, post_key: str, *, watch: WatchConfig | None, agent: str | None,
               analysis: dict[str, Any] | None, author: dict[str, Any]) -> dict[str, Any]:
    """Help writing the reply: the brand's guidelines (with the help pages this post's topic
    matches), the team's answers to the most similar earlier posts, and a suggested first draft."""
    post_row = store.posts.post_row(post_key)
    assert post_row is not None
    brand = _brand(watch, post_row.brand)
    guide = brand.reply if brand and brand.reply.configured else None
    labels = _label_values(analysis)
    matched = guide.faq_for(post_row.text) if guide else ()
    draft = suggest_draft(post_text=post_row.text, post_lang=post_row.lang, author_name=author.get("name"),
                          author_handle=author.get("handle"), brand=post_row.brand, agent=agent, guidelines=guide,
                          sentiment=labels.get("sentiment"), intent=labels.get("intent"),
                          brand_terms=_brand_terms(brand, post_row.brand))
    return {
        "reply_guidelines": None if guide is None else {
            **guide.to_dict(), "faq_matched": [link.topic for link in matched]},
        "similar_cases": similar_cases(store, post_key, brand=brand, labels=labels),
        "suggested_draft": {**draft.to_dict(), "agent": agent},
    }


def similar_cases(store: Store, post_key: str, *, brand: Brand | None, labels: dict[str, str | None],
                  limit: int = SIMILAR_LIMIT) -> list[dict[str, Any]]:
    """The team's answers to the earlier posts of the same brand most like this one (see
    connector/similar_cases.py), with how each customer reacted."""
    post_row = store.posts.post_row(post_key)
    if post_row is None or not post_row.brand:
        return []
    faq = {link.topic: link.keywords for link in brand.reply.faq} if brand else {}
    pool = store.exchanges.answered_posts(post_row.brand, exclude_post_key=post_key, limit=SIMILAR_POOL)
    if not pool:
        return []
    by_key = {row.post_key: row for row in pool}
    candidates = [CaseText(row.post_key, row.text, row.labels, row.topics + situations_of(row.text, faq))
                  for row in pool]
    query = CaseText(post_key, post_row.text, labels,
                     store.exchanges.post_topics(post_key) + situations_of(post_row.text, faq))
    found = []
    for ranked in rank_similar(query, candidates, drop=_brand_terms(brand, post_row.brand), limit=limit):
        row = by_key[ranked.key]
        later = [LaterPost(r["text"], r["created_at"], r["sentiment"])
                 for r in store.posts.author_posts(row.author_key, brand=post_row.brand, limit=50)]
        reaction = reaction_after(row.reply_at, later)
        found.append({
            "post": {"key": row.post_key, "text": _truncate(row.text, 500), "url": http_url(row.url),
                     "created_at": iso(row.created_at), "author": row.author_name or row.author_handle},
            "reply": {"agent": row.reply_agent, "text": _truncate(row.reply_text), "status": row.reply_status,
                      "at": iso(row.reply_at), "url": http_url(row.reply_url), "helpdesk": row.helpdesk,
                      "ticket_id": row.ticket_id},
            "reaction": {"verdict": reaction.verdict, "reason_ja": reaction.reason_ja, "reason_en": reaction.reason_en,
                         "text": _truncate(reaction.post_text, 280) if reaction.post_text else None,
                         "at": iso(reaction.at)},
            "score": ranked.score, "shared_labels": list(ranked.shared_labels),
        })
    return found


def storm_summary(store: Store, post_key: str, *, now: datetime | None = None,
                  window: timedelta = DEFAULT_STORM_WINDOW) -> dict[str, Any] | None:
    """The storm (炎上) this post belongs to: its size, first post, why this post is in it and
    how the team answered the others, so the agent answers in line with them (or not at all,
    when the problem ticket's answer covers it). None when the post is in no storm.

    `active` (the sidebar's outage banner): posts still join the storm — its last post is within
    the grouping window — or the brand's spike alert is on. `statement` is the team's latest
    public statement on it, written by a supervisor on the dashboard's storm page (the notice an
    agent should point to, rather than each agent wording the outage anew)."""
    member = store.storms.storm_of(post_key)
    if member is None or member["storm_id"] is None:
        return None
    storm = store.storms.storm(member["storm_id"])
    if storm is None:
        return None
    first = store.posts.post_row(storm.first_post_key)
    now = now or utcnow()
    active = storm.last_post_at >= now - window or store.storms.active_alert(storm.brand) is not None
    statement = store.storms.latest_statement(storm.id)
    return {
        "id": storm.id, "size": storm.size, "topic": storm.topic, "brand": storm.brand, "active": active,
        "statement": None if statement is None else {
            "text": statement.text, "url": http_url(statement.url), "author": statement.author,
            "at": iso(statement.created_at)},
        "started_at": iso(storm.started_at), "last_post_at": iso(storm.last_post_at),
        "role": member["role"], "reason": member["reason"], "similarity": member["similarity"],
        "first_post": {"key": storm.first_post_key, "text": _truncate(first.text if first else "", 280),
                       "url": http_url(first.url if first else None)},
        "problem_ticket": None if not storm.problem_ticket_id else {
            "helpdesk": storm.problem_helpdesk, "id": storm.problem_ticket_id,
            "url": http_url(storm.problem_url)},
        "answers": [{"agent": r["agent"], "text": _truncate(r["text"]), "status": r["status"],
                     "created_at": iso(r["created_at"]), "ticket_id": r["ticket_id"]}
                    for r in store.storms.storm_replies(storm.id)],
    }


def _latest_corrections(store: Store, post_key: str) -> dict[str, dict[str, Any]]:
    """The newest agent correction per label of this post (what the learner will train on)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in store.corrections.list_corrections(post_key=post_key):  # oldest first: later ones win
        latest[row["label"]] = {"value": row["new_value"], "previous": row["old_value"], "agent": row["agent"],
                                "at": iso(row["created_at"])}
    return latest


@dataclass(frozen=True)
class DraftSettings:
    """The draft check's configuration (YORISOI_DRAFT_*), read once at start-up."""

    signature_template: str
    signature_pattern: str | None = None
    similarity_threshold: float = DEFAULT_SIMILARITY


def draft_context(store: Store, post_key: str, agent: str | None, settings: DraftSettings,
                  now: datetime | None = None, watch: WatchConfig | None = None) -> DraftContext:
    post_row = store.posts.post_row(post_key)
    if post_row is None:
        raise TicketNotFound("?", post_key)
    loaded = store.posts.load_post(post_key)
    analysis = loaded[2] if loaded else None
    recent = store.exchanges.recent_exchanges((now or utcnow()) - RECENT_REPLIES_WINDOW, RECENT_REPLIES_LIMIT)
    brand = watch.brand(post_row.brand) if watch else None
    return DraftContext(
        platform=post_row.platform, agent=agent, brand=post_row.brand,
        post_sentiment=analysis.sentiment.value if analysis else None,
        post_intent=analysis.intent.value if analysis else None,
        recent_replies=[RecentReply(r["text"], r["agent"], r["created_at"], r["ticket_id"]) for r in recent],
        signature_template=settings.signature_template, signature_pattern=settings.signature_pattern,
        similarity_threshold=settings.similarity_threshold,
        guidelines=brand.reply if brand and brand.reply.configured else None,
        brand_aliases=brand.keywords if brand else (),
        post_text=post_row.text)


def summarise(findings: Iterable[Any]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in findings:
        counts[finding.severity] += 1
    return counts
