"""An agent's reply goes back to the network signed, threaded to the latest customer post,
and exactly once however often the helpdesk repeats the webhook."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.replies import ReplyFailed, UnknownTicket, sign_reply
from connector.sources.base import ReplyRefused, ReplyResult
from tests.conftest import post_dict
from tests.fakes.fixtures import *  # noqa: F401,F403


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
    assert "返信のやりとり" in page and "&lt;b&gt;確認します&lt;/b&gt;" in page and "記録済み（ネットワーク未接続）" in page


# --- unknown outcomes (issue 16 #3): a timeout is not a failure ------------------------------

def _lost_answer(monkeypatch, fake, method: str, path: str) -> None:
    """The network posts the reply but its answer comes after our read timeout."""
    from connector.sources import http
    monkeypatch.setattr(http, "TIMEOUT", (2.0, 0.3))
    fake.lose_next_answer(method, path, 1.0)


def test_x_reply_that_timed_out_is_unknown_and_not_posted_twice(social_app, fakes, monkeypatch):
    """A timeout from X used to be recorded `failed`; the helpdesk's webhook retry resent it
    and the customer saw the reply twice. Now it is `unknown`, and the retry finds the brand's
    reply in the conversation instead of posting again."""
    from connector.poller import Poller
    from connector.sources import http
    x = fakes["x"]
    post_id = x.add_post("ソラモバイルの請求が二重です、確認してください", mention_brand=True)
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    ticket_id = svc.store.outbox.ticket_for(f"x:{post_id}").ticket_id
    real_timeout = http.TIMEOUT
    _lost_answer(monkeypatch, x, "POST", "/2/tweets")
    with pytest.raises(ReplyFailed) as info:
        svc.reply(ticket_id=ticket_id, agent="佐藤", text="ご不便をおかけしております。", dedupe_key="zd:c:1")
    assert info.value.retryable
    assert svc.store.exchanges.exchange("zd:c:1")["status"] == "unknown"
    assert svc.store.exchanges.exchange("zd:c:1")["sent_at"] is None
    monkeypatch.setattr(http, "TIMEOUT", real_timeout)
    again = svc.reply(ticket_id=ticket_id, agent="佐藤", text="ご不便をおかけしております。", dedupe_key="zd:c:1")
    [reply] = x.replies  # posted once
    assert again.exchange["status"] == "sent" and again.exchange["network_id"] == reply["id"]
    assert len(x.calls("/2/tweets", "POST")) == 1


def test_x_unknown_reply_that_never_arrived_is_sent_on_retry(social_app, fakes):
    from connector.poller import Poller
    x = fakes["x"]
    post_id = x.add_post("ソラモバイル、解約の手続きが分からない", mention_brand=True)
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    ticket_id = svc.store.outbox.ticket_for(f"x:{post_id}").ticket_id
    row, _ = svc.store.exchanges.begin_exchange(
        dedupe_key="zd:c:2", ticket_post_key=f"x:{post_id}", reply_to_key=f"x:{post_id}", helpdesk="local",
        ticket_id=str(ticket_id), agent="佐藤", text="確認いたします。（ソラモバイル 佐藤）")
    svc.store.exchanges.finish_exchange(row["id"], status="unknown", error="outcome unknown")
    outcome = svc.reply(ticket_id=ticket_id, agent="佐藤", text="確認いたします。", dedupe_key="zd:c:2")
    assert outcome.exchange["status"] == "sent" and len(x.replies) == 1


def test_bluesky_reply_that_timed_out_is_not_posted_twice(social_app, fakes, monkeypatch):
    """Bluesky has no idempotency key either: the record key is derived from the dedupe key,
    so the retry finds the record (and a repeated createRecord would fail on the taken key)."""
    from connector.poller import Poller
    from connector.sources import http
    from connector.sources.bluesky import reply_rkey
    b = fakes["bluesky"]
    root = b.add_post("ハルカ珈琲の新ブレンド、酸っぱい")
    svc = social_app(only=("bluesky",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    ticket_id = svc.store.outbox.ticket_for(f"bluesky:{root}").ticket_id
    real_timeout = http.TIMEOUT
    _lost_answer(monkeypatch, b, "POST", "createRecord")
    with pytest.raises(ReplyFailed):
        svc.reply(ticket_id=ticket_id, agent="佐藤", text="ご意見ありがとうございます。", dedupe_key="zd:c:3")
    assert svc.store.exchanges.exchange("zd:c:3")["status"] == "unknown"
    monkeypatch.setattr(http, "TIMEOUT", real_timeout)
    again = svc.reply(ticket_id=ticket_id, agent="佐藤", text="ご意見ありがとうございます。", dedupe_key="zd:c:3")
    assert len(b.records) == 1 and again.exchange["status"] == "sent"
    assert again.exchange["network_id"].endswith("/" + reply_rkey("zd:c:3"))
    # Even a blind repeat of the createRecord cannot post a second copy: the key is taken.
    post = svc.store.posts.load_post(f"bluesky:{root}")[0]
    result = svc.sources["bluesky"].post_reply(post, "ご意見ありがとうございます。", idempotency_key="zd:c:3")
    assert result.status == "sent" and len(b.records) == 1


def test_reply_rkey_is_a_deterministic_tid():
    import re

    from connector.sources.bluesky import reply_rkey
    key = reply_rkey("zendesk:comment:77")
    assert key == reply_rkey("zendesk:comment:77") != reply_rkey("zendesk:comment:78")
    assert re.fullmatch(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}", key)


def test_an_interrupted_local_reply_is_simply_resent(svc):
    """The local source records replies only: an interrupted (stale `sending`) one needs no
    look on a network before it is sent again."""
    from datetime import timedelta

    from sqlalchemy import update

    from connector.db.schema import exchanges
    from connector.sources.local import LocalSource
    ticket_id = ticketed(svc)
    svc.sources["x"] = LocalSource("x")
    row, _ = svc.store.exchanges.begin_exchange(
        dedupe_key="k-local", ticket_post_key="x:1", reply_to_key="x:2", helpdesk="local",
        ticket_id=str(ticket_id), agent="佐藤", text="確認します（ソラモバイル 佐藤）")
    with svc.store.engine.begin() as conn:
        conn.execute(update(exchanges).where(exchanges.c.id == row["id"]).values(
            created_at=row["created_at"] - timedelta(minutes=5)))
    outcome = svc.reply(ticket_id=ticket_id, agent="佐藤", text="確認します", dedupe_key="k-local")
    assert outcome.exchange["status"] == "recorded"
