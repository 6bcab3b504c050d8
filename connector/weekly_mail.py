"""The weekly report by e-mail: on a schedule (`yorisoi serve` / `yorisoi poll`) or from cron
(`yorisoi report --weekly --email`).

The message carries the report as text and HTML (multipart/alternative) and the Excel
workbook as an attachment; the subject is Japanese, encoded by the stdlib's `email.policy.SMTP`
(RFC 2047 encoded-words in UTF-8; RFC 2231 for parameters). A week is sent once: the
sent mark (`weekly_mail:sent:<last day>` in the source state) is written right after the SMTP
server accepted the message, under the `weekly_mail` lock, so neither a second instance nor a
retry sends it again; a failure writes nothing but the error, and the next check tries again.

Sending with a password over a plain connection is refused unless the server is on this
machine (STARTTLS or SSL otherwise): the password would cross the network readable.
"""
from __future__ import annotations

import ipaddress
import logging
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Callable, Mapping

from connector.config import ConfigError
from connector.envvars import EnvVar
from connector.report_time import REPORT_TZ, format_jst

log = logging.getLogger(__name__)

ENV: tuple[EnvVar, ...] = (
    EnvVar("YORISOI_SMTP_HOST", "(unset: no e-mail)",
           "SMTP server the weekly report is sent through (`yorisoi report --weekly --email`, and on "
           "`YORISOI_REPORT_MAIL_SCHEDULE`).", owner="connector.weekly_mail"),
    EnvVar("YORISOI_SMTP_PORT", "587 (starttls), 465 (ssl), 25 (none)", "SMTP server port.",
           owner="connector.weekly_mail"),
    EnvVar("YORISOI_SMTP_SECURITY", "starttls",
           "`starttls` (upgrade the connection, port 587), `ssl` (TLS from the start, port 465) or `none` "
           "(only without a password, or to a server on this machine).", owner="connector.weekly_mail"),
    EnvVar("YORISOI_SMTP_USER", "(unset: no login)", "SMTP login name.", owner="connector.weekly_mail"),
    EnvVar("YORISOI_SMTP_PASSWORD", "(unset)", "SMTP password.", secret=True, owner="connector.weekly_mail"),
    EnvVar("YORISOI_REPORT_MAIL_FROM", "(required with YORISOI_SMTP_HOST)",
           "Sender of the report mail, e.g. `Yorisoi <yorisoi@example.co.jp>`.", owner="connector.weekly_mail"),
    EnvVar("YORISOI_REPORT_MAIL_TO", "(required with YORISOI_SMTP_HOST)",
           "Recipients of the report mail, comma-separated.", owner="connector.weekly_mail"),
    EnvVar("YORISOI_REPORT_MAIL_SCHEDULE", "(unset: only from cron)",
           "When `yorisoi serve` / `yorisoi poll` send the report of the 7 days ending the day before, in "
           "Japan time: a weekday and a time, e.g. `mon 09:00` (月 09:00 works too). Each week is sent once.",
           owner="connector.weekly_mail"),
    EnvVar("YORISOI_REPORT_MAIL_LANG", "ja", "Language of the report mail: `ja` or `en`.",
           owner="connector.weekly_mail"),
)

SECURITY = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
WEEKDAYS = {**{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
            **{name: i for i, name in enumerate("月火水木金土日")}}
TIMEOUT = 30.0
#: After a failed scheduled send, wait this long before the next try (a down server is not
#: hammered every minute; cron users re-run the command instead).
RETRY_AFTER = timedelta(minutes=10)
LOCK = "weekly_mail"


class MailError(Exception):
    """Sending failed; `message` is safe to show (never the password)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Schedule:
    weekday: int  # 0 = Monday
    at: time  # Japan time

    def last_due(self, now: datetime) -> datetime:
        """The latest scheduled moment at or before `now` (aware, Japan time)."""
        local = now.astimezone(REPORT_TZ)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        moment = datetime.combine(day, self.at, tzinfo=REPORT_TZ)
        return moment if moment <= local else moment - timedelta(days=7)


def parse_schedule(raw: str) -> Schedule:
    """`mon 09:00`, `月 9:00`, `monday 09:30` → Schedule (Japan time)."""
    parts = raw.strip().lower().replace("曜日", "").replace("曜", "").split()
    if len(parts) != 2:
        raise ConfigError(f"YORISOI_REPORT_MAIL_SCHEDULE={raw!r}: expected a weekday and a time, e.g. 'mon 09:00'")
    day = WEEKDAYS.get(parts[0] if parts[0] in WEEKDAYS else parts[0][:3])
    try:
        hour, minute = (int(p) for p in parts[1].split(":"))
        at = time(hour, minute)
    except ValueError:
        at = None
    if day is None or at is None:
        raise ConfigError(f"YORISOI_REPORT_MAIL_SCHEDULE={raw!r}: expected a weekday (mon…sun or 月…日) and "
                          "a time HH:MM in Japan time, e.g. 'mon 09:00'")
    return Schedule(day, at)


def _addresses(raw: str, name: str) -> tuple[str, ...]:
    found = []
    for part in raw.split(","):
        if not part.strip():
            continue
        _, address = parseaddr(part.strip())
        if "@" not in address or any(c in address for c in "\r\n"):
            raise ConfigError(f"{name}: {part.strip()!r} is not an e-mail address")
        found.append(part.strip())
    return tuple(found)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    security: str
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    schedule: Schedule | None = None
    lang: str = "ja"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "MailSettings | None":
        """None when YORISOI_SMTP_HOST is unset (no e-mail); a ConfigError names what is wrong."""
        host = (env.get("YORISOI_SMTP_HOST") or "").strip()
        if not host:
            return None
        security = (env.get("YORISOI_SMTP_SECURITY") or "starttls").strip().lower()
        if security not in SECURITY:
            raise ConfigError(f"YORISOI_SMTP_SECURITY={security!r}: use one of {', '.join(SECURITY)}")
        raw_port = (env.get("YORISOI_SMTP_PORT") or "").strip()
        if raw_port and not (raw_port.isdigit() and 0 < int(raw_port) < 65536):
            raise ConfigError(f"YORISOI_SMTP_PORT={raw_port!r}: expected a port number")
        senders = _addresses(env.get("YORISOI_REPORT_MAIL_FROM") or "", "YORISOI_REPORT_MAIL_FROM")
        if len(senders) != 1:
            raise ConfigError("YORISOI_REPORT_MAIL_FROM: one sender address is needed with YORISOI_SMTP_HOST")
        to = _addresses(env.get("YORISOI_REPORT_MAIL_TO") or "", "YORISOI_REPORT_MAIL_TO")
        if not to:
            raise ConfigError("YORISOI_REPORT_MAIL_TO: at least one recipient is needed with YORISOI_SMTP_HOST")
        user = (env.get("YORISOI_SMTP_USER") or "").strip() or None
        password = env.get("YORISOI_SMTP_PASSWORD") or None
        if user and security == "none" and not _is_local(host):
            raise ConfigError("YORISOI_SMTP_SECURITY=none with YORISOI_SMTP_USER would send the password unencrypted; "
                              "use starttls or ssl")
        if not (user or "").isascii() or not (password or "").isascii():
            # smtplib's AUTH PLAIN/LOGIN encode as ASCII: say so now, not at the first send.
            raise ConfigError("YORISOI_SMTP_USER / YORISOI_SMTP_PASSWORD: only ASCII characters can be sent in SMTP AUTH")
        raw_schedule = (env.get("YORISOI_REPORT_MAIL_SCHEDULE") or "").strip()
        lang = (env.get("YORISOI_REPORT_MAIL_LANG") or "ja").strip()
        if lang not in ("ja", "en"):
            raise ConfigError(f"YORISOI_REPORT_MAIL_LANG={lang!r}: use ja or en")
        return cls(host, int(raw_port) if raw_port else DEFAULT_PORTS[security], security, senders[0], to,
                   user, password, parse_schedule(raw_schedule) if raw_schedule else None, lang)


# --- the message (pure) ---------------------------------------------------------------------
def subject(report: Any, lang: str) -> str:
    week = f"{report.this.since.isoformat()}〜{report.this.until.isoformat()}"
    return f"【Yorisoi】週次レポート {week}" if lang == "ja" else f"[Yorisoi] Weekly report {week}"


def compose(report: Any, settings: MailSettings, *, text: str, html: str, xlsx: bytes,
            now: datetime | None = None) -> EmailMessage:
    """The report mail: text and HTML alternatives, the workbook attached."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["Subject"] = subject(report, settings.lang)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate((now or datetime.now(timezone.utc)).timestamp(), localtime=False)
    message["Message-ID"] = make_msgid("yorisoi-weekly")
    message.set_content(text, charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    name = f"yorisoi-weekly-{report.this.since}-{report.this.until}.xlsx"
    message.add_attachment(xlsx, maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename=name)
    return message


def envelope_recipients(to: tuple[str, ...]) -> list[str]:
    return [Address(addr_spec=parseaddr(t)[1]).addr_spec for t in to]


# --- sending (I/O) -------------------------------------------------------------------------
def send_message(message: EmailMessage, settings: MailSettings) -> dict[str, Any]:
    """Hand the message to the SMTP server; returns the refused recipients (empty: all taken)."""
    where = f"{settings.host}:{settings.port}"
    try:
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if settings.user:
                client.login(settings.user, settings.password or "")
            refused = client.send_message(message, from_addr=parseaddr(settings.sender)[1],
                                          to_addrs=envelope_recipients(settings.to))
        return dict(refused)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"SMTP {where}: login refused for {settings.user!r} ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"SMTP {where}: every recipient was refused: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(f"SMTP {where}: {exc} (check YORISOI_SMTP_SECURITY)") from None
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise MailError(f"SMTP {where}: the server answered {exc.smtp_code} {detail}") from None
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise MailError(f"SMTP {where}: TLS failed ({exc.__class__.__name__}: {exc}); check YORISOI_SMTP_SECURITY "
                        "and YORISOI_SMTP_PORT") from None
    except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, DNS, dropped connection
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
            "timed out" if isinstance(exc, (socket.timeout, TimeoutError)) else f"{exc.__class__.__name__}: {exc}")
        raise MailError(f"SMTP {where}: {reason}") from None


@dataclass
class MailOutcome:
    status: str  # sent | already_sent | busy | failed
    until: date
    message: str
    refused: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for the CLI and the log, Japanese then English."""
        week = f"{(self.until - timedelta(days=6)).isoformat()}〜{self.until.isoformat()}"
        if self.status == "sent":
            extra = f"（届かなかった宛先 / refused: {', '.join(self.refused)}）" if self.refused else ""
            return f"週次レポートを送信しました / weekly report sent: {week} → {self.message}{extra}"
        if self.status == "already_sent":
            return (f"この週のレポートは送信済みです（{self.message}）/ already sent for {week}; "
                    "--force sends it again")
        if self.status == "busy":
            return f"{self.message}: {week}"
        return f"週次レポートを送信できませんでした / weekly report not sent: {week}: {self.message}"


def sent_key(until: date) -> str:
    return f"weekly_mail:sent:{until.isoformat()}"


_PROCESS_LOCK = threading.Lock()  # serve --poll: the scheduler and a CLI call in one process


def send_weekly(store: Any, env: Mapping[str, str], settings: MailSettings, until: date, *,
                force: bool = False, clock: Callable[[], datetime] | None = None) -> MailOutcome:
    """Build the report of the 7 days ending `until` and send it, once per week."""
    from connector import weekly
    now = (clock or (lambda: datetime.now(timezone.utc)))()
    with _PROCESS_LOCK, store.sources.exclusive(LOCK) as mine:
        if not mine:
            return MailOutcome("busy", until, "別のインスタンスが送信中です / another instance is sending it")
        done = store.sources.get_state(sent_key(until))
        if done and not force:
            return MailOutcome("already_sent", until, format_jst(datetime.fromisoformat(done["sent_at"])))
        report = weekly.build(store, env, until, now)
        message = compose(report, settings, text=weekly.to_text(report, settings.lang),
                          html=weekly.to_html(report, settings.lang), xlsx=weekly.to_xlsx(report, settings.lang),
                          now=now)
        store.sources.set_state("weekly_mail:last_attempt", now.isoformat())
        try:
            refused = send_message(message, settings)
        except MailError as exc:
            store.sources.set_state("weekly_mail:last_error", {"at": now.isoformat(), "until": until.isoformat(),
                                                               "message": exc.message})
            log.warning("weekly report mail for %s failed: %s", until, exc.message)
            return MailOutcome("failed", until, exc.message)
        store.sources.set_state(sent_key(until), {"sent_at": now.isoformat(), "to": list(settings.to),
                                                  "refused": sorted(refused)})
        store.sources.delete_state("weekly_mail:last_error")
    outcome = MailOutcome("sent", until, ", ".join(settings.to), refused)
    log.info("%s", outcome.line())
    return outcome


def due_until(settings: MailSettings, now: datetime) -> date | None:
    """The last day of the week the schedule owes a mail for: the day before the latest
    scheduled moment (a Monday 09:00 schedule sends Monday to Sunday)."""
    if settings.schedule is None:
        return None
    return settings.schedule.last_due(now).date() - timedelta(days=1)


def scheduled_send(store: Any, env: Mapping[str, str], settings: MailSettings | None,
                   now: datetime) -> MailOutcome | None:
    """One check of the schedule (every minute or so): send the week it owes, unless sent or a
    failed try was less than RETRY_AFTER ago."""
    if settings is None or settings.schedule is None:
        return None
    until = due_until(settings, now)
    if until is None or store.sources.get_state(sent_key(until)):
        return None
    last = store.sources.get_state("weekly_mail:last_attempt")
    if last and datetime.fromisoformat(last) > now - RETRY_AFTER:
        return None
    return send_weekly(store, env, settings, until, clock=lambda: now)


class MailScheduler(threading.Thread):
    """`yorisoi serve`: checks the schedule every `interval` seconds until stopped."""

    def __init__(self, store: Any, env: Mapping[str, str], settings: MailSettings, interval: float = 60.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(name="yorisoi-report-mail", daemon=True)
        self.store, self.env, self.settings, self.interval = store, env, settings, interval
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._halt = threading.Event()  # not `_stop`: threading.Thread has a method of that name

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                scheduled_send(self.store, self.env, self.settings, self.clock())
            except Exception:  # noqa: BLE001 - the scheduler outlives a bad pass (database locked, bug)
                log.exception("weekly report mail check failed")
            self._halt.wait(self.interval)
