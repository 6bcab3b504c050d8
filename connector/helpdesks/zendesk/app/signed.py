"""ZAF signed URLs: the JWT Zendesk posts to the app's sidebar page, and the short-lived sidebar
session it is exchanged for.

With `signed: true` on a location, Zendesk loads the iframe with a POST whose form field `token`
is a ZAF JWT. Zendesk signs it with **RS256** using the app's key pair — not a shared secret —
and the server checks it with the app's public key (`GET /api/v2/apps/{app_id}/public_key.pem`),
the audience (the app installation's URL, with the account's subdomain and the installation id)
and the expiry
(https://developer.zendesk.com/documentation/apps/build-an-app/building-a-server-side-app/part-5-secure-the-app/,
"Validating the ZAF JWT"; "Authenticating Zendesk in your server-side app"). Its `sub` names the
agent who opened the ticket, so no per-agent token is needed.

The page then calls the connector with a `zaf_…` bearer credential (`SidebarSessions`): signed
with the connector's secret key, naming that agent, valid for an hour, accepted by /api/v1 like
an agent token. It never goes into a cookie (no CSRF surface) and is never logged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import jwt
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

#: Only the algorithm Zendesk documents; never "none" or an HMAC one (a public key used as an
#: HMAC secret is the classic JWT confusion attack).
ALGORITHMS = ["RS256"]
#: Clock skew allowed on exp/iat between Zendesk and us.
LEEWAY_SECONDS = 30
SESSION_PREFIX = "zaf_"
SESSION_SECONDS = 3600
_AUD = re.compile(r"^https://(?P<host>[a-z0-9][a-z0-9-]*\.zendesk\.com)/api/v2/apps/installations/(?P<id>\d{1,20})\.json$")
_SUB = re.compile(r"^(?:https://[a-z0-9][a-z0-9-]*\.zendesk\.com/api/v2/users/)?(?P<id>\d{1,20})(?:\.json)?$")


class ZafTokenError(Exception):
    """A ZAF JWT that must not be trusted, with what to tell the agent in Japanese and English."""

    def __init__(self, code: str, message_ja: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code, self.message_ja, self.message_en = code, message_ja, message_en


class ZafNotConfigured(ZafTokenError):
    pass


@dataclass(frozen=True)
class ZafAgent:
    """Who opened the sidebar: the Zendesk account's host, the user id, the installation."""

    account: str  # acme.zendesk.com
    user_id: str
    installation_id: str


@dataclass(frozen=True)
class ZafSettings:
    public_key: str | None  # PEM
    account: str | None  # acme.zendesk.com

    def __repr__(self) -> str:
        return f"ZafSettings(account={self.account!r}, public_key={'set' if self.public_key else 'unset'})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ZafSettings":
        raw = (env.get("ZENDESK_APP_PUBLIC_KEY") or "").strip()
        if raw and "BEGIN PUBLIC KEY" not in raw:
            path = Path(raw).expanduser()
            raw = path.read_text(encoding="ascii").strip() if path.is_file() else raw
        subdomain = (env.get("ZENDESK_SUBDOMAIN") or "").strip().lower()
        return cls(public_key=raw or None, account=f"{subdomain}.zendesk.com" if subdomain else None)


def verify_zaf_token(token: str | None, settings: ZafSettings) -> ZafAgent:
    """The agent a ZAF JWT names, or ZafTokenError saying why it is refused."""
    if not settings.public_key or not settings.account:
        missing = "ZENDESK_APP_PUBLIC_KEY" if not settings.public_key else "ZENDESK_SUBDOMAIN"
        raise ZafNotConfigured(
            "not_configured",
            f"Yorisoi のサイドバーはまだ設定されていません。運用担当者に {missing} の設定を依頼してください。",
            f"The Yorisoi sidebar is not set up yet: ask the operator to set {missing}.")
    if not token or len(token) > 8192:
        raise ZafTokenError("missing_token",
                            "Zendesk からの署名付きトークンがありません。Zendesk の中から開いてください（アプリの signedUrls）。",
                            "No signed token from Zendesk: open the sidebar inside Zendesk (the app's signed URLs).")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, settings.public_key, algorithms=ALGORITHMS, leeway=LEEWAY_SECONDS,
            # The audience is checked below: it must be an installation URL of this account, and
            # PyJWT compares audiences only for equality.
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise ZafTokenError("expired", "Zendesk のトークンの有効期限が切れています。チケットを開き直すか、アプリを再読み込みしてください。",
                            "The Zendesk token has expired: reopen the ticket or reload the app.") from None
    except jwt.InvalidSignatureError:
        raise ZafTokenError("bad_signature",
                            "Zendesk のトークンの署名が一致しません。ZENDESK_APP_PUBLIC_KEY がこのアプリの公開鍵か確認してください。",
                            "The Zendesk token's signature does not match: check that ZENDESK_APP_PUBLIC_KEY is this "
                            "app's public key.") from None
    except jwt.InvalidTokenError as exc:
        raise ZafTokenError("invalid_token", f"Zendesk のトークンを確認できません（{exc}）。",
                            f"The Zendesk token cannot be verified ({exc}).") from None
    issuer = str(claims.get("iss") or "")
    issuer_host = urlsplit(issuer).hostname if "://" in issuer else issuer
    if (issuer_host or "").lower() != settings.account:
        raise ZafTokenError("wrong_issuer", f"このトークンは別の Zendesk アカウント（{issuer[:80]}）のものです。",
                            f"This token is from another Zendesk account ({issuer[:80]}), not {settings.account}.")
    audience = claims.get("aud")
    audience = audience[0] if isinstance(audience, list) and len(audience) == 1 else audience
    match = _AUD.match(str(audience or ""))
    if match is None or match["host"] != settings.account:
        raise ZafTokenError("wrong_audience", "このトークンは Yorisoi のアプリのインストール宛てではありません。",
                            f"This token is not addressed to an app installation of {settings.account}.")
    subject = _SUB.match(str(claims.get("sub") or ""))
    if subject is None:
        raise ZafTokenError("invalid_token", "トークンがエージェントを示していません。", "The token names no agent (sub).")
    return ZafAgent(account=settings.account, user_id=subject["id"], installation_id=match["id"])


@dataclass(frozen=True)
class SidebarSession:
    agent: str  # the name replies are signed with
    user_id: str
    account: str


class SidebarSessions:
    """`zaf_…` bearer credentials for the sidebar page's API calls, one agent each, an hour long."""

    def __init__(self, secret_key: str | bytes, max_age: int = SESSION_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="yorisoi-zendesk-app-sidebar")
        self.max_age = max_age

    def issue(self, session: SidebarSession) -> str:
        return SESSION_PREFIX + self._serializer.dumps({"a": session.agent, "u": session.user_id, "h": session.account})

    def read(self, credential: str) -> SidebarSession | None:
        """The session, or None when it is not ours, tampered with or older than max_age."""
        if not credential.startswith(SESSION_PREFIX) or len(credential) > 2000:
            return None
        try:
            data = self._serializer.loads(credential[len(SESSION_PREFIX):], max_age=self.max_age)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "auh"):
            return None
        return SidebarSession(agent=data["a"], user_id=data["u"], account=data["h"])
