"""The documented formats of a Zendesk app package, as a checker: `check_package(files)` → problems.

`zcli apps:validate` needs a live Zendesk account and credentials, so the package is checked
here against what Zendesk documents and what its validator (zendesk/zendesk_apps_support,
lib/zendesk_apps_support/validations/*.rb, run by Zendesk on upload) enforces:

- files: https://developer.zendesk.com/documentation/apps/getting-started/setting-up-new-apps/
  ("File requirements": manifest.json at the root, assets/logo.png, assets/logo-small.png,
  translations/en.json);
- manifest.json: https://developer.zendesk.com/documentation/apps/app-developer-guide/manifest/
  (validations/manifest.rb: author and defaultLocale required, a translation file for the default
  locale, frameworkVersion "2.0", known locations, location URLs https or assets/, boolean flags,
  `parameters` an array with no parameter called `name`, known parameter types);
- requirements.json: https://developer.zendesk.com/documentation/apps/app-developer-guide/apps_requirements/
  (validations/requirements.rb: known resource types, `title` on every resource but channel
  integrations and webhooks, one channel integration with a `manifest_url`, webhooks with
  name/status/endpoint/http_method/request_format; the resource schemas of the Webhooks,
  Triggers, Views and Ticket Fields APIs for the rest);
- translations: validations/translations.rb (JSON objects, `app.name` for a private app).

Plus Yorisoi's own rule for webhook bodies: a JSON body must stay JSON whatever the agent wrote,
so it may hold only placeholders whose values cannot contain quotes or line breaks.
Pure: files in, a list of problems (each naming the file and the key) out.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

from connector.helpdesks.zendesk.app.png import read_png_size

REQUIRED_FILES = ("manifest.json", "assets/logo.png", "assets/logo-small.png", "translations/en.json")
#: validations/translations.rb VALID_LOCALE
VALID_LOCALE = re.compile(r"^[a-z]{2,3}(-\w{2,3})?$")
#: app_version.rb: the framework versions Zendesk serves today.
FRAMEWORK_VERSIONS = ("2.0",)
#: location.rb, Support product's locations.
SUPPORT_LOCATIONS = frozenset({"top_bar", "nav_bar", "ticket_sidebar", "new_ticket_sidebar", "user_sidebar",
                               "organization_sidebar", "background", "modal", "ticket_editor", "system_top_bar"})
#: manifest/parameter.rb TYPES (mtls only behind a flag)
PARAMETER_TYPES = frozenset({"text", "checkbox", "url", "number", "multiline", "hidden", "oauth"})
MANIFEST_BOOLEANS = ("requirementsOnly", "marketingOnly", "singleInstall", "signedUrls", "private")
#: app_requirement.rb TYPES
REQUIREMENT_TYPES = frozenset({"automations", "channel_integrations", "custom_objects", "macros", "targets", "views",
                               "ticket_fields", "triggers", "user_fields", "organization_fields", "webhooks",
                               "custom_objects_v2"})
#: Webhooks API: https://developer.zendesk.com/api-reference/webhooks/webhooks-api/webhooks/ (JSON format)
WEBHOOK_REQUIRED = ("name", "status", "endpoint", "http_method", "request_format")
WEBHOOK_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
WEBHOOK_FORMATS = frozenset({"json", "xml", "form_encoded"})
WEBHOOK_STATUSES = frozenset({"active", "inactive"})
#: Ticket Fields API: https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_fields/ ("type")
TICKET_FIELD_TYPES = frozenset({"text", "textarea", "checkbox", "date", "integer", "decimal", "regexp",
                                "partialcreditcard", "multiselect", "tagger", "lookup"})
#: Zendesk tags: no spaces; the drop-down option values become tags (lower case in practice).
TAG = re.compile(r"^[a-z0-9_\-:/.]{1,80}$")
#: Placeholders whose values are free text (an agent's or a customer's words, names, titles):
#: inside a JSON body they may carry `"` or a line break and break it
#: (https://support.zendesk.com/hc/en-us/articles/4408886858138 lists them).
FREE_TEXT_PLACEHOLDER = re.compile(
    r"\{\{\s*(comment\.(value|body|html_body|text|value_rich)|ticket\.(title|description|latest_comment\w*|"
    r"comments_formatted|public_comments_formatted)|[\w.]*\.name|[\w.]*first_name|[\w.]*last_name|"
    r"[\w.]*\.details|[\w.]*\.notes|[\w.]*\.signature)\s*\}\}")
LIQUID = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)


def _json(files: Mapping[str, bytes], path: str, problems: list[str]) -> Any:
    try:
        data = json.loads(files[path].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{path}: not valid JSON ({exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: must be a JSON object")
        return None
    return data


def _https(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname)


def check_manifest(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    p: list[str] = []
    where = "manifest.json"
    for key in ("author", "defaultLocale"):
        if manifest.get(key) is None:
            p.append(f"{where}: missing required key {key!r}")
    author = manifest.get("author")
    if author is not None and not (isinstance(author, dict) and isinstance(author.get("name"), str)):
        p.append(f"{where}: author must be an object with a name")
    elif isinstance(author, dict) and author.get("url") is not None and urlsplit(str(author["url"])).scheme not in ("http", "https"):
        p.append(f"{where}: author.url is not a URL")
    for key in MANIFEST_BOOLEANS:
        if key in manifest and not isinstance(manifest[key], bool):
            p.append(f"{where}: {key} must be true or false, not {manifest[key]!r}")
    for key in ("defaultLocale", "version", "frameworkVersion"):
        if key in manifest and not isinstance(manifest[key], str):
            p.append(f"{where}: {key} must be a string")
    locale = manifest.get("defaultLocale")
    if isinstance(locale, str):
        if not VALID_LOCALE.match(locale):
            p.append(f"{where}: defaultLocale {locale!r} is not a locale such as ja or en")
        elif f"translations/{locale}.json" not in files:
            p.append(f"{where}: defaultLocale {locale!r} needs translations/{locale}.json")
    requirements_only = manifest.get("requirementsOnly") is True
    if not requirements_only:
        if manifest.get("frameworkVersion") not in FRAMEWORK_VERSIONS:
            p.append(f"{where}: frameworkVersion must be one of {', '.join(FRAMEWORK_VERSIONS)}, "
                     f"not {manifest.get('frameworkVersion')!r}")
        p += _check_locations(manifest.get("location"), files)
    parameters = manifest.get("parameters", [])
    if not isinstance(parameters, list):
        p.append(f"{where}: parameters must be an array")
    else:
        names = [q.get("name") for q in parameters if isinstance(q, dict)]
        for name in {n for n in names if names.count(n) > 1}:
            p.append(f"{where}: parameter {name!r} is declared twice")
        for q in parameters:
            if not isinstance(q, dict) or not isinstance(q.get("name"), str):
                p.append(f"{where}: every parameter needs a name")
                continue
            if q["name"] == "name":
                p.append(f"{where}: a parameter may not be called 'name'")
            if q.get("type", "text") not in PARAMETER_TYPES:
                p.append(f"{where}: parameter {q['name']!r} has unknown type {q.get('type')!r}")
            if q.get("type") == "hidden" and q.get("required"):
                p.append(f"{where}: hidden parameter {q['name']!r} cannot be required")
            if q.get("scopes") is not None and not q.get("secure"):
                p.append(f"{where}: parameter {q['name']!r} has scopes but is not secure")
    return p


def _check_locations(location: Any, files: Mapping[str, bytes]) -> list[str]:
    where = "manifest.json: location"
    if not isinstance(location, dict) or not location:
        return [f"{where} is missing (an app with a UI needs at least one location)"]
    p: list[str] = []
    for product, places in location.items():
        if product != "support":
            p.append(f"{where}: product {product!r} is not checked here (Yorisoi ships a Support app)")
            continue
        if not isinstance(places, dict) or not places:
            p.append(f"{where}.support must name at least one location")
            continue
        for name, options in places.items():
            if name not in SUPPORT_LOCATIONS:
                p.append(f"{where}.support: unknown location {name!r}")
            url = options.get("url") if isinstance(options, dict) else options
            if not isinstance(url, str) or not url:
                p.append(f"{where}.support.{name}: needs a url")
                continue
            parts = urlsplit(url)
            if parts.scheme:
                if parts.scheme != "https" and parts.hostname != "localhost":
                    p.append(f"{where}.support.{name}: url {url!r} must be https")
            elif not (url.startswith("assets/") and url.split("?")[0] in files):
                p.append(f"{where}.support.{name}: relative url {url!r} must be a file under assets/")
            if isinstance(options, dict):
                for flag in ("signed", "flexible", "autoLoad"):
                    if flag in options and not isinstance(options[flag], bool):
                        p.append(f"{where}.support.{name}.{flag} must be true or false")
    return p


def check_webhook_body(body: Any, where: str) -> list[str]:
    """A JSON webhook body: valid JSON once placeholders are filled, and only with placeholders
    whose values cannot break it (see FREE_TEXT_PLACEHOLDER)."""
    if not isinstance(body, str):
        return [f"{where}: the webhook body must be a string"]
    p = [f"{where}: placeholder {m.group(0)!r} is free text and can break the JSON body "
         "(quotes, line breaks); send an id and read the text from the API"
         for m in FREE_TEXT_PLACEHOLDER.finditer(body)]
    try:
        json.loads(LIQUID.sub("1", body))
    except ValueError as exc:
        p.append(f"{where}: the body is not JSON once its placeholders are filled ({exc})")
    return p


def check_requirements(req: Mapping[str, Any]) -> list[str]:
    where = "requirements.json"
    p: list[str] = []
    unknown = sorted(set(req) - REQUIREMENT_TYPES)
    if unknown:
        p.append(f"{where}: unknown resource types {', '.join(unknown)}")
    for kind, resources in req.items():
        if not isinstance(resources, dict):
            p.append(f"{where}: {kind} must be an object of resources keyed by identifier")
            continue
        if kind in ("channel_integrations", "custom_objects", "webhooks", "custom_objects_v2"):
            continue
        for key, resource in resources.items():
            if not isinstance(resource, dict) or "title" not in resource:
                p.append(f"{where}: {kind}.{key} is missing required field 'title'")
    channels = req.get("channel_integrations") or {}
    if isinstance(channels, dict):
        if len(channels) > 1:
            p.append(f"{where}: an app may declare only one channel integration")
        for key, channel in channels.items():
            if not isinstance(channel, dict) or "manifest_url" not in channel:
                p.append(f"{where}: channel_integrations.{key} is missing required field 'manifest_url'")
            elif not _https(channel["manifest_url"]):
                p.append(f"{where}: channel_integrations.{key}.manifest_url must be an https URL")
    webhooks = req.get("webhooks") or {}
    formats: dict[str, str] = {}
    if isinstance(webhooks, dict):
        for key, hook in webhooks.items():
            if not isinstance(hook, dict):
                p.append(f"{where}: webhooks.{key} must be an object")
                continue
            for field in WEBHOOK_REQUIRED:
                if field not in hook:
                    p.append(f"{where}: webhooks.{key} is missing required field {field!r}")
            if hook.get("http_method", "POST") not in WEBHOOK_METHODS:
                p.append(f"{where}: webhooks.{key}.http_method {hook.get('http_method')!r} is not an HTTP method")
            if hook.get("request_format", "json") not in WEBHOOK_FORMATS:
                p.append(f"{where}: webhooks.{key}.request_format must be one of {', '.join(sorted(WEBHOOK_FORMATS))}")
            if hook.get("status", "active") not in WEBHOOK_STATUSES:
                p.append(f"{where}: webhooks.{key}.status must be active or inactive")
            if "endpoint" in hook and not _https(hook["endpoint"]):
                p.append(f"{where}: webhooks.{key}.endpoint must be an https URL")
            subs = hook.get("subscriptions", ["conditional_ticket_events"])
            if not isinstance(subs, list) or ("conditional_ticket_events" in subs and len(subs) > 1):
                p.append(f"{where}: webhooks.{key}.subscriptions: conditional_ticket_events stands alone")
            secret = hook.get("signing_secret")
            if secret is not None and not (isinstance(secret, dict) and secret.get("algorithm") == "SHA256"
                                           and isinstance(secret.get("secret"), str) and secret["secret"]):
                p.append(f"{where}: webhooks.{key}.signing_secret must be {{algorithm: SHA256, secret}}")
            formats[key] = hook.get("request_format", "json")
    for key, trigger in (req.get("triggers") or {}).items():
        p += _check_rule(f"{where}: triggers.{key}", trigger, actions=True, webhooks=formats)
    for key, view in (req.get("views") or {}).items():
        p += _check_rule(f"{where}: views.{key}", view, actions=False, webhooks=formats)
        output = view.get("output") if isinstance(view, dict) else None
        if output is not None and not (isinstance(output, dict) and isinstance(output.get("columns", []), list)):
            p.append(f"{where}: views.{key}.output.columns must be an array")
    for key, field in (req.get("ticket_fields") or {}).items():
        p += _check_ticket_field(f"{where}: ticket_fields.{key}", field)
    return p


def _check_rule(where: str, rule: Any, *, actions: bool, webhooks: Mapping[str, str]) -> list[str]:
    """Triggers and views: {title, conditions: {all: [...], any: [...]}, actions (triggers)}
    (https://developer.zendesk.com/api-reference/ticketing/business-rules/triggers/,
    …/business-rules/views/, conditions reference)."""
    if not isinstance(rule, dict):
        return [f"{where} must be an object"]
    p: list[str] = []
    conditions = rule.get("conditions")
    if not isinstance(conditions, dict) or not (conditions.get("all") or conditions.get("any")):
        p.append(f"{where}.conditions needs an `all` or `any` array of conditions")
    else:
        for group in ("all", "any"):
            for i, cond in enumerate(conditions.get(group) or []):
                if not isinstance(cond, dict) or not cond.get("field") or not cond.get("operator"):
                    p.append(f"{where}.conditions.{group}[{i}] needs field and operator")
    if actions:
        acts = rule.get("actions")
        if not isinstance(acts, list) or not acts:
            p.append(f"{where}.actions must be a non-empty array")
            return p
        for i, act in enumerate(acts):
            if not isinstance(act, dict) or "field" not in act or "value" not in act:
                p.append(f"{where}.actions[{i}] needs field and value")
                continue
            if act["field"] == "notification_webhook":
                value = act["value"]
                if not (isinstance(value, list) and len(value) == 2):
                    p.append(f"{where}.actions[{i}]: notification_webhook takes [webhook, body]")
                    continue
                if value[0] not in webhooks:
                    p.append(f"{where}.actions[{i}]: webhook {value[0]!r} is not declared in requirements.json")
                elif webhooks[value[0]] == "json":
                    p += check_webhook_body(value[1], f"{where}.actions[{i}]")
    return p


def _check_ticket_field(where: str, field: Any) -> list[str]:
    if not isinstance(field, dict):
        return [f"{where} must be an object"]
    p: list[str] = []
    if field.get("type") not in TICKET_FIELD_TYPES:
        p.append(f"{where}.type {field.get('type')!r} is not a ticket field type")
    if field.get("type") in ("tagger", "multiselect"):
        options = field.get("custom_field_options")
        if not isinstance(options, list) or not options:
            p.append(f"{where}: a {field.get('type')} field needs custom_field_options")
        else:
            values = [o.get("value") for o in options if isinstance(o, dict)]
            for o in options:
                if not (isinstance(o, dict) and o.get("name") and isinstance(o.get("value"), str) and TAG.match(o["value"])):
                    p.append(f"{where}: option {o!r} needs a name and a tag-like value (no spaces)")
            if len(set(values)) != len(values):
                p.append(f"{where}: option values must be unique")
    return p


def check_translations(files: Mapping[str, bytes], private: bool) -> list[str]:
    p: list[str] = []
    for path in sorted(f for f in files if f.startswith("translations/")):
        m = re.fullmatch(r"translations/(.+)\.json", path)
        if not m or not VALID_LOCALE.match(m.group(1)):
            p.append(f"{path}: not a translations/<locale>.json file")
            continue
        data = _json(files, path, p)
        if data is None:
            continue
        app = data.get("app")
        needed = ["name"] if private else ["name", "short_description", "installation_instructions", "long_description"]
        if path == "translations/en.json" or m.group(1) == "ja":
            missing = [k for k in needed if not (isinstance(app, dict) and app.get(k))]
            if missing:
                p.append(f"{path}: app.{', app.'.join(missing)} missing")
    return p


def check_package(files: Mapping[str, bytes]) -> list[str]:
    """Every problem of the package (empty: it follows the documented formats)."""
    problems = [f"{name}: required file is missing" for name in REQUIRED_FILES if name not in files]
    nested = [f for f in files if f.endswith("/manifest.json")]
    if nested and "manifest.json" not in files:
        problems.append(f"{nested[0]}: manifest.json must be at the zip's root")
    for name, (width, height) in (("assets/logo.png", (320, 320)), ("assets/logo-small.png", (128, 128))):
        if name in files:
            try:
                size = read_png_size(files[name])
            except ValueError:
                problems.append(f"{name}: not a PNG image")
                continue
            if size != (width, height):
                problems.append(f"{name}: is {size[0]}×{size[1]}, Zendesk asks for {width}×{height}")
    manifest = _json(files, "manifest.json", problems) if "manifest.json" in files else None
    if manifest is not None:
        problems += check_manifest(manifest, files)
        problems += check_translations(files, private=manifest.get("private") is True)
    if "requirements.json" in files:
        requirements = _json(files, "requirements.json", problems)
        if requirements is not None:
            problems += check_requirements(requirements)
    return problems
