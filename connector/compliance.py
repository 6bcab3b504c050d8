"""Platform compliance: posts deleted or made private on their network leave our store.

X's Developer Policy (developer-terms/policy.mdx, "Content compliance") asks that stored posts
that were deleted, protected, suspended or withheld be removed "within 24 hours"; Bluesky's
developer guidelines and Mastodon's delete events ask the same. `run_compliance` asks each
network about stored posts in batches (the least recently checked first), and for every gone
post:
- purges it in the store (text replaced with a marker, analysis evidence and the ticket
  subject's excerpt removed, the author's profile cleared once none of their posts is live;
  the row, its labels and the ticket link stay, so counts and the ticket history still add up);
- removes its words from the helpdesk's copy too (`redact_post`: Zendesk comment redaction,
  Freshdesk description / notes rewritten), recording the outcome; temporary failures are
  retried on later runs, and what could not be redacted is listed in the report;
- adds an internal note to its ticket saying the post was deleted, without repeating its text,
  exactly once (the note's dedupe key is the post key; `noted_at` records it).

The author's profile is cleared only when no other live post of theirs remains, because the
profile is public data that came with each of their posts: while one is live we may hold it.
A protected account makes all their posts gone in the same pass, so their profile goes too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from connector.db import Store, utcnow
from connector.helpdesks.base import CommentDraft, Helpdesk, HelpdeskError, TicketClosed
from connector.sources import PLATFORMS
from connector.sources.base import PollingSource, SourceError

log = logging.getLogger(__name__)

#: A post checked more recently than this is not asked about again (12 h keeps every post
#: within X's 24-hour window even when a run is late).
RECHECK_AFTER = timedelta(hours=12)
#: Posts per platform per run (X: 100 per lookup call).
MAX_PER_RUN = 5000
#: Display names of the networks with compliance rules (PlatformInfo.compliance).
NETWORK_NAMES = {p.name: p.display_en for p in PLATFORMS.values() if p.compliance}
#: Networks asked about stored posts, in registry order.
COMPLIANCE_PLATFORMS = tuple(NETWORK_NAMES)
REASONS_JA = {"deleted": "削除", "protected": "非公開化", "no longer public": "非公開化"}


def marker(platform: str, reason: str) -> str:
    name = NETWORK_NAMES.get(platform, platform)
    return (f"［この投稿は{name}で{REASONS_JA.get(reason, '削除')}されたため、本文を消去しました / "
            f"This post was {reason} on {name}; its text was removed.］")


def note_body(platform: str, reason: str, post_key: str) -> str:
    name = NETWORK_NAMES.get(platform, platform)
    return (f"Yorisoi: 元の投稿（{post_key}）は {name} で{REASONS_JA.get(reason, '削除')}されました。"
            f"プラットフォームの規約に従い、Yorisoi に保存していた本文を消去しました（投稿者の公開中の投稿が他になければプロフィールも消去）。"
            f"この投稿を引用したり、公開の返信で内容に触れたりしないでください。\n"
            f"Yorisoi: the original post ({post_key}) was {reason} on {name}. As the platform's rules require, "
            f"Yorisoi removed its stored text (and the author's profile, unless another of their posts is still live). Do not quote it or refer to its "
            f"content in public replies.\n")


#: Attempts at removing a post's words from the helpdesk after temporary failures (one a run,
#: every 12 hours: a day and more of retries).
MAX_REDACTION_ATTEMPTS = 5


@dataclass
class ComplianceReport:
    checked: dict[str, int] = field(default_factory=dict)
    gone: dict[str, int] = field(default_factory=dict)
    purged: list[str] = field(default_factory=list)
    notes_added: int = 0
    errors: list[str] = field(default_factory=list)
    #: Posts whose words were removed from the helpdesk's copy in this run.
    redacted: list[str] = field(default_factory=list)
    #: Posts whose words are still in the helpdesk (this run and earlier), with why.
    not_redacted: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "gone": self.gone, "purged": self.purged,
                "notes_added": self.notes_added, "errors": self.errors, "redacted": self.redacted,
                "not_redacted": self.not_redacted}


def run_compliance(store: Store, sources: Mapping[str, Any], helpdesk: Helpdesk, *,
                   platforms: tuple[str, ...] = COMPLIANCE_PLATFORMS,
                   clock: Callable[[], datetime] = utcnow, limit: int = MAX_PER_RUN,
                   recheck_after: timedelta = RECHECK_AFTER) -> ComplianceReport:
    report = ComplianceReport()
    for platform in platforms:
        source = sources.get(platform)
        if not isinstance(source, PollingSource):
            continue  # no network configured: nothing can be asked
        keys = store.compliance.posts_due_for_compliance(platform, clock() - recheck_after, limit)
        report.checked[platform] = 0
        report.gone[platform] = 0
        for start in range(0, len(keys), 100):
            batch_keys = keys[start:start + 100]
            posts = {}
            for key in batch_keys:
                loaded = store.posts.load_post(key)
                if loaded is not None:
                    posts[key] = loaded[0]
            try:
                gone = source.check_exists(list(posts.values()))
            except SourceError as exc:
                report.errors.append(f"{platform}: {exc.message}")
                break  # try again next run; other networks go on
            report.checked[platform] += len(posts)
            live = [key for key, post in posts.items() if post.id not in gone]
            store.compliance.mark_live(live, platform)
            for key, post in posts.items():
                reason = gone.get(post.id)
                if reason is None:
                    continue
                url = source.gone_url(post.id) if hasattr(source, "gone_url") else None
                if store.compliance.purge_post(key, reason=reason, marker=marker(platform, reason), url=url):
                    report.gone[platform] += 1
                    report.purged.append(key)
                    log.info("compliance: %s is %s on %s; purged", key, reason, platform)
    report.notes_added = add_pending_notes(store, helpdesk, report)
    retry_redactions(store, helpdesk, report)
    return report


def redact_in_helpdesk(store: Store, helpdesk: Any, post_key: str, ticket_post_key: str, platform: str,
                       reason: str, report: ComplianceReport | None = None) -> str | None:
    """Remove a purged post's words from the helpdesk's copy (helpdesks' `redact_post`):
    its own ticket's first comment / description, its follow-up comment and its analysis note.
    Returns the outcome's state (None: the helpdesk has no copy to redact, e.g. `local`)."""
    redact = getattr(helpdesk, "redact_post", None)
    if redact is None:
        return None
    own = store.outbox.ticket_for(post_key)
    ticket = own or store.outbox.ticket_for(ticket_post_key)
    if ticket is None:
        return None
    external_id = f"yorisoi:{post_key}"
    try:
        outcome = redact(ticket, [external_id, f"{external_id}#note"], own is not None,
                         marker=marker(platform, reason))
    except HelpdeskError as exc:
        from connector.helpdesks.base import RedactionOutcome
        outcome = RedactionOutcome("failed", f"ticket {ticket.ticket_id}: {exc.message}", retryable=exc.retryable)
    state = outcome.state if outcome.state != "failed" or outcome.retryable else "impossible"
    store.ticket_status.record_redaction(post_key, state, outcome.detail)
    if report is not None and state == "redacted":
        report.redacted.append(post_key)
    return state


def retry_redactions(store: Store, helpdesk: Any, report: ComplianceReport) -> None:
    """Try again what failed for a temporary reason; list everything still not redacted."""
    for row in store.ticket_status.unredacted():
        if row["state"] == "failed" and row["attempts"] < MAX_REDACTION_ATTEMPTS and row["ticket_post_key"]:
            state = store.compliance.compliance_state(row["post_key"]) or {}
            redact_in_helpdesk(store, helpdesk, row["post_key"], row["ticket_post_key"],
                               state.get("platform") or "", state.get("reason") or "deleted", report)
    report.not_redacted = [{"post_key": r["post_key"], "state": r["state"], "attempts": r["attempts"],
                            "detail": r["detail"]} for r in store.ticket_status.unredacted()]


def add_pending_notes(store: Store, helpdesk: Helpdesk, report: ComplianceReport | None = None) -> int:
    """For purged posts whose ticket exists and has no note yet: remove the post's words from
    the helpdesk's copy, then add the internal note (once; it never repeats the text)."""
    added = 0
    for row in store.compliance.gone_posts_without_note():
        ticket = store.outbox.ticket_for(row["post_key"]) or store.outbox.ticket_for(row["ticket_post_key"])
        if ticket is None:
            continue  # not delivered yet: the ticket will carry the marker; note on a later run
        reason = row["reason"] or "deleted"
        if store.ticket_status.redaction_state(row["post_key"]) is None:
            redact_in_helpdesk(store, helpdesk, row["post_key"], row["ticket_post_key"], row["platform"], reason,
                               report)
        dedupe_key = f"compliance:{row['post_key']}"
        try:
            if not helpdesk.has_comment(ticket, dedupe_key):
                helpdesk.add_comment(ticket, CommentDraft(dedupe_key=dedupe_key, public=False,
                                                          body=note_body(row["platform"], reason, row["post_key"])))
                added += 1
        except TicketClosed as exc:
            # Zendesk: a closed ticket takes no note. Its comments were redacted all the same
            # (redaction works on closed tickets); say so once and do not try again.
            if report is not None:
                report.errors.append(f"note on ticket {ticket.ticket_id} not added (ticket closed): {exc.message}")
        except HelpdeskError as exc:
            if report is not None:
                report.errors.append(f"note on ticket {ticket.ticket_id}: {exc.message}")
            if exc.stop_delivery or exc.retry_after is not None:
                break
            continue
        store.compliance.mark_noted(row["post_key"])
    return added


def purge_deleted(store: Store, platform: str, post_ids: Sequence[str], reason: str = "deleted") -> list[str]:
    """Posts a stream reported deleted (Jetstream delete, Mastodon `delete`): purge the ones we
    store, at once and as the periodic check would; their ticket notes follow with the next
    compliance pass (`add_pending_notes`). Returns the purged keys."""
    purged = []
    for post_id in post_ids:
        key = f"{platform}:{post_id}"
        if store.compliance.purge_post(key, reason=reason, marker=marker(platform, reason)):
            purged.append(key)
            log.info("compliance: %s was %s on %s (stream); purged", key, reason, platform)
    return purged
