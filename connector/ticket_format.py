"""Turn a post and its analysis into what the helpdesk shows. Pure functions.

Texts are plain text (helpdesks escape them); Japanese first with English beside it, because
agents are Japanese and admins may not be.
"""
from __future__ import annotations

from datetime import timedelta, timezone

from connector.evidence import render as render_evidence
from connector.helpdesks.base import CommentDraft, Requester, TicketDraft
from connector.labels import TAG_PREFIX, label_name, value_name
from connector.models import Analysis, Decision, Post
from connector.sources import PLATFORM_NAMES
from connector.sources.hints import reply_hint

JST = timezone(timedelta(hours=9), "JST")
SUBJECT_EXCERPT_CHARS = 40


def excerpt(text: str, limit: int = SUBJECT_EXCERPT_CHARS) -> str:
    """One line of at most `limit` characters, for subjects and lists."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def ticket_tags(post: Post, analysis: Analysis) -> tuple[str, ...]:
    tags = ["yorisoi", f"src_{post.platform}"]
    for label, prefix in TAG_PREFIX.items():
        tags.append(f"{prefix}_{getattr(analysis, label).value}")
    return tuple(tags)


def author_line(post: Post) -> str:
    author = post.author
    who = author.name or author.handle or author.id
    handle = f" (@{author.handle})" if author.handle else ""
    when = post.created_at.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
    return f"{who}{handle} · {PLATFORM_NAMES.get(post.platform, post.platform)} · {when}"


def ticket_subject(post: Post, brand: str | None) -> str:
    prefix = f"[{brand}] " if brand else ""
    return prefix + excerpt(post.text)


def ticket_description(post: Post) -> str:
    lines = [author_line(post), "", post.text, ""]
    if post.url:
        lines.append(f"投稿 / Post: {post.url}")
    hint = reply_hint(post)  # X without a summons, RSS: how the agent replies instead
    if hint:
        lines.append(hint)
    return "\n".join(lines).rstrip() + "\n"


def _evidence_line(item: str) -> str:
    """Japanese first for the agents, the stored English after it when they differ."""
    ja = render_evidence(item, "ja")
    return f"   - {ja}" + (f"  ({item.strip()})" if ja != item else "")


def analysis_note(analysis: Analysis, decision: Decision) -> str:
    """The internal note: every label with its score and the evidence behind it."""
    lines = [f"Yorisoi 分析 / analysis ({analysis.version}, {analysis.language})"]
    unsure = set(analysis.unsure())
    if unsure:
        lines.append(f"【要確認 / please check】 確信度 {analysis.confidence_threshold:.0%} 未満 / confidence under "
                     f"{analysis.confidence_threshold:.0%}: " + ", ".join(label_name(n, "ja") for n in unsure))
    for name, label in analysis.labels().items():
        value = f"{value_name(name, label.value, 'ja')} / {label.value}"
        sure = "" if label.confidence is None else f", 確信度 / confidence {label.confidence:.0%}"
        flag = " 【要確認 / please check】" if name in unsure else ""
        lines.append(f"■ {label_name(name, 'ja')} / {label_name(name, 'en')}: {value} ({label.score:+.2f}{sure}){flag}")
        lines.extend(_evidence_line(item) for item in label.evidence)
    lines.append("■ 判定 / Qualification:")
    lines.extend(_evidence_line(reason) for reason in decision.reasons)
    return "\n".join(lines) + "\n"


def ticket_draft(post: Post, decision: Decision, analysis: Analysis) -> TicketDraft:
    author = post.author
    return TicketDraft(
        external_id=post.external_id,
        subject=ticket_subject(post, decision.brand),
        description=ticket_description(post),
        note=analysis_note(analysis, decision),
        priority=analysis.priority.value,
        tags=ticket_tags(post, analysis),
        requester=Requester(
            external_id=post.author_external_id,
            name=author.name or author.handle or author.id,
            handle=author.handle,
        ),
        post_url=post.url,
        labels={name: label.value for name, label in analysis.labels().items()},
    )


def follow_up_comment(post: Post, analysis: Analysis | None) -> CommentDraft:
    """A later post of the same conversation, added to the ticket as the customer's comment."""
    body = [f"追記 / Follow-up — {author_line(post)}", "", post.text, ""]
    if post.url:
        body.append(f"投稿 / Post: {post.url}")
    if analysis is not None:
        body.append(f"({label_name('sentiment')}: {analysis.sentiment.value} {analysis.sentiment.score:+.2f}, "
                    f"{label_name('intent')}: {analysis.intent.value})")
    return CommentDraft(dedupe_key=post.external_id, body="\n".join(body).rstrip() + "\n", public=True,
                        author_external_id=post.author_external_id)
