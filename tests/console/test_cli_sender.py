"""`blast-console sender add|list|show|remove` and `blast create --sender/--senders`: --json shapes, the default
sender made from WHATSAPP_PHONE_NUMBER_ID, and bad input as one line with nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings, get_settings
from shared.models import Blast, Sender
from tests.conftest import reset_database
from tests.console.cli_helpers import create_args, run_cli, with_db
from tests.factories import make_template

FIELDS = {
    "phone_number_id",
    "waba_id",
    "token_env",
    "name",
    "display_phone",
    "rate_cap",
    "throughput_level",
    "quality_rating",
    "messaging_limit_tier",
    "is_default",
    "rate",
    "has_token",
}
DEFAULT, A, B, OTHER_WABA = "106540352242922", "200000000000001", "200000000000002", "300000000000003"


@pytest.fixture
def cloud(env_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A cloud console with a default number and one more number's token in the environment."""
    reset_database(env_settings)
    monkeypatch.setenv("WHATSAPP_PROVIDER", "cloud")
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", DEFAULT)
    monkeypatch.setenv("WHATSAPP_BUSINESS_ACCOUNT_ID", "102290129340398")
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "default-token-secret")
    monkeypatch.setenv("BLAST_TOKEN_A", "token-a-secret")
    monkeypatch.setenv("BLAST_TOKEN_B", "token-b-secret")
    get_settings.cache_clear()
    settings = get_settings()
    with_db(settings, make_template)
    return settings


def test_add_list_show_remove_and_the_default_sender(
    cloud: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "--json", "sender", "list")
    assert r.code == 0, r.err
    [default] = r.json()
    assert set(default) == FIELDS and default["phone_number_id"] == DEFAULT and default["is_default"] is True
    assert default["token_env"] == "WHATSAPP_ACCESS_TOKEN" and default["has_token"] is True

    r = run_cli(
        capsys,
        *("--json", "sender", "add", "--phone-number-id", A, "--waba-id", "102290129340398"),
        *("--token-env", "BLAST_TOKEN_A", "--name", "brand a", "--rate", "50"),
    )
    assert r.code == 0, r.err
    added = r.json()
    assert added["phone_number_id"] == A and added["rate"] == 50 and added["rate_cap"] == 50
    assert "token-a-secret" not in r.out

    r = run_cli(capsys, "sender", "list")
    assert r.code == 0 and A in r.out and "brand a" in r.out and "token-a-secret" not in r.out
    r = run_cli(capsys, "--json", "sender", "show", A)
    assert r.json()["name"] == "brand a"
    r = run_cli(capsys, "sender", "remove", A)
    assert r.code == 0 and f"sender {A} removed" in r.out
    assert [s["phone_number_id"] for s in run_cli(capsys, "--json", "sender", "list").json()] == [DEFAULT]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--token-env", "BLAST_TOKEN_NOWHERE"], "--token-env BLAST_TOKEN_NOWHERE: no such setting"),
        (
            ["--token-env", "BLAST_TOKEN_A", "--rate", "0"],
            "--rate 0.0: messages per second must be more than 0",
        ),
    ],
)
def test_add_refuses_bad_input_in_one_line(
    cloud: Settings, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    r = run_cli(capsys, "sender", "add", "--phone-number-id", A, "--waba-id", "102290129340398", *args)
    assert r.code != 0 and fragment in r.err and len(r.err.strip().splitlines()) == 1
    assert with_db(cloud, lambda: Sender.filter(phone_number_id=A).exists()) is False


def _add(capsys: pytest.CaptureFixture[str], pnid: str, waba: str, env: str) -> None:
    r = run_cli(capsys, "sender", "add", "--phone-number-id", pnid, "--waba-id", waba, "--token-env", env)
    assert r.code == 0, r.err


def test_blast_create_with_a_pool_and_bad_pools(
    cloud: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("phone;1;2\n+6281234567890;Ada;A1\n+6281234567891;Cy;C3\n", encoding="utf-8")
    _add(capsys, A, "102290129340398", "BLAST_TOKEN_A")
    _add(capsys, B, OTHER_WABA, "BLAST_TOKEN_B")

    r = run_cli(capsys, "--json", *create_args(csv, name="pool"), "--senders", f"{DEFAULT},{A}")
    assert r.code == 0, r.err
    pool_id = r.json()["id"]
    r = run_cli(capsys, "--json", *create_args(csv, name="default"), "--sender", DEFAULT)
    default_id = r.json()["id"]

    async def pools() -> dict[int, object]:
        return dict(await Blast.all().values_list("id", "senders"))

    assert with_db(cloud, pools) == {pool_id: [DEFAULT, A], default_id: None}

    # A pool in use cannot lose a number.
    r = run_cli(capsys, "sender", "remove", A)
    assert r.code != 0 and f"used by blast {pool_id}" in r.err

    for extra, fragment in [
        (["--sender", "999"], "unknown sender 999"),
        (["--senders", f"{A},{B}"], "a pool may only mix numbers of one WABA"),
        (["--sender", A, "--senders", A], "give --sender or --senders, not both"),
    ]:
        r = run_cli(capsys, *create_args(csv, name="bad"), *extra)
        assert r.code != 0 and fragment in r.err and len(r.err.strip().splitlines()) == 1, r.err
    monkeypatch.delenv("BLAST_TOKEN_A")
    get_settings.cache_clear()
    r = run_cli(capsys, *create_args(csv, name="bad"), "--sender", A)
    assert r.code != 0 and f"sender {A} has no token: its setting BLAST_TOKEN_A is not set" in r.err
    assert with_db(cloud, pools) == {pool_id: [DEFAULT, A], default_id: None}, "nothing created"


def test_messaging_limit_warns_or_refuses_with_strict(
    cloud: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLAST_MESSAGING_LIMIT", "1")
    get_settings.cache_clear()
    csv = tmp_path / "r.csv"
    csv.write_text("phone;1;2\n+6281234567890;Ada;A1\n+6281234567891;Cy;C3\n", encoding="utf-8")
    _add(capsys, A, "102290129340398", "BLAST_TOKEN_A")
    r = run_cli(capsys, *create_args(csv, name="strict"), "--senders", f"{DEFAULT},{A}", "--strict")
    assert r.code != 0 and len(r.err.strip().splitlines()) == 1
    assert "this blast would reach 2 new users in 24 h; the portfolio's limit is 1" in r.err
    assert f"sends from {DEFAULT}, {A}" in r.err and "nothing created" in r.err
    assert with_db(cloud, lambda: Blast.all().count()) == 0
    r = run_cli(capsys, *create_args(csv, name="warned"), "--senders", f"{DEFAULT},{A}")
    assert r.code == 0 and "warning: this blast would reach 2 new users" in r.err
    assert with_db(cloud, lambda: Blast.all().count()) == 1
