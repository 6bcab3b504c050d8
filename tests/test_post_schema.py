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


@pytest.mark.parametrize("created_at, words", [
    ("9999-12-31T23:59:59Z", "in the future"),
    ("9999-12-31T23:59:59+14:00", "in the future"),
    ("0001-01-01T00:00:00Z", "before 2006-01-01"),
    ("0001-01-01T00:00:00-12:00", "before 2006-01-01"),
    ("2005-12-31T23:59:59Z", "before 2006-01-01"),
])
def test_a_created_at_outside_a_sane_window_is_rejected_naming_the_field(created_at, words):
    """A 9999-12-31 created_at overflowed the conversion to Japanese time inside ingest; year
    0001 stored and then overflowed the storm index (issue 16 #1). Refused in the schema."""
    with pytest.raises(PostRejected) as info:
        parse_post(post_dict(created_at=created_at))
    assert info.value.field == "created_at"
    assert words in info.value.message


def test_created_at_up_to_a_day_ahead_of_the_clock_is_accepted():
    from datetime import datetime, timedelta, timezone
    soon = datetime.now(timezone.utc) + timedelta(hours=23)
    assert parse_post(post_dict(created_at=soon.isoformat())).created_at == soon
    later = datetime.now(timezone.utc) + timedelta(hours=25)
    with pytest.raises(PostRejected) as info:
        parse_post(post_dict(created_at=later.isoformat()))
    assert info.value.field == "created_at"
    assert parse_post(post_dict(created_at="2006-01-01T00:00:00Z")).created_at.year == 2006
