"""What the ticket tells the agent about replying to a post on its network. Pure.

X's self-serve API accepts a reply only when the customer @mentioned or quoted the brand's
account (docs.x.com changelog, 2026-02-23); for any other post the agent posts by hand through
the web intent. RSS/Atom has no reply channel at all: the agent answers on the site itself.
"""
from __future__ import annotations

from urllib.parse import urlencode

from connector.models import Post


def x_intent_url(post_id: str, text: str | None = None) -> str:
    """https://x.com/intent/tweet?in_reply_to=… (x-for-websites/web-intents/overview.mdx)."""
    params = {"in_reply_to": post_id}
    if text:
        params["text"] = text
    return "https://x.com/intent/tweet?" + urlencode(params)


def reply_hint(post: Post) -> str | None:
    """A line for the ticket description, or None when replies simply work."""
    if post.platform == "x":
        return ("返信 / Reply: X の API で返信できるのは、お客様が当社アカウントを @メンション・引用した投稿だけです。"
                "それ以外はこのリンクから手動で返信してください / X allows API replies only where the customer "
                f"mentioned or quoted us; otherwise reply by hand: {x_intent_url(post.id)}")
    if post.platform == "rss":
        return ("返信 / Reply: RSS/Atom には返信の経路がありません。掲載サイトで直接返信してください / "
                f"No reply channel: reply on the site itself{': ' + post.url if post.url else ''}")
    return None
