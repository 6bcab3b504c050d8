"""A seeded store for the sidebar API and extension tests.

Posts go through the real pipeline (qualification + analysis); their tickets are then recorded
as a Zendesk or Freshdesk helpdesk would have answered (ids we choose), so the tests can open
`/agent/tickets/101` and `/a/tickets/7` pages that mimic those helpdesks. One customer (田中) has
a history: an earlier praise, an earlier question with a ticket and our reply to it, and today's
complaint. Another (the attacker) has hostile HTML and `javascript:` links everywhere.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from connector.models import TicketRef
from connector.store import utcnow
from tests.conftest import post_dict

TANAKA = {"id": "90000001", "handle": "tanaka_k", "name": "田中 健", "bio": "通勤は毎日ソラモバイル。東京在住。",
          "location": "東京", "followers": 1520, "following": 210, "created_at": "2016-05-01T00:00:00Z",
          "avatar_url": "https://pbs.example/tanaka.jpg"}
HOSTILE = {"id": "66600001", "handle": "evil<b>", "name": "<img src=x onerror=\"document.title='pwned'\">悪意",
           "bio": "<script>document.title='pwned-bio'</script>", "location": "<i>nowhere</i>",
           "followers": 10, "avatar_url": "javascript:alert('avatar')"}

HOSTILE_TEXT = ("ソラモバイル <img src=x onerror=\"document.title='pwned'\"> <script>document.title='pwned2'</script> "
                "<a href=\"javascript:alert(1)\">click</a> 最悪")

#: The reply the team sent to 田中's earlier question (the draft-check similarity baseline).
EARLIER_REPLY = ("田中様、ご不便をおかけして申し訳ございません。ただいま駅周辺の通信状況を確認しております。"
                 "復旧の見込みが分かり次第こちらでお知らせいたします。（ソラモバイル 鈴木）")

#: A reply that breaks every rule of the draft check on ticket zendesk 101 (an X complaint).
BAD_REPLY = ("鈴木様、ご不便をおかけして申し訳ございません。ただいま駅周辺の通信状況を確認しております。"
             "復旧の見込みが分かり次第こちらでお知らせいたします。貴重なご意見は今後の参考にさせていただきますｗ 草 まじで"
             "ごめんね。ご注文番号 SM-20261120-0042 の件は 090-1234-5678 か sato@example.co.jp まで、"
             "〒150-0002 東京都渋谷区渋谷2-21-1 の窓口へどうぞ。" + "詳しくは店頭でご確認ください。" * 4)


def _ago(days: float) -> str:
    return (utcnow() - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed(svc: Any) -> dict[str, Any]:
    """Fill the store; returns the post keys and ticket ids by role.

    The sidebar tests check what the sidebar shows of an analysis (labels, evidence, badges),
    not how well the model reads: the seed is analysed by the lexicon and rules, whose evidence
    (「最悪 (-0.9)」) they quote. The label model has its own tests (tests/analysis/)."""
    svc.pipeline.model = None
    posts = {
        "praise": post_dict(id="1860000000000000101", created_at=_ago(60), author=TANAKA,
                            url="https://x.com/tanaka_k/status/1860000000000000101",
                            text="ソラモバイルに乗り換えて正解、速くて安い！最高"),
        "question": post_dict(id="1860000000000000102", created_at=_ago(20), author=TANAKA,
                              url="https://x.com/tanaka_k/status/1860000000000000102",
                              text="ソラモバイルって駅で繋がりにくいのはいつ直りますか？"),
        "complaint": post_dict(id="1860000000000000103", created_at=_ago(0.1), author=TANAKA,
                               url="https://x.com/tanaka_k/status/1860000000000000103",
                               text="ソラモバイル、また駅で全然繋がらない。最悪。もう解約したい",
                               metrics={"replies": 2, "reposts": 40, "likes": 120, "quotes": 3}),
        "hostile": post_dict(id="1860000000000000666", created_at=_ago(0.05), author=HOSTILE,
                             url="javascript:alert('post')", text=HOSTILE_TEXT),
        "mastodon": post_dict(platform="mastodon", id="110000000000000777", created_at=_ago(0.2),
                              url="https://mstdn.example/@yamada/110000000000000777",
                              author={"id": "yamada@mstdn.example", "handle": "yamada@mstdn.example",
                                      "name": "山田", "followers": 80, "avatar_url": "http://insecure.example/a.png"},
                              text="ソラモバイルの料金プラン、家族割はありますか？"),
    }
    tickets = {"question": ("zendesk", "100"), "complaint": ("zendesk", "101"), "hostile": ("zendesk", "102"),
               "mastodon": ("freshdesk", "7")}
    keys = {}
    for role, raw in posts.items():
        outcome = svc.pipeline.ingest_raw(raw, source="test")
        assert outcome.status == "queued", (role, outcome)
        keys[role] = outcome.key
    by_key = {keys[role]: ref for role, ref in tickets.items()}
    for item in svc.store.outbox.claim_due(100, timedelta(minutes=5)):
        if item.post_key in by_key:
            helpdesk, ticket_id = by_key[item.post_key]
            url = (f"https://sora.zendesk.com/agent/tickets/{ticket_id}" if helpdesk == "zendesk"
                   else f"https://sora.freshdesk.com/a/tickets/{ticket_id}")
            svc.store.outbox.mark_created(item, TicketRef(helpdesk, ticket_id, url), external_id=f"yorisoi:{item.post_key}",
                                   subject=f"[ソラモバイル] {item.post_key}", priority="high", tags=["yorisoi"])
        else:  # the praise: stored and analysed, no ticket of ours (delivered elsewhere)
            svc.store.outbox.mark_commented(item)
    row, _ = svc.store.exchanges.begin_exchange(dedupe_key="seed:1", ticket_post_key=keys["question"],
                                      reply_to_key=keys["question"], helpdesk="zendesk", ticket_id="100",
                                      agent="鈴木", text=EARLIER_REPLY)
    svc.store.exchanges.finish_exchange(row["id"], status="prepared",
                              url="https://x.com/intent/tweet?in_reply_to=1860000000000000102")
    return {"keys": keys, "tickets": tickets}
