"""Contract: the Channel framework payloads against Zendesk's published schemas — the part
tests/test_channel.py does not already cover.

tests/test_channel.py validates every payload the connector serves (manifest, pull pages and
each external resource, the channelback answer, the event callbacks Zendesk sends) against
zendesk/any_channel_json_schemas (tests/channel_schemas.py; skipped with the reason when the
schemas are absent). What it lacks is the proof that those checks can fail: here a payload the
real code produced validates, and the same payload with one field drifted does not.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from tests.channel_schemas import validator
from tests.test_channel import cclient, channel_app, csvc, install, pull, store_post  # noqa: F401


def _errors(name: str, instance: Any) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in validator(name).iter_errors(instance)]


def _resource(body: dict[str, Any]) -> dict[str, Any]:
    return body["external_resources"][0]


@pytest.fixture
def pulled(cclient, csvc):  # noqa: F811
    metadata = install(cclient)
    store_post(csvc, text="ソラモバイル 繋がらない")
    status, body = pull(cclient, metadata)
    assert status == 200
    return body


DRIFTS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("non-ASCII external_id", lambda b: _resource(b).update(external_id="yorisoi:x:投稿"), "external-id"),
    ("created_at without a zone", lambda b: _resource(b).update(created_at="2026-11-20 09:00:00"), "date-time"),
    ("allow_channelback as text", lambda b: _resource(b).update(allow_channelback="yes"), "'boolean'"),
    ("author without external_id", lambda b: _resource(b)["author"].pop("external_id"), "'external_id' is a required"),
    ("state as an object", lambda b: b.update(state={"cursor": 1}), "'string'"),
]


@pytest.mark.parametrize("what, drift, expected", DRIFTS, ids=[d[0] for d in DRIFTS])
def test_a_wrong_pull_field_fails_the_schema(pulled, what, drift, expected):
    assert _errors("pull_payload", pulled) == []
    drifted = copy.deepcopy(pulled)
    drift(drifted)
    problems = _errors("pull_payload", drifted)
    assert any(expected in p for p in problems), (what, problems)


def test_a_wrong_manifest_or_channelback_field_fails_the_schema(cclient):  # noqa: F811
    manifest = cclient.get("/zendesk/manifest.json").get_json()
    assert _errors("manifest", manifest) == []
    drifted = copy.deepcopy(manifest)
    drifted["urls"]["pull_url"] = drifted["urls"]["pull_url"].replace("https://", "http://")
    assert any("https-url" in p for p in _errors("manifest", drifted)), _errors("manifest", drifted)
    answer = {"external_id": "yorisoi:x:1870000000000000042", "allow_channelback": True}
    assert _errors("channelback_payload_v2", answer) == []
    assert _errors("channelback_payload_v2", {**answer, "external_id": " yorisoi:x:1 "})
