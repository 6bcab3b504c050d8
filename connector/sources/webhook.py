"""Posts pushed to `POST /sources/webhook` by any other tool (the receiving blueprint is
`connector/web/webhooks.py`). Nothing is polled and nothing is answered from here."""
from __future__ import annotations

from connector.sources.platform import PlatformInfo

INFO = PlatformInfo(name="webhook", display_ja="Webhook", display_en="Webhook")
