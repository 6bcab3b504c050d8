"""An agent's reply goes back to the network signed, threaded to the latest customer post,
and exactly once however often the helpdesk repeats the webhook."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.replies import ReplyFailed, UnknownTicket, sign_reply
from connector.sources.base import ReplyRefused, ReplyResult
from tests.conftest import post_dict


@pytest.mark.parametrize("text, expected", [
    ("ご不便をおかけしております。", "ご不便をおかけしております。 （ソラモバイル 佐藤）"),
    ("ソラモバイルの佐藤です。ご不便をおかけしております。", "ソラモバイルの佐藤です。ご不便をおかけしております。"),
    ("  ありがとうございます！  ", "ありがとうございます！ （ソラモバイル 佐藤）"),
    ("一行目\n二行目", "一行目\n二行目\n（ソラモバイル 佐藤）"),
])
def test_sign_reply(text, expected):
    assert sign_reply(text, "佐藤", "ソラモバイル") == expected


def test_sign_reply_custom_template_and_no_brand():
    assert sign_reply("Thanks!", "Sato", None, "— {agent}, {brand} support") == "Thanks! — Sato, support"


def ticketed(svc, **extra):
    svc.pipeline.ingest_raw(post_dict(id="1", text="ソラモバイル、請求が二重です"), "test")
    svc.pipeline.ingest_raw(post_dict(id="2", text="まだ直りません", conversation_id="1", in_reply_to="1",
                                      created_at="2026-11-20T10:00:00Z"), "test")
    svc.pipeline.drain(max_wait=1)
    return svc.store.outbox.list_tickets()[0]["ticket_id"]


class RecordingSource:
    platform = "x"

    def __init__(self, fail_with: Exception | None = None):
        self.calls: list[tuple[str, str, str]] = []
        self.fail_with = fail_with

    def post_reply(self, post, text, idempotency_key):
        self.calls.append((post.key, text, idempotency_key))
        if self.fail_with:
            raise self.fail_with
        return ReplyResult("sent", network_id="1870000000000000001", url="https://x.com/sora/status/1870000000000000001")


def test_reply_is_signed_threaded_and_sent_once(svc):
    ticket_id = ticketed(svc)
    source = RecordingSource()
    svc.sources["x"] = source
    first = svc.reply(ticket_id=ticket_id, agent="佐藤", text="ご迷惑をおかけしています。DMで確認させてください。",
                      dedupe_key="zendesk:comment:77")
    again = svc.reply(ticket_id=ticket_id, agent="佐藤", text="ご迷惑をおかけしています。DMで確認させてください。",
                      dedupe_key="zendesk:comment:77")
    assert len(source.calls) == 1 and again.duplicate and not first.duplicate
    post_key, text, key = source.calls[0]
    assert post_key == "x:2"  # the newest customer post of the conversation
    assert text.endswith("（ソラモバイル 佐藤）") and key == "zendesk:comment:77"
    [exchange] = svc.store.exchanges.list_exchanges("x:1")
    assert exchange["status"] == "sent" and exchange["network_id"] == "1870000000000000001"
    assert exchange["agent"] == "佐藤" and exchange["reply_to_key"] == "x:2"


def test_failed_reply_is_recorded_and_retried_with_the_same_key(svc):
    ticket_id = ticketed(svc)
    svc.sources["x"] = RecordingSource(fail_with=ReplyRefused("429 Too Many Requests", retryable=True))
    with pytest.raises(ReplyFailed) as info:
        svc.reply(ticket_id=ticket_id, agent="佐藤", text="確認します", dedupe_key="k1")
    assert info.value.retryable
    assert svc.store.exchanges.exchange("k1")["status"] == "failed"
    working = RecordingSource()
    svc.sources["x"] = working
    outcome = svc.reply(ticket_id=ticket_id, agent="佐藤", text="確認します", dedupe_key="k1")
    assert not outcome.duplicate and outcome.exchange["status"] == "sent"
    assert working.calls[0][2] == "k1"


def test_unknown_ticket(svc):
    with pytest.raises(UnknownTicket, match="local ticket 999 was not created by Yorisoi"):
        svc.reply(ticket_id="999", agent="佐藤", text="x", dedupe_key="k")


def test_cli_reply_on_local_helpdesk(env, svc):
    ticket_id = ticketed(svc)
    result = CliRunner().invoke(main, ["reply", ticket_id, "ご不便をおかけしております", "--agent", "佐藤", "--key", "cli-1"],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("recorded: ご不便をおかけしております （ソラモバイル 佐藤）")
    ticket = svc.helpdesk.ticket(int(ticket_id))
    assert any(c["public"] and "（ソラモバイル 佐藤）" in c["body"] for c in ticket["comments"])
    again = CliRunner().invoke(main, ["reply", ticket_id, "ご不便をおかけしております", "--agent", "佐藤", "--key", "cli-1"], env=env)
    assert again.output.startswith("already sent earlier")
    unknown = CliRunner().invoke(main, ["reply", "4040", "x", "--agent", "佐藤"], env=env)
    assert unknown.exit_code == 1 and "was not created by Yorisoi" in unknown.output


def test_post_page_shows_exchanges(supervisor, svc):
    ticket_id = ticketed(svc)
    svc.reply(ticket_id=ticket_id, agent="佐藤", text="<b>確認します</b>", dedupe_key="k-page")
    page = supervisor.get("/posts/x:1").get_data(as_text=True)
    assert "返信のやりとり" in page and "&lt;b&gt;確認します&lt;/b&gt;" in page and "recorded" in page
