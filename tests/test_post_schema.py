"""The normalized post: what is accepted and what is rejected, with the field named."""
from __future__ import annotations

import pytest

from connector.models import MAX_TEXT_CHARS
from connector.pipeline import PostRejected, parse_post
from tests.conftest import post_dict


def test_valid_post_with_optional_fields_missing_or_null():
    raw = post_dict(url=None, lang=None, metrics=None)
    for key in ("bio", "location", "followers", "following", "created_at", "avatar_url", "handle", "name"):
        raw["author"].pop(key)
    del raw["in_reply_to"], raw["conversation_id"], raw["repost_of"]
    post = parse_post(raw)
    assert post.metrics.likes == 0 and post.url is None and post.author.followers is None
    assert post.key == f"x:{raw['id']}" and post.external_id == f"yorisoi:x:{raw['id']}"


def test_json_text_is_parsed():
    import json
    assert parse_post(json.dumps(post_dict(id="42"))).id == "42"


@pytest.mark.parametrize("mutate, field, words", [
    (lambda p: p.update(platform="myspace"), "platform", "Input should be"),
    (lambda p: p.pop("id"), "id", "Field required"),
    (lambda p: p.pop("text"), "text", "Field required"),
    (lambda p: p.pop("created_at"), "created_at", "Field required"),
    (lambda p: p.update(id=1860000000000000001), "id", "valid string"),
    (lambda p: p.update(text=["not", "text"]), "text", "valid string"),
    (lambda p: p.update(text="   "), "text", "blank"),
    (lambda p: p.update(text="あ" * (MAX_TEXT_CHARS + 1)), "text", f"at most {MAX_TEXT_CHARS}"),
    (lambda p: p.update(created_at="yesterday"), "created_at", "datetime"),
    (lambda p: p.update(created_at="2026-11-20T09:00:00"), "created_at", "timezone"),
    (lambda p: p["author"].update(followers="many"), "author.followers", "integer"),
    (lambda p: p["author"].update(followers=-5), "author.followers", "greater than or equal"),
    (lambda p: p["author"].pop("id"), "author.id", "Field required"),
    (lambda p: p.pop("author"), "author", "Field required"),
    (lambda p: p["metrics"].update(likes="6"), "metrics.likes", "integer"),
    (lambda p: p.update(id=""), "id", "at least 1"),
])
def test_rejections_name_the_field(mutate, field, words):
    raw = post_dict()
    mutate(raw)
    with pytest.raises(PostRejected) as info:
        parse_post(raw)
    assert info.value.field == field
    assert words.lower() in info.value.message.lower()


def test_text_at_the_limit_is_accepted():
    assert len(parse_post(post_dict(text="あ" * MAX_TEXT_CHARS)).text) == MAX_TEXT_CHARS


@pytest.mark.parametrize("raw, words", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                                        ('"a string"', "JSON object")])
def test_non_objects_are_rejected(raw, words):
    with pytest.raises(PostRejected, match=words):
        parse_post(raw)
