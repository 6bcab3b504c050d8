"""The sidebar extension's own routes: sign-in (a per-agent token instead of one pasted from
the CLI) and the self-hosted update manifests IT points browser policies at.

- `POST /extension/signin` — the options page's 「Yorisoi にログイン」. With `{name, password}` of a
  dashboard account, or with no body fields behind a proxy that sets YORISOI_SSO_HEADER, the
  connector mints a token for that agent (stored hashed, `origin` signin / sso, listed by
  `yorisoi token list`, cut off by `yorisoi token revoke`) and answers it once.
  Failed passwords count against the dashboard's login throttle (same instance, same keys).
  No cookie session is read or written here, so the dashboard's per-session CSRF token does not
  apply; instead the route only accepts a JSON body with the `X-Yorisoi-Extension` header —
  a cross-site page cannot send either without a CORS preflight, which this connector never
  grants — and refuses a web page's Origin. That matters for SSO: the proxy would add its
  header to a forged cross-site request too.
- `POST /extension/signout` — revokes the bearer token that calls it (the options page's
  「ログアウト」).
- `GET /extension/chrome/updates.xml`, `/extension/chrome/yorisoi.crx`,
  `/extension/firefox/updates.json`, `/extension/firefox/yorisoi.xpi` — from the folder
  `yorisoi extension build` wrote (YORISOI_EXTENSION_DIR).
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from connector.agents import authenticate, create_token
from connector.extension_build import (
    BUILD_INFO,
    CHROME_CRX,
    FIREFOX_SIGNED_XPI,
    chrome_update_xml,
    firefox_updates_json,
    output_dir,
)
from connector.services import services
from connector.web.auth import check_credentials, sso_header

bp = Blueprint("extension", __name__, url_prefix="/extension")

#: The header the extension sends with sign-in (a "non-simple" header: cross-site pages need a
#: CORS preflight to send it, and this connector answers none).
CLIENT_HEADER = "X-Yorisoi-Extension"
#: Origins of extension pages; a web page's Origin (http/https) other than our own is refused.
EXTENSION_SCHEMES = ("chrome-extension", "moz-extension", "extension")


def _error(status: int, code: str, en: str, ja: str, **headers: str) -> Response:
    response = jsonify({"error": en, "code": code, "message_en": en, "message_ja": ja})
    response.status_code = status
    response.headers.update(headers)
    return response


def _foreign_origin() -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme in EXTENSION_SCHEMES:
        return False
    return origin.rstrip("/") != request.host_url.rstrip("/")


def _extension_dir() -> Path:
    settings = services().settings
    return output_dir(settings.env, settings.data_dir)


@bp.post("/signin")
def signin():
    if request.headers.get(CLIENT_HEADER) != "1" or not request.is_json or _foreign_origin():
        return _error(400, "not_from_extension",
                      f"sign-in is only for the Yorisoi extension (JSON with {CLIENT_HEADER}: 1)",
                      "ログインは Yorisoi の拡張機能からのみ行えます。")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "bad_request", "send a JSON object", "JSON オブジェクトを送ってください。")
    name = body.get("name")
    password = body.get("password")
    name = name.strip()[:100] if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    svc = services()

    if not name and not password:
        header = sso_header()
        user = (request.headers.get(header) or "").strip() if header else ""
        if not header:
            return _error(400, "credentials_required", "enter your dashboard account name and password",
                          "ダッシュボードのアカウント名とパスワードを入力してください。")
        if not user or len(user) > 200:
            return _error(401, "sso_missing", f"the single sign-on proxy did not name you ({header} is missing): "
                          "sign in to the connector in a browser tab first",
                          f"シングルサインオンのヘッダー（{header}）がありません。ブラウザのタブでコネクタにログインしてから、もう一度押してください。")
        token_id, token = create_token(svc.store, user, "sso")
        return _issued(token_id, token, user, "sso")

    ok, wait = check_credentials(name, password)
    if ok:
        token_id, token = create_token(svc.store, name, "signin")
        return _issued(token_id, token, name, "signin")
    if wait:
        return _throttled(wait)
    return _error(401, "bad_login", "wrong account name or password", "アカウント名またはパスワードが違います。")


def _issued(token_id: int, token: str, agent: str, origin: str) -> Response:
    current_app.logger.info("extension sign-in: token #%s for %s (%s)", token_id, agent, origin)
    response = jsonify({"token": token, "token_id": token_id, "agent": agent, "origin": origin})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def _throttled(wait: int) -> Response:
    return _error(429, "throttled", f"too many failed sign-ins: try again in {wait} seconds",
                  f"ログインの失敗が続いたため、{wait} 秒後にもう一度お試しください。", **{"Retry-After": str(wait)})


@bp.post("/signout")
def signout():
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    identity = authenticate(services().store, token) if token else None
    if identity is None:
        return _error(401, "invalid_token", "unknown or revoked token", "トークンが無効です。")
    services().store.accounts.revoke_agent_token(identity.token_id)
    current_app.logger.info("extension sign-out: token #%s of %s revoked", identity.token_id, identity.agent)
    return jsonify({"revoked": identity.token_id})


# --- self-hosted updates ------------------------------------------------------------------
def _build_info() -> dict[str, Any] | None:
    """build.json of the last `yorisoi extension build`; None when absent, or when it was a test
    build (its manifests match loopback test pages: never handed to agents' browsers)."""
    try:
        info = json.loads((_extension_dir() / BUILD_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and not info.get("test_build") else None


def _xpi_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest inside the AMO-signed .xpi: its version and id are what Firefox will
    install, whatever was built since (AMO signs each version separately)."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return manifest if isinstance(manifest, dict) else None


def _public_base() -> str:
    base = (services().settings.env.get("YORISOI_PUBLIC_URL") or "").strip().rstrip("/")
    return base or request.host_url.rstrip("/")


def _not_built(what: str) -> Response:
    return _error(404, "extension_not_built",
                  f"no {what} here yet: run `yorisoi extension build --out {_extension_dir()}` on the connector",
                  f"{what} がまだありません。コネクタで `yorisoi extension build --out {_extension_dir()}` を実行してください。")


@bp.get("/chrome/updates.xml")
def chrome_updates():
    info = _build_info()
    if not info or not info.get("chrome_id") or not (_extension_dir() / CHROME_CRX).is_file():
        return _not_built("signed Chrome package (.crx; YORISOI_EXTENSION_KEY_FILE)")
    xml = chrome_update_xml(info["chrome_id"], str(info["version"]), _public_base() + "/extension/chrome/yorisoi.crx")
    return Response(xml, mimetype="application/xml", headers={"Cache-Control": "no-cache"})


@bp.get("/chrome/yorisoi.crx")
def chrome_crx():
    path = _extension_dir() / CHROME_CRX
    if not path.is_file() or _build_info() is None:
        return _not_built("signed Chrome package (.crx)")
    # Chrome installs off-store CRX files served as application/x-chrome-extension.
    return send_file(path.resolve(), mimetype="application/x-chrome-extension", max_age=0)


@bp.get("/firefox/updates.json")
def firefox_updates():
    path = _extension_dir() / FIREFOX_SIGNED_XPI
    manifest = _xpi_manifest(path) if path.is_file() else None
    gecko = ((manifest or {}).get("browser_specific_settings") or {}).get("gecko") or {}
    if not manifest or not gecko.get("id") or not manifest.get("version"):
        return _not_built(f"AMO-signed Firefox package ({FIREFOX_SIGNED_XPI})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    body = firefox_updates_json(str(gecko["id"]), str(manifest["version"]),
                                _public_base() + "/extension/firefox/yorisoi.xpi", digest)
    return Response(json.dumps(body, indent=1), mimetype="application/json", headers={"Cache-Control": "no-cache"})


@bp.get("/firefox/yorisoi.xpi")
def firefox_xpi():
    path = _extension_dir() / FIREFOX_SIGNED_XPI
    if not path.is_file():
        return _not_built(f"AMO-signed Firefox package ({FIREFOX_SIGNED_XPI})")
    # https://extensionworkshop.com/documentation/publish/self-distribution/ : served as
    # application/x-xpinstall, Firefox installs it.
    return send_file(path.resolve(), mimetype="application/x-xpinstall", max_age=0)
