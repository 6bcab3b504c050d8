"""`yorisoi` commands of the helpdesk: setup-sla, channel-code."""
from __future__ import annotations

import json

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
