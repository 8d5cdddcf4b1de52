"""Provides phone number normalization to E.164 and masking for logs."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

__all__ = ["canonical_e164_type", "is_canonical_e164", "mask_phone", "normalize_phone"]

NO_REGION_REASON = "no country code and BLAST_DEFAULT_REGION is not set"

#: Characters people put between digits; all Unicode spaces and the BOM go too.
_SEPARATORS = " -.()\t\u00a0\u2007\u202f\u2009\u200b\u2010\u2011\u2012\u2013\u2014\ufeff"
_DROP_SEPARATORS = str.maketrans(dict.fromkeys(_SEPARATORS))

#: E.164 allows at most 15 digits after '+'; a national number is never longer than phonenumbers' 17.
_MAX_E164_DIGITS = 15
_MAX_NATIONAL_DIGITS = 17

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a valid phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
}


def normalize_phone(raw: str, default_region: str | None) -> str:
    """Turn a phone number as people write it into E.164.

    Spaces, dashes, dots and parentheses are ignored; a leading "00" means "+". A number without a
    country code is read as a national number of `default_region`.

    Args:
        raw: the number as typed, e.g. "+62 812-3456-7890", "0062 812 3456 7890" or "0812-3456-7890".
        default_region: ISO region (e.g. "ID") for numbers written without a country code, or None.

    Returns:
        The number in E.164 with a leading '+', e.g. "+6281234567890".

    Raises:
        ValueError: the number is not a valid phone number; the message is a short reason fit for a
            rejected-row report, such as "too long" or "not a valid phone number".
    """
    text = raw.strip()
    # Fast path: most recipient files already hold E.164 numbers; _fast_e164 only ever says "valid".
    if text[:1] == "+" and text.isascii() and text[1:].isdigit() and _fast_e164(text[1:]):
        return text
    return _normalize_slow(text, default_region)


def is_canonical_e164(phone: str) -> bool:
    """True only when `phone` is "+<digits>" that phonenumbers reads as exactly this valid number (so its
    E.164 form is `phone` itself); False also when the fast check cannot tell."""
    digits = phone[1:]
    return phone[:1] == "+" and digits.isascii() and digits.isdigit() and _fast_e164(digits) is not None


def canonical_e164_type(phone: str) -> str | None:
    """phonenumbers' type of a number `is_canonical_e164` accepts, read from the fast check's own match: the
    PhoneMetadata field of the first description it matches, in `number_type`'s order ("premium_rate",
    "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "fixed_line" (also
    FIXED_LINE_OR_MOBILE), "mobile"). None when `is_canonical_e164` is False."""
    digits = phone[1:]
    if phone[:1] != "+" or not digits.isascii() or not digits.isdigit():
        return None
    found = _fast_e164(digits)
    return None if found is None else found.lastgroup


def mask_phone(e164: str) -> str:
    """Hide the middle digits of a phone number for logs.

    Args:
        e164: a number such as "+6281234567890".

    Returns:
        The number with its middle replaced by four stars, e.g. "+62812****890".
    """
    if len(e164) >= 10:
        return f"{e164[:6]}****{e164[-3:]}"
    if len(e164) >= 6:
        return f"{e164[:3]}****{e164[-2:]}"
    return "****"


def _normalize_slow(text: str, default_region: str | None) -> str:
    if not text:
        raise ValueError("empty")
    cleaned = text.translate(_DROP_SEPARATORS)
    has_plus = cleaned.startswith("+")
    digits = _ascii_digits(cleaned[1:] if has_plus else cleaned)
    if not has_plus and digits.startswith("00"):
        has_plus, digits = True, digits[2:]
    if not digits:
        raise ValueError("not a valid phone number")
    if has_plus:
        if len(digits) > _MAX_E164_DIGITS:
            raise ValueError("too long")
        if _fast_e164(digits) is not None:
            return "+" + digits
        to_parse, region = "+" + digits, None
    else:
        if default_region is None:
            raise ValueError(NO_REGION_REASON)
        if default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown default region {default_region!r}")
        if len(digits) > _MAX_NATIONAL_DIGITS:
            raise ValueError("too long")
        region = default_region.upper()
        fast = _fast_national(digits, region)
        if fast is not None:
            return fast
        to_parse = digits
    try:
        number = phonenumbers.parse(to_parse, region)
    except NumberParseException as exc:
        raise ValueError(_PARSE_REASONS.get(exc.error_type, "not a valid phone number")) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_invalid_reason(number))
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if len(e164) - 1 > _MAX_E164_DIGITS:
        raise ValueError("too long")  # phonenumbers knows a few national numbers E.164 has no room for
    return e164


def _ascii_digits(text: str) -> str:
    """The digits of `text` in ASCII (other scripts' digits converted); ValueError names a stray character."""
    if text.isascii() and text.isdigit():
        return text
    out: list[str] = []
    for ch in text:
        if ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        else:
            raise ValueError(f"not a valid phone number (contains {ch!r})")
    return "".join(out)


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        return f"unknown country code +{number.country_code}"
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    where = f" for {region}" if region not in ("ZZ", "001") else ""
    return _LENGTH_REASONS.get(reason, "not a valid phone number") + where


# --- fast path ----------------------------------------------------------------------------------------
# phonenumbers.parse + is_valid_number cost about 20 µs a number, which caps the CSV reader near 40k rows/s.
# For input already in "+<digits>" form the same verdict can be reached with one precompiled regex per
# country and length, following phonenumbers' own rules (parse: country code, national prefix stripping;
# is_valid_number: region choice, general pattern, then any number type's pattern and lengths). Anything
# the fast path is unsure of goes the slow way; tests compare both paths on every region's example numbers.
# Each type's pattern is a named group, tried in number_type's order, so a match also tells the type.

_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P")


#: The PhoneMetadata descriptions phonenumbers' number_type tries, in its order (each a named group below).
_TYPE_ORDER = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


@dataclass(slots=True)
class _RegionCheck:
    """is_valid_number_for_region for one region, as one regex per national number length (its match's
    lastgroup is the number's type)."""

    metadata: PhoneMetadata
    leading: re.Pattern[str] | None
    #: Prepended to every pattern: lookaheads that must hold at the start (see _CountryCheck).
    guard: str = ""
    by_length: dict[int, re.Pattern[str] | None] = field(default_factory=dict)

    def match(self, nsn: str) -> re.Match[str] | None:
        length = len(nsn)
        try:
            pattern = self.by_length[length]
        except KeyError:
            pattern = self.by_length[length] = self._compile(length)
        return None if pattern is None else pattern.fullmatch(nsn)

    def _compile(self, length: int) -> re.Pattern[str] | None:
        md = self.metadata
        general = md.general_desc
        if general is None or not general.national_number_pattern:
            return None
        if general.possible_length and length not in general.possible_length:
            return None
        kinds = list(_TYPE_ORDER)
        # phonenumbers only tries the mobile pattern when it differs from the fixed-line one.
        if md.same_mobile_and_fixed_line_pattern:
            kinds.remove("mobile")
        patterns: list[tuple[str, str]] = []
        for kind in kinds:
            d: PhoneNumberDesc | None = getattr(md, kind)
            if (
                d is not None
                and d.national_number_pattern
                and (not d.possible_length or length in d.possible_length)
            ):
                patterns.append((kind, d.national_number_pattern))
        if not patterns:
            return None
        types = "|".join(f"(?P<{kind}>{p})" for kind, p in patterns)
        return re.compile(f"{self.guard}(?=(?:{general.national_number_pattern})\\Z)(?:{types})")


@dataclass(slots=True)
class _CountryCheck:
    size: int
    national_prefix: re.Pattern[str] | None
    regions: list[_RegionCheck]

    def match(self, nsn: str) -> re.Match[str] | None:
        regions = self.regions
        if len(regions) == 1:
            return regions[0].match(nsn)  # its guard holds the two checks below
        if nsn[0] == "0" or (self.national_prefix is not None and self.national_prefix.match(nsn)):
            return None
        # phonenumbers.region_code_for_number: the first region whose leading digits match, or (for
        # a region without leading digits) which accepts the number, decides (and gives the type).
        for region in regions:
            if region.leading is not None:
                if region.leading.match(nsn):
                    return region.match(nsn)
            else:
                found = region.match(nsn)
                if found is not None:
                    return found
        return None


def _metadata_patterns(metadata: PhoneMetadata) -> list[str]:
    descs: list[PhoneNumberDesc | None] = [metadata.general_desc]
    descs += (getattr(metadata, kind) for kind in _TYPE_ORDER)
    return [d.national_number_pattern for d in descs if d is not None and d.national_number_pattern]


def _build_country(code: int) -> _CountryCheck | None:
    region_codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not region_codes:
        return None
    checks: list[_RegionCheck] = []
    for region_code in region_codes:
        if region_code == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            metadata = PhoneMetadata.metadata_for_nongeo_region(code, None)
        else:
            metadata = PhoneMetadata.metadata_for_region(region_code, None)
        if metadata is None:
            continue
        if any(_BACKREFERENCE.search(p) for p in _metadata_patterns(metadata)):
            return None  # merging patterns would renumber (or name twice) their groups
        leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
        checks.append(_RegionCheck(metadata=metadata, leading=leading))
    # parse() strips a national prefix with the main region's rules even after a '+country code'.
    if not checks or checks[0].metadata.id != region_codes[0]:
        return None
    prefix = checks[0].metadata.national_prefix_for_parsing or None
    if len(checks) == 1:
        # Leading zeros (Italy) need phonenumbers' own bookkeeping, and where parse() might strip or
        # transform a national prefix the slow path decides: both become lookaheads.
        checks[0].guard = "(?!0)" + (f"(?!(?:{prefix}))" if prefix else "")
    return _CountryCheck(
        size=len(str(code)), national_prefix=re.compile(prefix) if prefix else None, regions=checks
    )


_by_code: dict[int, _CountryCheck | None] = {}
#: The country check for the first three digits of an E.164 number (filled as numbers are seen).
_by_head: dict[str, _CountryCheck | None] = {}


def _country_for_head(head: str) -> _CountryCheck | None:
    if head[0] == "0":
        return None
    for size in (1, 2, 3):
        code = int(head[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            if code not in _by_code:
                _by_code[code] = _build_country(code)
            return _by_code[code]
    return None


def _fast_e164(digits: str) -> re.Match[str] | None:
    """A match (its lastgroup: the number's type) only when phonenumbers would read "+<digits>" as exactly
    this valid number; None when it would not or the fast path cannot tell."""
    if not 8 <= len(digits) <= _MAX_E164_DIGITS:
        return None
    head = digits[:3]
    try:
        check = _by_head[head]
    except KeyError:
        check = _by_head[head] = _country_for_head(head)
    return None if check is None else check.match(digits[check.size :])


@dataclass(frozen=True, slots=True)
class _NationalRules:
    country_code: str
    international_prefix: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    general: re.Pattern[str] | None
    possible_lengths: frozenset[int]


_national: dict[str, _NationalRules | None] = {}


def _national_rules(region: str) -> _NationalRules | None:
    try:
        return _national[region]
    except KeyError:
        pass
    metadata = PhoneMetadata.metadata_for_region(region, None)
    rules = None
    if metadata is not None and metadata.country_code and not metadata.national_prefix_transform_rule:
        idd = metadata.international_prefix
        prefix = metadata.national_prefix_for_parsing
        general = metadata.general_desc
        pattern = general.national_number_pattern if general is not None else None
        lengths = set(general.possible_length) if general is not None else set()
        if general is not None and general.possible_length_local_only:
            lengths -= set(general.possible_length_local_only)
        rules = _NationalRules(
            country_code=str(metadata.country_code),
            international_prefix=re.compile(idd) if idd else None,
            national_prefix=re.compile(prefix) if prefix else None,
            general=re.compile(pattern) if pattern else None,
            possible_lengths=frozenset(lengths),
        )
    _national[region] = rules
    return rules


def _fast_national(digits: str, region: str) -> str | None:
    """E.164 of a national number when phonenumbers would surely read it so, else None (go the slow way)."""
    rules = _national_rules(region)
    if rules is None or digits.startswith(rules.country_code):
        return None  # parse() may then take the leading digits for the country code
    if rules.international_prefix is not None and rules.international_prefix.match(digits):
        return None
    nsn = digits
    if rules.national_prefix is not None:
        found = rules.national_prefix.match(digits)
        if found is not None:
            if any(g is not None for g in found.groups()):
                return None  # a carrier code
            nsn = digits[found.end() :]
            # parse() keeps the prefix unless the rest fits this region's general pattern and lengths.
            fits = rules.general is not None and rules.general.fullmatch(nsn) is not None
            if not fits or len(nsn) not in rules.possible_lengths:
                return None
    candidate = rules.country_code + nsn
    return "+" + candidate if _fast_e164(candidate) is not None else None
