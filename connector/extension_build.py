"""Packaged builds of the sidebar extension: a Chrome/Edge zip (and a signed CRX3 for
self-hosted roll-out) and a Firefox zip (an unsigned .xpi for AMO's unlisted signing).

`extension/` is one folder for both browsers, loaded unpacked by developers and tests. A build
turns its manifest into one manifest per browser (each keeps only the keys its browser reads),
narrows the content-script matches and host permissions to the configured helpdesk and
connector hosts (never the loopback test pages, unless a test asks for them), adds icons, the
package version, the connector URL the extension starts with, and Chrome's managed-storage
schema so IT can set that URL by policy.

Pure functions build manifests and bytes; `build()` writes the files. CRX3 signing needs the
`cryptography` package (RSA PKCS#1 v1.5 over SHA-256, as Chrome verifies it).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import math
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from connector.envvars import EnvVar
from connector.version import __version__

PACKAGE_DIR = Path(__file__).resolve().parent

ENV = (
    EnvVar("YORISOI_EXTENSION_KEY_FILE", "(unset: no .crx, zips only)",
           "PEM file of the RSA private key that signs the Chrome/Edge extension (.crx) for "
           "ExtensionInstallForcelist; it fixes the extension's id, so keep it and reuse it for every "
           "version (`yorisoi extension keygen`). Secret.", secret=True, owner="connector.extension_build"),
    EnvVar("YORISOI_EXTENSION_DIR", "<data dir>/extension",
           "Folder `yorisoi extension build` writes to and the connector serves the self-hosted "
           "update manifests and packages from (/extension/chrome/updates.xml, /extension/firefox/updates.json).",
           owner="connector.extension_build"),
    EnvVar("YORISOI_EXTENSION_GECKO_ID", "sidebar@yorisoi.example",
           "The Firefox add-on id (browser_specific_settings.gecko.id) of the built extension; AMO "
           "signs one id per add-on, policies.json names it.", owner="connector.extension_build"),
)

#: Firefox's add-on id in the source manifest (kept unless YORISOI_EXTENSION_GECKO_ID says otherwise).
DEFAULT_GECKO_ID = "sidebar@yorisoi.example"
ICON_SIZES = (16, 32, 48, 128)
#: Names of the built files inside the output folder (the connector serves them by these names).
CHROME_ZIP, FIREFOX_XPI, CHROME_CRX, BUILD_INFO = "yorisoi-chrome.zip", "yorisoi-firefox.xpi", "yorisoi-chrome.crx", "build.json"
#: Firefox builds signed by AMO are put here by the admin (see docs/extension.md).
FIREFOX_SIGNED_XPI = "yorisoi-firefox.signed.xpi"
#: The helpdesk pages the content script runs on, per helpdesk: the agent UI's ticket paths.
HELPDESK_PATHS = {"zendesk": "/agent/*", "freshdesk": "/a/*"}
HELPDESK_WILDCARDS = {"zendesk": "https://*.zendesk.com", "freshdesk": "https://*.freshdesk.com"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: The only policy the extension reads from managed storage (Chrome: 3rdparty → extensions →
#: <id>; Firefox: policies.json 3rdparty → Extensions → <gecko id>).
MANAGED_SCHEMA = {
    "type": "object",
    "properties": {
        "connectorUrl": {
            "title": "Yorisoi connector URL / コネクタの URL",
            "description": "https URL of the Yorisoi connector (e.g. https://yorisoi.example.co.jp). "
                           "Set by IT: agents then only sign in.",
            "type": "string",
        },
    },
}


class BuildError(ValueError):
    """A build cannot be made as asked (bad URL, host or key); the message says what to fix."""


@dataclass(frozen=True)
class BuildOptions:
    """What a build is for. `connector_url` is preset in the extension and granted as a host
    permission; `helpdesk_hosts` narrow the content script to the team's own helpdesk (empty:
    every *.zendesk.com / *.freshdesk.com); `test_origins` add loopback pages (tests only)."""

    connector_url: str | None = None
    zendesk_hosts: tuple[str, ...] = ()
    freshdesk_hosts: tuple[str, ...] = ()
    test_origins: tuple[str, ...] = ()
    gecko_id: str = DEFAULT_GECKO_ID
    signing_key_pem: bytes | None = None


@dataclass(frozen=True)
class BuildResult:
    version: str
    chrome_zip: Path
    firefox_xpi: Path
    crx: Path | None
    chrome_id: str | None
    gecko_id: str
    files: tuple[str, ...] = field(default=())


def output_dir(env: Mapping[str, str], data_dir: Path) -> Path:
    """Where builds go and the connector serves them from: YORISOI_EXTENSION_DIR, else
    <data dir>/extension (the CLI writes there, the /extension routes read there)."""
    raw = (env.get("YORISOI_EXTENSION_DIR") or "").strip()
    return Path(raw) if raw else data_dir / "extension"


# --- sources ------------------------------------------------------------------------------
def source_dir() -> Path:
    """extension/: beside the package in a checkout, inside it in an installed wheel."""
    packaged = PACKAGE_DIR / "extension"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "extension"


def extension_version(package_version: str = __version__) -> str:
    """The package version as browsers accept it: 1–4 dot-separated integers (0–65535), so
    `0.2.0.dev3` → `0.2.0` (Chrome and Firefox refuse letters in `version`)."""
    match = re.match(r"^(\d+(?:\.\d+){0,3})", package_version.strip())
    if not match:
        raise BuildError(f"package version {package_version!r} has no numeric release part")
    parts = [int(p) for p in match.group(1).split(".")]
    if any(p > 65535 for p in parts):
        raise BuildError(f"package version {package_version!r}: each part must be at most 65535")
    return ".".join(str(p) for p in parts)


def normalise_connector_url(url: str | None) -> str | None:
    """The connector's base URL (no trailing slash), https unless on loopback; None if unset."""
    if not url or not url.strip():
        return None
    parts = urlsplit(url.strip())
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname or (parts.scheme == "http" and not loopback):
        raise BuildError(f"connector URL {url!r}: use the https URL agents reach the connector at "
                         "(YORISOI_PUBLIC_URL or --connector-url)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise BuildError(f"connector URL {url!r} must not carry a query, fragment or credentials")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _host(value: str, what: str) -> str:
    host = value.strip().lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+", host):
        raise BuildError(f"{what} {value!r} is not a host name (e.g. acme.zendesk.com)")
    return host


def options_from_env(env: Mapping[str, str], **overrides: Any) -> BuildOptions:
    """Build options from the connector's settings: YORISOI_PUBLIC_URL, the helpdesk's host
    (ZENDESK_SUBDOMAIN / ZENDESK_URL, FRESHDESK_DOMAIN / FRESHDESK_URL), the Firefox id and
    the signing key file. Keyword overrides win (the CLI's options)."""
    zendesk, freshdesk = [], []
    sub = (env.get("ZENDESK_SUBDOMAIN") or "").strip()
    if sub:
        zendesk.append(f"{sub}.zendesk.com")
    elif env.get("ZENDESK_URL"):
        zendesk.append(urlsplit(env["ZENDESK_URL"].strip()).hostname or "")
    domain = (env.get("FRESHDESK_DOMAIN") or "").strip()
    if domain:
        freshdesk.append(domain if "." in domain else f"{domain}.freshdesk.com")
    elif env.get("FRESHDESK_URL"):
        freshdesk.append(urlsplit(env["FRESHDESK_URL"].strip()).hostname or "")
    key_pem = None
    key_file = (env.get("YORISOI_EXTENSION_KEY_FILE") or "").strip()
    if key_file:
        try:
            key_pem = Path(key_file).read_bytes()
        except OSError as exc:
            raise BuildError(f"YORISOI_EXTENSION_KEY_FILE={key_file!r} cannot be read: {exc.strerror}") from None
    # A helpdesk on loopback is a developer's fake one: never a release build's match pattern.
    def real(hosts: list[str]) -> tuple[str, ...]:
        return tuple(h for h in hosts if h and h not in ("127.0.0.1", "localhost", "::1"))
    values: dict[str, Any] = {
        "connector_url": env.get("YORISOI_PUBLIC_URL"),
        "zendesk_hosts": real(zendesk),
        "freshdesk_hosts": real(freshdesk),
        "gecko_id": (env.get("YORISOI_EXTENSION_GECKO_ID") or "").strip() or DEFAULT_GECKO_ID,
        "signing_key_pem": key_pem,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return BuildOptions(**values)


# --- manifests ----------------------------------------------------------------------------
def _content_matches(opts: BuildOptions) -> list[str]:
    matches = []
    for helpdesk, hosts in (("zendesk", opts.zendesk_hosts), ("freshdesk", opts.freshdesk_hosts)):
        path = HELPDESK_PATHS[helpdesk]
        if hosts:
            matches += [f"https://{_host(h, helpdesk + ' host')}{path}" for h in hosts]
    if not matches:  # no helpdesk configured: every team's subdomain of both
        matches = [HELPDESK_WILDCARDS[h] + HELPDESK_PATHS[h] for h in ("zendesk", "freshdesk")]
    for origin in opts.test_origins:
        matches += [origin.rstrip("/") + path for path in HELPDESK_PATHS.values()]
    return matches


def _host_permissions(opts: BuildOptions, connector: str | None) -> list[str]:
    perms = []
    if connector:
        parts = urlsplit(connector)
        perms.append(f"{parts.scheme}://{parts.hostname}/*")
    perms += [f"https://{h}/*" for h in (*opts.zendesk_hosts, *opts.freshdesk_hosts)]
    perms += [origin.rstrip("/") + "/*" for origin in opts.test_origins]
    return list(dict.fromkeys(perms))


def _common(source: Mapping[str, Any], opts: BuildOptions, version: str) -> dict[str, Any]:
    manifest = copy.deepcopy(dict(source))
    connector = normalise_connector_url(opts.connector_url)
    for origin in opts.test_origins:
        if urlsplit(origin).hostname not in ("127.0.0.1", "localhost"):
            raise BuildError(f"test origin {origin!r}: only loopback pages may be added for tests")
    manifest["version"] = version
    manifest["icons"] = {str(s): f"icons/{s}.png" for s in ICON_SIZES}
    manifest.setdefault("action", {})["default_icon"] = {str(s): f"icons/{s}.png" for s in (16, 32)}
    [script] = manifest["content_scripts"]
    script["matches"] = _content_matches(opts)
    manifest["host_permissions"] = _host_permissions(opts, connector)
    if not manifest["host_permissions"]:
        del manifest["host_permissions"]
    # Another connector than the preset one is still possible (asked for at runtime).
    manifest["optional_host_permissions"] = ["https://*/*"]
    return manifest


def chrome_manifest(source: Mapping[str, Any], opts: BuildOptions, version: str,
                    public_key_der: bytes | None = None) -> dict[str, Any]:
    """The Chrome/Edge manifest: MV3 service worker and side panel, managed-storage schema,
    `update_url` on the connector (self-hosted updates), `key` when signed (fixes the id, so an
    unpacked copy of the zip has the same id as the installed CRX)."""
    manifest = _common(source, opts, version)
    manifest["background"] = {"service_worker": manifest["background"]["service_worker"]}
    for key in ("sidebar_action", "browser_specific_settings"):
        manifest.pop(key, None)
    manifest["storage"] = {"managed_schema": "managed_schema.json"}
    connector = normalise_connector_url(opts.connector_url)
    if connector and connector.startswith("https://"):
        # https://developer.chrome.com/docs/extensions/how-to/distribute/host-on-linux#update_url
        manifest["update_url"] = connector + "/extension/chrome/updates.xml"
    if public_key_der is not None:
        manifest["key"] = base64.b64encode(public_key_der).decode("ascii")
    return manifest


def firefox_manifest(source: Mapping[str, Any], opts: BuildOptions, version: str) -> dict[str, Any]:
    """The Firefox manifest: background scripts (Firefox has no extension service worker),
    sidebar_action, the gecko id and minimum version, and `update_url` for self-hosted updates.
    Chrome-only keys are left out (web-ext lint flags them)."""
    manifest = _common(source, opts, version)
    manifest["background"] = {"scripts": list(manifest["background"]["scripts"])}
    manifest["permissions"] = [p for p in manifest.get("permissions", []) if p != "sidePanel"]
    for key in ("side_panel", "minimum_chrome_version", "storage"):
        manifest.pop(key, None)
    gecko = manifest.setdefault("browser_specific_settings", {}).setdefault("gecko", {})
    gecko["id"] = opts.gecko_id
    connector = normalise_connector_url(opts.connector_url)
    if connector and connector.startswith("https://"):
        # https://extensionworkshop.com/documentation/manage/updating-your-extension/
        gecko["update_url"] = connector + "/extension/firefox/updates.json"
    return manifest


# --- icons --------------------------------------------------------------------------------
def _png(width: int, height: int, rgba_rows: Iterable[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + row for row in rgba_rows)  # filter type 0 on each scanline
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def icon_png(size: int) -> bytes:
    """The toolbar icon: a white 'Y' on a rounded square in the sidebar's green (#2f5d50),
    drawn with 4×4 supersampling so small sizes stay smooth. Deterministic bytes."""
    green, white = (0x2F, 0x5D, 0x50), (0xFF, 0xFF, 0xFF)
    radius, stroke = 0.22, 0.11
    strokes = (((0.30, 0.24), (0.50, 0.52)), ((0.70, 0.24), (0.50, 0.52)), ((0.50, 0.52), (0.50, 0.80)))

    def seg_dist(px: float, py: float, a: tuple[float, float], b: tuple[float, float]) -> float:
        ax, ay = a
        bx, by = b
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
        return math.hypot(px - ax - t * dx, py - ay - t * dy)

    def inside_square(px: float, py: float) -> bool:
        cx, cy = min(max(px, radius), 1 - radius), min(max(py, radius), 1 - radius)
        return math.hypot(px - cx, py - cy) <= radius

    rows = []
    n = 4
    for y in range(size):
        row = bytearray()
        for x in range(size):
            cover = mark = 0
            for sy in range(n):
                for sx in range(n):
                    px, py = (x + (sx + 0.5) / n) / size, (y + (sy + 0.5) / n) / size
                    if inside_square(px, py):
                        cover += 1
                        if min(seg_dist(px, py, a, b) for a, b in strokes) <= stroke / 2:
                            mark += 1
            if not cover:
                row += bytes((0, 0, 0, 0))
                continue
            f = mark / cover
            rgb = tuple(round(g + (w - g) * f) for g, w in zip(green, white))
            row += bytes((*rgb, round(255 * cover / (n * n))))
        rows.append(bytes(row))
    return _png(size, size, rows)


# --- packages -----------------------------------------------------------------------------
#: Fixed timestamp inside the zips: the same sources give byte-identical packages.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def _zip(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def _source_files(src: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and rel != "manifest.json" and not any(p.startswith(".") for p in rel.split("/")):
            files[rel] = path.read_bytes()
    return files


def package_files(manifest: Mapping[str, Any], sources: Mapping[str, bytes], opts: BuildOptions,
                  *, chrome: bool) -> dict[str, bytes]:
    files = dict(sources)
    files["manifest.json"] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    for size in ICON_SIZES:
        files[f"icons/{size}.png"] = icon_png(size)
    connector = normalise_connector_url(opts.connector_url)
    # The URL the extension starts with; a policy (managed storage) or the agent's own choice wins.
    files["config.json"] = (json.dumps({"connectorUrl": connector}, ensure_ascii=False) + "\n").encode("utf-8")
    if chrome:
        files["managed_schema.json"] = (json.dumps(MANAGED_SCHEMA, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    return files


# --- CRX3 ---------------------------------------------------------------------------------
# The format (Chromium components/crx_file/crx3.proto):
#   "Cr24" | uint32 LE 3 | uint32 LE header size | CrxFileHeader (protobuf) | zip archive
#   CrxFileHeader { repeated AsymmetricKeyProof sha256_with_rsa = 2; bytes signed_header_data = 10000; }
#   AsymmetricKeyProof { bytes public_key = 1; bytes signature = 2; }
#   SignedData { bytes crx_id = 1; }   (crx_id: the first 16 bytes of SHA-256(public key DER))
# Each proof signs "CRX3 SignedData\x00" + uint32 LE len(signed_header_data) + signed_header_data + archive.
# Only length-delimited fields occur, so a few lines of protobuf encoding do instead of a runtime.
CRX_MAGIC = b"Cr24"
CRX_SIGNATURE_CONTEXT = b"CRX3 SignedData\x00"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def proto_field(number: int, data: bytes) -> bytes:
    """One length-delimited (wire type 2) protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def proto_fields(data: bytes) -> list[tuple[int, bytes]]:
    """Decode a message of length-delimited fields (all CRX3 uses) → [(number, bytes)]."""
    fields, pos = [], 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(data):
                raise ValueError("truncated varint")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result
    while pos < len(data):
        key = varint()
        if key & 7 != 2:
            raise ValueError(f"unexpected wire type {key & 7}")
        length = varint()
        if pos + length > len(data):
            raise ValueError("field runs past the message")
        fields.append((key >> 3, data[pos:pos + length]))
        pos += length
    return fields


def load_private_key(pem: bytes):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise BuildError(f"the extension signing key is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise BuildError("the extension signing key must be an RSA key of 2048 bits or more "
                         "(yorisoi extension keygen makes one)")
    return key


def generate_private_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return load_private_key(pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def extension_id(public_der: bytes) -> str:
    """Chrome's extension id: the first 16 bytes of SHA-256 of the public key (DER
    SubjectPublicKeyInfo), each hex digit 0–f written as a letter a–p."""
    return "".join(chr(ord("a") + int(c, 16)) for c in hashlib.sha256(public_der).hexdigest()[:32])


def crx3(archive: bytes, pem: bytes) -> bytes:
    """A CRX3 package of `archive` (the zip) signed with the RSA key in `pem`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    key = load_private_key(pem)
    public_der = public_key_der(pem)
    signed_header_data = proto_field(1, hashlib.sha256(public_der).digest()[:16])
    signed = CRX_SIGNATURE_CONTEXT + struct.pack("<I", len(signed_header_data)) + signed_header_data + archive
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    header = proto_field(2, proto_field(1, public_der) + proto_field(2, signature)) + proto_field(10000, signed_header_data)
    return CRX_MAGIC + struct.pack("<II", 3, len(header)) + header + archive


@dataclass(frozen=True)
class CrxInfo:
    public_key: bytes
    signature: bytes
    crx_id: bytes
    archive: bytes


def parse_crx3(data: bytes) -> CrxInfo:
    """Read a CRX3 file back and verify its RSA proof as Chrome does; ValueError if anything
    is off (magic, version, header size, crx_id not matching the key, bad signature)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    if len(data) < 12 or data[:4] != CRX_MAGIC:
        raise ValueError("not a CRX file (no Cr24 magic)")
    version, size = struct.unpack("<II", data[4:12])
    if version != 3 or 12 + size > len(data):
        raise ValueError(f"CRX version {version} / header size {size}: not a CRX3 file")
    header, archive = data[12:12 + size], data[12 + size:]
    fields = proto_fields(header)
    proofs = [proto_fields(value) for number, value in fields if number == 2]
    signed_header_data = next((value for number, value in fields if number == 10000), None)
    if not proofs or signed_header_data is None:
        raise ValueError("CRX3 header without an RSA proof or signed header data")
    proof = dict(proofs[0])
    public_der, signature = proof.get(1, b""), proof.get(2, b"")
    crx_id = dict(proto_fields(signed_header_data)).get(1, b"")
    # The id is public, but the team's rule is one way to compare digests (tests/test_attacks.py).
    if not hmac.compare_digest(crx_id, hashlib.sha256(public_der).digest()[:16]):
        raise ValueError("crx_id does not derive from the public key")
    key = serialization.load_der_public_key(public_der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the proof's key is not RSA")
    signed = CRX_SIGNATURE_CONTEXT + struct.pack("<I", len(signed_header_data)) + signed_header_data + archive
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("the CRX signature does not verify") from None
    return CrxInfo(public_der, signature, crx_id, archive)


# --- update manifests ---------------------------------------------------------------------
def _xml_attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def chrome_update_xml(app_id: str, version: str, codebase: str) -> str:
    """Chrome's/Edge's update manifest (gupdate, protocol 2.0) for one extension.
    https://developer.chrome.com/docs/extensions/how-to/distribute/host-on-linux#update_manifest"""
    return ("<?xml version='1.0' encoding='UTF-8'?>\n"
            "<gupdate xmlns='http://www.google.com/update2/response' protocol='2.0'>\n"
            f"  <app appid='{_xml_attr(app_id)}'>\n"
            f"    <updatecheck codebase='{_xml_attr(codebase)}' version='{_xml_attr(version)}' />\n"
            "  </app>\n</gupdate>\n")


def firefox_updates_json(gecko_id: str, version: str, link: str, sha256: str) -> dict[str, Any]:
    """Firefox's update manifest for a self-hosted add-on.
    https://extensionworkshop.com/documentation/manage/updating-your-extension/"""
    return {"addons": {gecko_id: {"updates": [
        {"version": version, "update_link": link, "update_hash": f"sha256:{sha256}"}]}}}


# --- the build ----------------------------------------------------------------------------
def build(out_dir: Path, opts: BuildOptions, *, src: Path | None = None,
          package_version: str = __version__) -> BuildResult:
    """Write the Chrome/Edge zip, the Firefox .xpi (unsigned) and, with a signing key, the
    .crx, plus build.json (what the connector's update manifests announce)."""
    src = src or source_dir()
    source_manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    version = extension_version(package_version)
    public_der = public_key_der(opts.signing_key_pem) if opts.signing_key_pem else None
    sources = _source_files(src)
    chrome = chrome_manifest(source_manifest, opts, version, public_der)
    firefox = firefox_manifest(source_manifest, opts, version)
    chrome_zip = _zip(package_files(chrome, sources, opts, chrome=True))
    firefox_zip = _zip(package_files(firefox, sources, opts, chrome=False))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CHROME_ZIP).write_bytes(chrome_zip)
    (out_dir / FIREFOX_XPI).write_bytes(firefox_zip)
    crx_path = None
    chrome_id = extension_id(public_der) if public_der else None
    if opts.signing_key_pem:
        crx_path = out_dir / CHROME_CRX
        crx_path.write_bytes(crx3(chrome_zip, opts.signing_key_pem))
    info = {"version": version, "chrome_id": chrome_id, "gecko_id": opts.gecko_id,
            "connector_url": normalise_connector_url(opts.connector_url),
            "test_build": bool(opts.test_origins)}
    (out_dir / BUILD_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return BuildResult(version, out_dir / CHROME_ZIP, out_dir / FIREFOX_XPI, crx_path, chrome_id, opts.gecko_id,
                       tuple(sorted(package_files(chrome, sources, opts, chrome=True))))
