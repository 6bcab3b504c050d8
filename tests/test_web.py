"""The dashboard pages render the tickets, the qualification log and the outbox, in ja and en.

They need a signed-in supervisor now (issue 8): `supervisor` is a logged-in client; the ticket
list moved from / (now the overview) to /tickets."""
from __future__ import annotations

from tests.conftest import post_dict


def seed(svc):
    svc.pipeline.ingest_raw(post_dict(id="1", text="ソラモバイル、駅で全然繋がらない😡"), "test")
    svc.pipeline.ingest_raw(post_dict(id="2", text="今日は空がきれい", author={"id": "2"}), "test")
    svc.pipeline.drain(max_wait=1)


def test_tickets_page_shows_ticket_and_analysis(supervisor, svc):
    seed(svc)
    page = supervisor.get("/tickets?lang=ja").get_data(as_text=True)
    assert "作成したチケット" in page
    assert "[ソラモバイル] ソラモバイル、駅で全然繋がらない😡" in page
    assert "sentiment_negative" in page and "ネガティブ" in page
    english = supervisor.get("/tickets?lang=en")
    assert "Tickets created" in english.get_data(as_text=True)
    assert "lang=en" in english.headers.get("Set-Cookie", "")


def test_language_from_browser(supervisor, svc):
    page = supervisor.get("/tickets", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert "Tickets created" in page
    page = supervisor.get("/tickets", headers={"Accept-Language": "ja,en;q=0.5"}).get_data(as_text=True)
    assert "作成したチケット" in page


def test_post_page_shows_evidence_and_local_ticket(supervisor, svc):
    seed(svc)
    page = supervisor.get("/posts/x:1").get_data(as_text=True)
    assert "分析と根拠" in page and "キーワード「ソラモバイル」に一致" in page  # the reason, in Japanese
    assert "社内メモ" in page and "yorisoi:x:1" in page
    assert supervisor.get("/posts/x:404").status_code == 404


def test_decision_log_lists_dropped_with_reason(supervisor, svc):
    seed(svc)
    page = supervisor.get("/decisions?only=dropped").get_data(as_text=True)
    assert "今日は空がきれい" in page and "ブランドのキーワード・ハッシュタグ・メンションのどれにも一致しません" in page
    assert "駅で全然" not in page


def test_outbox_and_health(supervisor, svc):
    seed(svc)
    assert supervisor.get("/outbox").status_code == 200
    health = supervisor.application.test_client().get("/healthz").get_json()  # public: no login
    assert health["ok"] and health["outbox"] == {"done": 1}
