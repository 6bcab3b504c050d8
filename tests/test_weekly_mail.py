"""The weekly report by e-mail, against a real SMTP server on 127.0.0.1 (aiosmtpd): the mail
carries text, HTML and the .xlsx, the Japanese subject is RFC 2047 UTF-8, a week goes out
once, and a server that is down gives a clear error and loses nothing."""
from __future__ import annotations

import io
import socket
from datetime import date, datetime, time, timedelta, timezone
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner

from connector import weekly_mail
from connector.cli import main
from connector.config import ConfigError
from connector.report_time import REPORT_TZ
from connector.weekly_mail import MailSettings, Schedule, parse_schedule
from tests.conftest import post_dict

USER, PASSWORD = "yorisoi", "smtp-secret-4Qz!9f2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps every message the server accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and \
        auth_data.password == PASSWORD.encode()
    # handled=False: aiosmtpd then answers 535 itself (handled=True, its default, answers nothing).
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = _free_port()
    # Plain SMTP with AUTH on loopback only: the settings refuse a password without TLS to
    # any other host (tests/test_weekly_mail.py::test_settings_refuse_a_password_in_clear).
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    inbox.port = port  # type: ignore[attr-defined]
    yield inbox
    controller.stop()


def mail_env(port: int, **extra: str) -> dict[str, str]:
    return {"YORISOI_SMTP_HOST": "127.0.0.1", "YORISOI_SMTP_PORT": str(port), "YORISOI_SMTP_SECURITY": "none",
            "YORISOI_SMTP_USER": USER, "YORISOI_SMTP_PASSWORD": PASSWORD,
            "YORISOI_REPORT_MAIL_FROM": "Yorisoi 週次 <yorisoi@example.co.jp>",
            "YORISOI_REPORT_MAIL_TO": "監督者 <sv@example.co.jp>, lead@example.co.jp", **extra}


def _seed(svc, now: datetime) -> None:
    for i in range(3):
        svc.pipeline.ingest_raw(post_dict(text=f"ソラモバイル、駅で全然繋がらない。最悪 {i}",
                                          created_at=(now - timedelta(days=2, minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                          author={"id": f"81{i}"}), "test")
    svc.pipeline.drain(max_wait=5)


def _subject(raw: bytes) -> str:
    header = message_from_bytes(raw, policy=policy.compat32)["Subject"]
    return str(make_header(decode_header(header)))


# --- settings and schedule (pure) ------------------------------------------------------------
def test_schedule_parses_weekday_and_time_in_japan_time():
    assert parse_schedule("mon 09:00") == Schedule(0, time(9, 0))
    assert parse_schedule("月 9:30") == Schedule(0, time(9, 30))
    assert parse_schedule("Friday 18:00") == Schedule(4, time(18, 0))
    assert parse_schedule("金曜 18:00") == Schedule(4, time(18, 0))
    for bad in ("mon", "someday 09:00", "mon 25:00", "mon nine"):
        with pytest.raises(ConfigError, match="YORISOI_REPORT_MAIL_SCHEDULE"):
            parse_schedule(bad)


def test_due_week_is_monday_to_sunday_before_the_scheduled_moment():
    settings = MailSettings.from_env(mail_env(25, YORISOI_REPORT_MAIL_SCHEDULE="mon 09:00"))
    assert settings is not None
    # Monday 2026-12-07 08:59 JST: the moment of this week has not come, last week's is owed.
    before = datetime(2026, 12, 7, 8, 59, tzinfo=REPORT_TZ)
    assert weekly_mail.due_until(settings, before) == date(2026, 11, 29)
    # 09:00 JST (00:00 UTC): the week Monday 11-30 to Sunday 12-06.
    at = datetime(2026, 12, 7, 0, 0, tzinfo=timezone.utc)
    assert weekly_mail.due_until(settings, at) == date(2026, 12, 6)
    assert weekly_mail.due_until(settings, at + timedelta(days=3)) == date(2026, 12, 6)


def test_settings_refuse_a_password_in_clear_and_bad_addresses():
    assert MailSettings.from_env({}) is None
    with pytest.raises(ConfigError, match="unencrypted"):
        MailSettings.from_env(mail_env(25, YORISOI_SMTP_HOST="smtp.example.co.jp"))
    with pytest.raises(ConfigError, match="YORISOI_REPORT_MAIL_TO"):
        MailSettings.from_env(mail_env(25, YORISOI_REPORT_MAIL_TO="not-an-address"))
    with pytest.raises(ConfigError, match="ASCII"):
        MailSettings.from_env(mail_env(25, YORISOI_SMTP_PASSWORD="パスワード"))
    with pytest.raises(ConfigError, match="YORISOI_SMTP_SECURITY"):
        MailSettings.from_env(mail_env(25, YORISOI_SMTP_SECURITY="tls1"))
    starttls = MailSettings.from_env({**mail_env(25, YORISOI_SMTP_HOST="smtp.example.co.jp",
                                                 YORISOI_SMTP_SECURITY="starttls"), "YORISOI_SMTP_PORT": ""})
    assert starttls is not None and starttls.port == 587
    assert PASSWORD not in repr(starttls)  # never in a log line


# --- sending -------------------------------------------------------------------------------
def test_report_mail_has_text_html_and_xlsx_with_a_japanese_subject(app, smtp):
    import openpyxl

    svc = app.extensions["yorisoi"]
    now = datetime.now(timezone.utc)
    _seed(svc, now)
    settings = MailSettings.from_env(mail_env(smtp.port))
    until = (now.astimezone(REPORT_TZ) - timedelta(days=1)).date()
    outcome = weekly_mail.send_weekly(svc.store, {}, settings, until)
    assert outcome.status == "sent", outcome
    assert "週次レポートを送信しました" in outcome.line() and "weekly report sent" in outcome.line()
    (mail_from, rcpt, raw), = smtp.messages
    assert mail_from == "yorisoi@example.co.jp" and rcpt == ["sv@example.co.jp", "lead@example.co.jp"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head.lower() and "週次".encode() not in head  # RFC 2047, 7-bit headers
    assert _subject(raw) == f"【Yorisoi】週次レポート {until - timedelta(days=6)}〜{until}"
    message = message_from_bytes(raw, policy=policy.default)
    assert str(message["From"]).startswith("Yorisoi 週次") and "監督者" in str(message["To"])
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "週次レポート" in text and "対象の投稿" in text
    assert html.startswith("<!doctype html>") and "<table>" in html and "<script" not in html
    attachment, = list(message.iter_attachments())
    assert attachment.get_filename() == f"yorisoi-weekly-{until - timedelta(days=6)}-{until}.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(attachment.get_content()))
    assert book.sheetnames[0] == "まとめ" and "修正されたラベル" in book.sheetnames
    # The same week is not sent twice, by the schedule or the CLI; --force does.
    assert weekly_mail.send_weekly(svc.store, {}, settings, until).status == "already_sent"
    assert len(smtp.messages) == 1
    assert weekly_mail.send_weekly(svc.store, {}, settings, until, force=True).status == "sent"
    assert len(smtp.messages) == 2


def test_hostile_post_text_is_escaped_in_the_html_part(app):
    from connector import weekly
    svc = app.extensions["yorisoi"]
    now = datetime.now(timezone.utc)
    svc.pipeline.ingest_raw(post_dict(text="ソラモバイル最悪 料金が高い <img src=x onerror=alert(1)>",
                                      created_at=(now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")), "test")
    svc.pipeline.drain(max_wait=5)
    html = weekly.to_html(weekly.build(svc.store, {}), "ja")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_down_server_is_a_clear_error_and_the_week_is_sent_later_once(app):
    svc = app.extensions["yorisoi"]
    port = _free_port()  # nothing listens here yet
    env = mail_env(port, YORISOI_REPORT_MAIL_SCHEDULE="mon 09:00")
    settings = MailSettings.from_env(env)
    monday = datetime(2026, 12, 7, 0, 5, tzinfo=timezone.utc)  # 09:05 JST
    failed = weekly_mail.scheduled_send(svc.store, env, settings, monday)
    assert failed is not None and failed.status == "failed"
    assert f"SMTP 127.0.0.1:{port}: connection refused" in failed.message and PASSWORD not in failed.line()
    assert "送信できませんでした" in failed.line()
    assert svc.store.sources.get_state(weekly_mail.sent_key(date(2026, 12, 6))) is None  # nothing marked sent
    # The next check a minute later does not hammer the server; ten minutes later it tries again.
    assert weekly_mail.scheduled_send(svc.store, env, settings, monday + timedelta(minutes=1)) is None
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        later = monday + weekly_mail.RETRY_AFTER + timedelta(seconds=1)
        sent = weekly_mail.scheduled_send(svc.store, env, settings, later)
        assert sent is not None and sent.status == "sent" and sent.until == date(2026, 12, 6)
        for minutes in (1, 30, 600):  # every later check that week: nothing more
            assert weekly_mail.scheduled_send(svc.store, env, settings, later + timedelta(minutes=minutes)) is None
        assert len(inbox.messages) == 1
        # The next Monday owes the next week.
        nxt = weekly_mail.scheduled_send(svc.store, env, settings, monday + timedelta(days=7))
        assert nxt is not None and nxt.status == "sent" and nxt.until == date(2026, 12, 13)
        assert len(inbox.messages) == 2
    finally:
        controller.stop()


def test_wrong_password_is_named_without_the_password(app, smtp):
    svc = app.extensions["yorisoi"]
    settings = MailSettings.from_env(mail_env(smtp.port, YORISOI_SMTP_PASSWORD="wrong-one-x"))
    outcome = weekly_mail.send_weekly(svc.store, {}, settings, date(2026, 12, 6))
    assert outcome.status == "failed" and "login refused for 'yorisoi'" in outcome.message
    assert "wrong-one-x" not in outcome.line() and smtp.messages == []


def test_starttls_to_a_server_without_it_is_named(app, smtp):
    """STARTTLS is the default: a server that does not offer it is an error, never a silent
    fall-back to sending the password in clear."""
    svc = app.extensions["yorisoi"]
    env = {**mail_env(smtp.port), "YORISOI_SMTP_SECURITY": "starttls", "YORISOI_SMTP_HOST": "localhost"}
    outcome = weekly_mail.send_weekly(svc.store, {}, MailSettings.from_env(env), date(2026, 12, 6))
    assert outcome.status == "failed" and "STARTTLS" in outcome.message and "YORISOI_SMTP_SECURITY" in outcome.message
    assert smtp.messages == []


def test_cli_email_for_cron(env, smtp):
    runner = CliRunner(env={**env, **mail_env(smtp.port)})
    result = runner.invoke(main, ["report", "--weekly", "--email", "--until", "2026-12-06"])
    assert result.exit_code == 0, result.output
    assert "週次レポートを送信しました / weekly report sent: 2026-11-30〜2026-12-06" in result.output
    again = runner.invoke(main, ["report", "--weekly", "--email", "--until", "2026-12-06"])
    assert again.exit_code == 0 and "送信済み" in again.output and "already sent" in again.output
    assert len(smtp.messages) == 1
    down = CliRunner(env={**env, **mail_env(_free_port())}).invoke(
        main, ["report", "--weekly", "--email", "--until", "2026-11-29"])
    assert down.exit_code == 1 and "connection refused" in down.output and PASSWORD not in down.output
    unset = CliRunner(env=env).invoke(main, ["report", "--weekly", "--email"])
    assert unset.exit_code == 1 and "YORISOI_SMTP_HOST" in unset.output
    assert CliRunner(env=env).invoke(main, ["report", "--email"]).exit_code == 2  # --email is for --weekly


def test_check_config_shows_and_validates_the_mail_settings(env):
    shown = CliRunner(env={**env, **mail_env(2525, YORISOI_REPORT_MAIL_SCHEDULE="月 09:00")}).invoke(main, ["check-config"])
    assert shown.exit_code == 0, shown.output
    assert "weekly report mail: 127.0.0.1:2525 (none) → 監督者 <sv@example.co.jp>, lead@example.co.jp; every mon 09:00 JST" \
        in shown.output and PASSWORD not in shown.output
    bad = CliRunner(env={**env, **mail_env(2525, YORISOI_REPORT_MAIL_SCHEDULE="someday")}).invoke(main, ["check-config"])
    assert bad.exit_code == 1 and "YORISOI_REPORT_MAIL_SCHEDULE" in bad.output


def test_scheduler_thread_sends_once(app, smtp):
    svc = app.extensions["yorisoi"]
    env = mail_env(smtp.port, YORISOI_REPORT_MAIL_SCHEDULE="mon 09:00")
    monday = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
    mailer = weekly_mail.MailScheduler(svc.store, env, MailSettings.from_env(env), interval=0.05, clock=lambda: monday)
    mailer.start()
    try:
        deadline = datetime.now() + timedelta(seconds=10)
        while not smtp.messages and datetime.now() < deadline:
            mailer._halt.wait(0.05)
        mailer._halt.wait(0.3)  # several more checks
    finally:
        mailer.stop()
    assert len(smtp.messages) == 1 and not mailer.is_alive()
