"""`yorisoi` commands of the helpdesk: setup-sla, channel-code, zendesk-app."""
from __future__ import annotations

import json
from pathlib import Path

import click

from connector.cli import _app, _services, main
from connector.config import ConfigError


@main.command("setup-sla")
@click.option("--dry-run", is_flag=True, help="Print the policy JSON and change nothing.")
def setup_sla(dry_run: bool) -> None:
    """Create or update the helpdesk's SLA policy for Yorisoi tickets (tagged `yorisoi`).

    First- and next-reply targets per priority come from YORISOI_SLA_MINUTES, so the
    helpdesk's own SLA reports cover social tickets. Running it again changes nothing.
    """
    from connector.helpdesks.base import HelpdeskError, parse_sla_minutes
    svc = _services(_app())
    try:
        minutes = parse_sla_minutes(svc.settings.env.get("YORISOI_SLA_MINUTES"))
        plan = svc.helpdesk.setup_sla(minutes, dry_run=dry_run)
    except (ValueError, HelpdeskError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{svc.helpdesk.name}: {plan.action}")
    click.echo(json.dumps(plan.policy, ensure_ascii=False, indent=2))
    for number, step in enumerate(plan.steps, start=1):
        click.echo(f"{number}. {step}")


@main.command("channel-code")
@click.argument("subdomain")
def channel_code(subdomain: str) -> None:
    """Print the install code a Zendesk admin types into Yorisoi's Channel framework admin UI.

    SUBDOMAIN is the Zendesk account's subdomain (acme for acme.zendesk.com). The code is
    derived from YORISOI_CHANNEL_SECRET: give it only to that account's admin.
    """
    from connector.config import Settings
    from connector.helpdesks.zendesk.channel import ChannelNotConfigured, ChannelSettings
    from connector.helpdesks.zendesk.channel.tokens import TokenSigner
    try:
        settings = ChannelSettings.from_env(Settings.from_env().env)
    except (ChannelNotConfigured, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(TokenSigner(settings.secret).install_code(subdomain))
    click.echo(f"manifest: {settings.public_url}/zendesk/manifest.json")


@main.command("zendesk-app")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("yorisoi-zendesk.zip"),
              show_default=True, help="Where to write the app package (zip).")
@click.option("--public-url", default=None, help="The connector's public https URL (default: YORISOI_PUBLIC_URL).")
def zendesk_app(out: Path, public_url: str | None) -> None:
    """Build the Zendesk app package a Zendesk admin uploads as a private app.

    Installing it creates the Channel framework integration, the reply and status webhooks
    (signed with secrets derived from YORISOI_CHANNEL_SECRET) and their triggers, a drop-down
    ticket field per analysis label, the 「Yorisoi（SNS）」 view, and the ticket sidebar
    (ZAF signed URLs). The package is checked against Zendesk's documented formats first.
    The zip holds the webhooks' signing secrets: hand it to the admin only.
    """
    from connector.config import Settings
    from connector.helpdesks.zendesk.app.formats import check_package
    from connector.helpdesks.zendesk.app.package import AppPackageError, AppSettings, app_files, write_zip
    env = Settings.from_env().env
    try:
        settings = AppSettings.make(public_url or env.get("YORISOI_PUBLIC_URL"), env.get("YORISOI_CHANNEL_SECRET"))
    except AppPackageError as exc:
        raise click.ClickException(str(exc)) from None
    files = app_files(settings)
    problems = check_package(files)
    if problems:
        raise click.ClickException("the package does not follow Zendesk's formats:\n" + "\n".join(problems))
    size = write_zip(out, files)
    click.echo(f"{out}: {size} bytes, {len(files)} files ({', '.join(sorted(files))})")
    click.echo(f"sidebar: {settings.public_url}/zendesk/app/sidebar (ZAF signed URLs; set ZENDESK_APP_PUBLIC_KEY "
               "after installing)")
    click.echo("Zendesk の管理センター → アプリ → 非公開アプリをアップロード で、この zip をアップロードしてください。"
               " / Upload it as a private app in Admin Center.")
