"""`blast-console token create|list|revoke`: the token is shown once and stored as a hash, --json shapes, errors
as one line on stderr, refused by a read-only console."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.models import ApiToken, AuditLog
from shared.services import tokens
from tests.conftest import reset_database
from tests.console.cli_helpers import run_cli, with_db

FIELDS = {"name", "role", "prefix", "created_at", "created_by", "last_used_at", "revoked_at"}


@pytest.fixture
def empty(env_settings: Settings) -> Settings:
    reset_database(env_settings)
    return env_settings


def test_create_shows_the_token_once_and_stores_its_hash(
    empty: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "token", "create", "--name", "crm", "--role", "operator")
    assert r.code == 0, r.err
    token = r.out.strip()
    assert token.startswith("blast_") and len(token) == 49
    assert "not shown again" in r.err

    async def stored() -> tuple[str, str, list[str]]:
        row = await ApiToken.get(name="crm")
        actions = await AuditLog.filter(entity="api_token").values_list("action", flat=True)
        return row.token_hash, row.role, [str(a) for a in actions]

    token_hash, role, actions = with_db(empty, stored)
    assert token_hash == tokens.hash_token(token) and role == "operator" and actions == ["token-create"]

    r = run_cli(capsys, "--json", "token", "create", "--name", "dash", "--role", "VIEWER")
    assert r.code == 0, r.err
    created = r.json()
    assert set(created) == FIELDS | {"token"} and created["role"] == "viewer"
    assert created["token"].startswith(created["prefix"])

    r = run_cli(capsys, "token", "list", "--json")
    listed = r.json()
    assert [t["name"] for t in listed] == ["crm", "dash"] and all(set(t) == FIELDS for t in listed)
    assert token not in r.out and created["token"] not in r.out
    r = run_cli(capsys, "token", "list")
    assert r.code == 0 and "crm" in r.out and token not in r.out


def test_revoke_and_errors(empty: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "token", "create", "--name", "crm", "--role", "viewer").code == 0
    r = run_cli(capsys, "token", "create", "--name", "crm", "--role", "viewer")
    assert (
        r.code == 1 and r.err == "error: a token named crm exists already; revoke it or choose another name\n"
    )
    r = run_cli(capsys, "token", "create", "--name", "no spaces", "--role", "viewer")
    assert r.code == 1 and r.err.startswith("error: token name 'no spaces' is not allowed")
    r = run_cli(capsys, "token", "create", "--name", "x", "--role", "admin")
    assert r.code == 2
    r = run_cli(capsys, "--json", "token", "revoke", "crm")
    assert r.code == 0 and r.json()["revoked_at"] is not None
    r = run_cli(capsys, "token", "revoke", "crm")
    assert r.code == 1 and r.err == "error: token crm is revoked already\n"
    r = run_cli(capsys, "token", "revoke", "ghost")
    assert r.code == 1 and r.err == "error: token ghost does not exist (see: blast-console token list)\n"
    r = run_cli(capsys, "--read-only", "token", "create", "--name", "y", "--role", "viewer")
    assert r.code == 1 and "read-only" in r.err
