"""CLI tests of the console's added subcommands (queue, suppression, search, export, test-send, stop-all,
resume-all) and the bad-input paths of the blast commands: exit code and one line on stderr."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared.config import Settings
from shared.models import Blast, Suppression
from shared.services import live
from shared.status import BlastStatus
from tests.conftest import USE_POSTGRES, _truncate
from tests.console.cli_helpers import CliResult, create_args, run_cli, with_db
from tests.console.conftest import seed_blast, seed_template

B = BlastStatus


def _one_error_line(r: CliResult) -> str:
    assert r.code != 0, r.out
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    assert r.out == ""
    return lines[0]


@pytest.fixture
def seeded(env_settings: Settings) -> Settings:
    async def seed() -> None:
        if USE_POSTGRES:  # one database per run: start from empty tables
            await _truncate()
        t = await seed_template()
        await seed_blast(t, "sched", B.SCHEDULED, n=5)
        await seed_blast(t, "failed", B.FAILED, n=5, failed=2, sent=3, phone_base=100)

    with_db(env_settings, seed)
    return env_settings


def test_queue_stats_json_shape(env_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from shared.events import close_redis_clients

    async def beat() -> None:
        info = live.DaemonInfo(
            id="d1",
            host="h1",
            pid=1,
            started_at=time.time(),
            last_seen=time.time(),
            provider="sandbox",
            version="t",
            chunks=["blast 1 chunk 0"],
        )
        await live.heartbeat(env_settings, info)
        await close_redis_clients()

    asyncio.run(beat())
    r = run_cli(capsys, "queue", "stats", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert set(data) == {"streams", "daemons", "rate"}
    assert all(set(s) == {"name", "length", "pending", "consumers"} for s in data["streams"])
    assert data["daemons"] == [
        {
            "id": "d1",
            "host": "h1",
            "last_seen": data["daemons"][0]["last_seen"],
            "chunks": ["blast 1 chunk 0"],
        }
    ]
    assert set(data["rate"]) == {"limit", "current"}
    text = run_cli(capsys, "queue", "stats")
    assert text.code == 0 and "d1" in text.out


def test_queue_stats_redis_down(
    env_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config import get_settings

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    line = _one_error_line(run_cli(capsys, "queue", "stats", "--json"))
    assert line.startswith("error:")


def test_suppression_add_list_remove_import(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "--json", "suppression", "add", "+6281299990000", "--reason", "asked")
    assert r.code == 0, r.err
    assert r.json()["phone"] == "+6281299990000"
    listed = run_cli(capsys, "suppression", "list", "--json").json()
    assert listed["total"] == 1 and listed["entries"][0]["reason"] == "asked"
    csv_path = tmp_path / "numbers.csv"
    csv_path.write_text("phone\n+6281299990001\nnot-a-number\n+6281299990000\n", encoding="utf-8")
    imported = run_cli(capsys, "suppression", "import", str(csv_path), "--json")
    assert imported.code == 0, imported.err
    data = imported.json()
    assert data["added"] == 1 and data["already"] == 1 and data["rejected_total"] == 1
    assert run_cli(capsys, "suppression", "remove", "+6281299990000").code == 0
    assert with_db(seeded, lambda: Suppression.all().count()) == 1
    line = _one_error_line(run_cli(capsys, "suppression", "remove", "+6281299990000"))
    assert "not on the suppression list" in line
    _one_error_line(run_cli(capsys, "suppression", "add", "hello"))
    _one_error_line(run_cli(capsys, "suppression", "import", str(tmp_path / "missing.csv")))


def test_search_phone(seeded: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "search", "+6281200000100", "--json")
    assert r.code == 0, r.err
    hits = r.json()
    assert len(hits) == 1
    assert hits[0]["blast"] == "failed" and hits[0]["status"] == "FAILED" and hits[0]["error_code"] == 131026
    assert run_cli(capsys, "search", "+6281299999999", "--json").json() == []
    line = _one_error_line(run_cli(capsys, "search", "abc", "--json"))
    assert "not a phone number" in line


def test_export_csv(seeded: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    blast_id = with_db(seeded, lambda: Blast.get(name="failed").values_list("id", flat=True))
    r = run_cli(capsys, "blast", "export", str(blast_id), "--csv")
    assert r.code == 0, r.err
    lines = r.out.strip().splitlines()
    assert lines[0].startswith("row,phone,status,attempts,wamid,error_code")
    assert len(lines) == 6
    assert sum(1 for line in lines if ",FAILED," in line) == 2
    line = _one_error_line(run_cli(capsys, "blast", "export", "99999", "--csv"))
    assert "blast 99999 does not exist" in line


def test_test_send_sandbox(seeded: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    # The sandbox's simulated Meta knows promo_bahasa (id) with two body parameters.
    with_db(seeded, lambda: seed_template("promo_bahasa", language="id"))
    r = run_cli(
        capsys,
        "--json",
        "blast",
        "test-send",
        "--template",
        "promo_bahasa",
        "--language",
        "id",
        "--to",
        "+6281234567890",
        "Ada",
        "10%",
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["sandbox"] is True and data["wamid"] and data["to"] == "+6281234567890"
    line = _one_error_line(
        run_cli(
            capsys,
            "blast",
            "test-send",
            "--template",
            "nope",
            "--language",
            "en_US",
            "--to",
            "+6281234567890",
        )
    )
    assert "unknown template" in line
    line = _one_error_line(
        run_cli(
            capsys,
            "blast",
            "test-send",
            "--template",
            "order_update",
            "--language",
            "en_US",
            "--to",
            "+6281234567890",
            "Ada",
        )
    )
    assert "needs parameters 2" in line


def test_stop_all_and_resume_all(seeded: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(run_cli(capsys, "stop-all"))  # no terminal, no --yes: refused
    assert "--yes" in line
    r = run_cli(capsys, "--json", "stop-all", "--yes")
    assert r.code == 0, r.err
    assert len(r.json()["paused"]) == 1
    assert with_db(seeded, lambda: Blast.filter(status=B.PAUSED).count()) == 1
    r = run_cli(capsys, "resume-all", "--json")
    assert r.code == 0 and len(r.json()["resumed"]) == 1
    line = _one_error_line(run_cli(capsys, "--read-only", "stop-all", "--yes"))
    assert "read-only" in line


def test_blast_bad_input(seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in _one_error_line(run_cli(capsys, "blast", "cancel", "4242"))
    assert "does not exist" in _one_error_line(run_cli(capsys, "blast", "pause", "4242"))
    assert "does not exist" in _one_error_line(run_cli(capsys, "blast", "retry", "4242"))
    sched = with_db(seeded, lambda: Blast.get(name="sched").values_list("id", flat=True))
    _one_error_line(run_cli(capsys, "blast", "reschedule", str(sched), "--send-at", "next tuesday-ish"))
    _one_error_line(run_cli(capsys, "blast", "reschedule", str(sched), "--send-at", "2001-01-01 10:00"))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,1\nAda,x\n", encoding="utf-8")
    line = _one_error_line(run_cli(capsys, *create_args(bad)))
    assert "phone" in line
    assert "read-only" in _one_error_line(run_cli(capsys, "--read-only", "blast", "cancel", str(sched)))


def test_counts_are_worded_in_the_right_number(seeded: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "stop-all", "--yes")
    assert r.code == 0, r.err
    assert r.out.startswith("1 blast paused: ")
    r = run_cli(capsys, "resume-all")
    assert r.code == 0 and r.out.startswith("1 blast resumed: ")
