"""`yorisoi extension …`: packaged builds of the sidebar extension for Chrome/Edge and Firefox."""
from __future__ import annotations

import os
from pathlib import Path

import click

from connector.cli import main


@main.group()
def extension() -> None:
    """The sidebar browser extension, packaged for roll-out (docs/extension.md).

    `build` writes a Chrome/Edge zip, a Firefox .xpi (unsigned: AMO signs it, unlisted) and,
    with a signing key (YORISOI_EXTENSION_KEY_FILE), a .crx the connector serves with its update
    manifest for ExtensionInstallForcelist.
    """


def _default_out() -> Path:
    from connector.extension_build import output_dir
    return output_dir(os.environ, Path(os.environ.get("YORISOI_DATA_DIR") or "data"))


@extension.command("build")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write to (default: YORISOI_EXTENSION_DIR, else <data dir>/extension, which the connector serves).")
@click.option("--connector-url", default=None,
              help="The connector's public https URL preset in the extension (default: YORISOI_PUBLIC_URL).")
@click.option("--zendesk-host", "zendesk_hosts", multiple=True,
              help="Zendesk host the sidebar runs on (default: ZENDESK_SUBDOMAIN.zendesk.com; none: every *.zendesk.com). Repeatable.")
@click.option("--freshdesk-host", "freshdesk_hosts", multiple=True,
              help="Freshdesk host (default: from FRESHDESK_DOMAIN; none: every *.freshdesk.com). Repeatable.")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM RSA key that signs the .crx (default: YORISOI_EXTENSION_KEY_FILE; none: no .crx).")
@click.option("--test-origin", "test_origins", multiple=True, hidden=True,
              help="Tests only: also run on the loopback pages of ORIGIN (e.g. http://127.0.0.1).")
def extension_build(out_dir: Path | None, connector_url: str | None, zendesk_hosts: tuple[str, ...],
                    freshdesk_hosts: tuple[str, ...], key_file: Path | None, test_origins: tuple[str, ...]) -> None:
    """Build the Chrome/Edge and Firefox packages of the sidebar extension."""
    from connector.extension_build import BuildError, build, options_from_env
    try:
        opts = options_from_env(
            os.environ, connector_url=connector_url, zendesk_hosts=zendesk_hosts or None,
            freshdesk_hosts=freshdesk_hosts or None, test_origins=test_origins or None,
            signing_key_pem=key_file.read_bytes() if key_file else None)
        result = build(out_dir or _default_out(), opts)
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Yorisoi extension {result.version}")
    click.echo(f"  Chrome/Edge zip : {result.chrome_zip}")
    click.echo(f"  Firefox (.xpi)  : {result.firefox_xpi}  (unsigned: have AMO sign it, unlisted, for release Firefox)")
    if result.crx:
        click.echo(f"  Chrome/Edge crx : {result.crx}  id {result.chrome_id}")
    else:
        click.echo("  no .crx: set YORISOI_EXTENSION_KEY_FILE (yorisoi extension keygen) for ExtensionInstallForcelist")
    if not opts.connector_url:
        click.echo("  note: no connector URL preset (YORISOI_PUBLIC_URL / --connector-url): agents type it, or IT sets it by policy")


@extension.command("keygen")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the new PEM private key (mode 600; refuses to overwrite).")
def extension_keygen(out_file: Path) -> None:
    """Make the RSA key that signs the Chrome/Edge package and print the extension id it gives.

    Keep the key (it is the extension's identity: a new key is a new extension for every browser)
    and point YORISOI_EXTENSION_KEY_FILE at it."""
    from connector.extension_build import extension_id, generate_private_key_pem, public_key_der
    if out_file.exists():
        raise click.ClickException(f"{out_file} exists already: the key is the extension's identity, not overwritten")
    pem = generate_private_key_pem()
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    click.echo(f"wrote {out_file}; Chrome/Edge extension id {extension_id(public_key_der(pem))}")
