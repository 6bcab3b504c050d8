"""Zendesk Channel framework ("Any Channel") endpoints.

Zendesk calls these (https://developer.zendesk.com/documentation/channel_framework/; facts in
`../shared/reference/helpdesk-apis.md` §1):

- `GET  /zendesk/manifest.json`            the manifest, URLs absolute on YORISOI_PUBLIC_URL
- `POST /zendesk/channel/admin_ui`         Zendesk's first POST into the admin iframe
- `POST /zendesk/channel/admin_ui/save`    our own form's submit; answers with the auto-submitting
                                           form that hands `name` + `metadata` back to Zendesk
- `POST /zendesk/channel/pull`             every ~2 minutes: new posts as external resources
- `POST /zendesk/channel/channelback`      an agent's reply, posted to the network once
- `GET  /zendesk/channel/clickthrough`     ?external_id= → 302 to the original post
- `GET  /zendesk/channel/healthcheck`
- `POST /zendesk/channel/events`           event callbacks (logged; destroy stops an instance)

Views validate and translate; the store, replies and the rest of `helpdesks/zendesk/channel/` do the work.
"""
from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, redirect, render_template, request

from connector.helpdesks.zendesk.channel import ChannelNotConfigured, ChannelSettings
from connector.helpdesks.zendesk.channel.manifest import served_manifest
from connector.helpdesks.zendesk.channel.resources import (
    MAX_RESOURCES_PER_PULL,
    REPLYABLE_PLATFORMS,
    external_id,
    external_resource,
    is_hashed,
    post_key_from_external_id,
)
from connector.helpdesks.zendesk.channel.tokens import ADMIN_FORM, METADATA, STATE, BadToken, TokenSigner
from connector.replies import ReplyFailed, UnknownTicket, send_reply_to_post
from connector.services import Services, services
from connector.store import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("channel", __name__)

#: The helpdesk name exchanges sent through channelback are recorded under.
HELPDESK = "zendesk-channel"
#: How long the admin form may stay open between Zendesk's POST and the admin's submit.
ADMIN_FORM_TTL = 30 * 60
#: The first pull of a new instance brings the brand's posts of this period, then only new ones.
BACKFILL = timedelta(days=7)
#: A cursor of the old (ingested_at, key) form resumes this far back (repeats are harmless:
#: Zendesk de-duplicates by external_id; a skip is not).
LEGACY_CURSOR_REPLAY = timedelta(minutes=10)
MAX_NAME = 255
MAX_SIGNATURE = 100
MAX_MESSAGE = 65535
MAX_REQUEST_ID = 255
_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# Admin UI texts, Japanese first (the admin's Zendesk `locale` picks the language).
TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Yorisoi（寄り添い）を接続", "Connect Yorisoi"),
    "intro": ("このアカウントで受け取るブランドを選んでください。対象となった公開投稿が分析付きでチケットになります。",
              "Choose the brand this account receives. Qualifying public posts become tickets with their analysis."),
    "name": ("表示名", "Display name"),
    "brand": ("ブランド", "Brand"),
    "signature": ("返信の署名（任意）", "Reply signature (optional)"),
    "signature_help": ("エージェントの返信に「（ブランド 署名）」を付けます。例: サポート担当。空欄なら返信本文に担当者名を書いてください。",
                       "Added to agents' replies as \u201c(brand signature)\u201d, e.g. Support team. Leave empty and agents sign their replies themselves."),
    "code": ("接続コード", "Install code"),
    "code_help": ("Yorisoi の運用担当者が `yorisoi channel-code サブドメイン` で発行したコードです。",
                  "The code your Yorisoi operator prints with `yorisoi channel-code SUBDOMAIN`."),
    "save": ("保存", "Save"),
    "saving": ("Zendesk に戻っています…", "Returning to Zendesk…"),
    "continue": ("続ける", "Continue"),
    "err_name": ("表示名を入力してください（255文字まで）。", "Enter a display name (up to 255 characters)."),
    "err_brand": ("監視設定にあるブランドを選んでください。", "Choose a brand from the watch configuration."),
    "err_signature": ("署名は100文字までです。", "The signature may have up to 100 characters."),
    "err_code": ("接続コードが正しくありません。", "The install code is not correct."),
    "err_return_url": ("return_url が Zendesk（https://*.zendesk.com）の URL ではないため中止しました。",
                       "Stopped: return_url is not a Zendesk URL (https://*.zendesk.com)."),
    "err_subdomain": ("Zendesk のサブドメインが送られてきませんでした。", "Zendesk did not send a valid subdomain."),
    "err_form": ("フォームの有効期限が切れたか、改ざんされています。Zendesk からやり直してください。",
                 "The form expired or was altered. Start again from Zendesk."),
    "err_instance": ("このアカウントは Zendesk で削除済みです。新しく追加してください。",
                     "This account was deleted in Zendesk. Add a new one."),
}


def _lang(locale: str | None) -> str:
    return "ja" if (locale or "ja").lower().startswith("ja") else "en"


def _texts(lang: str) -> dict[str, str]:
    index = 0 if lang == "ja" else 1
    return {key: pair[index] for key, pair in TEXTS.items()}


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def _channel() -> ChannelSettings:
    return ChannelSettings.from_env(services().settings.env)


def _signer(settings: ChannelSettings) -> TokenSigner:
    return TokenSigner(settings.secret)


@bp.errorhandler(ChannelNotConfigured)
def _not_configured(exc: ChannelNotConfigured):
    return _error(503, str(exc))


# --- manifest, healthcheck ------------------------------------------------------------------
@bp.get("/zendesk/manifest.json")
def manifest():
    return jsonify(served_manifest(_channel()))


@bp.get("/zendesk/channel/healthcheck")
def healthcheck():
    _channel()
    return jsonify({"ok": True})


# --- admin UI -------------------------------------------------------------------------------
def zendesk_return_url(url: str | None) -> str | None:
    """`url` if it is an https URL on a zendesk.com subdomain, else None.

    The admin UI ends by POSTing `metadata` to `return_url` from the admin's browser; any other
    host would be an open redirect that hands our signed metadata to a stranger.
    """
    if not url or len(url) > 2048 or not url.isascii():
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or parts.username or parts.password or port not in (None, 443):
        return None
    label = host[: -len(".zendesk.com")] if host.endswith(".zendesk.com") else ""
    return url if label and _SUBDOMAIN.match(label.split(".")[-1]) else None


def _admin_headers(response: Response, nonce: str | None = None) -> Response:
    # Zendesk shows the admin UI in an iframe on https://<subdomain>.zendesk.com: allow that
    # framing here only (the rest of the app keeps `frame-ancestors 'self'`). Forms may post to
    # us and to Zendesk's return_url, scripts only with this response's nonce.
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        f"script-src {script}; form-action 'self' https://*.zendesk.com; "
        "frame-ancestors https://*.zendesk.com; base-uri 'none'")
    response.headers["Cache-Control"] = "no-store"
    return response


def _admin_page(template: str, status: int = 200, **context: Any) -> Response:
    nonce = secrets.token_urlsafe(16)
    lang = context.pop("lang", "ja")
    html = render_template(template, t=_texts(lang), lang=lang, nonce=nonce, **context)
    return _admin_headers(Response(html, status=status, mimetype="text/html"), nonce)


def _admin_error(lang: str, key: str, status: int = 400) -> Response:
    return _admin_page("channel_admin.html", status=status, lang=lang, fatal=_texts(lang)[key])


def _current_instance(svc: Services, signer: TokenSigner, metadata: str | None) -> dict[str, Any] | None:
    """The active instance a re-edit's metadata names, or None (a new install)."""
    if not metadata:
        return None
    try:
        claims = signer.open(METADATA, metadata)
    except BadToken:
        return None
    row = svc.store.channel.channel_instance(str(claims.get("i")))
    return row if row and row["status"] == "active" else None


@bp.post("/zendesk/channel/admin_ui")
def admin_ui():
    """Zendesk's first POST: return_url, subdomain, locale, name and (on re-edit) metadata.

    Zendesk sends no CSRF token here and cannot: this request creates nothing, it only shows
    the form. The state-changing step is `admin_ui_save`, protected as described there.
    `zendesk_access_token` (sent when the manifest has a push_client_id) is neither logged nor kept.
    """
    svc = services()
    settings = _channel()
    signer = _signer(settings)
    lang = _lang(request.form.get("locale"))
    return_url = zendesk_return_url(request.form.get("return_url"))
    if return_url is None:
        return _admin_error(lang, "err_return_url")
    subdomain = (request.form.get("subdomain") or "").strip().lower()
    if not _SUBDOMAIN.match(subdomain):
        return _admin_error(lang, "err_subdomain")
    instance = _current_instance(svc, signer, request.form.get("metadata"))
    if instance is not None and instance["subdomain"] != subdomain:
        instance = None  # metadata of another account: treat as a new install
    form_token = signer.seal(ADMIN_FORM, {
        "r": return_url, "s": subdomain, "l": lang, "i": instance["id"] if instance else None,
    }, ttl_seconds=ADMIN_FORM_TTL)
    brands = svc.watch.brand_names
    values = {
        "name": (request.form.get("name") or (instance or {}).get("name") or f"Yorisoi {brands[0]}")[:MAX_NAME],
        "brand": instance["brand"] if instance else brands[0],
        "signature": instance["signature"] if instance else "",
    }
    return _admin_page("channel_admin.html", lang=lang, brands=brands, values=values, form_token=form_token,
                       needs_code=instance is None, errors={})


@bp.post("/zendesk/channel/admin_ui/save")
def admin_ui_save():
    """The admin submitted our form: save the instance, hand name + metadata back to Zendesk.

    CSRF and forgery: this step carries `form_token`, which we signed in `admin_ui` over the
    validated return_url, subdomain, language and instance id, valid for 30 minutes. The
    return_url used here comes from that token, never from the submitted fields, so a forged
    submit cannot redirect the metadata anywhere but the Zendesk URL we checked. The app uses
    no cookies, so a cross-site submit carries no ambient authority; what authorises creating
    an instance (and so minting metadata that can read posts and post replies as the brand) is
    the install code, a per-subdomain HMAC only the connector's operator can produce. A re-edit
    needs no code: the instance id in the token came from metadata Zendesk held, which we signed.
    """
    svc = services()
    settings = _channel()
    signer = _signer(settings)
    try:
        claims = signer.open(ADMIN_FORM, request.form.get("form_token"))
    except BadToken as exc:
        log.info("admin UI form refused: %s", exc)
        return _admin_error(_lang(request.form.get("locale")), "err_form", 400)
    lang, subdomain, return_url, instance_id = claims["l"], claims["s"], claims["r"], claims.get("i")
    t = _texts(lang)
    brands = svc.watch.brand_names
    values = {
        "name": " ".join((request.form.get("name") or "").split()),
        "brand": request.form.get("brand") or "",
        "signature": " ".join((request.form.get("signature") or "").split()),
    }
    errors: dict[str, str] = {}
    if not values["name"] or len(values["name"]) > MAX_NAME:
        errors["name"] = t["err_name"]
    if values["brand"] not in brands:
        errors["brand"] = t["err_brand"]
    if len(values["signature"]) > MAX_SIGNATURE:
        errors["signature"] = t["err_signature"]
    if instance_id is None and not signer.install_code_ok(subdomain, request.form.get("install_code") or ""):
        errors["install_code"] = t["err_code"]
        log.warning("admin UI: wrong install code for subdomain %s", subdomain)
    if errors:
        return _admin_page("channel_admin.html", status=422, lang=lang, brands=brands, values=values,
                           form_token=request.form.get("form_token"), needs_code=instance_id is None, errors=errors)
    if instance_id is not None:
        existing = svc.store.channel.channel_instance(instance_id)
        if existing is None or existing["status"] != "active":
            return _admin_error(lang, "err_instance", 410)
    instance = svc.store.channel.save_channel_instance(
        instance_id=instance_id or f"ci_{secrets.token_hex(12)}", subdomain=subdomain, brand=values["brand"],
        name=values["name"], signature=values["signature"], locale=lang,
        backfill_from=utcnow() - BACKFILL)
    metadata = signer.seal(METADATA, {"i": instance["id"], "s": subdomain, "b": instance["brand"]})
    log.info("channel instance %s %s for %s (brand %s)", instance["id"],
             "updated" if instance_id else "created", subdomain, instance["brand"])
    return _admin_page("channel_return.html", lang=lang, return_url=return_url, name=values["name"],
                       metadata=metadata)


# --- metadata -------------------------------------------------------------------------------
class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(_Refused)
def _refused(exc: _Refused):
    return _error(exc.status, exc.message)


@bp.before_request
def _no_nul_in_fields():
    # Zendesk never sends a NUL character; one in a form field or query parameter is forged
    # input that PostgreSQL could not even compare (text cannot hold U+0000).
    for where, values in (("query", request.args), ("form", request.form)):
        for name, value in values.items(multi=True):
            if "\x00" in name or "\x00" in value:
                return _error(400, f"{where} field {name.replace(chr(0), '')[:40]!r} contains a NUL character")
    return None


def _instance_for(svc: Services, signer: TokenSigner, metadata: str | None) -> dict[str, Any]:
    """The active instance a signed metadata names. 401 for missing/forged metadata, 403 for
    an instance that does not exist (any more) here or was destroyed in Zendesk."""
    try:
        claims = signer.open(METADATA, metadata)
    except BadToken as exc:
        raise _Refused(401, f"metadata refused: {exc}") from None
    row = svc.store.channel.channel_instance(str(claims.get("i")))
    if row is None or row["subdomain"] != claims.get("s"):
        raise _Refused(403, "metadata names no integration instance of this connector")
    if row["status"] != "active":
        raise _Refused(403, f"integration instance {row['id']} was destroyed in Zendesk; add the account again")
    return row


# --- pull -----------------------------------------------------------------------------------
def _cursor(svc: Services, signer: TokenSigner, state: str, instance: dict[str, Any]) -> int | None:
    if not state.strip():
        return None
    try:
        claims = signer.open(STATE, state)
        if claims.get("i") != instance["id"]:
            raise BadToken("state belongs to another integration instance")
        if claims.get("b") != instance["brand"]:
            return None  # the admin switched brands: start the new brand from the backfill point
        if "s" in claims:
            seq = claims["s"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError("bad feed number")
            return seq
        # A state issued before the feed numbers: resume a little before its time.
        at = datetime.fromisoformat(claims["t"])
        return svc.store.channel.channel_seq_before(at - LEGACY_CURSOR_REPLAY)
    except BadToken as exc:
        raise _Refused(400, f"state refused: {exc}") from None
    except (KeyError, ValueError, TypeError):
        raise _Refused(400, "state refused: unreadable cursor") from None


@bp.post("/zendesk/channel/pull")
def pull():
    """Up to 200 new posts of the instance's brand, oldest first, and the cursor after them.

    `state` is our signed cursor (the last feed number sent, numbered in commit order) bound
    to the instance; Zendesk stores it and sends it back, so each post is sent once and none is
    skipped, however late its transaction committed (issue 16 #2).
    Zendesk also de-duplicates by external_id (helpdesk-apis.md §1.3).
    """
    svc = services()
    signer = _signer(_channel())
    instance = _instance_for(svc, signer, request.form.get("metadata"))
    state = request.form.get("state") or ""
    after = _cursor(svc, signer, state, instance)
    if instance["brand"] not in svc.watch.brand_names:
        # The brand left the watch file: nothing to send; ask the admin to pick another.
        return jsonify({"external_resources": [], "state": state, "metadata_needs_update": True})
    rows = svc.store.channel.channel_posts(instance["brand"], after=after, since=instance["backfill_from"],
                                           limit=MAX_RESOURCES_PER_PULL)
    resources = []
    long_ids = []
    for row in rows:
        post = row["post"]
        resource = external_resource(post, row["decision"], row["analysis"], ticket_post_key=row["ticket_post_key"],
                                     is_ticket_post=row["kind"] == "create")
        if is_hashed(resource["external_id"]):
            long_ids.append((resource["external_id"], post.key))
        resources.append(resource)
    svc.store.channel.remember_external_ids(long_ids)
    if rows:
        last = rows[-1]
        state = signer.seal(STATE, {"i": instance["id"], "b": instance["brand"],
                                    "s": last["seq"]})
    svc.store.channel.touch_channel_pull(instance["id"])
    log.info("pull for instance %s: %d resources", instance["id"], len(resources))
    return jsonify({"external_resources": resources, "state": state})


# --- channelback ----------------------------------------------------------------------------
def _post_key(svc: Services, external: str) -> str | None:
    return post_key_from_external_id(external) or svc.store.channel.post_key_for_external_id(external)


@bp.post("/zendesk/channel/channelback")
def channelback():
    """An agent's public reply: post it to the network once per request_unique_identifier.

    Zendesk sends no agent name with a channelback, so the reply is signed with the instance's
    team signature from the admin UI (empty: sent as the agent wrote it; they sign it themselves).
    """
    svc = services()
    signer = _signer(_channel())
    instance = _instance_for(svc, signer, request.form.get("metadata"))
    request_id = (request.form.get("request_unique_identifier") or "").strip()
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        return _error(400, "request_unique_identifier is required (at most 255 characters)")
    message = (request.form.get("message") or "").strip()
    if not message or len(message) > MAX_MESSAGE:
        return _error(400, "message is required (at most 65535 characters)")
    target = (request.form.get("parent_id") or request.form.get("thread_id") or "").strip()
    post_key = _post_key(svc, target) if target else None
    ticket_post_key = svc.store.outbox.ticket_post_key_of(post_key) if post_key else None
    ticket_post = svc.store.posts.load_post(ticket_post_key) if ticket_post_key else None
    if ticket_post is None or ticket_post[1].brand != instance["brand"]:
        # Also for another brand's post: an instance answers only the conversations it received.
        return _error(404, f"parent_id/thread_id {target!r} is not a post this integration instance received")
    if ticket_post[0].platform not in REPLYABLE_PLATFORMS:
        return _error(422, f"posts from {ticket_post[0].platform} cannot be answered from Zendesk")
    dedupe_key = f"zendesk-channel:{request_id}"
    earlier = svc.store.exchanges.exchange(dedupe_key)
    if earlier is not None and (earlier["helpdesk"] != HELPDESK or earlier["ticket_id"] != instance["id"]):
        # Checked before sending: a retry must never re-send another instance's failed reply.
        return _error(409, "request_unique_identifier was already used by another integration instance")
    try:
        outcome = send_reply_to_post(svc.store, svc.sources, ticket_post_key=ticket_post_key, helpdesk=HELPDESK,
                                     ticket_id=instance["id"], agent=instance["signature"], text=message,
                                     dedupe_key=dedupe_key, signature=svc.settings.reply_signature)
    except ReplyFailed as exc:
        # Semantics of error statuses are UNVERIFIED (helpdesk-apis.md §5.1): 503 asks for a
        # retry (same request_unique_identifier, so still at most one post), 422 does not.
        return _error(503 if exc.retryable else 422, f"reply not sent: {exc}")
    except UnknownTicket as exc:
        return _error(404, str(exc))
    exchange = outcome.exchange
    if exchange["ticket_id"] != instance["id"] or exchange["helpdesk"] != HELPDESK:  # lost a race to another
        return _error(409, "request_unique_identifier was already used by another integration instance")
    if exchange["status"] == "sending":
        return _error(503, "this reply is still being sent; retry later with the same request_unique_identifier")
    platform = exchange["reply_to_key"].partition(":")[0]
    reply_id = (external_id(platform, exchange["network_id"]) if exchange["network_id"]
                else f"yorisoi:reply:{exchange['id']}")
    log.info("channelback for instance %s: reply %s to %s (%s)", instance["id"], reply_id, exchange["reply_to_key"],
             "duplicate" if outcome.duplicate else exchange["status"])
    return jsonify({"external_id": reply_id, "allow_channelback": True})


# --- clickthrough, events -------------------------------------------------------------------
@bp.get("/zendesk/channel/clickthrough")
def clickthrough():
    """Only `external_id` is sent, no metadata [WP]: post URLs are public, so nothing leaks."""
    svc = services()
    external = (request.args.get("external_id") or "").strip()
    post_key = _post_key(svc, external) if external else None
    loaded = svc.store.posts.load_post(post_key) if post_key else None
    url = loaded[0].url if loaded and loaded[1].qualified else None
    if not url or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        return _error(404, f"no post with a link for external_id {external!r}")
    return redirect(url, code=302)


@bp.post("/zendesk/channel/events")
def events():
    """Event callbacks: `{"events": [...]}` in batches [CF-event_callbacks].

    Each is logged by type, subdomain and integration (never its metadata). On
    `destroy_integration_instance` the instance named by its (signed) metadata stops being
    served; an unsigned or foreign metadata changes nothing, so a stranger cannot stop ours.
    """
    svc = services()
    signer = _signer(_channel())
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return _error(400, 'expected a JSON object {"events": [...]}')
    destroyed = []
    for event in body["events"]:
        if not isinstance(event, dict):
            continue
        type_id = str(event.get("type_id"))
        log.info("zendesk channel event %s subdomain=%s integration=%s (%s)%s", type_id, event.get("subdomain"),
                 event.get("integration_name"), event.get("integration_id"),
                 f" error={event['error']!r}" if event.get("error") else "")
        if type_id != "destroy_integration_instance":
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        try:
            claims = signer.open(METADATA, data.get("metadata"))
        except BadToken as exc:
            log.warning("destroy_integration_instance ignored: %s", exc)
            continue
        if svc.store.channel.destroy_channel_instance(str(claims.get("i"))):
            destroyed.append(claims.get("i"))
            log.info("channel instance %s destroyed in Zendesk: no more pulls or channelbacks", claims.get("i"))
    return jsonify({"ok": True, "events": len(body["events"]), "destroyed": destroyed})
