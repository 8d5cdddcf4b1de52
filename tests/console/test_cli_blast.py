"""blast-console's scriptable CLI: the exact --json shapes, and one line on stderr with non-zero exit on errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.models import Template
from tests.conftest import reset_database
from tests.console.cli_helpers import create_args, run_cli, with_db
from tests.factories import make_template

COUNT_KEYS = {"pending", "sending", "sent", "delivered", "read", "failed", "cancelled", "skipped", "unknown"}


@pytest.fixture
def seeded(env_settings: Settings) -> Settings:
    reset_database(env_settings)

    async def seed() -> Template:
        return await make_template()

    with_db(env_settings, seed)
    return env_settings


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "r.csv"
    path.write_text("phone;1;2\n+6281234567890;Ada;A1\nbad;Bob;B2\n+6281234567891;Cy;C3\n", encoding="utf-8")
    return path


def test_create_list_show_shapes(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "--json", *create_args(csv_file, name="Promo", send_at="+1h"))
    assert r.code == 0, r.err
    created = r.json()
    assert set(created) == {"id", "status", "recipients", "rejected", "cost"}
    assert created["status"] == "SCHEDULED" and created["recipients"] == 2
    assert created["rejected"] == [{"row": 2, "value": "bad", "reason": created["rejected"][0]["reason"]}]

    r = run_cli(capsys, "blast", "list", "--json")
    assert r.code == 0, r.err
    (item,) = r.json()
    assert set(item) == {"id", "name", "template", "status", "send_at", "counts"}
    assert item["template"] == "order_update" and set(item["counts"]) == COUNT_KEYS

    r = run_cli(capsys, "blast", "show", str(created["id"]), "--json")
    shown = r.json()
    assert set(shown) == {
        "id",
        "name",
        "template",
        "language",
        "status",
        "send_at",
        "valid_until",
        "started_at",
        "finished_at",
        "error",
        "counts",
        "cost",
    }
    assert shown["counts"]["pending"] == 2 and sum(shown["counts"].values()) == 2
    assert shown["send_at"].endswith("+00:00")

    r = run_cli(capsys, "template", "list", "--json")
    assert r.json() == [
        {
            "name": "order_update",
            "language": "en_US",
            "category": "UTILITY",
            "previous_category": None,
            "status": "APPROVED",
        }
    ]


def test_human_output_and_actions(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, *create_args(csv_file, name="Promo", send_at="+1h"))
    assert r.code == 0 and "created: SCHEDULED, 2 recipients, 1 rejected" in r.out
    assert run_cli(capsys, "blast", "pause", "1", "--json").json() == {"id": 1, "status": "PAUSED"}
    assert run_cli(capsys, "blast", "resume", "1").code == 0
    assert run_cli(capsys, "blast", "reschedule", "1", "--send-at", "+2h").code == 0
    r = run_cli(capsys, "blast", "cancel", "1")
    assert (
        r.code == 0 and r.out.strip() == "blast 1 cancelled: now CANCELLED (2 pending recipients cancelled)"
    )
    r = run_cli(capsys, "blast", "list")
    assert "CANCELLED" in r.out
    r = run_cli(capsys, "--json", "blast", "pause", "1")
    assert r.code == 1 and "only SCHEDULED or PROCESSING blasts can be paused" in r.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["blast", "show", "999"], "blast 999 does not exist"),
        (["blast", "cancel", "999"], "blast 999 does not exist"),
        (["blast", "show", "abc"], "'abc' is not a valid integer"),
        (create_args("/nonexistent.csv"), "nonexistent.csv"),
        (create_args("CSV", send_at="yesterday at noon"), "cannot read send time"),
        (create_args(None), "--recipients"),
        (["blast", "retry", "1"], "blast 1 does not exist"),
        (["nonsense"], "No such command"),
    ],
)
def test_errors_are_one_line_on_stderr(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    args = [str(csv_file) if a == "CSV" else a for a in args]
    r = run_cli(capsys, *args)
    assert r.code != 0
    assert r.out == ""
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert fragment in r.err


def test_bad_csv_is_one_line(seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,1,2\nx,y,z\n", encoding="utf-8")
    r = run_cli(capsys, *create_args(path), "--json")
    assert r.code == 1 and r.out == "" and "phone" in r.err and len(r.err.strip().splitlines()) == 1


def test_read_only_refuses_mutations(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "--read-only", *create_args(csv_file))
    assert r.code == 1 and "read-only" in r.err
    assert run_cli(capsys, "--read-only", "blast", "list", "--json").json() == []


def test_config_error_names_the_variable(
    seeded: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings

    monkeypatch.setenv("BLAST_TIMEZONE", "Nowhere/City")
    get_settings.cache_clear()
    r = run_cli(capsys, "blast", "list")
    assert r.code == 1 and "BLAST_TIMEZONE" in r.err and len(r.err.strip().splitlines()) == 1


def test_redis_down_is_one_clear_line(
    seeded: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings
    from tests.conftest import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    r = run_cli(capsys, "queue", "stats", "--json")
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("error: cannot reach Redis at redis://127.0.0.1:") and "REDIS_URL" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_local_time_create_and_show_per_zone(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "zones.csv"
    path.write_text(
        "phone,1,2,timezone\n+6281234567890,Ada,A1,WIB\n+6281234567891,Bo,B2,WIT\n+6281234567892,Cy,C3,Moon\n",
        encoding="utf-8",
    )
    args = [*create_args(path, send_at="2099-12-08 09:00"), "--local-time", "--timezone", "WITA"]
    r = run_cli(capsys, "--json", *args)
    assert r.code == 0, r.err
    created = r.json()
    assert created["recipients"] == 2 and created["rejected"][0]["row"] == 3
    assert created["rejected"][0]["reason"].startswith("timezone: unknown time zone 'Moon'")
    r = run_cli(capsys, "blast", "show", str(created["id"]), "--json")
    shown = r.json()
    assert (shown["local_time"], shown["timezone"]) == ("2099-12-08T09:00", "Asia/Makassar")
    assert shown["send_at"] == "2099-12-08T00:00:00+00:00"  # 09:00 WIT comes first
    assert [(z["zone"], z["due_at"], z["sent"], z["waiting"]) for z in shown["zones"]] == [
        ("Asia/Jayapura", "2099-12-08T00:00:00+00:00", 0, 1),
        ("Asia/Jakarta", "2099-12-08T02:00:00+00:00", 0, 1),
    ]
    r = run_cli(capsys, "blast", "show", str(created["id"]))
    assert "Asia/Jayapura" in r.out and "waiting 1" in r.out


def test_local_time_without_a_wall_clock_time_is_one_line(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, *create_args(csv_file, send_at="+1h"), "--local-time")
    assert r.code != 0 and len(r.err.strip().splitlines()) == 1
    assert "wall-clock time" in r.err


def test_quiet_hours_create_and_show_held(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "quiet.csv"
    path.write_text(
        "phone,1,2,timezone\n+6281234567890,Ada,A1,WITA\n+6281234567891,Bo,B2,WITA\n", encoding="utf-8"
    )
    args = [*create_args(path, send_at="2099-12-08T22:00+08:00"), "--quiet-hours", "21:00-08:00"]
    r = run_cli(capsys, "--json", *args)
    assert r.code == 0, r.err
    blast_id = str(r.json()["id"])
    shown = run_cli(capsys, "blast", "show", blast_id, "--json").json()
    assert shown["quiet"]["held"] == 2 and shown["quiet"]["next_release_local"] == "08:00 WITA"
    assert shown["quiet"]["next_release"] == "2099-12-09T00:00:00+00:00"
    r = run_cli(capsys, "blast", "show", blast_id)
    assert "held by quiet hours: 2, next release 08:00 WITA" in r.out


def test_a_bad_quiet_hours_option_is_one_line(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, *create_args(csv_file, send_at="+1h"), "--quiet-hours", "late")
    assert r.code != 0 and len(r.err.strip().splitlines()) == 1
    assert "--quiet-hours 'late'" in r.err


def test_a_draft_keeps_quiet_hours_edited_and_applied_when_scheduled(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "quiet.csv"
    path.write_text(
        "phone,1,2,timezone\n+6281234567890,Ada,A1,WITA\n+6281234567891,Bo,B2,WITA\n", encoding="utf-8"
    )
    r = run_cli(capsys, "--json", *create_args(path), "--draft", "--quiet-hours", "22:00-07:00")
    assert r.code == 0, r.err
    blast_id = str(r.json()["id"])
    r = run_cli(capsys, "blast", "edit", blast_id, "--quiet-hours", "9pm")
    assert r.code != 0 and len(r.err.strip().splitlines()) == 1 and "--quiet-hours '9pm'" in r.err
    assert run_cli(capsys, "blast", "edit", blast_id, "--quiet-hours", "21:00-08:00").code == 0
    r = run_cli(capsys, "--json", "blast", "reschedule", blast_id, "--send-at", "2099-12-08T22:00+08:00")
    assert r.code == 0, r.err
    assert r.json() == {
        "id": int(blast_id),
        "send_at": "2099-12-08T14:00:00+00:00",
        "quiet_hours": "about 2 recipients will wait until 08:00 WITA",  # 22:00 WITA is inside the window
    }
    shown = run_cli(capsys, "blast", "show", blast_id, "--json").json()
    assert shown["status"] == "SCHEDULED" and shown["quiet"]["held"] == 2
    assert shown["quiet"]["next_release"] == "2099-12-09T00:00:00+00:00"
    r = run_cli(capsys, "blast", "edit", blast_id, "--quiet-hours", "off")
    assert r.code != 0 and "on a DRAFT only" in r.err
