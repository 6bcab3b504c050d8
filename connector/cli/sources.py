"""`yorisoi` commands of the sources: poll (and --status), sync-status, compliance."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click

from connector.cli import _app, _one_instance, _services, main


def _print_poll(report: Any) -> None:
    """`yorisoi poll --once`: one line per poll unit, Japanese first and English too, JST."""
    from connector.report_time import format_jst
    for unit in report.units:
        when = format_jst(unit.next_poll_at, with_seconds=True) if unit.next_poll_at else "-"
        if not unit.polled:
            click.echo(f"  - {unit.unit}: " + (
                f"{when} まで待機（前回のエラー：{unit.error}） / backing off until {when} (last error: {unit.error})"
                if unit.backing_off else f"次回 {when} / next poll at {when}"))
        elif unit.error:
            click.echo(f"  ! {unit.unit}: {unit.error}（待機中、次の試行 {when}） / (backing off; next try {when})")
        else:
            extra_ja = ((f" · スキップ {unit.skipped}" if unit.skipped else "")
                        + (f" · 不正 {unit.rejected}" if unit.rejected else ""))
            extra_en = ((f" · skipped {unit.skipped}" if unit.skipped else "")
                        + (f" · rejected {unit.rejected}" if unit.rejected else ""))
            click.echo(f"  {unit.unit}: 取得 {unit.fetched} · 新規チケット {unit.queued} · 追記 {unit.follow_ups}"
                       f" · 対象外 {unit.dropped} · 保存済み {unit.duplicates}{extra_ja}"
                       f" / fetched {unit.fetched} · new tickets {unit.queued} · follow-ups {unit.follow_ups}"
                       f" · dropped {unit.dropped} · already stored {unit.duplicates}{extra_en}"
                       + (f" ({unit.note})" if unit.note else ""))
    for line in report.usage:
        click.echo(f"  {line}")
    if report.status is not None:
        st = report.status
        click.echo(f"  ヘルプデスクの状態：変更 {st.changes} 件 · Yorisoi のチケット {st.matched} 件"
                   f" / helpdesk status: {st.changes} changes · {st.matched} of Yorisoi's tickets"
                   + "".join(f"\n  ! {e}" for e in st.errors))
    if report.compliance is not None:
        c = report.compliance
        checked, gone = sum(c.checked.values()), sum(c.gone.values())
        click.echo(f"  削除確認：確認 {checked} · 削除済み {gone} · 内部メモ {c.notes_added}"
                   f" / compliance: checked {checked} · gone {gone} · notes {c.notes_added}"
                   + "".join(f"\n  ! {e}" for e in c.errors))


def _both(key: str, **values: Any) -> str:
    """A dashboard string (connector/web/i18n.py) as 「日本語 / English」, for the terminal."""
    from connector.web.i18n import STRINGS
    ja, en = STRINGS[key]
    return f"{ja.format(**values).strip()} / {en.format(**values).strip()}"


def _print_status(svc: Any, as_json: bool) -> None:
    """`yorisoi poll --status`: each stream's and each poll unit's health, as stored. The text
    is what the dashboard's 「ストリーム / Streams」 table says (connector/stream_health.py):
    Japanese first, English too, times in JST; --json keeps the stored values (UTC, ISO 8601)
    for monitoring."""
    from connector.db import utcnow
    from connector.report_time import format_jst
    from connector.stream_health import health_rows
    from connector.streaming import configured_streams, stream_status
    streams = stream_status(svc.store.sources, [s.name for s in configured_streams(svc)])
    units = svc.store.sources.source_health_rows()
    if as_json:
        click.echo(json.dumps({"streams": streams, "units": units}, ensure_ascii=False, default=str))
        return
    click.echo(f"{_both('streams')}:" if streams else
               f"{_both('streams_none')} (X_STREAM / BLUESKY_STREAM / MASTODON_STREAM)")
    for row in health_rows(streams, utcnow()):
        mark = " " if row.up else "!"  # a stream not delivering stands out, as on the dashboard
        click.echo(f"  {mark} {row.name}: {row.status_ja} / {row.status_en}"
                   + ("" if row.up else f" — {row.fallback_ja} / {row.fallback_en}"))
        since = row.connected_for_ja + ("" if row.connected_for_ja == row.connected_for_en else f" / {row.connected_for_en}")
        click.echo(f"      {_both('stream_col_since')} {since}"
                   f" · {_both('stream_col_rate')} {row.events_per_min}"
                   f" · {_both('stream_col_last')} {row.last_event_jst}"
                   f" · {_both('stream_col_reconnects')} {row.reconnects}")
        if row.last_error:
            click.echo(f"      {_both('stream_col_error')} {row.last_error_jst}: {row.last_error}")
        if row.retry_jst:
            click.echo(f"      {_both('stream_retry_at', when='')} {row.retry_jst}")
    click.echo("ポーリング単位 / poll units:" if units else "ポーリング単位：まだ取得していません / poll units: none polled yet")
    for u in units:
        state = (f"失敗 {u['failures']} 回連続 / failing ×{u['failures']}: {u.get('last_error')}" if u.get("failures")
                 else "正常 / ok")
        click.echo(f"  {'!' if u.get('failures') else ' '} {u['unit']}: {state}"
                   f" · 最後の成功 / last ok {format_jst(u.get('last_ok_at')) if u.get('last_ok_at') else '—'}"
                   f" · 次回 / next poll {format_jst(u.get('next_poll_at'), with_seconds=True) if u.get('next_poll_at') else '—'}"
                   + (f" ({u['note']})" if u.get("note") else ""))


@main.command()
@click.option("--once", is_flag=True, help="Poll every configured source once, deliver, and exit (for cron).")
@click.option("--status", "show_status", is_flag=True,
              help="Print each stream's and poll unit's health (connected since, events/min, last event, "
                   "reconnects, errors) and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once or --status: print one JSON object.")
@click.option("--wait", default=60.0, show_default=True,
              help="With --once: seconds to keep retrying deliveries the helpdesk postponed before exiting.")
def poll(once: bool, show_status: bool, as_json: bool, wait: float) -> None:
    """Poll X, Mastodon, Bluesky and RSS/Atom feeds for posts about the watched brands.

    Each network's searches, hashtag timelines and feeds run on their own schedule
    (YORISOI_POLL_INTERVALS) from persisted cursors, so a restart neither skips nor repeats a
    post; a network that fails (429, 5xx) backs off alone. Every post goes through the same
    qualification and analysis as the webhook, and qualifying ones become tickets. Platform
    compliance (deleted posts) runs every 12 hours. Without --once it runs until Ctrl+C,
    with the streams (X filtered stream where the plan offers it, Bluesky Jetstream, Mastodon
    hashtag streams) beside the poller: a network whose stream is connected is not polled;
    while it is down, it is, and X's poll interval adapts to activity (X_POLL_BOUNDS). --status
    shows each stream's and unit's health.
    """
    import time

    from connector.poller import Poller
    from connector.streaming import StreamSupervisor
    app = _app()
    svc = _services(app)
    if show_status:
        _print_status(svc, as_json)
        return
    _one_instance(app)
    svc.warm_up()
    poller = Poller(svc)
    if not poller.sources:
        raise click.ClickException("no network is configured: set X_BEARER_TOKEN, MASTODON_INSTANCES, "
                                   "BLUESKY_HANDLE/BLUESKY_APP_PASSWORD, or add [[feed]] tables to the watch file")
    svc.store.outbox.release_dead_claims()
    if once:
        report = poller.run_once(ignore_interval=True)
        delivery = svc.pipeline.drain(max_wait=wait)
        if report.compliance is not None:  # notes for tickets created just now
            from connector.compliance import add_pending_notes
            report.compliance.notes_added += add_pending_notes(svc.store, svc.helpdesk, report.compliance)
        if as_json:
            click.echo(json.dumps({
                "units": [u.as_dict() for u in report.units], "usage": report.usage,
                "tickets_created": delivery.created, "comments_added": delivery.commented,
                "compliance": report.compliance.as_dict() if report.compliance else None,
            }, ensure_ascii=False))
            return
        polled = sum(1 for u in report.units if u.polled)
        click.echo(f"取得 {polled} 単位 · 投稿 {report.total('fetched')} 件 · チケット作成 {delivery.created} · "
                   f"追記 {delivery.commented} / polled {polled} units · fetched {report.total('fetched')} "
                   f"· tickets created {delivery.created} · follow-up comments {delivery.commented}")
        _print_poll(report)
        return
    from connector.cli.pipeline import _report_mailer
    mailer = _report_mailer(svc)  # the weekly report mail, when YORISOI_REPORT_MAIL_SCHEDULE is set
    svc.start_worker()
    # Streams (X filtered stream, Bluesky Jetstream, Mastodon hashtag streams) next to the poller; while one is
    # down its network's units are polled (connector/streaming.py).
    supervisor = StreamSupervisor(svc, wake_delivery=svc.wake_worker)
    supervisor.start()
    click.echo(f"polling {', '.join(s.platform for s in poller.sources)}"
               + (f"; streaming {', '.join(s.name for s in supervisor.streams)}" if supervisor.streams else "")
               + " (Ctrl+C to stop)")
    try:
        while True:
            report = poller.run_once(ignore_interval=False)
            if any(u.fetched or u.error for u in report.units):
                click.echo(time.strftime("%H:%M:%S"))
                _print_poll(report)
                svc.wake_worker()
            time.sleep(min(60.0, max(1.0, poller.seconds_until_next())))
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        supervisor.stop()
        if mailer is not None:
            mailer.stop()
        svc.close()


@main.command("sync-status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sync_status_command(as_json: bool) -> None:
    """Catch up on the helpdesk's ticket statuses now (Zendesk's incremental ticket export,
    Freshdesk's `updated_since` list) from the stored cursor.

    The status webhooks bring changes within seconds; this sweep catches up on calls that were
    missed. `yorisoi poll` runs it every 10 minutes by itself.
    """
    from connector.ticket_status import sync_status
    svc = _services(_app())
    report = sync_status(svc.store, svc.helpdesk)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    elif not report.supported:
        click.echo(f"{report.helpdesk}: 同期するステータスはありません（Yorisoi 内蔵のヘルプデスク）/ "
                   f"no status to sync (the {report.helpdesk} helpdesk is Yorisoi's own)")
    else:
        click.echo(f"{report.helpdesk}: {report.pages} ページ · 変更 {report.changes} 件 · うち Yorisoi のチケット "
                   f"{report.matched} 件" + ("（続きあり: もう一度実行）" if report.more else "") + " / "
                   f"{report.pages} page(s) · {report.changes} changed tickets · "
                   f"{report.matched} of them Yorisoi's" + (" · more waiting (run again)" if report.more else ""))
        for error in report.errors:
            click.echo(f"  ! {error}", err=True)
    if report.errors:
        raise SystemExit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--all", "check_all", is_flag=True,
              help="Check every stored post now, even those checked in the last 12 hours (e.g. after a deletion request).")
def compliance(as_json: bool, check_all: bool) -> None:
    """Check stored posts against their network now; purge deleted or protected ones.

    X asks that deleted or protected posts leave our store within 24 hours (Bluesky and
    Mastodon likewise). Gone posts lose their text and (once none of the author's posts is
    live) the author's profile; their ticket gets an internal note saying so, once. `yorisoi
    poll` runs this every 12 hours by itself.
    """
    from connector.poller import Poller
    svc = _services(_app())
    report = Poller(svc).run_compliance(timedelta(0) if check_all else timedelta(hours=12))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for platform, checked in report.checked.items():
            click.echo(f"{platform}: checked {checked} · gone {report.gone.get(platform, 0)}")
        for key in report.purged:
            click.echo(f"  purged {key}")
        click.echo(f"internal notes added: {report.notes_added}")
        click.echo(f"removed from the helpdesk's copy: {len(report.redacted)}")
        if report.not_redacted:
            click.echo(f"not redacted in the helpdesk ({len(report.not_redacted)}; redact these by hand "
                       f"or fix the permission, temporary failures are retried):")
            for row in report.not_redacted:
                click.echo(f"  - {row['post_key']}: {row['state']} after {row['attempts']} attempt(s): {row['detail']}")
        for error in report.errors:
            click.echo(f"  ! {error}", err=True)
    for source in Poller(svc).sources:
        line = source.usage()
        if line and source.platform == "x" and not as_json:
            click.echo(line)
