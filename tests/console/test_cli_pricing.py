"""CLI: `pricing import` / `pricing show`, and the cost in `blast create`, `blast show` (estimate and actual) and
`blast export`."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.models import Blast, PriceCard, Recipient, Template
from shared.status import RecipientStatus
from tests.conftest import reset_database
from tests.console.cli_helpers import create_args, run_cli, with_db
from tests.factories import make_template

DATA = Path(__file__).parent.parent / "data" / "pricing"
R = RecipientStatus


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
    path.write_text(
        "phone;1;2\n+6281234567890;Ada;A1\nbad;Bob;B2\n+6281234567891;Cy;C3\n+18095550100;Di;D4\n",
        encoding="utf-8",
    )
    return path


def import_args(effective: str = "2020-01-01") -> list[str]:
    return [
        "pricing",
        "import",
        str(DATA / "sample-rates-idr.csv"),
        "--markets",
        str(DATA / "sample-markets.csv"),
        "--tiers",
        str(DATA / "sample-tiers-idr.csv"),
        "--currency",
        "IDR",
        "--effective",
        effective,
    ]


def test_import_and_show(seeded: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "pricing", "show")
    assert r.code == 0 and "no rate card imported" in r.out
    r = run_cli(capsys, *import_args())
    assert r.code == 0, r.err
    assert r.out.startswith("rate card 1 imported: IDR, effective 2020-01-01, 6 markets, 8 calling codes")
    r = run_cli(capsys, "pricing", "show", "--json")
    (card,) = r.json()
    assert card["currency"] == "IDR" and card["effective_on"] == "2020-01-01" and card["minor_unit"] == 2
    assert card["rates"]["Indonesia"]["marketing"] == "586.33"
    assert card["markets"]["1809"] == "Rest of Latin America"
    assert card["tiers"][0] == {
        "market": "Indonesia",
        "category": "authentication",
        "volume_from": 1,
        "volume_to": 100000,
        "rate": "356.65",
    }
    r = run_cli(capsys, "pricing", "show")
    assert "IDR" in r.out and "sample-rates-idr.csv" in r.out


def test_a_bad_row_is_one_line_on_stderr_and_nothing_is_stored(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("market,marketing\nIndonesia,586.33\nIndia,1.72,5\n", encoding="utf-8")
    r = run_cli(capsys, "pricing", "import", str(rates), "--markets", str(DATA / "sample-markets.csv"),
                "--currency", "IDR", "--effective", "2020-01-01")  # fmt: skip
    assert r.code == 1 and r.out == ""
    assert r.err.strip().splitlines() == ["error: rates.csv row 2: 3 cells, the header has 2"]
    assert with_db(seeded, lambda: PriceCard.all().count()) == 0
    r = run_cli(capsys, "--read-only", *import_args())
    assert r.code == 1 and "read-only" in r.err


def test_create_and_show_give_the_estimate(
    seeded: Settings, csv_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, *create_args(csv_file, name="no card"))
    assert r.code == 0, r.err
    assert "estimated cost: no rate card imported" in r.out
    assert run_cli(capsys, *import_args()).code == 0

    r = run_cli(capsys, "--json", *create_args(csv_file, name="Promo", send_at="+1h"))
    created = r.json()
    estimate = created["cost"]["estimate"]
    assert estimate["currency"] == "IDR" and estimate["category"] == "utility"
    assert (
        estimate["total"] == "893.30" and estimate["messages"] == 3
    )  # 2 x 356.65 + 180.00; bad row not counted
    assert estimate["note"] == "if all are delivered; the category applied by Meta at send time may differ"

    r = run_cli(capsys, *create_args(csv_file, name="Promo 2"))
    assert "estimated cost: IDR 893.30 for 3 messages" in r.out
    assert "Rest of Latin America" in r.out and "IDR 180.00" in r.out

    blast_id = created["id"]

    async def deliver() -> None:
        await Recipient.filter(blast_id=blast_id, phone="+6281234567890").update(
            status=R.DELIVERED, billable=True, pricing_category="marketing", pricing_type="regular"
        )
        await Blast.filter(id=blast_id).update(n_pending=2, n_delivered=1)

    with_db(seeded, deliver)
    r = run_cli(capsys, "blast", "show", str(blast_id), "--json")
    cost = r.json()["cost"]
    assert cost["estimate"]["total"] == "893.30"
    assert cost["actual"]["total"] == "586.33" and cost["actual"]["messages"] == 1
    assert cost["actual"]["lines"] == [
        {
            "market": "Indonesia",
            "category": "marketing",
            "messages": 1,
            "price": "586.33",
            "amount": "586.33",
            "tiered": False,
        }
    ]
    r = run_cli(capsys, "blast", "show", str(blast_id))
    assert "estimated cost: IDR 893.30" in r.out and "actual cost: IDR 586.33 for 1 message " in r.out

    r = run_cli(capsys, "blast", "export", str(blast_id), "--csv")
    header, *rows = r.out.strip().splitlines()
    assert header.endswith(",pricing_category,pricing_type,billable")
    assert any(row.endswith(",marketing,regular,true") for row in rows)
    assert sum(row.endswith(",,,") for row in rows) == 2
