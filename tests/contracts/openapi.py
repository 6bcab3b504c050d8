"""Shared by the contract tests: OpenAPI documents as JSON Schema validators, operations found
by method and concrete path, and HTTP exchanges captured from a real client's requests.Session.

Not a general OpenAPI implementation: the subset the published specs in ../shared/specs use
(OpenAPI 3.0 `nullable`, `discriminator` ignored, `$ref` into components; 3.1 as JSON Schema 2020-12).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from jsonschema import Draft7Validator, Draft202012Validator

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"


@lru_cache(maxsize=None)
def load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _openapi30_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema; `discriminator` and examples dropped."""
    if isinstance(node, list):
        return [_openapi30_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi30_to_jsonschema(v) for k, v in node.items()
           if k not in ("nullable", "example", "discriminator", "xml", "externalDocs")}
    if node.get("nullable") is True:
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            # A nullable enum (Zendesk's ticket `type`, …): the spec's author marked the field
            # nullable, and the services answer null there; read it as allowing null.
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@lru_cache(maxsize=None)
def _components(path: Path) -> dict[str, Any]:
    spec = load(path)
    if spec["openapi"].startswith("3.0"):
        return _openapi30_to_jsonschema(spec["components"])
    return spec["components"]


def schema_validator(path: Path, schema: dict[str, Any]) -> Any:
    """A validator for `schema` (usually a `$ref`) with the document's components in reach."""
    spec = load(path)
    document = {**schema, "components": _components(path)}
    if spec["openapi"].startswith("3.0"):
        document = _openapi30_to_jsonschema(document)
        return Draft7Validator(document)
    return Draft202012Validator(document)


def component_validator(path: Path, name: str) -> Any:
    return schema_validator(path, {"$ref": f"#/components/schemas/{name}"})


def operation(path: Path, method: str, concrete: str) -> tuple[str, dict[str, Any]]:
    """The operation serving `method concrete-path`: literal templates before parameterised."""
    paths = load(path)["paths"]
    candidates = []
    for template, item in paths.items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, concrete) and method.lower() in item:
            candidates.append((template.count("{"), template))
    if not candidates:
        raise LookupError(f"no operation for {method} {concrete} in {path.name}")
    template = min(candidates)[1]
    return template, paths[template][method.lower()]


def _resolve(path: Path, node: dict[str, Any]) -> dict[str, Any]:
    spec = load(path)
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_validator(path: Path, method: str, concrete: str, status: int) -> Any:
    _template, op = operation(path, method, concrete)
    responses = op["responses"]
    response = _resolve(path, responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
                        or responses["default"])
    content = response.get("content") or {}
    media = content.get("application/json") or next(iter(content.values()))
    return schema_validator(path, media["schema"])


def query_problems(path: Path, method: str, concrete: str, args: dict[str, list[str]]) -> list[str]:
    """Query parameters the operation does not declare, or values outside a declared enum
    (comma-separated arrays with `explode: false`, as X's field lists)."""
    template, op = operation(path, method, concrete)
    declared = {}
    # Parameters of the path item apply to all its operations (OpenAPI 3, Path Item Object).
    for param in [*(load(path)["paths"][template].get("parameters") or []), *(op.get("parameters") or [])]:
        param = _resolve(path, param)
        if param.get("in") == "query":
            declared[param["name"]] = param
    problems = []
    for name, values in args.items():
        param = declared.get(name)
        if param is None:
            problems.append(f"{method} {concrete}: undeclared query parameter {name!r}")
            continue
        schema = _resolve(path, param.get("schema") or {})
        items = _resolve(path, schema.get("items") or {}) if schema.get("type") == "array" else schema
        allowed = items.get("enum")
        if allowed is None:
            continue
        for value in values:
            parts = value.split(",") if schema.get("type") == "array" and param.get("explode") is False else [value]
            problems += [f"{method} {concrete}: {name}={part!r} not in the spec's enum" for part in parts if part not in allowed]
    return problems


def errors(validator: Any, body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))]


@dataclass
class Exchange:
    method: str
    path: str
    args: dict[str, list[str]]
    status: int
    body: Any
    request_body: Any


class Capture:
    """Every answer a requests.Session receives, with the request that caused it."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def attach(self, session: requests.Session) -> "Capture":
        session.hooks.setdefault("response", []).append(self._hook)
        return self

    def _hook(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        url = urlsplit(response.request.url)
        try:
            body = response.json()
        except ValueError:
            body = None
        raw = response.request.body
        try:
            sent = json.loads(raw) if raw else None
        except (TypeError, ValueError):
            sent = raw
        self.exchanges.append(Exchange(response.request.method, url.path, parse_qs(url.query, keep_blank_values=True),
                                       response.status_code, body, sent))

    def on(self, path_part: str) -> list[Exchange]:
        return [e for e in self.exchanges if path_part in e.path]
