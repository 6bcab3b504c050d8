"""`yorisoi zendesk-app`: the Zendesk app package (Zendesk Apps framework v2) for this connector.

One zip a Zendesk admin uploads as a private app (Admin Center → Apps and integrations → Zendesk
Support apps → Upload private app). Installing it creates, in the admin's account, everything
docs/zendesk.md used to ask them to click together by hand:

- `manifest.json` — a private app with a `ticket_sidebar` location whose URL is this connector's
  `/zendesk/app/sidebar`, `signed: true` so Zendesk POSTs a ZAF JWT naming the agent
  (https://developer.zendesk.com/documentation/apps/app-developer-guide/manifest/ "location",
  "signedUrls"; https://developer.zendesk.com/documentation/apps/build-an-app/building-a-server-side-app/part-5-secure-the-app/).
- `requirements.json` — https://developer.zendesk.com/documentation/apps/app-developer-guide/apps_requirements/:
  the Channel framework integration (`channel_integrations` → our manifest URL; at most one per
  app, https://developer.zendesk.com/documentation/channel_framework/understanding-the-channel-framework/channel_installer/),
  the reply and status webhooks with their signing secrets and their triggers, one drop-down
  ticket field per analysis label, and the 「Yorisoi（SNS）」 view.
- `translations/ja.json`, `translations/en.json`, `assets/logo.png`, `assets/logo-small.png`.

Pure: `app_files()` returns {path: bytes}; `write_zip()` is the only I/O. The package is checked
against the documented formats by `formats.check_package()` before it is written.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.helpdesks.zendesk.app import png
from connector.helpdesks.zendesk.client import STATUS_BODY_TEMPLATE, WEBHOOK_BODY_TEMPLATE_V2, webhook_signing_secret
from connector.labels import LABEL_NAMES, TAG_PREFIX, VALUE_NAMES
from connector.version import __version__

SIDEBAR_PATH = "/zendesk/app/sidebar"
APP_NAME = "Yorisoi 寄り添い"
#: The view's title as the issue names it; agents find Yorisoi tickets there.
VIEW_TITLE = "Yorisoi（SNS）"


class AppPackageError(ValueError):
    """The package cannot be built as asked (the message names the option or variable)."""


@dataclass(frozen=True)
class AppSettings:
    public_url: str  # https://yorisoi.example.co.jp (no trailing slash)
    channel_secret: str  # YORISOI_CHANNEL_SECRET: derives the webhooks' signing secrets

    def __repr__(self) -> str:
        return f"AppSettings(public_url={self.public_url!r})"

    @classmethod
    def make(cls, public_url: str | None, channel_secret: str | None) -> "AppSettings":
        url = (public_url or "").strip().rstrip("/")
        parts = urlsplit(url)
        if not url:
            raise AppPackageError("set YORISOI_PUBLIC_URL or give --public-url: the https URL where Zendesk reaches "
                                  "this connector / YORISOI_PUBLIC_URL か --public-url にこの接続先の https URL を指定してください")
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.path not in ("", "/"):
            # Zendesk accepts only https for remote app locations and channel manifests.
            raise AppPackageError(f"public URL {url!r} must be https://host without a path, query or fragment "
                                  "/ 公開 URL は https://ホスト名 の形で指定してください")
        if len(channel_secret or "") < 16:
            raise AppPackageError("set YORISOI_CHANNEL_SECRET (16+ random characters): it signs the install code and "
                                  "the app's webhooks / YORISOI_CHANNEL_SECRET（16 文字以上）を設定してください")
        return cls(public_url=url, channel_secret=channel_secret or "")


def manifest(settings: AppSettings) -> dict[str, Any]:
    """manifest.json (Zendesk's manifest reference; keys as zendesk_apps_support reads them)."""
    return {
        "name": APP_NAME,
        "author": {"name": "Yorisoi", "url": settings.public_url},
        "defaultLocale": "ja",
        "private": True,
        "location": {"support": {"ticket_sidebar": {
            "url": settings.public_url + SIDEBAR_PATH,
            # The iframe is our own page: Zendesk POSTs the ZAF JWT (form field `token`) to it.
            "signed": True,
            "flexible": True,
        }}},
        "version": __version__,
        "frameworkVersion": "2.0",
        "singleInstall": True,
        "signedUrls": True,
        # No parameters: the JWT is checked with the app's public key (RS256), not a shared
        # secret the admin would have to type; the webhooks' secrets come with the requirements.
        "parameters": [],
    }


def _label_fields() -> dict[str, Any]:
    """One drop-down (`tagger`) field per tagged label. Its option values are exactly the tags
    the connector already puts on each ticket (`sentiment_negative` …): Zendesk sets a drop-down
    field from a matching tag, so the fields fill themselves without ZENDESK_FIELDS ids
    (https://support.zendesk.com/hc/en-us/articles/4408883152794, drop-down fields and tags)."""
    fields: dict[str, Any] = {}
    for label, prefix in TAG_PREFIX.items():
        ja, en = LABEL_NAMES[label]
        fields[f"yorisoi_{label}"] = {
            "type": "tagger",
            "title": f"Yorisoi {ja} / {en}",
            "description": f"Yorisoi の分析ラベル「{ja}」（{en}）。タグ {prefix}_* から自動で入ります。",
            "visible_in_portal": False,
            "editable_in_portal": False,
            "custom_field_options": [{"name": f"{v_ja} / {v_en}", "value": f"{prefix}_{value}"}
                                     for value, (v_ja, v_en) in VALUE_NAMES[label].items()],
        }
    return fields


def requirements(settings: AppSettings) -> dict[str, Any]:
    """requirements.json. Triggers point at their webhook by its requirement key, which Zendesk
    replaces with the created webhook's id (apps_requirements, "Referencing other requirements").
    Condition fields and operators as the Triggers API names them
    (https://developer.zendesk.com/api-reference/ticketing/business-rules/conditions/): `current_tags`
    `includes` and `status` `less_than` as in the Support OAS examples (shared/specs/zendesk);
    `update_type`, `comment_is_public` and `role` (the current user's) from that reference, not yet
    checked against a live account."""
    base = settings.public_url
    webhook = {"status": "active", "http_method": "POST", "request_format": "json",
               "subscriptions": ["conditional_ticket_events"]}
    return {
        "channel_integrations": {
            "yorisoi_channel": {"manifest_url": base + "/zendesk/manifest.json"},
        },
        "webhooks": {
            "yorisoi_reply_webhook": dict(webhook, name="Yorisoi: 返信 / agent replies",
                                          endpoint=base + "/zendesk/webhook",
                                          signing_secret={"algorithm": "SHA256", "secret": webhook_signing_secret(
                                              settings.channel_secret, "reply")}),
            "yorisoi_status_webhook": dict(webhook, name="Yorisoi: 状態 / ticket status",
                                           endpoint=base + "/zendesk/status",
                                           signing_secret={"algorithm": "SHA256", "secret": webhook_signing_secret(
                                               settings.channel_secret, "status")}),
        },
        "triggers": {
            "yorisoi_reply_trigger": {
                "title": "Yorisoi: 返信を SNS へ / replies to the network",
                "conditions": {"all": [
                    {"field": "update_type", "operator": "is", "value": "Change"},
                    {"field": "comment_is_public", "operator": "is", "value": "true"},
                    {"field": "role", "operator": "is_not", "value": "end_user"},
                    {"field": "current_tags", "operator": "includes", "value": "yorisoi"},
                ], "any": []},
                # The body names the comment by id only: the connector reads the reply's text
                # from the Zendesk API, so quotes and line breaks in it never meet JSON.
                "actions": [{"field": "notification_webhook",
                             "value": ["yorisoi_reply_webhook", WEBHOOK_BODY_TEMPLATE_V2]}],
            },
            "yorisoi_status_trigger": {
                "title": "Yorisoi: 状態 / status",
                "conditions": {"all": [
                    {"field": "update_type", "operator": "is", "value": "Change"},
                    {"field": "current_tags", "operator": "includes", "value": "yorisoi"},
                ], "any": [
                    {"field": "status", "operator": "changed"},
                    {"field": "comment_is_public", "operator": "is", "value": "true"},
                ]},
                "actions": [{"field": "notification_webhook",
                             "value": ["yorisoi_status_webhook", STATUS_BODY_TEMPLATE]}],
            },
        },
        "ticket_fields": _label_fields(),
        "views": {
            "yorisoi_view": {
                "title": VIEW_TITLE,
                "active": True,
                "conditions": {"all": [
                    {"field": "current_tags", "operator": "includes", "value": "yorisoi"},
                    {"field": "status", "operator": "less_than", "value": "solved"},
                ], "any": []},
                "output": {"columns": ["status", "subject", "requester", "priority", "created"],
                           "sort_by": "created_at", "sort_order": "asc"},
            },
        },
    }


def translations() -> dict[str, dict[str, Any]]:
    """translations/<locale>.json: a private app needs `app.name` (zendesk_apps_support
    validations/translations.rb); the descriptions help the admin who finds it in the list."""
    return {
        "ja": {"app": {"name": APP_NAME, "short_description": "SNS の投稿をチケットにし、サイドバーに投稿者と分析を表示します",
                       "long_description": "Yorisoi（寄り添い）: 公開投稿の分析・チケット作成・返信の連携。",
                       "installation_instructions": "インストール後、チャネルの連携でアカウントを追加し、接続コードを入力します。"}},
        "en": {"app": {"name": APP_NAME, "short_description": "Public posts as tickets, with the author and the analysis in the sidebar",
                       "long_description": "Yorisoi: analysed public posts as tickets, agents' replies back to the network.",
                       "installation_instructions": "After installing, add an account under Channel integrations and type the install code."}},
    }


def _json(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def app_files(settings: AppSettings) -> dict[str, bytes]:
    """Every file of the package, by path inside the zip."""
    files = {
        "manifest.json": _json(manifest(settings)),
        "requirements.json": _json(requirements(settings)),
        "assets/logo.png": png.logo(320),
        "assets/logo-small.png": png.logo(128),
    }
    for locale, data in translations().items():
        files[f"translations/{locale}.json"] = _json(data)
    return files


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """The files as a zip with the manifest at its root (Zendesk refuses a nested manifest.json),
    fixed timestamps so the same settings give the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return out.getvalue()


def write_zip(path: Path, files: dict[str, bytes]) -> int:
    data = zip_bytes(files)
    path.write_bytes(data)
    return len(data)
