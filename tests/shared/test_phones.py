"""Tests normalize_phone and mask_phone, and that the fast path agrees with phonenumbers."""

from __future__ import annotations

import random
from collections import Counter

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from shared.parsing import phones
from shared.parsing.phones import NO_REGION_REASON, mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+6281234567890", None, "+6281234567890"),
        ("+6281234567890", "US", "+6281234567890"),
        ("  +6281234567890  ", None, "+6281234567890"),
        ("+62 812-3456-7890", None, "+6281234567890"),
        ("+62 (812) 3456.7890", None, "+6281234567890"),
        ("+62\u00a0812\u00a03456\u00a07890", None, "+6281234567890"),
        ("0062 812 3456 7890", None, "+6281234567890"),
        ("0062 812 3456 7890", "US", "+6281234567890"),
        ("0812-3456-7890", "ID", "+6281234567890"),
        ("0812 3456 7890", "id", "+6281234567890"),
        ("812-3456-7890", "ID", "+6281234567890"),
        ("6281234567890", "ID", "+6281234567890"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("1 202 555 0143", "US", "+12025550143"),
        ("+1 (202) 555-0143", None, "+12025550143"),
        ("+44 (0) 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+39 06 1234 5678", None, "+390612345678"),
        ("+5491112345678", None, "+5491112345678"),
        (
            "+\u0666\u0662\u0668\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660",
            None,
            "+6281234567890",
        ),
    ],
)
def test_normalizes_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "ID", "empty"),
        ("   ", "ID", "empty"),
        ("0812-3456-7890", None, NO_REGION_REASON),
        ("6281234567890", None, NO_REGION_REASON),
        ("n/a", "ID", "not a valid phone number (contains 'n')"),
        ("+62 812 3456 7890 ext 5", None, "not a valid phone number (contains 'e')"),
        ("+62+8123456789", None, "not a valid phone number (contains '+')"),
        ("+", None, "not a valid phone number"),
        ("---", "ID", "not a valid phone number"),
        ("+62812345678901234", None, "too long"),
        ("0812345678901234567", "ID", "too long"),
        ("+6281", None, "too short for ID"),
        ("12", "ID", "too short for ID"),
        ("+999 1234567", None, "unknown country code"),
        ("+1 555 000 1234", None, "not a valid phone number for US"),
    ],
)
def test_rejects_with_a_short_reason(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_phone(raw, region)
    assert str(caught.value) == reason


def test_unknown_default_region_is_named() -> None:
    with pytest.raises(ValueError, match="unknown default region 'XX'"):
        normalize_phone("0812-3456-7890", "XX")


def test_output_is_idempotent_and_valid() -> None:
    for raw, region in [("0812-3456-7890", "ID"), ("+44 (0) 20 7946 0958", None), ("(202) 555-0143", "US")]:
        once = normalize_phone(raw, region)
        assert normalize_phone(once, None) == once
        assert phonenumbers.is_valid_number(phonenumbers.parse(once, None))


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+6281234567890", "+62812****890"),
        ("+12025550143", "+12025****143"),
        ("+2901234", "+29****34"),
        ("+1", "****"),
    ],
)
def test_mask_phone(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


def _slow_e164(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


_TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]


def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                out.append((region, example))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            out.append(("001", example))
    return out


def _mutations(digits: str, rng: random.Random, count: int) -> list[str]:
    out = [digits]
    for _ in range(count):
        chars = list(digits)
        roll = rng.random()
        if roll < 0.5:
            for _ in range(rng.randint(1, 3)):
                chars[rng.randrange(len(chars))] = str(rng.randrange(10))
        elif roll < 0.7:
            chars.append(str(rng.randrange(10)))
        elif roll < 0.85 and len(chars) > 3:
            chars.pop()
        else:
            chars.insert(0, "0")
        out.append("".join(chars))
    return out


def test_e164_fast_path_agrees_with_phonenumbers() -> None:
    """Whenever the fast path says valid, phonenumbers reads the very same number as valid."""
    rng = random.Random(20260101)
    accepted = 0
    for _, example in _examples():
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        for digits in _mutations(e164[1:], rng, 12):
            if phones._fast_e164(digits):
                accepted += 1
                assert _slow_e164("+" + digits, None) == "+" + digits, digits
    assert accepted > 3000  # the fast path is really taken


#: phonenumbers' types as `canonical_e164_type` names them (FIXED_LINE_OR_MOBILE matched the fixed-line pattern).
_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}


def test_the_fast_path_tells_phonenumbers_number_type() -> None:
    """The type read from the fast check's match is phonenumbers' number_type (local-time zones need it)."""
    rng = random.Random(20260103)
    typed: Counter[str] = Counter()
    for _, example in _examples():
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        for digits in _mutations(e164[1:], rng, 12):
            kind = phones.canonical_e164_type("+" + digits)
            assert (kind is not None) == phones.is_canonical_e164("+" + digits), digits
            if kind is not None:
                expected = phonenumbers.number_type(phonenumbers.parse("+" + digits, None))
                assert kind == _TYPE_NAMES[expected], digits
                typed[kind] += 1
    assert phones.canonical_e164_type("6281234567890") is None
    assert phones.canonical_e164_type("+62 812 3456 7890") is None
    assert typed["fixed_line"] > 1000 and typed["mobile"] > 1000, typed
    assert min(typed[k] for k in phones._TYPE_ORDER) > 40, typed  # every type is met


def test_national_fast_path_agrees_with_phonenumbers() -> None:
    rng = random.Random(20260102)
    accepted = 0
    for region, example in _examples():
        if region == "001":
            continue
        national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
        seed = "".join(ch for ch in national if ch.isdigit())
        for digits in _mutations(seed, rng, 6):
            fast = phones._fast_national(digits, region)
            if fast is not None:
                accepted += 1
                assert _slow_e164(digits, region) == fast, (region, digits)
    assert accepted > 1000


def test_slow_and_fast_paths_give_the_same_verdict() -> None:
    """normalize_phone on "+digits" is exactly phonenumbers' verdict (within E.164's 15 digits)."""
    rng = random.Random(7)
    for _, example in _examples()[::5]:
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        for digits in _mutations(e164[1:], rng, 4):
            expected = _slow_e164("+" + digits, None)
            if expected is not None and len(expected) > 16:
                continue
            try:
                got: str | None = normalize_phone("+" + digits, None)
            except ValueError:
                got = None
            assert got == expected, digits
