"""Platform compliance: a deleted or protected post loses its text and (when no live post of
the author remains) the author's profile; its ticket gets one internal note that does not
repeat the text; nothing is repeated on the next run."""
from __future__ import annotations

from click.testing import CliRunner

from connector.cli import main
from connector.compliance import run_compliance
from connector.poller import Poller
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.fixtures import social_env


def _notes(svc, ticket_id):
    return [c for c in svc.helpdesk.ticket(int(ticket_id))["comments"] if not c["public"] and "Yorisoi:" in c["body"]]


def test_deleted_x_post_is_purged_and_noted_once(social_app, fakes):
    x = fakes["x"]
    gone = x.add_post("ソラモバイルの請求が二重、ひどい", author="1850000000000000555")
    kept = x.add_post("ソラモバイル、店舗の対応よかった", author="1850000000000000556")
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    svc.pipeline.drain(max_wait=1)
    ticket = svc.store.outbox.ticket_for(f"x:{gone}")
    x.delete(gone)
    svc.store.compliance.mark_live([f"x:{gone}", f"x:{kept}"], "x")  # pretend the last check is old:
    from datetime import timedelta

    from connector.store import utcnow
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=lambda: utcnow() + timedelta(hours=13))
    assert report.purged == [f"x:{gone}"] and report.notes_added == 1
    post, _decision, analysis = svc.store.posts.load_post(f"x:{gone}")
    assert "二重" not in post.text and "削除" in post.text
    assert post.url == f"https://x.com/i/web/status/{gone}"
    assert post.author.name is None and post.author.bio is None and post.author.handle is None
    assert all(not label.evidence for label in analysis.labels().values())
    assert "二重" not in svc.store.outbox.list_tickets()[-1]["subject"] or True
    subjects = {t["post_key"]: t["subject"] for t in svc.store.outbox.list_tickets()}
    assert "二重" not in subjects[f"x:{gone}"]
    [note] = _notes(svc, ticket.ticket_id)
    assert "二重" not in note["body"] and "削除" in note["body"]
    # The live post and its author are untouched.
    assert svc.store.posts.load_post(f"x:{kept}")[0].author.name is not None
    again = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=lambda: utcnow() + timedelta(hours=30))
    assert again.purged == [] and again.notes_added == 0
    assert len(_notes(svc, ticket.ticket_id)) == 1


def test_protected_author_keeps_profile_while_a_live_post_remains(social_app, fakes):
    x = fakes["x"]
    first = x.add_post("ソラモバイル、解約したい", author="1850000000000000777")
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    x.delete(first)
    # Another post by the same author arrives and stays live.
    second = x.add_post("ソラモバイル、やっぱり続けます", author="1850000000000000777")
    Poller(svc).run_once(compliance=False)
    svc.store.compliance.mark_live([f"x:{first}"], "x")
    from datetime import timedelta

    from connector.store import utcnow
    run_compliance(svc.store, svc.sources, svc.helpdesk, clock=lambda: utcnow() + timedelta(hours=13))
    assert svc.store.compliance.compliance_state(f"x:{first}")["state"] == "gone"
    assert svc.store.posts.load_post(f"x:{second}")[0].author.name is not None  # still needed for the live post
    x.protected_users.add("1850000000000000777")
    run_compliance(svc.store, svc.sources, svc.helpdesk, clock=lambda: utcnow() + timedelta(hours=40))
    state = svc.store.compliance.compliance_state(f"x:{second}")
    assert state["state"] == "gone" and state["reason"] == "protected"
    assert svc.store.posts.load_post(f"x:{second}")[0].author.name is None  # no live post left: profile cleared


def test_compliance_cli_purges_bluesky_and_mastodon_too(env, tmp_path, fakes):
    b_uri = fakes["bluesky"].add_post("ハルカ珈琲、店員さんが冷たかった")
    m_id = fakes["mastodon"].add_status("<p>ソラ光が遅い #ソラモバイル</p>", tags=["ソラモバイル"])
    run_env = social_env(env, tmp_path, fakes)
    CliRunner().invoke(main, ["poll", "--once"], env=run_env, catch_exceptions=False)
    fakes["bluesky"].deleted.add(b_uri)
    fakes["mastodon"].deleted.add(m_id)
    # Freshly polled posts are known live for 12 hours; --all asks about them anyway.
    assert "gone 0" in CliRunner().invoke(main, ["compliance"], env=run_env).output
    result = CliRunner().invoke(main, ["compliance", "--all"], env=run_env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"purged bluesky:{b_uri}" in result.output
    assert "purged mastodon:https://mstdn.example/users/yamada/statuses/" in result.output
    assert "internal notes added: 2" in result.output


def test_purge_removes_the_posts_topics_and_their_monthly_counts(social_app, fakes):
    """Issue 16 #12: the nouns of a purged post left the topics page and its CSV only if both
    post_topics (days at the edges of a range) and report_topic_monthly (whole months) lose them."""
    from datetime import timedelta

    from connector.db.reports import ReportFilter
    from connector.report_time import report_day
    from connector.store import utcnow
    x = fakes["x"]
    gone = x.add_post("ソラモバイルの請求が二重、ひどい", author="1850000000000000901")
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    post = svc.store.posts.load_post(f"x:{gone}")[0]
    day = report_day(post.created_at)
    import calendar
    year, month = int(day[:4]), int(day[5:7])
    whole_month = ReportFilter(f"{day[:7]}-01", f"{day[:7]}-{calendar.monthrange(year, month)[1]:02d}")
    one_day = ReportFilter(day, day)
    before_days = svc.store.reports.report_topics(one_day, 50)
    before_months = svc.store.reports.report_topics(whole_month, 50)
    assert before_days and before_months  # the post has complaint topics, counted both ways
    svc.store.compliance.mark_live([f"x:{gone}"], "x")
    x.delete(gone)
    report = run_compliance(svc.store, svc.sources, svc.helpdesk, clock=lambda: utcnow() + timedelta(hours=13))
    assert report.purged == [f"x:{gone}"]
    assert svc.store.reports.report_topics(one_day, 50) == []
    assert svc.store.reports.report_topics(whole_month, 50) == []
