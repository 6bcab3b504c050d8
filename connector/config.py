"""Settings from the environment, read once at start-up.

Every variable is listed in `ENV_VARS` with its default and meaning; the README's configuration
table and `yorisoi --help` are written from the same list, so they cannot drift apart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from connector.envvars import EnvVar

PACKAGE_DIR = Path(__file__).resolve().parent
DEMO_WATCH = PACKAGE_DIR / "demo" / "watch.toml"
DEMO_FEED = PACKAGE_DIR / "demo" / "feed.jsonl"

HELPDESKS = ("local", "zendesk", "freshdesk")
#: Signature added to an agent's public reply that does not name the agent yet.
DEFAULT_REPLY_SIGNATURE = "（{brand} {agent}）"


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the variable and what to do."""


#: Yorisoi's own variables (name, default shown to users, meaning, secret, owner). Each network
#: and helpdesk declares its own next to its code (`PlatformInfo.env`, `helpdesks/<name>.ENV`);
#: `all_env_vars()` collects every group for the README tables and `yorisoi --help`.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("YORISOI_DATA_DIR", "./data", "Folder for the SQLite database and other local state."),
    EnvVar("YORISOI_DATABASE", "sqlite:///<data dir>/yorisoi.sqlite3",
     "Database URL: `sqlite:///path` (or a plain file path; one instance), or `postgresql://user:password@host/db` "
     "(psycopg 3; several instances may share it). Secret when it holds a password.", secret=True),
    EnvVar("YORISOI_WATCH", "bundled demo watch.toml", "Path of the watch configuration (TOML): brands, keywords, exclusions, priority rules."),
    EnvVar("YORISOI_HELPDESK", "local", "Where tickets go: `local` (tickets kept in the database), `zendesk` (ZENDESK_* below) or `freshdesk` (FRESHDESK_* below)."),
    EnvVar("YORISOI_WEBHOOK_SECRET", "(unset: webhook disabled)",
     "Shared secret for `POST /sources/webhook` (HMAC-SHA256 of the raw body). Secret.", secret=True),
    EnvVar("YORISOI_REPLY_SIGNATURE", DEFAULT_REPLY_SIGNATURE,
     "Signature added to an agent's public reply when it does not name the agent yet; `{agent}` and `{brand}` are filled in."),
    EnvVar("YORISOI_SLA_MINUTES", "urgent=30,high=60,normal=240,low=1440",
     "First- and next-reply targets per priority, in minutes: for `yorisoi setup-sla`, and the time left shown on the home page "
     "(「いま対応が必要なもの」) and the weekly report, measured from the post.", owner="connector.helpdesks.base"),
    EnvVar("YORISOI_HOST", "127.0.0.1", "Address `yorisoi serve` and `yorisoi demo` listen on."),
    EnvVar("YORISOI_PORT", "8750", "Port `yorisoi serve` and `yorisoi demo` listen on."),
    EnvVar("YORISOI_SECRET_KEY", "(random per start)", "Flask secret key for session cookies (set it, or every restart signs supervisors out). Secret.", secret=True),
    EnvVar("YORISOI_SSO_HEADER", "(unset: dashboard login with accounts)",
     "Request header a reverse proxy sets to the signed-in user's name (e.g. `X-Forwarded-User`); trusted only when set, so set it only when the proxy is the sole way in.", owner="connector.web.auth"),
    EnvVar("YORISOI_TRUSTED_PROXIES", "(unset: the peer address is the client)",
     "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the client (for the login throttle); unset, the header is ignored.", owner="connector.web.auth"),
    EnvVar("YORISOI_DELIVERY_INTERVAL", "2", "Seconds the delivery worker waits between outbox passes when idle "
           "(a stored post wakes it at once; on PostgreSQL also one stored by another instance)."),
    EnvVar("YORISOI_MAX_BODY_BYTES", "1048576", "Largest request body accepted by inbound webhooks."),
    EnvVar("YORISOI_LOG_LEVEL", "INFO", "Python logging level."),
    EnvVar("YORISOI_ALLOW_PRIVATE_FEEDS", "0",
     "`1`: watched feeds, Mastodon/Bluesky hosts and the alert webhook may be on loopback, link-local or private addresses (intranet). Off: such addresses are refused at every redirect hop and at connect.", owner="connector.sources.netguard"),
    EnvVar("YORISOI_API_RATE_LIMIT", "120/minute",
     "Requests each agent token may make to `/api/v1/` (the sidebar), as `N/second`, `N/minute` or `N/hour` (bursts up to N); `0` turns the limit off. Kept per connector process.", owner="connector.agents"),
    EnvVar("YORISOI_DRAFT_SIGNATURE_PATTERN", "(built in: 「{brand}の{agent}です」, “{agent} from {brand}”, “— {agent}”, “Best, {agent}”, the YORISOI_REPLY_SIGNATURE form or the brand's [brand.reply] forms)",
     "Regular expression a draft reply must match to count as personally signed; `{agent}` and `{brand}` are filled in (escaped).", owner="connector.web.api"),
    EnvVar("YORISOI_DRAFT_SIMILARITY", "0.6",
     "From this similarity (0–1, character trigrams, the polite frame every reply shares — greeting, thanks, apology, DM hand-off, signature — left out) the draft check warns that a reply copies a recent reply of the team.", owner="connector.web.api"),
    EnvVar("YORISOI_STORM_SIMILARITY", "0.5",
     "Storm grouping: least similarity (Jaccard of character 3-grams, or containment for quotes) for a post to join the storm of a recent post of the same brand.", owner="connector.storms"),
    EnvVar("YORISOI_STORM_WINDOW_MINUTES", "120", "Storm grouping: how far apart in time two posts may be and still be echoes of each other.", owner="connector.storms"),
    EnvVar("YORISOI_STORM_MIN_POSTS", "5", "Posts a storm needs before it gets its `problem` ticket and its members' tickets become linked incidents.", owner="connector.storms"),
    EnvVar("YORISOI_STORM_LABEL_MIN", "20",
     "Similar posts from which the dashboard, the reports and the storm's problem ticket in the helpdesk call a cluster 「炎上」 (a storm); below it 「類似投稿のまとまり」.",
     owner="connector.storms"),
    EnvVar("YORISOI_STORM_UPDATE_SECONDS", "120",
     "Least seconds between two updates of a storm's problem ticket (its running count); Zendesk allows 30 updates per ticket per 10 minutes.", owner="connector.storms"),
    EnvVar("YORISOI_STORM_HIGH_REACH", "10000", "Followers from which a storm member is a voice (own visible incident, own priority) rather than an echo.", owner="connector.storms"),
    EnvVar("YORISOI_SPIKE_ALPHA", "0.0001",
     "Spike alert: Poisson tail probability below which the last 15 minutes' negative posts are a spike (vs the same hour on the same weekday over 4 weeks).", owner="connector.storms"),
    EnvVar("YORISOI_SPIKE_MIN_COUNT", "10", "Spike alert: least negative posts in 15 minutes for an alert, whatever the baseline.", owner="connector.storms"),
    EnvVar("YORISOI_ALERT_WEBHOOK", "(unset: no message)",
     "URL that receives a Slack-compatible JSON message (`text`, `blocks`) when a spike alert starts and ends (Slack, Mattermost, Teams incoming webhooks). Secret.", secret=True, owner="connector.storms"),
    EnvVar("YORISOI_MODEL_DIR", "(unset: the shipped label model)",
     "Folder of a model made by `yorisoi train` (JSON and plain arrays, never executed) to use instead of the shipped one: "
     "a label model decides all five labels, a sentiment model (`train FILE.tsv`) sentiment only; `lexicon` uses the "
     "lexicon and rules alone. The lexicon's cues stay as features, evidence and fallback."),
    EnvVar("YORISOI_CONFIDENCE", "0.5",
     "Below this probability (0–1) a model's label is marked 「要確認 / please check」 in the ticket note; priority rules "
     "with `min_confidence` need at least theirs."),
    EnvVar("YORISOI_POLL_INTERVALS", "x=300,mastodon=120,bluesky=120,rss=900",
           "Seconds between polls of one search, timeline or feed, per network (any subset; at least 10).",
           owner="connector.sources"),
)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    watch_path: Path
    helpdesk: str
    webhook_secret: str | None
    reply_signature: str
    host: str
    port: int
    secret_key: str | None
    delivery_interval: float
    max_body_bytes: int
    log_level: str
    #: The environment it was read from, for modules that read their own variables
    #: (a helpdesk's ZENDESK_* or FRESHDESK_*). Holds secrets: never print or log it.
    env: Mapping[str, str] = field(default_factory=dict, compare=False)
    model_dir: Path | None = None
    confidence: float = 0.5

    def __repr__(self) -> str:  # never show secrets, even in a traceback or a debugger
        from connector.db.engine import safe_url
        database = safe_url(self.database_url)
        return (f"Settings(database_url={database!r}, watch_path={str(self.watch_path)!r}, "
                f"helpdesk={self.helpdesk!r}, host={self.host!r}, port={self.port})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("YORISOI_DATA_DIR") or "data")
        database = env.get("YORISOI_DATABASE") or f"sqlite:///{data_dir / 'yorisoi.sqlite3'}"
        if "://" not in database:  # a bare path means a SQLite file
            database = f"sqlite:///{database}"
        helpdesk = (env.get("YORISOI_HELPDESK") or "local").strip().lower()
        if helpdesk not in HELPDESKS:
            raise ConfigError(
                f"YORISOI_HELPDESK={helpdesk!r} is not supported; choose one of: {', '.join(HELPDESKS)}")
        return cls(
            data_dir=data_dir,
            database_url=database,
            watch_path=Path(env.get("YORISOI_WATCH") or DEMO_WATCH),
            helpdesk=helpdesk,
            webhook_secret=shared_secret(env, "YORISOI_WEBHOOK_SECRET"),
            reply_signature=_signature(env.get("YORISOI_REPLY_SIGNATURE") or DEFAULT_REPLY_SIGNATURE),
            host=env.get("YORISOI_HOST") or "127.0.0.1",
            port=number_setting(env, "YORISOI_PORT", 8750, 1, 65535),
            secret_key=shared_secret(env, "YORISOI_SECRET_KEY"),
            delivery_interval=number_setting(env, "YORISOI_DELIVERY_INTERVAL", 2.0, 0.05, 3600, float),
            max_body_bytes=number_setting(env, "YORISOI_MAX_BODY_BYTES", 1_048_576, 1024, 100 * 1_048_576),
            log_level=(env.get("YORISOI_LOG_LEVEL") or "INFO").upper(),
            env=dict(env),
            model_dir=Path(env["YORISOI_MODEL_DIR"]) if env.get("YORISOI_MODEL_DIR") else None,
            confidence=number_setting(env, "YORISOI_CONFIDENCE", 0.5, 0.0, 1.0, float),
        )


#: Shortest shared secret accepted (webhook HMAC keys and tokens, the session-signing key), as
#: for YORISOI_CHANNEL_SECRET: a 1-character secret is guessed in a few hundred requests.
MIN_SECRET_CHARS = 16


def shared_secret(env: Mapping[str, str], name: str, *, strip: bool = False) -> str | None:
    """A shared secret, or None when unset; a set one shorter than MIN_SECRET_CHARS is refused
    at start-up with a ConfigError naming the variable (never showing the value)."""
    value = env.get(name) or ""
    if strip:
        value = value.strip()
    if not value:
        return None
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(f"{name} is too short ({len(value)} characters): use {MIN_SECRET_CHARS} or more random "
                          "characters (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
    return value


def number_setting(env: Mapping[str, str], name: str, default: float, low: float, high: float,
            cast: type = int) -> Any:
    """An int (or float) setting within [low, high]; the error names the variable."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range {low}..{high}")
    return value


def _signature(template: str) -> str:
    try:
        template.format(agent="佐藤", brand="ソラモバイル")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"YORISOI_REPLY_SIGNATURE={template!r}: only {{agent}} and {{brand}} may be used ({exc})") from None
    return template


def env_groups() -> list[tuple[str, tuple[EnvVar, ...]]]:
    """Every variable any part of Yorisoi reads, grouped by who reads it: Yorisoi itself, each
    network (its `PlatformInfo.env`), each helpdesk package (its `ENV`)."""
    from connector.extension_build import ENV as EXTENSION_ENV
    from connector.helpdesks import helpdesk_packages
    from connector.sources import PLATFORMS
    from connector.weekly_mail import ENV as MAIL_ENV
    groups: list[tuple[str, tuple[EnvVar, ...]]] = [("Yorisoi", ENV_VARS), ("Weekly report e-mail", MAIL_ENV),
                                                    ("Browser extension", EXTENSION_ENV)]
    groups += [(info.display_en, info.env) for info in PLATFORMS.values() if info.env]
    groups += [(package.__name__.rsplit(".", 1)[-1].capitalize(), package.ENV) for package in helpdesk_packages()]
    return groups


def all_env_vars() -> tuple[EnvVar, ...]:
    """The configuration registry: each variable once."""
    return tuple(var for _, group in env_groups() for var in group)


def _table(group: tuple[EnvVar, ...]) -> list[str]:
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    return rows + [f"| `{v.name}` | {v.default} | {v.meaning}{' Secret.' if v.secret and 'Secret' not in v.meaning else ''} |"
                   for v in group]


def env_table_markdown() -> str:
    """The configuration tables for the README: one per group (Yorisoi, each network, each helpdesk)."""
    parts: list[str] = []
    for title, group in env_groups():
        if parts:
            parts += ["", f"#### {title}", ""]
        parts += _table(group)
    return "\n".join(parts)
