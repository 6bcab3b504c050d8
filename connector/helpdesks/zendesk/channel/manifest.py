"""The integration manifest Zendesk reads when an admin installs Yorisoi [CF-integration_manifest].

The top-level `manifest.json` is the source of truth (the wheel carries it inside the package,
like templates/). Its `urls` are paths; Zendesk gets them as absolute https URLs on
YORISOI_PUBLIC_URL, because the schema types every URL as `https-url` (Zendesk's own sample
serves relative URLs, which work, but absolute ones are what the schema promises).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.config import PACKAGE_DIR
from connector.helpdesks.zendesk.channel import ChannelSettings


def manifest_path() -> Path:
    packaged = PACKAGE_DIR / "manifest.json"
    return packaged if packaged.is_file() else PACKAGE_DIR.parent / "manifest.json"


def load_manifest() -> dict[str, Any]:
    return json.loads(manifest_path().read_text(encoding="utf-8"))


def served_manifest(settings: ChannelSettings, template: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest = dict(template or load_manifest())
    manifest["urls"] = {name: settings.public_url + path for name, path in manifest["urls"].items()}
    manifest.pop("push_client_id", None)
    if settings.push_client_id:
        # Only with a global OAuth client registered with Zendesk: the admin UI then also
        # receives `instance_push_id` and `zendesk_access_token` (push is not used yet).
        manifest["push_client_id"] = settings.push_client_id
    return manifest
