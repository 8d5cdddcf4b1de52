"""Provides `blast-console token …`: create (shown once), list and revoke the HTTP API's Bearer tokens."""

from __future__ import annotations

from typing import TypedDict

import click

from console.cli.common import emit_json, fmt_time, run, state, table
from shared.config import Settings
from shared.services import tokens


class TokenJson(TypedDict):
    name: str
    role: str
    prefix: str
    created_at: str
    created_by: str
    last_used_at: str | None
    revoked_at: str | None


class CreatedTokenJson(TokenJson):
    token: str


def _token_json(t: tokens.TokenInfo) -> TokenJson:
    return {
        "name": t.name,
        "role": t.role.value,
        "prefix": t.prefix,
        "created_at": t.created_at.isoformat(),
        "created_by": t.created_by,
        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }


@click.group("token")
def token_group() -> None:
    """Manage the HTTP API's Bearer tokens."""


@token_group.command("create")
@click.option("--name", required=True, help="Who uses the token, e.g. crm (the audit log shows api:NAME).")
@click.option(
    "--role",
    required=True,
    type=click.Choice([r.value for r in tokens.Role], case_sensitive=False),
    help="operator reads and changes; viewer only reads.",
)
def create_cmd(name: str, role: str) -> None:
    """Create a token and print it once (only its hash is stored)."""

    async def work(settings: Settings) -> tokens.CreatedToken:
        return await tokens.create_token(name=name, role=role)

    created = run(work, mutating=True)
    if state().json:
        out: CreatedTokenJson = {**_token_json(created.info), "token": created.token}
        emit_json(out)
        return
    click.echo(created.token)
    click.echo(
        f"token {created.info.name} ({created.info.role.value}) created: store it now, it is not shown again",
        err=True,
    )


@token_group.command("list")
def list_cmd() -> None:
    """List tokens (names, roles, last use; never the tokens themselves)."""

    async def work(settings: Settings) -> tuple[list[tokens.TokenInfo], Settings]:
        return await tokens.list_tokens(), settings

    items, settings = run(work)
    if state().json:
        emit_json([_token_json(t) for t in items])
        return
    table(
        ["NAME", "ROLE", "PREFIX", "CREATED", "BY", "LAST USED", "REVOKED"],
        [
            [
                t.name,
                t.role.value,
                t.prefix + "…",
                fmt_time(t.created_at, settings),
                t.created_by,
                fmt_time(t.last_used_at, settings),
                fmt_time(t.revoked_at, settings),
            ]
            for t in items
        ],
    )
    if not items:
        click.echo("(no tokens: blast-console token create --name NAME --role operator|viewer)")


@token_group.command("revoke")
@click.argument("name")
def revoke_cmd(name: str) -> None:
    """Revoke a token: the API refuses it from its next request."""

    async def work(settings: Settings) -> tokens.TokenInfo:
        return await tokens.revoke_token(name)

    info = run(work, mutating=True)
    if state().json:
        emit_json(_token_json(info))
    else:
        click.echo(f"token {info.name} revoked")
