"""`yorisoi` commands of the pipeline: replay, tickets, deliver, serve, demo, reply."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import click
from flask import Flask

from connector.cli import _app, _one_instance, _services, main
from connector.config import DEMO_FEED, ConfigError
from connector.pipeline import replay_summary


def _replay_file(app: Flask, path: Path, source: str, wait: float,
                 lines: Iterable[str] | None = None) -> dict[str, Any]:
    svc = _services(app)
    svc.warm_up()
    svc.store.outbox.release_dead_claims()
    if lines is None:
        with path.open(encoding="utf-8", errors="replace") as handle:
            read, outcomes = svc.pipeline.ingest_lines(handle, source=source)
    else:
        read, outcomes = svc.pipeline.ingest_lines(lines, source=source)
    delivery = svc.pipeline.drain(max_wait=wait)
    counts = svc.store.outbox.outbox_counts()
    return replay_summary(read, outcomes, delivery, pending=counts.get("pending", 0) + counts.get("sending", 0))


def demo_feed_lines(path: Path, now: datetime | None = None, newest_ago: timedelta = timedelta(minutes=5)) -> list[str]:
    """The demo feed with every post moved by the same amount so that the newest one was
    posted `newest_ago` before `now`: response times, "today" and the 7-day report then show
    the demo on first run, whatever the day. The gaps between posts stay as recorded."""
    now = now or datetime.now(timezone.utc)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    newest = max(parse(r["created_at"]) for r in records if r.get("created_at"))
    shift = (now - newest_ago) - newest
    shift -= timedelta(microseconds=shift.microseconds)  # whole seconds, like the recorded times
    for record in records:
        if record.get("created_at"):
            moved = parse(record["created_at"]) + shift
            record["created_at"] = moved.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [json.dumps(r, ensure_ascii=False) for r in records]


def _other_helpdesk_note(app: Flask, summary: dict[str, Any]) -> str | None:
    """When a replay skipped posts as already stored and they became tickets in another
    helpdesk (typically: the demo ran with `local`, now YORISOI_HELPDESK=zendesk), say so and
    how to start fresh, instead of a silent "duplicates skipped"."""
    svc = _services(app)
    if not summary.get("duplicates_skipped"):
        return None
    others = {hd: n for hd, n in svc.store.outbox.ticket_counts_by_helpdesk().items() if hd != svc.helpdesk.name}
    if not others:
        return None
    where = ", ".join(f"{hd} ({n})" for hd, n in sorted(others.items()))
    data_dir = svc.settings.data_dir
    return (f"{summary['duplicates_skipped']} posts were already stored and were skipped: their tickets are in "
            f"another helpdesk ({where}), not in {svc.helpdesk.name}. To send them to {svc.helpdesk.name}, start "
            f"with a fresh database: YORISOI_DATA_DIR={data_dir}-{svc.helpdesk.name} yorisoi demo "
            f"(or move {data_dir} away).\n"
            f"既に保存済みの投稿 {summary['duplicates_skipped']} 件をスキップしました（チケットは {where} にあり、"
            f"{svc.helpdesk.name} には送っていません）。新しいデータベースで始めるには "
            f"YORISOI_DATA_DIR={data_dir}-{svc.helpdesk.name} yorisoi demo を実行してください。")


def check_port_free(host: str, port: int) -> None:
    """Fail in one line, before anything is changed, when the address is taken."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another yorisoi?); stop it, or choose another "
                f"with --port or YORISOI_PORT / ポート {port} は使用中です") from None


def summary_line(summary: dict[str, Any]) -> str:
    """The replay/demo summary, Japanese first then English (as `yorisoi doctor` does)."""
    ja = (f"読み込み {summary['read']} · 対象 {summary['qualified']} · チケット作成 {summary['tickets_created']} · "
          f"追記 {summary['comments_added']} · 重複のためスキップ {summary['duplicates_skipped']} · "
          f"対象外 {summary['dropped']} · 不正な行 {summary['rejected']} · 送信待ち {summary['pending']}")
    en = (f"read {summary['read']} · qualified {summary['qualified']} · tickets created "
          f"{summary['tickets_created']} · follow-up comments {summary['comments_added']} · duplicates "
          f"skipped {summary['duplicates_skipped']} · dropped {summary['dropped']} · rejected "
          f"{summary['rejected']} · still pending {summary['pending']}")
    return f"{ja} / {en}"


def delivery_line(report: Any) -> str:
    ja = (f"チケット作成 {report.created} · 追記 {report.commented} · 再試行待ち {report.retried} · 失敗 {report.failed}"
          + (f" · 停止: {report.stopped}" if report.stopped else ""))
    en = (f"tickets created {report.created} · comments {report.commented} · retrying {report.retried} "
          f"· failed {report.failed}" + (f" · stopped: {report.stopped}" if report.stopped else ""))
    return f"{ja} / {en}"


def _print_summary(summary: dict[str, Any]) -> None:
    click.echo(summary_line(summary))
    for error in summary["errors"][:50]:
        where = f"line {error['line']}: " if "line" in error else f"{error.get('post')}: "
        field = f"{error['field']}: " if error.get("field") else ""
        click.echo(f"  ! {where}{field}{error['message']}", err=True)
    if len(summary["errors"]) > 50:
        click.echo(f"  … and {len(summary['errors']) - 50} more", err=True)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the counts and errors.")
@click.option("--wait", default=60.0, show_default=True,
              help="Seconds to keep retrying deliveries the helpdesk postponed (429, 5xx) before exiting.")
def replay(file: Path, as_json: bool, wait: float) -> None:
    """Push a JSONL file of normalized posts through the whole pipeline once.

    Each line is one post. Posts already stored are skipped, so running the same file twice
    creates no new tickets. Exit code 0 even when some lines were rejected (see errors).
    """
    app = _app()
    summary = _replay_file(app, file, "replay", wait)
    note = _other_helpdesk_note(app, summary)
    if as_json:
        click.echo(json.dumps({**summary, **({"note": note} if note else {})}, ensure_ascii=False))
    else:
        _print_summary(summary)
        if note:
            click.echo(note, err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--limit", type=int, default=None, help="Only the newest N tickets.")
def tickets(as_json: bool, limit: int | None) -> None:
    """List the tickets created in the configured helpdesk, newest first."""
    svc = _services(_app())
    rows = svc.store.outbox.list_tickets(helpdesk=svc.helpdesk.name, limit=limit)
    records = [{
        "ticket_id": r["ticket_id"], "helpdesk": r["helpdesk"], "external_id": r["external_id"],
        "priority": r["priority"], "tags": r["tags"], "subject": r["subject"], "post_url": r["post_url"],
        "ticket_url": r["url"], "follow_ups": r["follow_ups"], "created_at": r["created_at"].isoformat(),
    } for r in rows]
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False, indent=1))
        return
    if not records:
        click.echo("チケットはまだありません / no tickets yet")
        return
    for rec in records:
        click.echo(f"#{rec['ticket_id']:>5} [{rec['priority']:<6}] {rec['subject']}")
        click.echo(f"        {rec['external_id']}  {rec['post_url'] or ''}")
        click.echo(f"        tags: {' '.join(rec['tags'])}" + (f"  (+{rec['follow_ups']} follow-ups)" if rec["follow_ups"] else ""))


@main.command()
@click.option("--wait", default=60.0, show_default=True, help="Seconds to keep retrying postponed deliveries.")
@click.option("--retry-failed", is_flag=True, help="First put failed deliveries back in the queue.")
def deliver(wait: float, retry_failed: bool) -> None:
    """Deliver what is waiting in the outbox, then exit."""
    svc = _services(_app())
    svc.store.outbox.release_dead_claims()
    if retry_failed:
        requeued = svc.store.outbox.retry_failed()
        click.echo(f"失敗した {requeued} 件を送信キューに戻しました / requeued {requeued} failed deliveries")
    report = svc.pipeline.drain(max_wait=wait)
    click.echo(delivery_line(report))


DEMO_USER = "demo"


def _demo_replies(app: Flask) -> None:
    """Answer every other demo ticket as agent 佐藤, so the dashboard's reply times and open
    tickets have something to show. Through the normal reply path (the local source records
    the reply, no network); one dedupe key per ticket, so a second run sends nothing new."""
    from connector.replies import ReplyFailed, UnknownTicket
    svc = _services(app)
    for row in svc.store.outbox.list_tickets(helpdesk=svc.helpdesk.name)[::2]:
        try:
            svc.reply(ticket_id=row["ticket_id"], agent="佐藤", dedupe_key=f"demo:reply:{row['ticket_id']}",
                      text="ソラモバイルの佐藤です。ご不便をおかけしております。状況を確認のうえ、DMでご案内いたします。")
        except (UnknownTicket, ReplyFailed):
            continue  # the demo goes on without this one reply


def _serve(app: Flask, host: str, port: int, poll: bool = False) -> None:
    from waitress import serve as waitress_serve
    svc = _services(app)
    svc.warm_up()
    mailer = _report_mailer(svc)
    svc.start_worker()
    poller_thread = None
    supervisor = None
    if poll:
        from connector.poller import Poller, PollerThread
        from connector.streaming import StreamSupervisor
        poller = Poller(svc)
        if not poller.sources:
            click.echo("no network is configured to poll (see X_BEARER_TOKEN, MASTODON_INSTANCES, "
                       "BLUESKY_HANDLE, [[feed]]); serving without the poller", err=True)
        else:
            poller_thread = PollerThread(poller, wake_delivery=svc.wake_worker)
            poller_thread.start()
            supervisor = StreamSupervisor(svc, wake_delivery=svc.wake_worker)
            supervisor.start()
    click.echo(f"Yorisoi is listening on http://{host}:{port}/  (helpdesk: {svc.helpdesk.name}"
               f"{'; polling ' + ', '.join(s.platform for s in poller_thread.poller.sources) if poller_thread else ''}"
               f"{'; streaming ' + ', '.join(s.name for s in supervisor.streams) if supervisor and supervisor.streams else ''}"
               f"; Ctrl+C to stop)")
    try:
        waitress_serve(app, host=host, port=port, threads=8, ident="yorisoi")
    except KeyboardInterrupt:  # Ctrl+C outside waitress's own loop: a clean stop, not a traceback
        pass
    finally:
        if supervisor is not None:
            supervisor.stop()
        if poller_thread is not None:
            poller_thread.stop()
        if mailer is not None:
            mailer.stop()
        svc.close()
    click.echo("stopped / 停止しました")


def _report_mailer(svc: Any) -> Any:
    """The weekly report mail's scheduler thread, when YORISOI_REPORT_MAIL_SCHEDULE is set."""
    from connector.weekly_mail import MailScheduler, MailSettings
    try:
        settings = MailSettings.from_env(svc.settings.env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings is None or settings.schedule is None:
        return None
    mailer = MailScheduler(svc.store, svc.settings.env, settings)
    mailer.start()
    day = "月火水木金土日"[settings.schedule.weekday]
    click.echo(f"週次レポートのメール: 毎週{day}曜 {settings.schedule.at:%H:%M} JST → {', '.join(settings.to)} / "
               f"weekly report mail every {('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')[settings.schedule.weekday]} "
               f"{settings.schedule.at:%H:%M} JST")
    return mailer


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: YORISOI_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: YORISOI_PORT).")
@click.option("--poll", is_flag=True, help="Also run the source poller in this process (small installs).")
def serve(host: str | None, port: int | None, poll: bool) -> None:
    """Run the connector: web app, inbound webhooks and the delivery worker.

    With --poll, the configured networks (X, Mastodon, Bluesky, RSS) are polled in-process
    too, as `yorisoi poll` would; larger installs run `yorisoi poll` as its own process.
    """
    from connector.config import Settings
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host, port = host or settings.host, port or settings.port
    check_port_free(host, port)
    app = _app()
    _one_instance(app)
    _serve(app, host, port, poll=poll)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: YORISOI_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: YORISOI_PORT).")
@click.option("--no-serve", is_flag=True, help="Load the demo feed and exit without serving.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    """Load the bundled demo feed (a fictional brand, ソラモバイル) and serve the dashboard.

    Uses the embedded defaults: SQLite in ./data, the built-in `local` helpdesk and the
    bundled watch file. Loading twice is harmless: posts already stored are skipped.
    """
    from connector.config import Settings
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host, port = host or settings.host, port or settings.port
    if not no_serve:
        check_port_free(host, port)  # before the feed is loaded or the password reset
    app = _app()
    if not no_serve:
        _one_instance(app)
    summary = _replay_file(app, DEMO_FEED, "demo", wait=30.0, lines=demo_feed_lines(DEMO_FEED))
    _print_summary(summary)
    note = _other_helpdesk_note(app, summary)
    if note:
        click.echo(note, err=True)
    _demo_replies(app)
    if not no_serve:
        # One supervisor account with a fresh password each start, shown here once and
        # never logged (the dashboard needs a login; the demo must not need an admin step).
        from connector.web.auth import generate_password, hash_password
        password = generate_password()
        _services(app).store.accounts.create_user(DEMO_USER, hash_password(password), replace=True)
        click.echo(f"dashboard login / ダッシュボードのログイン: user {DEMO_USER}  password {password}")
        _serve(app, host, port)


@main.command()
@click.argument("ticket_id")
@click.argument("text")
@click.option("--agent", required=True, help="The agent's name, as the customer should see it (e.g. 佐藤).")
@click.option("--key", default=None, help="Dedupe key; the same key never posts twice (default: one per call).")
def reply(ticket_id: str, text: str, agent: str, key: str | None) -> None:
    """Reply publicly to a ticket's post as AGENT, like a public reply in the helpdesk would.

    The reply is signed with the agent's name (YORISOI_REPLY_SIGNATURE) and posted through the
    post's source; with the local helpdesk it is also added to the ticket as a public comment.
    """
    import uuid

    from connector.replies import ReplyFailed, UnknownTicket
    svc = _services(_app())
    dedupe_key = key or f"cli:{uuid.uuid4()}"
    try:
        outcome = svc.reply(ticket_id=ticket_id, agent=agent, text=text, dedupe_key=dedupe_key)
    except UnknownTicket as exc:
        raise click.ClickException(str(exc)) from None
    except ReplyFailed as exc:
        raise click.ClickException(f"the reply was not sent: {exc}" + (" (try again later)" if exc.retryable else ""))
    exchange = outcome.exchange
    if svc.helpdesk.name == "local" and not outcome.duplicate:
        from connector.helpdesks.base import CommentDraft
        from connector.models import TicketRef
        svc.helpdesk.add_comment(TicketRef("local", str(ticket_id)),
                                 CommentDraft(dedupe_key=f"reply:{dedupe_key}", body=exchange["text"], public=True,
                                              author_external_id=agent))
    state = "already sent earlier" if outcome.duplicate else exchange["status"]
    click.echo(f"{state}: {exchange['text']}" + (f"\n{exchange['url']}" if exchange.get("url") else ""))
