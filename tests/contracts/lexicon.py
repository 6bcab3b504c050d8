"""A small validator for the AT Protocol lexicon subset Yorisoi's Bluesky contract tests need.

Types: object (required, nullable, properties), string (formats at-uri, cid, did, handle,
datetime, uri, at-identifier, nsid, language, tid, record-key; maxLength; enum), integer
(minimum, maximum, enum), boolean, array (items, maxLength), ref (local `#def`, `nsid#def`,
`nsid` → main), union (closed or open: a known `$type` is validated, an unknown one in an open
union accepted), unknown (any object; an `app.bsky.feed.post` record inside is validated against
its record lexicon), blob, bytes, cid-link, record (its `record` object), params/procedure/query
outputs through `output_errors`/`input_errors`. Unknown keys are allowed (lexicons are open).
Lexicons are read from ../shared/specs/bluesky/lexicons.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from tests.contracts.openapi import SPECS
from tests.fakes.cid import parse_cid

LEXICONS = SPECS / "bluesky" / "lexicons"

_FORMATS = {
    "did": re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$"),
    "handle": re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"),
    "datetime": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"),
    "uri": re.compile(r"^[a-z][a-z.+-]*:\S+$"),
    "nsid": re.compile(r"^[a-zA-Z]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)+$"),
    "language": re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$|^i-[a-z]+$"),
    "tid": re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$"),
    "record-key": re.compile(r"^[a-zA-Z0-9._:~-]{1,512}$"),
}


def _at_uri(value: str) -> bool:
    m = re.fullmatch(r"at://([^/?#]+)(/([^/?#]+)(/([^/?#]+))?)?", value)
    if not m:
        return False
    authority, collection, rkey = m.group(1), m.group(3), m.group(5)
    return bool((_FORMATS["did"].match(authority) or _FORMATS["handle"].match(authority))
                and (collection is None or _FORMATS["nsid"].match(collection))
                and (rkey is None or _FORMATS["record-key"].match(rkey)))


def _cid(value: str) -> bool:
    try:
        parse_cid(value)
    except Exception:  # noqa: BLE001 - any parse failure means "not a CID"
        return False
    return True


def format_ok(fmt: str, value: str) -> bool:
    if fmt == "at-uri":
        return _at_uri(value)
    if fmt == "cid":
        return _cid(value)
    if fmt == "at-identifier":
        return bool(_FORMATS["did"].match(value) or _FORMATS["handle"].match(value))
    pattern = _FORMATS.get(fmt)
    return True if pattern is None else bool(pattern.match(value))


@lru_cache(maxsize=None)
def lexicon(nsid: str) -> dict[str, Any]:
    return json.loads((LEXICONS.joinpath(*nsid.split(".")).with_suffix(".json")).read_text(encoding="utf-8"))


def definition(ref: str, context: str) -> tuple[dict[str, Any], str]:
    """(the def, its nsid) for `#x` (in `context`), `nsid#x` or `nsid` (its main)."""
    nsid, _, name = ref.partition("#")
    nsid = nsid or context
    return lexicon(nsid)["defs"][name or "main"], nsid


class Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where or '<root>'}: {message}")

    def check(self, schema: dict[str, Any], value: Any, nsid: str, where: str = "") -> None:
        kind = schema.get("type")
        if kind == "ref":
            target, target_nsid = definition(schema["ref"], nsid)
            return self.check(target, value, target_nsid, where)
        if kind == "record":
            return self.check(schema["record"], value, nsid, where)
        if kind == "object":
            if not isinstance(value, dict):
                return self.fail(where, f"expected an object, got {type(value).__name__}")
            nullable = set(schema.get("nullable") or [])
            for key in schema.get("required") or []:
                if key not in value:
                    self.fail(where, f"required property {key!r} is missing")
            for key, sub in (schema.get("properties") or {}).items():
                if key in value:
                    if value[key] is None and key in nullable:
                        continue
                    self.check(sub, value[key], nsid, f"{where}/{key}")
            return None
        if kind == "union":
            if not isinstance(value, dict) or "$type" not in value:
                return self.fail(where, "a union member needs a $type")
            refs = {(r if "#" in r or r.count(".") >= 2 and not r.startswith("#") else r) for r in schema["refs"]}
            full = {(f"{nsid}{r}" if r.startswith("#") else r) for r in refs}
            wanted = value["$type"]
            match = next((r for r in full if r == wanted or (r.endswith("#main") and r[:-5] == wanted)
                          or (wanted.endswith("#main") and wanted[:-5] == r)), None)
            if match is None:
                if schema.get("closed"):
                    self.fail(where, f"$type {wanted!r} is not one of {sorted(full)}")
                return None
            return self.check({"type": "ref", "ref": match}, value, nsid, where)
        if kind == "unknown":
            if not isinstance(value, dict):
                return self.fail(where, "expected an object (unknown)")
            if value.get("$type") == "app.bsky.feed.post":
                return self.check({"type": "ref", "ref": "app.bsky.feed.post"}, value, nsid, where)
            return None
        if kind == "string":
            if not isinstance(value, str):
                return self.fail(where, f"expected a string, got {value!r}")
            if "maxLength" in schema and len(value.encode("utf-8")) > schema["maxLength"]:
                self.fail(where, f"longer than {schema['maxLength']} bytes")
            if "enum" in schema and value not in schema["enum"]:
                self.fail(where, f"{value!r} not in {schema['enum']}")
            if "const" in schema and value != schema["const"]:
                self.fail(where, f"{value!r} is not {schema['const']!r}")
            if "format" in schema and not format_ok(schema["format"], value):
                self.fail(where, f"{value!r} is not a valid {schema['format']}")
            return None
        if kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                return self.fail(where, f"expected an integer, got {value!r}")
            if "minimum" in schema and value < schema["minimum"]:
                self.fail(where, f"{value} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                self.fail(where, f"{value} > maximum {schema['maximum']}")
            return None
        if kind == "boolean":
            if not isinstance(value, bool):
                self.fail(where, f"expected a boolean, got {value!r}")
            return None
        if kind == "array":
            if not isinstance(value, list):
                return self.fail(where, f"expected an array, got {type(value).__name__}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.fail(where, f"more than {schema['maxLength']} items")
            for i, item in enumerate(value):
                self.check(schema["items"], item, nsid, f"{where}/{i}")
            return None
        if kind == "cid-link":
            if not (isinstance(value, dict) and isinstance(value.get("$link"), str) and _cid(value["$link"])):
                self.fail(where, "expected {$link: <cid>}")
            return None
        if kind == "blob":
            if not (isinstance(value, dict) and value.get("$type") == "blob"):
                self.fail(where, "expected a blob")
            return None
        if kind in ("bytes",):
            return None
        return self.fail(where, f"lexicon type {kind!r} not supported by this validator")


def output_errors(nsid: str, body: Any) -> list[str]:
    validator = Validator()
    validator.check(lexicon(nsid)["defs"]["main"]["output"]["schema"], body, nsid)
    return validator.errors


def input_errors(nsid: str, body: Any) -> list[str]:
    validator = Validator()
    validator.check(lexicon(nsid)["defs"]["main"]["input"]["schema"], body, nsid)
    return validator.errors


def record_errors(nsid: str, record: Any) -> list[str]:
    validator = Validator()
    validator.check(lexicon(nsid)["defs"]["main"], record, nsid)
    return validator.errors


def xrpc_error_errors(nsid: str, status: int, body: Any) -> list[str]:
    """An XRPC error answer: `{error, message?}`, the error named by the lexicon or generic."""
    generic = {"InvalidRequest", "ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing",
               "Forbidden", "RateLimitExceeded", "InternalServerError", "NotFound"}
    if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
        return [f"{nsid} {status}: an XRPC error needs a string `error`"]
    named = {e["name"] for e in lexicon(nsid)["defs"]["main"].get("errors") or []}
    if body["error"] not in generic | named:
        return [f"{nsid} {status}: error {body['error']!r} is neither generic nor one of {sorted(named)}"]
    if "message" in body and not isinstance(body["message"], str):
        return [f"{nsid} {status}: `message` must be a string"]
    return []
