"""Provides property tests of the parsers: CSV reader, phone numbers, send times and send components."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from shared.errors import CsvError, ValidationFailed
from shared.parsing.csv_rows import AcceptedRow, RecipientCsv, RejectedRow, column_key
from shared.parsing.phones import normalize_phone
from shared.parsing.send_at import parse_when
from shared.parsing.template_params import (
    build_send_components,
    check_param_value,
    param_keys,
    render_preview,
)

#: BLAST_PROPERTY_EXAMPLES=5000 for a long hunt; 200 keeps the suite fast.
SETTINGS = settings(
    max_examples=int(os.environ.get("BLAST_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
REGIONS = [None, "ID", "US", "GB", "DE", "IN", "BR", "AR", "IT", "RU", "MX"]


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file the examples overwrite (hypothesis runs many examples per test call)."""
    return tmp_path_factory.mktemp("props") / "recipients.csv"


# --- (a) CSV reader --------------------------------------------------------------------------------------

COLUMN_NAMES = ["first_name", "order_id", "1", "2", "header_1", "button_0_1", "Notes", "Ünïcode", "x y"]
PHONE_SAMPLES = [
    "+6281234567890",
    "0812-3456-7890",
    "+1 202 555 0143",
    "00 44 20 7946 0958",
    "+62 81",
    "n/a",
    "",
]
cell_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
cells = st.one_of(
    cell_text,
    st.sampled_from(['"', '""', ",", ";", "\t", "\n", "\r\n", " ", "     x", "", "é", "{{1}}"]),
)
phone_cells = st.one_of(st.sampled_from(PHONE_SAMPLES), cell_text)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[list[str], list[list[str]], str, bytes]:
    extra = draw(st.lists(st.sampled_from(COLUMN_NAMES), unique_by=column_key, max_size=4))
    header = draw(st.permutations(["phone", *extra]))
    # With one column there is no delimiter in the header to find, so the file must use the default.
    delimiter = draw(st.sampled_from([",", ";", "\t"])) if len(header) > 1 else ","
    phone_at = header.index("phone")
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row = draw(st.lists(cells, min_size=len(header), max_size=len(header)))
        row[phone_at] = draw(phone_cells)
        rows.append(row)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    # csv.writer leaves a lone CR unquoted when lines end in LF, and it would read as a line break.
    lone_cr = newline == "\n" and any("\r" in cell for row in rows for cell in row)
    quoting: Literal[0, 1] = csv.QUOTE_ALL if lone_cr or draw(st.booleans()) else csv.QUOTE_MINIMAL
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return header, rows, delimiter, bom + buffer.getvalue().encode("utf-8")


def _is_blank(cells: Sequence[str]) -> bool:
    return not "".join(cells).strip()


@SETTINGS
@given(file=csv_files(), data=st.data())
def test_csv_rows_match_what_was_written(
    csv_path: Path, file: tuple[list[str], list[list[str]], str, bytes], data: st.DataObject
) -> None:
    header, rows, delimiter, content = file
    csv_path.write_bytes(content)
    # Template keys are lowercase (Meta's rule), so they are drawn as the reader compares names.
    keys = [column_key(h) for h in header if h != "phone"]
    required = data.draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
    region = data.draw(st.sampled_from(REGIONS))
    if all(_is_blank(r) for r in rows):
        with pytest.raises(CsvError, match="has a header but no data rows"):
            RecipientCsv(csv_path, required_keys=required, default_region=region)
        return
    reader = RecipientCsv(csv_path, required_keys=required, default_region=region)
    assert reader.delimiter == delimiter
    assert reader.columns == [column_key(h) for h in header]
    got = iter(reader)
    phone_at = header.index("phone")
    for number, row in enumerate(rows, start=1):
        if _is_blank(row):
            continue
        item = next(got)
        assert item.row == number
        try:
            phone = normalize_phone(row[phone_at], region)
        except ValueError as exc:
            assert item == RejectedRow(number, row[phone_at].strip()[:200], str(exc))
            continue
        params = {column_key(h): v.strip() for h, v in zip(header, row, strict=True) if h != "phone"}
        if isinstance(item, RejectedRow):
            key, _, reason = item.reason.partition(": ")
            assert key in required
            assert item.value == params[key][: len(item.value)]
            assert reason
        else:
            assert item == AcceptedRow(number, phone, params)
    assert next(got, None) is None


JUNK_TOKENS = [b"phone", b"Phone ", b"name", b",", b";", b"\t", b'"', b"\n", b"\r\n", b"\r", b" ", b"x" * 50]
junk_tokens = st.sampled_from(
    [
        *JUNK_TOKENS,
        b"+6281234567890",
        b"0812-3456-7890",
        b"\xef\xbb\xbf",
        b"\xff",
        b"\xc3",
        b"\xc3\xa9",
        b"\x00",
    ]
)


@SETTINGS
@given(content=st.one_of(st.binary(max_size=300), st.lists(junk_tokens, max_size=40).map(b"".join)))
def test_csv_reader_only_ever_raises_csv_error(csv_path: Path, content: bytes) -> None:
    csv_path.write_bytes(content)
    try:
        for item in RecipientCsv(csv_path, required_keys=["name"], default_region="ID"):
            assert isinstance(item, AcceptedRow | RejectedRow)
            assert item.row >= 1
    except CsvError as exc:
        assert "\n" not in str(exc)


# --- (b) phone numbers -----------------------------------------------------------------------------------

country_codes = st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
digit_runs = st.text("0123456789", min_size=4, max_size=13)
phone_inputs = st.one_of(
    st.builds(lambda cc, rest: f"+{cc}{rest}", country_codes, digit_runs),
    st.builds(lambda cc, rest: f"00{cc} {rest[:3]}-{rest[3:]}", country_codes, digit_runs),
    st.builds(lambda rest: "0" + rest, digit_runs),
    st.text("0123456789 +-().", max_size=22),
    st.text(max_size=20),
)
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@SETTINGS
@given(raw=phone_inputs, region=st.sampled_from(REGIONS))
def test_normalize_phone_is_valid_and_idempotent(raw: str, region: str | None) -> None:
    try:
        once = normalize_phone(raw, region)
    except ValueError as exc:
        assert str(exc)
        return
    assert E164.fullmatch(once)
    assert phonenumbers.is_valid_number(phonenumbers.parse(once, None))
    assert normalize_phone(once, None) == once
    assert normalize_phone(once, region) == once


@SETTINGS
@given(cc=country_codes, rest=digit_runs)
def test_normalize_phone_agrees_with_phonenumbers(cc: int, rest: str) -> None:
    text = f"+{cc}{rest}"
    assume(len(text) <= 16)
    try:
        number = phonenumbers.parse(text, None)
        expected = (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if phonenumbers.is_valid_number(number)
            else None
        )
    except phonenumbers.NumberParseException:
        expected = None
    assume(expected is None or len(expected) <= 16)
    try:
        got: str | None = normalize_phone(text, None)
    except ValueError:
        got = None
    assert got == expected


# --- (c) send times --------------------------------------------------------------------------------------

ZONES = [
    ZoneInfo(name)
    for name in (
        "UTC",
        "Asia/Jakarta",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "America/St_Johns",
        "Pacific/Chatham",
    )
]
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@SETTINGS
@given(moment=moments, zone=st.sampled_from(ZONES), sep=st.sampled_from(["T", " "]))
# The first 01:00 of the night British Summer Time ended (01:00 came twice): found by hypothesis.
@example(moment=datetime(2000, 10, 29, 0, 0, tzinfo=UTC), zone=ZoneInfo("Europe/London"), sep="T")
def test_parse_when_round_trips_times_with_an_offset(moment: datetime, zone: ZoneInfo, sep: str) -> None:
    local = moment.astimezone(zone)
    assert parse_when(local.isoformat(sep=sep), zone=zone, now=NOW) == moment
    assert parse_when(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), zone=zone, now=NOW) == moment
    minutes = local.replace(second=0, microsecond=0)
    # Compared as UTC instants: an aware datetime in an ambiguous hour (its offset depends on `fold`) never
    # equals one in another zone (PEP 495), even at the same instant.
    expected = minutes.astimezone(UTC)
    assert parse_when(minutes.strftime(f"%Y-%m-%d{sep}%H:%M%z"), zone=zone, now=NOW) == expected


@SETTINGS
@given(moment=moments, zone=st.sampled_from(ZONES), sep=st.sampled_from(["T", " "]))
def test_parse_when_round_trips_wall_clock_times(moment: datetime, zone: ZoneInfo, sep: str) -> None:
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    got = parse_when(wall.isoformat(sep=sep), zone=zone, now=NOW)
    assert got.tzinfo is UTC
    assert got.astimezone(zone).replace(tzinfo=None) == wall
    if local.fold == 0:
        assert got == moment
    else:  # the second of two equal wall-clock times: the first one is meant
        assert got < moment


@SETTINGS
@given(amount=st.integers(0, 10**6), unit=st.sampled_from(["s", "m", "h", "d"]))
def test_parse_when_relative(amount: int, unit: str) -> None:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    try:
        got = parse_when(f"+{amount}{unit}", zone=ZONES[1], now=NOW)
    except ValidationFailed:
        assert seconds > 3660 * 86400
        return
    assert got == NOW + timedelta(seconds=seconds)


@SETTINGS
@given(text=st.one_of(st.text(max_size=30), st.text("0123456789-:+TZ .smhdnow", max_size=30)))
def test_parse_when_junk_raises_validation_failed_only(text: str) -> None:
    try:
        got = parse_when(text, zone=ZONES[2], now=NOW)
    except ValidationFailed as exc:
        assert "\n" not in str(exc)
        return
    assert got.tzinfo is UTC


# --- (d) send components ---------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not n.startswith(("header_", "button_"))
)
filler = st.text(st.characters(exclude_characters="{}", exclude_categories=["Cs"]), max_size=8)
values = st.text(st.characters(exclude_characters="{}", exclude_categories=["Cs"]), min_size=1, max_size=10)


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[str], list[dict[str, object]]]:
    fmt = draw(st.sampled_from(["POSITIONAL", "NAMED"]))
    if fmt == "NAMED":
        keys = draw(st.lists(names, unique=True, max_size=6))
    else:
        keys = [str(i) for i in range(1, draw(st.integers(0, 8)) + 1)]
    first = draw(st.permutations(keys))
    repeats = draw(st.lists(st.sampled_from(keys), max_size=3)) if keys else []
    body = "".join(draw(filler) + "{{" + k + "}}" for k in [*first, *repeats]) + draw(filler)
    components: list[dict[str, object]] = [{"type": "BODY", "text": body}]
    if draw(st.booleans()):
        components.insert(
            0,
            {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}" if fmt == "POSITIONAL" else "Hi {{who}}"},
        )
    if draw(st.booleans()):
        components.append(
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Go", "url": "https://x/{{1}}"}]}
        )
    expected = list(first) if fmt == "NAMED" else keys
    return fmt, expected, components


@SETTINGS
@given(template=templates(), data=st.data())
def test_build_send_components_has_one_body_parameter_per_key(
    template: tuple[str, list[str], list[dict[str, object]]], data: st.DataObject
) -> None:
    fmt, expected, components = template
    tp = param_keys(components, fmt)
    assert list(tp.body) == expected
    assert tp.body_count == len(expected)
    given_values = {key: data.draw(values) for key in tp.all_keys}
    sent = build_send_components(tp, fmt, given_values)
    bodies = [c for c in sent if c["type"] == "body"]
    if not expected:
        assert bodies == []
    else:
        (body,) = bodies
        params = body["parameters"]
        assert len(params) == tp.body_count
        assert [p["text"] for p in params] == [given_values[k] for k in tp.body]
        if fmt == "NAMED":
            assert [p["parameter_name"] for p in params] == list(tp.body)
        else:
            assert all("parameter_name" not in p for p in params)
    assert len([c for c in sent if c["type"] == "header"]) == (1 if tp.header else 0)
    assert len([c for c in sent if c["type"] == "button"]) == len(tp.buttons)
    assert "{{" not in render_preview(components, given_values)


@SETTINGS
@given(
    value=st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
    | st.sampled_from(["a     b", " \t", "x\u2028"])
)
def test_check_param_value_matches_the_plain_rule(value: str) -> None:
    refused = (
        value.strip() == ""
        or any(ch in value for ch in "\n\r\t\v\f\x85\u2028\u2029")
        or "     " in value
        or len(value) > 1024
    )
    assert (check_param_value(value) is not None) == refused
