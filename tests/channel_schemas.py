"""Zendesk's published Channel framework JSON schemas, as validators for the tests.

The schemas (zendesk/any_channel_json_schemas v0.15.0) live outside the repository, in
`../shared/specs/zendesk-channel/` (or the older copy in
`../shared/data/zendesk-any-channel-schemas/`); tests that need them skip with the reason when
that folder is absent. They are draft-04 era and use two things newer validators reject:
`"type": "any"` and `"type": "time"`, and the custom formats `https-url` and `external-id`.
Those are defined here as Zendesk documents them.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

#: The published-specs copy (../shared/specs/zendesk-channel, where the contract tests read
#: every spec) first; the older data-set copy of the same files as a fallback.
_SHARED = Path(__file__).resolve().parents[2] / "shared"
SCHEMA_DIR = next((d for d in (_SHARED / "specs" / "zendesk-channel", _SHARED / "data" / "zendesk-any-channel-schemas")
                   if d.is_dir()), _SHARED / "specs" / "zendesk-channel")


def _external_id(value: Any) -> bool:
    # Zendesk: ASCII, non-empty, no leading or trailing whitespace.
    return not isinstance(value, str) or (bool(value) and value.isascii() and value == value.strip())


def _https_url(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname)


def _date_time(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value and moment.tzinfo is not None


def validator(name: str):
    """A validator for `<name>.json`, or skip the test when the schemas are not here."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra: pip install -e '.[test]'")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    if not (SCHEMA_DIR / f"{name}.json").is_file():
        pytest.skip(f"Zendesk's Channel framework schemas are not at {SCHEMA_DIR} "
                    "(../shared/specs/zendesk-channel/ beside the repository)")
    documents = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in SCHEMA_DIR.glob("*.json")}
    registry = Registry().with_resources(
        (file_name, Resource.from_contents(document, default_specification=DRAFT4))
        for file_name, document in documents.items())
    base = jsonschema.Draft4Validator
    types = base.TYPE_CHECKER.redefine_many({
        "any": lambda _checker, _value: True,
        "time": lambda _checker, value: isinstance(value, str),
    })
    formats = jsonschema.FormatChecker()
    formats.checks("external-id")(_external_id)
    formats.checks("https-url")(_https_url)
    formats.checks("date-time")(_date_time)
    cls = jsonschema.validators.extend(base, type_checker=types)
    return cls(documents[f"{name}.json"], registry=registry, format_checker=formats)


def assert_valid(name: str, instance: Any) -> None:
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
