"""Provides `blast-console sender …`: add, list, show and remove the numbers blasts send from."""

from __future__ import annotations

from typing import Any

import click

from console.cli.common import emit_json, run, state, table
from console.format import sender_cells
from shared.actors import current_actor
from shared.config import Settings
from shared.services import senders as sender_service


def _rate(info: sender_service.SenderInfo) -> str:
    return f"{info.rate:g}/s"


@click.group("sender")
def sender_group() -> None:
    """Manage the sender numbers (phone number ids) blasts send from."""


@sender_group.command("add")
@click.option("--phone-number-id", required=True, help="Meta's phone number id of the number.")
@click.option("--waba-id", required=True, help="The WhatsApp Business Account id that owns it.")
@click.option(
    "--token-env", required=True, help="NAME of the setting (environment or secrets file) holding its token."
)
@click.option("--name", default="", help="A name operators recognise (brand, region).")
@click.option("--rate", type=float, default=None, help="Cap in messages per second (below Meta's level).")
def add_cmd(phone_number_id: str, waba_id: str, token_env: str, name: str, rate: float | None) -> None:
    """Add a sender number; its token stays in the setting named by --token-env."""

    async def work(settings: Settings) -> sender_service.SenderInfo:
        return await sender_service.add_sender(
            settings,
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            token_env=token_env,
            name=name,
            rate=rate,
            actor=current_actor(),
        )

    info = run(work, mutating=True)
    if state().json:
        emit_json(info.as_json())
    else:
        click.echo(f"sender {info.phone_number_id} added (WABA {info.waba_id}, {_rate(info)})")


@sender_group.command("list")
def list_cmd() -> None:
    """List the sender numbers, the default first (never their tokens)."""

    async def work(settings: Settings) -> list[sender_service.SenderInfo]:
        return await sender_service.list_senders(settings)

    items = run(work)
    if state().json:
        emit_json([i.as_json() for i in items])
        return
    table(
        ["PHONE NUMBER ID", "NAME", "WABA", "RATE", "LEVEL", "QUALITY", "LIMIT", "TOKEN", "DEFAULT"],
        [sender_cells(i) for i in items],
    )
    if not items:
        click.echo("(no senders: set WHATSAPP_PHONE_NUMBER_ID, or blast-console sender add …)")


@sender_group.command("show")
@click.argument("phone_number_id")
def show_cmd(phone_number_id: str) -> None:
    """Show one sender number."""

    async def work(settings: Settings) -> sender_service.SenderInfo:
        return await sender_service.show_sender(settings, phone_number_id)

    info = run(work)
    data: dict[str, Any] = info.as_json()
    if state().json:
        emit_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key}: {'-' if value is None else value}")


@sender_group.command("remove")
@click.argument("phone_number_id")
def remove_cmd(phone_number_id: str) -> None:
    """Remove a sender number that no unfinished blast uses."""

    async def work(settings: Settings) -> None:
        await sender_service.remove_sender(settings, phone_number_id, actor=current_actor())

    run(work, mutating=True)
    if state().json:
        emit_json({"removed": phone_number_id})
    else:
        click.echo(f"sender {phone_number_id} removed")
