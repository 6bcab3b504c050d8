"""Posts as Zendesk Channel framework external resources, and ASCII-safe external ids. Pure.

An external resource [CF-API; SCHEMAS external_resource.json] becomes a ticket (or a comment on
one) in Zendesk. Post text is hostile: `message` is plain text, and `html_message` is built only
from escaped text, so nothing a poster writes can become markup in the agent's browser.
"""
from __future__ import annotations

import hashlib
import html
import re
from datetime import timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from connector.labels import LABEL_NAMES, value_name
from connector.models import Analysis, Decision, Post
from connector.sources import PLATFORM_NAMES, PLATFORMS
from connector.ticket_format import ticket_subject, ticket_tags

#: Zendesk: external ids are ASCII, ≤255, non-empty, no leading or trailing whitespace.
MAX_EXTERNAL_ID = 255
#: Zendesk keeps `author.image_url` to 255 characters (docs; the schema allows 511).
MAX_IMAGE_URL = 255
#: Per pull, Zendesk processes "up to a maximum of 200" resources [CF-pull_endpoint].
MAX_RESOURCES_PER_PULL = 200

PREFIX = "yorisoi"
#: Marks an id that was too long to spell out and is sent as a SHA-256 instead (looked up).
HASHED = "sha256-"

#: Networks whose posts agents can answer from Zendesk (a reply API exists). RSS/Atom (blogs,
#: review sites) and generic webhook posts have none: Zendesk hides the reply box for them.
REPLYABLE_PLATFORMS = frozenset(p.name for p in PLATFORMS.values() if p.replies)

#: `display_info` types are free-form URIs/GUIDs that tell apps what `data` holds; these are ours.
DISPLAY_ANALYSIS = "urn:yorisoi:display:analysis:v1"
DISPLAY_AUTHOR = "urn:yorisoi:display:author:v1"

# Characters kept as they are in an external id: RFC 3986 unreserved plus the sub-delimiters
# and ':' '/' '@' that at:// URIs and URLs are made of. Everything else (non-ASCII, spaces,
# '%', '?', '#') is percent-encoded, so the id is ASCII without whitespace and decodes back.
_SAFE = ":/@-._~!$&'()*+,;="


def external_id(platform: str, ident: str) -> str:
    """`yorisoi:<platform>:<id>` made ASCII-safe and ≤255 characters.

    Short ids (X, Mastodon, Bluesky at:// URIs, most URLs) stay readable and reversible; an id
    that would be longer is sent as its SHA-256, which the caller must remember to look it up.
    Used for posts and (with the author id) for authors: the same spelling as the Tickets API
    mode's `external_id`, so both modes name a post alike.
    """
    readable = f"{PREFIX}:{platform}:{quote(ident, safe=_SAFE)}"
    if len(readable) <= MAX_EXTERNAL_ID:
        return readable
    return f"{PREFIX}:{platform}:{HASHED}{hashlib.sha256(ident.encode('utf-8')).hexdigest()}"


def is_hashed(external: str) -> bool:
    return external.split(":", 2)[-1].startswith(HASHED)


def post_key_from_external_id(external: str) -> str | None:
    """The post key (`<platform>:<id>`) a readable external id names; None for a hashed or
    foreign id (look hashed ones up in the store)."""
    prefix, _, rest = external.partition(":")
    platform, _, encoded = rest.partition(":")
    if prefix != PREFIX or platform not in PLATFORMS or not encoded or encoded.startswith(HASHED):
        return None
    return f"{platform}:{unquote(encoded)}"


def _iso_z(moment: Any) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _https_url(url: str | None, limit: int) -> str | None:
    if not url or len(url) > limit or not url.isascii():
        return None
    parts = urlsplit(url)
    return url if parts.scheme == "https" and parts.hostname else None


def _http_url(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def author_locale(post: Post) -> str:
    """Zendesk locale for the end user: Japanese posts → ja, everything else → en."""
    return "ja" if (post.lang or "").lower().startswith("ja") else "en"


def message_text(post: Post) -> str:
    lines = [post.text.strip()]
    url = _http_url(post.url)
    if url:
        lines += ["", f"投稿 / Post: {url}"]
    return "\n".join(lines)


def message_html(post: Post) -> str:
    """The post as HTML built from escaped text only: hostile markup arrives as text."""
    body = "<br>".join(html.escape(line, quote=True) for line in post.text.strip().split("\n"))
    parts = [f"<p>{body}</p>"]
    url = _http_url(post.url)
    if url:
        escaped = html.escape(url, quote=True)
        parts.append(f'<p>投稿 / Post: <a href="{escaped}" rel="noopener noreferrer">{escaped}</a></p>')
    return "".join(parts)


def analysis_display(analysis: Analysis, decision: Decision, post: Post) -> dict[str, Any]:
    """Every label with its Japanese and English names, score and evidence.

    Zendesk's docs type `display_info.data` as a string, its published schema as an object; the
    schema is what Zendesk validates against, so `data` is an object.
    """
    labels = {}
    for name, label in analysis.labels().items():
        labels[name] = {
            "value": label.value, "score": round(label.score, 4), "evidence": list(label.evidence),
            "name_ja": LABEL_NAMES[name][0], "name_en": LABEL_NAMES[name][1],
            "value_ja": value_name(name, label.value, "ja"),
        }
    return {"type": DISPLAY_ANALYSIS, "data": {
        "brand": decision.brand, "priority": analysis.priority.value, "language": analysis.language,
        "version": analysis.version, "labels": labels, "qualification": list(decision.reasons),
        "post_url": _http_url(post.url),
    }}


def author_display(post: Post) -> dict[str, Any]:
    author = post.author
    return {"type": DISPLAY_AUTHOR, "data": {
        "platform": post.platform, "platform_name": PLATFORM_NAMES.get(post.platform, post.platform),
        "id": author.id, "handle": author.handle, "name": author.name, "bio": author.bio,
        "location": author.location, "followers": author.followers, "following": author.following,
        "account_created_at": _iso_z(author.created_at) if author.created_at else None,
    }}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def author_name(post: Post) -> str:
    author = post.author
    name = (author.name or "").strip()
    handle = (author.handle or "").strip()
    shown = f"{name} (@{handle})" if name and handle else name or (f"@{handle}" if handle else author.id)
    return _CONTROL.sub(" ", shown)[:255].strip() or author.id[:255]


def external_resource(post: Post, decision: Decision, analysis: Analysis, *, ticket_post_key: str,
                      is_ticket_post: bool) -> dict[str, Any]:
    """One post as a Zendesk external resource.

    Threading: every post of a conversation carries the same `thread_id` (the ticket post's
    external id), the ticket post included, so Zendesk groups them into one ticket; never
    `parent_id` as well (Zendesk: one or the other). `fields` (ticket fields) apply only when
    Zendesk creates the ticket, so only the ticket post carries them.
    """
    ticket_platform, _, ticket_ident = ticket_post_key.partition(":")
    resource: dict[str, Any] = {
        "external_id": external_id(post.platform, post.id),
        "message": message_text(post),
        "html_message": message_html(post),
        "thread_id": external_id(ticket_platform, ticket_ident),
        "created_at": _iso_z(post.created_at),
        "author": {
            "external_id": external_id(post.platform, post.author.id),
            "name": author_name(post),
            "locale": author_locale(post),
        },
        "display_info": [analysis_display(analysis, decision, post), author_display(post)],
        "allow_channelback": post.platform in REPLYABLE_PLATFORMS,
    }
    image = _https_url(post.author.avatar_url, MAX_IMAGE_URL)
    if image:
        resource["author"]["image_url"] = image
    if is_ticket_post:
        # `subject` by its English name is documented; `priority` and `tags` the same way are
        # UNVERIFIED (helpdesk-apis.md §1.3): Zendesk may ignore them, never fails the resource.
        resource["fields"] = [
            {"id": "subject", "value": ticket_subject(post, decision.brand)},
            {"id": "priority", "value": analysis.priority.value},
            {"id": "tags", "value": list(ticket_tags(post, analysis))},
        ]
    return resource
