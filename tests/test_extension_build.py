"""`yorisoi extension build`: per-browser manifests, icons, CRX3 signing, the self-hosted update
manifests the connector serves, and the extension's sign-in (a per-agent token minted from a
dashboard account or the SSO header)."""
from __future__ import annotations

import hashlib
import io
import json
import struct
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector import extension_build as eb
from connector.version import __version__

SOURCE_MANIFEST = json.loads((eb.source_dir() / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    return eb.generate_private_key_pem()


@pytest.fixture(scope="module")
def built(tmp_path_factory, key_pem) -> eb.BuildResult:
    out = tmp_path_factory.mktemp("ext-build")
    opts = eb.options_from_env({"YORISOI_PUBLIC_URL": "https://yorisoi.example.co.jp/",
                                "ZENDESK_SUBDOMAIN": "acme", "FRESHDESK_DOMAIN": "acme-support"},
                               signing_key_pem=key_pem)
    return eb.build(out, opts)


def _zip_json(path: Path, name: str) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(name))


def _all_patterns(manifest: dict) -> list[str]:
    patterns = list(manifest.get("host_permissions", [])) + list(manifest.get("optional_host_permissions", []))
    for script in manifest.get("content_scripts", []):
        patterns += script["matches"]
    return patterns


def test_release_builds_have_no_test_pages_and_carry_the_package_version(built):
    for path in (built.chrome_zip, built.firefox_xpi):
        manifest = _zip_json(path, "manifest.json")
        assert manifest["version"] == eb.extension_version(__version__) == __version__.split("+")[0]
        patterns = _all_patterns(manifest)
        assert not [p for p in patterns if any(h in p for h in eb.LOOPBACK_HOSTS)], patterns
        assert manifest["content_scripts"][0]["matches"] == ["https://acme.zendesk.com/agent/*",
                                                             "https://acme-support.freshdesk.com/a/*"]
        assert manifest["host_permissions"] == ["https://yorisoi.example.co.jp/*", "https://acme.zendesk.com/*",
                                                "https://acme-support.freshdesk.com/*"]
        assert _zip_json(path, "config.json") == {"connectorUrl": "https://yorisoi.example.co.jp"}
    # The source folder (developers, tests) keeps its loopback pages: the build drops them.
    assert any("127.0.0.1" in p for p in _all_patterns(SOURCE_MANIFEST))


def test_chrome_manifest_has_only_chrome_keys(built, key_pem):
    manifest = _zip_json(built.chrome_zip, "manifest.json")
    assert manifest["background"] == {"service_worker": "background.js"}
    assert manifest["side_panel"]["default_path"] == "sidepanel.html" and "sidePanel" in manifest["permissions"]
    assert "sidebar_action" not in manifest and "browser_specific_settings" not in manifest
    assert manifest["storage"] == {"managed_schema": "managed_schema.json"}
    schema = _zip_json(built.chrome_zip, "managed_schema.json")
    # Chrome's rules for the schema: a top-level object without additionalProperties.
    assert schema["type"] == "object" and "additionalProperties" not in schema
    assert schema["properties"]["connectorUrl"]["type"] == "string"
    assert manifest["update_url"] == "https://yorisoi.example.co.jp/extension/chrome/updates.xml"
    assert manifest["key"] and eb.extension_id(__import__("base64").b64decode(manifest["key"])) == built.chrome_id


def test_firefox_manifest_has_only_firefox_keys(built):
    manifest = _zip_json(built.firefox_xpi, "manifest.json")
    assert manifest["background"] == {"scripts": ["url.js", "helpdesk_pages.js", "protocol.js", "background.js"]}
    assert manifest["sidebar_action"]["default_panel"] == "sidepanel.html"
    for chrome_only in ("side_panel", "minimum_chrome_version", "storage", "update_url", "key"):
        assert chrome_only not in manifest, chrome_only
    assert "sidePanel" not in manifest["permissions"]
    gecko = manifest["browser_specific_settings"]["gecko"]
    assert gecko["id"] == eb.DEFAULT_GECKO_ID and gecko["strict_min_version"] == "140.0"
    assert gecko["update_url"] == "https://yorisoi.example.co.jp/extension/firefox/updates.json"
    with zipfile.ZipFile(built.firefox_xpi) as archive:
        assert "managed_schema.json" not in archive.namelist()  # Firefox needs no schema (3rdparty policy)


def test_icons_are_valid_pngs_of_each_size(built):
    with zipfile.ZipFile(built.chrome_zip) as archive:
        for size in eb.ICON_SIZES:
            data = archive.read(f"icons/{size}.png")
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
            assert (width, height, depth, colour) == (size, size, 8, 6)
            # Every chunk's CRC is right (a viewer would refuse the file otherwise).
            pos = 8
            while pos < len(data):
                (length,) = struct.unpack(">I", data[pos:pos + 4])
                kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
                (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
                assert crc == __import__("zlib").crc32(kind + body) & 0xFFFFFFFF
                pos += 12 + length
            assert kind == b"IEND"


def test_builds_are_reproducible(tmp_path, key_pem):
    opts = eb.BuildOptions(connector_url="https://y.example", signing_key_pem=key_pem)
    a, b = eb.build(tmp_path / "a", opts), eb.build(tmp_path / "b", opts)
    assert a.chrome_zip.read_bytes() == b.chrome_zip.read_bytes()
    assert a.firefox_xpi.read_bytes() == b.firefox_xpi.read_bytes()


def test_without_a_helpdesk_every_subdomain_and_test_origins_only_on_request(tmp_path):
    opts = eb.BuildOptions()
    manifest = eb.chrome_manifest(SOURCE_MANIFEST, opts, "1.2.3")
    assert manifest["content_scripts"][0]["matches"] == ["https://*.zendesk.com/agent/*", "https://*.freshdesk.com/a/*"]
    assert "host_permissions" not in manifest and "update_url" not in manifest and "key" not in manifest
    test = eb.chrome_manifest(SOURCE_MANIFEST, eb.BuildOptions(test_origins=("http://127.0.0.1",)), "1.2.3")
    assert "http://127.0.0.1/agent/*" in test["content_scripts"][0]["matches"]
    with pytest.raises(eb.BuildError, match="only loopback"):
        eb.chrome_manifest(SOURCE_MANIFEST, eb.BuildOptions(test_origins=("https://evil.example",)), "1")


@pytest.mark.parametrize("url", ["http://yorisoi.example.co.jp", "ftp://x.example", "https://u:p@x.example",
                                 "https://x.example/?a=1", "yorisoi.example.co.jp"])
def test_bad_connector_urls_are_refused_with_the_reason(url):
    with pytest.raises(eb.BuildError, match="connector URL"):
        eb.normalise_connector_url(url)


@pytest.mark.parametrize("raw,expected", [("0.1.0", "0.1.0"), ("1.2.3.dev4", "1.2.3"), ("2.0", "2.0"),
                                          ("1.2.3.4.5", "1.2.3.4"), ("3.1.0rc1", "3.1.0")])
def test_extension_version_from_the_package_version(raw, expected):
    assert eb.extension_version(raw) == expected


def test_extension_version_refuses_what_browsers_refuse():
    with pytest.raises(eb.BuildError):
        eb.extension_version("dev")
    with pytest.raises(eb.BuildError):
        eb.extension_version("70000.1")


# --- CRX3 ---------------------------------------------------------------------------------
def test_crx_header_parses_signature_verifies_and_id_derives_from_the_key(built, key_pem):
    data = built.crx.read_bytes()
    assert data[:4] == b"Cr24" and struct.unpack("<I", data[4:8]) == (3,)
    info = eb.parse_crx3(data)
    assert info.archive == built.chrome_zip.read_bytes()
    assert info.public_key == eb.public_key_der(key_pem)
    # Chrome's id: SHA-256 of the DER public key, first 128 bits, hex digits mapped 0-f → a-p.
    digest = hashlib.sha256(info.public_key).hexdigest()[:32]
    assert built.chrome_id == "".join("abcdefghijklmnop"[int(c, 16)] for c in digest)
    assert len(built.chrome_id) == 32 and set(built.chrome_id) <= set("abcdefghijklmnop")
    assert info.crx_id == bytes.fromhex(digest)


def test_a_tampered_crx_is_refused(built):
    data = bytearray(built.crx.read_bytes())
    data[-100] ^= 0xFF  # one byte of the archive
    with pytest.raises(ValueError, match="does not verify"):
        eb.parse_crx3(bytes(data))
    other = eb.crx3(b"PK\x05\x06" + b"\x00" * 18, eb.generate_private_key_pem())
    header_size = struct.unpack("<I", other[8:12])[0]
    # A header whose key and crx_id disagree: swap in the first file's signed data.
    with pytest.raises(ValueError):
        eb.parse_crx3(other[:12 + header_size] + b"tampered")
    with pytest.raises(ValueError, match="Cr24"):
        eb.parse_crx3(b"PK\x03\x04rest")


def test_protobuf_encoding_round_trips_long_fields():
    payload = b"x" * 300  # a two-byte length varint
    encoded = eb.proto_field(10000, payload)
    assert encoded[:3] == bytes([0x82, 0xF1, 0x04])  # (10000 << 3 | 2) as a varint
    assert eb.proto_fields(encoded) == [(10000, payload)]


def test_weak_or_missing_keys_are_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(eb.BuildError, match="RSA"):
        eb.public_key_der(ec_pem)
    with pytest.raises(eb.BuildError, match="PEM"):
        eb.public_key_der(b"not a key")
    with pytest.raises(eb.BuildError, match="YORISOI_EXTENSION_KEY_FILE"):
        eb.options_from_env({"YORISOI_EXTENSION_KEY_FILE": str(tmp_path / "missing.pem")})


# --- the CLI ------------------------------------------------------------------------------
def test_cli_keygen_and_build(tmp_path, monkeypatch):
    from connector.cli import main
    runner = CliRunner()
    monkeypatch.delenv("YORISOI_PUBLIC_URL", raising=False)
    key = tmp_path / "key.pem"
    result = runner.invoke(main, ["extension", "keygen", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert (key.stat().st_mode & 0o777) == 0o600
    again = runner.invoke(main, ["extension", "keygen", "--out", str(key)])
    assert again.exit_code != 0 and "exists already" in again.output
    out = tmp_path / "out"
    result = runner.invoke(main, ["extension", "build", "--out", str(out), "--key", str(key),
                                  "--connector-url", "https://yorisoi.example.co.jp", "--zendesk-host", "acme.zendesk.com"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {eb.CHROME_ZIP, eb.FIREFOX_XPI, eb.CHROME_CRX, eb.BUILD_INFO}
    info = json.loads((out / eb.BUILD_INFO).read_text())
    assert info["chrome_id"] in result.output and info["test_build"] is False
    bad = runner.invoke(main, ["extension", "build", "--out", str(out), "--connector-url", "http://yorisoi.example"])
    assert bad.exit_code != 0 and "https" in bad.output


# --- update manifests served by the connector ---------------------------------------------
def test_connector_serves_update_manifests_for_the_build(app_factory, tmp_path, key_pem):
    out = tmp_path / "ext"
    result = eb.build(out, eb.BuildOptions(connector_url="https://yorisoi.example.co.jp", signing_key_pem=key_pem))
    app = app_factory(YORISOI_EXTENSION_DIR=str(out), YORISOI_PUBLIC_URL="https://yorisoi.example.co.jp")
    client = app.test_client()
    xml = client.get("/extension/chrome/updates.xml")
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    root = ET.fromstring(xml.data)
    ns = {"g": "http://www.google.com/update2/response"}
    assert root.tag == "{http://www.google.com/update2/response}gupdate" and root.get("protocol") == "2.0"
    app_el = root.find("g:app", ns)
    check = app_el.find("g:updatecheck", ns)
    assert app_el.get("appid") == result.chrome_id and check.get("version") == result.version
    assert check.get("codebase") == "https://yorisoi.example.co.jp/extension/chrome/yorisoi.crx"
    crx = client.get("/extension/chrome/yorisoi.crx")
    assert crx.status_code == 200 and crx.mimetype == "application/x-chrome-extension"
    assert eb.parse_crx3(crx.data).crx_id == bytes.fromhex(hashlib.sha256(eb.public_key_der(key_pem)).hexdigest()[:32])
    # Firefox: nothing until the admin puts AMO's signed xpi there, then updates.json with its hash.
    missing = client.get("/extension/firefox/updates.json")
    assert missing.status_code == 404 and "yorisoi-firefox.signed.xpi" in missing.get_json()["message_en"]
    # AMO's signed file is the built xpi plus META-INF signatures; its own manifest is what counts.
    buffer = io.BytesIO()
    with zipfile.ZipFile(result.firefox_xpi) as unsigned, zipfile.ZipFile(buffer, "w") as signed_zip:
        for name in unsigned.namelist():
            signed_zip.writestr(name, unsigned.read(name))
        signed_zip.writestr("META-INF/mozilla.rsa", b"pretend signature")
    signed = buffer.getvalue()
    (out / eb.FIREFOX_SIGNED_XPI).write_bytes(signed)
    updates = client.get("/extension/firefox/updates.json").get_json()
    [entry] = updates["addons"][eb.DEFAULT_GECKO_ID]["updates"]
    assert entry == {"version": result.version, "update_link": "https://yorisoi.example.co.jp/extension/firefox/yorisoi.xpi",
                     "update_hash": "sha256:" + hashlib.sha256(signed).hexdigest()}
    xpi = client.get("/extension/firefox/yorisoi.xpi")
    assert xpi.data == signed and xpi.mimetype == "application/x-xpinstall"
    # Garbage where the signed xpi should be: nothing is announced.
    (out / eb.FIREFOX_SIGNED_XPI).write_bytes(b"not a zip")
    assert client.get("/extension/firefox/updates.json").status_code == 404


def test_a_test_build_is_never_served(app_factory, tmp_path, key_pem):
    out = tmp_path / "ext"
    eb.build(out, eb.BuildOptions(connector_url="https://y.example", test_origins=("http://127.0.0.1",),
                                  signing_key_pem=key_pem))
    client = app_factory(YORISOI_EXTENSION_DIR=str(out)).test_client()
    assert client.get("/extension/chrome/updates.xml").status_code == 404
    assert client.get("/extension/chrome/yorisoi.crx").status_code == 404


def test_update_manifests_say_how_to_build_when_nothing_is_built(app_factory, tmp_path):
    client = app_factory(YORISOI_EXTENSION_DIR=str(tmp_path / "none")).test_client()
    for path in ("/extension/chrome/updates.xml", "/extension/chrome/yorisoi.crx", "/extension/firefox/yorisoi.xpi"):
        response = client.get(path)
        assert response.status_code == 404 and "yorisoi extension build" in response.get_json()["message_en"], path
        assert "yorisoi extension build" in response.get_json()["message_ja"]


def test_update_xml_escapes_attribute_values():
    xml = eb.chrome_update_xml("a" * 32, "1.0", "https://x.example/a.crx?x=1&y='2'")
    assert ET.fromstring(xml)[0][0].get("codebase") == "https://x.example/a.crx?x=1&y='2'"


# --- sign-in ------------------------------------------------------------------------------
EXT_HEADERS = {"X-Yorisoi-Extension": "1", "Origin": "chrome-extension://abcdefghijklmnopabcdefghijklmnop"}


def _account(app, name="佐藤", password="a-long-password-for-sato"):
    from connector.web.auth import hash_password
    app.extensions["yorisoi"].store.accounts.create_user(name, hash_password(password))
    return name, password


def test_signin_mints_a_token_that_works_until_revoked(app, client):
    name, password = _account(app)
    response = client.post("/extension/signin", json={"name": name, "password": password}, headers=EXT_HEADERS)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["agent"] == name and body["origin"] == "signin" and body["token"].startswith("ysi_")
    assert response.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in response.headers
    token = body["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["agent"] == name
    [row] = app.extensions["yorisoi"].store.accounts.list_agent_tokens()
    assert row["origin"] == "signin" and row["agent"] == name
    # Stored hashed, never in clear.
    assert app.extensions["yorisoi"].store.accounts.agent_token_by_hash(token) is None
    # `yorisoi token revoke` cuts it off at once.
    assert app.extensions["yorisoi"].store.accounts.revoke_agent_token(body["token_id"])
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_signout_revokes_the_calling_token(app, client):
    name, password = _account(app)
    token = client.post("/extension/signin", json={"name": name, "password": password}, headers=EXT_HEADERS).get_json()["token"]
    assert client.post("/extension/signout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.post("/extension/signout", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_signin_refuses_wrong_passwords_in_both_languages_and_is_throttled(app, client):
    name, password = _account(app)
    for _ in range(5):
        bad = client.post("/extension/signin", json={"name": name, "password": "guess"}, headers=EXT_HEADERS)
        assert bad.status_code == 401
        assert bad.get_json()["message_ja"] == "アカウント名またはパスワードが違います。"
    blocked = client.post("/extension/signin", json={"name": name, "password": password}, headers=EXT_HEADERS)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert "秒後" in blocked.get_json()["message_ja"]
    assert app.extensions["yorisoi"].store.accounts.list_agent_tokens() == []


def test_signin_shares_the_dashboard_login_throttle(app, client):
    from tests.conftest import csrf_from
    name, password = _account(app)
    page_token = csrf_from(client.get("/login").get_data(as_text=True))
    for _ in range(5):
        client.post("/login", data={"name": name, "password": "guess", "csrf_token": page_token})
    blocked = client.post("/extension/signin", json={"name": name, "password": password}, headers=EXT_HEADERS)
    assert blocked.status_code == 429


@pytest.mark.parametrize("headers,kwargs", [
    ({}, {"json": {"name": "佐藤", "password": "a-long-password-for-sato"}}),  # no extension header
    ({"X-Yorisoi-Extension": "1"}, {"data": {"name": "佐藤", "password": "a-long-password-for-sato"}}),  # a form post
    ({"X-Yorisoi-Extension": "1", "Origin": "https://evil.example"}, {"json": {"name": "佐藤", "password": "a-long-password-for-sato"}}),
])
def test_signin_refuses_what_a_cross_site_page_could_send(app, client, headers, kwargs):
    _account(app)
    response = client.post("/extension/signin", headers=headers, **kwargs)
    assert response.status_code == 400 and response.get_json()["code"] == "not_from_extension"
    assert app.extensions["yorisoi"].store.accounts.list_agent_tokens() == []


def test_signin_with_the_sso_header(app_factory):
    app = app_factory(YORISOI_SSO_HEADER="X-Forwarded-User")
    client = app.test_client()
    response = client.post("/extension/signin", json={}, headers={**EXT_HEADERS, "X-Forwarded-User": "suzuki"})
    assert response.status_code == 201 and response.get_json()["origin"] == "sso"
    token = response.get_json()["token"]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()["agent"] == "suzuki"
    missing = client.post("/extension/signin", json={}, headers=EXT_HEADERS)
    assert missing.status_code == 401 and "X-Forwarded-User" in missing.get_json()["message_ja"]
    # Without YORISOI_SSO_HEADER the header means nothing.
    plain = app_factory().test_client()
    refused = plain.post("/extension/signin", json={}, headers={**EXT_HEADERS, "X-Forwarded-User": "suzuki"})
    assert refused.status_code == 400 and refused.get_json()["code"] == "credentials_required"


def test_token_list_says_how_each_token_was_made(app_factory, monkeypatch, tmp_path):
    from connector.agents import create_token
    from connector.cli import main
    app = app_factory()
    store = app.extensions["yorisoi"].store
    create_token(store, "田中")
    create_token(store, "佐藤", "signin")
    create_token(store, "鈴木", "sso")
    with app.app_context():
        result = CliRunner().invoke(main, ["token", "list", "--json"])
        text = CliRunner().invoke(main, ["token", "list"])
    assert result.exit_code == 0, result.output
    assert [(r["agent"], r["origin"]) for r in json.loads(result.output)] == [("田中", "cli"), ("佐藤", "signin"), ("鈴木", "sso")]
    assert "signin" in text.output and "sso" in text.output


def test_schema_6_adds_the_token_origin_to_an_older_database(tmp_path):
    from sqlalchemy import create_engine, inspect, text

    from connector.db.migrations import migrate
    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    migrate(engine)
    with engine.begin() as conn:  # make it look like schema 5: no origin column yet
        conn.execute(text("ALTER TABLE agent_tokens DROP COLUMN origin"))
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(text("INSERT INTO schema_version (version, applied_at) VALUES (5, '2024-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO agent_tokens (token_hash, agent, created_at) VALUES ('ab', 'old', '2024-01-01')"))
    migrate(engine)
    assert "origin" in {c["name"] for c in inspect(engine).get_columns("agent_tokens")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT origin FROM agent_tokens")).scalar() is None  # shown as `cli`


def test_zip_has_every_source_file_and_nothing_hidden(built):
    with zipfile.ZipFile(io.BytesIO(built.chrome_zip.read_bytes())) as archive:
        names = set(archive.namelist())
    for path in eb.source_dir().rglob("*"):
        rel = path.relative_to(eb.source_dir()).as_posix()
        if path.is_file() and not rel.startswith("."):
            assert rel in names, rel
    assert not [n for n in names if n.startswith(".") or "/." in n]


def test_a_loopback_helpdesk_never_becomes_a_release_match():
    # A developer's fake Zendesk (ZENDESK_URL on 127.0.0.1) must not leak into a build.
    opts = eb.options_from_env({"ZENDESK_URL": "http://127.0.0.1:9999", "FRESHDESK_URL": "http://localhost:8000"})
    assert opts.zendesk_hosts == () and opts.freshdesk_hosts == ()
    manifest = eb.chrome_manifest(SOURCE_MANIFEST, opts, "1.0")
    assert not [p for p in _all_patterns(manifest) if "127.0.0.1" in p or "localhost" in p]
    custom = eb.options_from_env({"FRESHDESK_URL": "https://support.acme.co.jp"})
    assert custom.freshdesk_hosts == ("support.acme.co.jp",)


def test_chromiums_own_crx_of_the_same_key_has_our_layout_and_id(built, key_pem, tmp_path):
    """An independent check of the format: Chromium packs the same folder with the same key
    (`--pack-extension`); our reader verifies Chromium's file, and both headers have the same
    fields and sizes and give the same id."""
    import shutil
    import subprocess
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed: apt-get install chromium (.ci/run does this)")
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(built.chrome_zip) as archive:
        archive.extractall(folder)
    key = tmp_path / "key.pem"
    key.write_bytes(key_pem)
    subprocess.run([chromium, "--no-sandbox", "--headless=new", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--pack-extension={folder}", f"--pack-extension-key={key}"], capture_output=True, timeout=120)
    packed = tmp_path / "unpacked.crx"
    if not packed.exists():
        pytest.skip("this Chromium did not pack the extension (--pack-extension)")
    theirs = eb.parse_crx3(packed.read_bytes())
    assert eb.extension_id(theirs.public_key) == built.chrome_id

    def layout(data: bytes) -> list:
        (size,) = struct.unpack("<I", data[8:12])
        fields = eb.proto_fields(data[12:12 + size])
        return [(n, len(v), [(m, len(w)) for m, w in eb.proto_fields(v)] if n == 2 else None) for n, v in fields]
    assert layout(packed.read_bytes()) == layout(built.crx.read_bytes())
