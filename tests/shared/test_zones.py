"""Recipients' zones: what a CSV may write, phonenumbers' guess, the fallback, and due times across DST."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from shared.parsing import zones as zones_module
from shared.parsing.phones import is_canonical_e164
from shared.parsing.zones import ZoneResolver, due_at, parse_zone, phone_zones, zone_of


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Asia/Makassar", "Asia/Makassar"),
        (" WIB ", "Asia/Jakarta"),
        ("wita", "Asia/Makassar"),
        ("WIT", "Asia/Jayapura"),
        ("+08:00", "+08:00"),
        ("UTC+8", "+08:00"),
        ("-0530", "-05:30"),
        ("UTC", "UTC"),
    ],
)
def test_zones_as_a_csv_writes_them(written: str, name: str) -> None:
    assert parse_zone(written) == name


@pytest.mark.parametrize("bad", ["Mars/Olympus", "+15:00", "+08:75", "Asia/../etc", "9 o'clock"])
def test_a_bad_zone_is_one_short_reason(bad: str) -> None:
    with pytest.raises(ValueError, match=r"time zone|offset") as info:
        parse_zone(bad)
    assert "\n" not in str(info.value)


def test_resolution_order_column_then_phonenumbers_then_the_blast_zone() -> None:
    zones = ZoneResolver(None, "Asia/Makassar")
    assert zones.resolve("+6281234567890", "WIT") == "Asia/Jayapura"  # the column wins
    assert zones.resolve("+493012345678", "") == "Europe/Berlin"  # phonenumbers names exactly one
    assert zones.resolve("+628112345678", None) == "Asia/Makassar"  # two zones: the blast's
    assert zones.resolve("+15550000001", None) == "Asia/Makassar"  # none known: the blast's
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere'"):
        zones.resolve("+6281234567890", "Nowhere")


def test_due_times_per_zone_and_fixed_offsets() -> None:
    zones = ZoneResolver(datetime(2026, 12, 8, 9, 0), "Asia/Jakarta")
    assert zones.due("Asia/Jakarta") == datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
    assert zones.due("Asia/Makassar") == datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    assert zones.due("+09:00") == datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
    assert zones.due_times() == [
        datetime(2026, 12, 8, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 8, 1, 0, tzinfo=UTC),
        datetime(2026, 12, 8, 2, 0, tzinfo=UTC),
    ]
    assert ZoneResolver(None, "UTC").due("Asia/Jakarta") is None


def test_due_time_on_berlin_dst_change_days() -> None:
    berlin = zone_of("Europe/Berlin")
    # 29 March 2026: clocks go 02:00 -> 03:00 (CET +1 -> CEST +2).
    assert due_at(datetime(2026, 3, 28, 9, 0), berlin) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    assert due_at(datetime(2026, 3, 29, 9, 0), berlin) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    # 02:30 never happens that day: moved on by the gap (03:30 CEST).
    assert due_at(datetime(2026, 3, 29, 2, 30), berlin) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 25 October 2026: 02:30 happens twice; the first (still CEST) is meant.
    assert due_at(datetime(2026, 10, 25, 2, 30), berlin) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert due_at(datetime(2026, 10, 25, 9, 0), berlin) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


def _uncached(phone: str, default: str) -> str:
    """What `ZoneResolver.resolve` gave before the prefix cache: phonenumbers' full answer."""
    zones = phone_zones(phone)
    return zones[0] if len(zones) == 1 else default


def _varied_numbers() -> list[str]:
    rng = random.Random(15)
    heads = [
        "+62812",
        "+62811",
        "+62818",
        "+62813",
        "+62857",
        "+62878",
        "+6221",
        "+62361",
        "+62401",
        "+62967",
        "+6280",
        "+62800",
        "+62809",
        "+1212",
        "+1415",
        "+1800",
        "+1900",
        "+1808",
        "+1907",
        "+1264",
        "+4930",
        "+49151",
        "+49800",
        "+49900",
        "+4989",
        "+5511",
        "+5521",
        "+55119",
        "+55929",
        "+55800",
        "+7495",
        "+7700",
        "+61",
        "+44",
        "+3906",
        "+39333",
        "+999",
        "+0",
    ]
    numbers = []
    for _ in range(6_000):
        head = rng.choice(heads)
        numbers.append(head + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 13))))
    numbers += [
        "+6281234567890",
        "+628112345678",
        "+493012345678",
        "+12125550123",
        "+18005550123",
        "",
        "+",
        "abc",
    ]
    return numbers


def test_the_prefix_cache_gives_exactly_phonenumbers_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = _varied_numbers()
    expected = {phone: _uncached(phone, "Asia/Makassar") for phone in numbers}
    parsed: list[str] = []

    def counted(phone: str) -> tuple[str, ...]:
        parsed.append(phone)
        return phone_zones(phone)

    monkeypatch.setattr(zones_module, "phone_zones", counted)
    zones = ZoneResolver(None, "Asia/Makassar")
    for _ in range(2):  # the second round answers every prefix from the cache
        for phone in numbers:
            assert zones.resolve(phone, None) == expected[phone], phone
    canonical = [p for p in numbers if is_canonical_e164(p)]
    assert len(canonical) > 500
    assert not set(parsed) & set(canonical)  # answered from the prefix and the number's type, never parsed
    cached = [zones_module._prefix_zones(p[1:10]) for p in canonical]
    # US, Brazil, Indonesian mobiles: the number's type chooses between the prefix's zone and the country's
    assert sum(geo != country for geo, country, _ in cached) > 100
    assert sum(geo is None and country is None for geo, country, _ in cached) > 100  # +62811, +62818
    assert sum(geo == country == "Europe/Berlin" for geo, country, _ in cached) > 100


def test_every_countrys_numbers_of_every_type_get_phonenumbers_zone() -> None:
    """Fixed lines, mobiles (geographical in a few countries only), toll-free, …: of every region."""
    rng = random.Random(1515)
    zones = ZoneResolver(None, "UTC")
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            digits = phonenumbers.format_number(example, PhoneNumberFormat.E164)[1:]
            for _ in range(4):
                tail = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 4)))
                phone = "+" + digits[: len(digits) - len(tail)] + tail
                checked += is_canonical_e164(phone)
                assert zones.resolve(phone, None) == _uncached(phone, "UTC"), phone
    assert checked > 3000
