"""Provides the streaming reader of recipient CSV files: one accepted or rejected row per data row."""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from shared.errors import CsvError, ValidationFailed
from shared.parsing.phones import normalize_phone
from shared.parsing.template_params import check_param_value

__all__ = ["PHONE_COLUMN", "AcceptedRow", "RecipientCsv", "RejectedRow", "column_key"]

PHONE_COLUMN = "phone"
_NO_CONSTANTS: Mapping[str, str] = MappingProxyType({})
#: A header line longer than this is not a header (and reading on would load a binary file into memory).
_MAX_HEADER_BYTES = 1 << 20
#: Rejected values are cut to this many characters, so a runaway cell cannot bloat the report.
_MAX_SHOWN_VALUE = 200
#: Tried in this order when two candidates appear equally often in the header.
_DELIMITERS = ("\t", ";", ",")
_LONE_CR = re.compile(r"\r(?!\n)")


@dataclass(frozen=True, slots=True)
class AcceptedRow:
    """A data row that can be sent.

    Attributes:
        row: the record's number after the header, from 1 (blank records count, so row N is the
            spreadsheet's row N + 1).
        phone: the number in E.164, e.g. "+6281234567890".
        params: the template's keys (from columns or constants) and every other named column, stripped.
    """

    row: int
    phone: str
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A data row that cannot be sent.

    Attributes:
        row: numbered like AcceptedRow.row.
        value: the offending cell as written (or the whole row for a wrong cell count), at most 200 chars.
        reason: a short reason, e.g. "not a valid phone number" or "first_name: empty value".
    """

    row: int
    value: str
    reason: str


def column_key(name: str) -> str:
    """How header names are compared: case-insensitive, outer spaces dropped, inner ones read as '_'."""
    return "_".join(name.split()).lower()


class RecipientCsv:
    """A recipients file, checked when opened and streamed row by row.

    UTF-8 with or without BOM; LF or CRLF; comma, semicolon or tab separated (guessed from the header).
    The header must have a `phone` column and a column (or a constant) for every required key. Iterating
    opens the file again, so an instance can be iterated more than once; memory stays constant.

    Attributes:
        path: the file.
        columns: the header's names as compared (column_key), in file order ("" for unnamed columns).
        header_names: the header's names as written.
        delimiter: the separator found in the header.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        required_keys: Sequence[str],
        constants: Mapping[str, str] = _NO_CONSTANTS,
        default_region: str | None,
        template_label: str = "the template",
        display_name: str | None = None,
    ) -> None:
        """Open the file and check its header and that it has data.

        Args:
            path: the CSV file.
            required_keys: the template's keys (TemplateParams.all_keys), e.g. ("first_name", "order_id").
            constants: values for keys that have no column; a column wins over a constant.
            default_region: ISO region for phone numbers without a country code, or None.
            template_label: how errors name the template, e.g. "template order_update".
            display_name: how errors name the file (default: its path), e.g. "upload customers.csv" for a
                file the HTTP API spooled to a temporary path that means nothing to its sender.

        Raises:
            CsvError: one line: missing file, not a regular file, empty, header only, no phone column,
                a required key missing, duplicate column names, undecodable header.
            ValidationFailed: a constant that cannot be sent (e.g. empty).
        """
        self.path = Path(path)
        self.display_name = display_name or str(self.path)
        self.required_keys = tuple(required_keys)
        self.default_region = default_region
        self.template_label = template_label
        for key, value in constants.items():
            reason = check_param_value(value)
            if reason is not None:
                raise ValidationFailed(f"constant {key}: {reason}")
        self.constants = dict(constants)
        with self._open() as raw:
            self._header_lines, self._header_text = self._read_header(raw)
            delimiter = _sniff_delimiter(self._header_text)
            if delimiter is None:
                raise self._error(f"has an unclosed quote in its header (line {self._header_lines})")
            self.delimiter: str = delimiter
            self.header_names = next(csv.reader([self._header_text], delimiter=self.delimiter))
            self.columns = [column_key(name) for name in self.header_names]
            self._check_columns()
            self._phone_index = self.columns.index(PHONE_COLUMN)
            self._plan = self._make_plan()
            if not self._has_data(raw):
                raise self._error("has a header but no data rows")

    # --- iteration ---------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[AcceptedRow | RejectedRow]:
        """Yield one AcceptedRow or RejectedRow per data row, in file order; blank rows are skipped.

        Raises:
            CsvError: bytes that are not UTF-8 (naming the line) or a line the csv module cannot read;
                the rows already yielded should then be discarded with the rest.
        """
        with self._open() as raw:
            header_lines, header_text = self._read_header(raw)
            if header_text != self._header_text:
                raise self._error("changed while it was being read")
            reader = csv.reader(_decoded_lines(raw), delimiter=self.delimiter)
            try:
                yield from self._rows(reader)
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc, header_lines + reader.line_num + 1) from None
            except csv.Error as exc:
                raise self._error(f"line {header_lines + reader.line_num}: {exc}") from None

    def _rows(self, reader: Iterable[list[str]]) -> Iterator[AcceptedRow | RejectedRow]:
        # Hot loop: locals only, and nothing kept from one row to the next.
        width = len(self.columns)
        phone_index = self._phone_index
        region = self.default_region
        plan = self._plan
        constants = self.constants
        delimiter = self.delimiter
        normalize = normalize_phone
        check = check_param_value
        row = 0
        for cells in reader:
            row += 1
            if len(cells) != width:
                if _is_blank(cells):
                    continue
                shown = _shown(delimiter.join(cells))
                yield RejectedRow(row, shown, f"row has {len(cells)} cells, header has {width}")
                continue
            raw_phone = cells[phone_index]
            try:
                phone = normalize(raw_phone, region)
            except ValueError as exc:
                if _is_blank(cells):
                    continue
                yield RejectedRow(row, _shown(raw_phone.strip()), str(exc))
                continue
            params = constants.copy()
            for index, key, is_checked in plan:
                value = cells[index].strip()
                if is_checked:
                    reason = check(value)
                    if reason is not None:
                        yield RejectedRow(row, _shown(value), f"{key}: {reason}")
                        break
                params[key] = value
            else:
                yield AcceptedRow(row, phone, params)

    # --- opening -----------------------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        path, shown = self.path, self.display_name
        try:
            if not path.exists():
                raise CsvError(f"recipients file {shown} does not exist")
            if not path.is_file():
                raise CsvError(f"recipients file {shown} is not a regular file")
            return path.open("rb")
        except PermissionError:
            raise CsvError(f"cannot read recipients file {shown}: permission denied") from None
        except OSError as exc:
            raise CsvError(f"cannot read recipients file {shown}: {exc.strerror or exc}") from None

    def _read_header(self, raw: BinaryIO) -> tuple[int, str]:
        """Read up to the first non-blank line; returns how many lines that took and the line."""
        line_no = 0
        while True:
            data = raw.readline(_MAX_HEADER_BYTES)
            if not data:
                raise self._error("is empty")
            line_no += 1
            if line_no == 1:
                if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise self._error("is UTF-16 (Excel's 'Unicode Text'); save it as 'CSV UTF-8'")
                data = data.removeprefix(codecs.BOM_UTF8)
            if b"\r" in data.rstrip(b"\r\n"):
                raise self._error("has old Mac line endings (CR only); save it as 'CSV UTF-8'")
            if len(data) >= _MAX_HEADER_BYTES and not data.endswith(b"\n"):
                raise self._error(f"line {line_no} is longer than 1 MiB: is it a CSV file?")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc, line_no) from None
            if text.strip():
                return line_no, text

    def _check_columns(self) -> None:
        seen = Counter(name for name in self.columns if name)
        twice = [name for name, count in seen.items() if count > 1]
        if twice:
            raise self._error(f"names column {twice[0]!r} more than once in its header")
        if PHONE_COLUMN not in seen:
            found = ", ".join(repr(n.strip()) for n in self.header_names) or "nothing"
            raise self._error(
                f"has no 'phone' column in its first line (found {found}); "
                "the first line must name the columns, e.g. phone,first_name"
            )
        missing = [
            key for key in self.required_keys if column_key(key) not in seen and key not in self.constants
        ]
        if missing:
            names = ", ".join(repr(k) for k in missing)
            noun = "column" if len(missing) == 1 else "columns"
            raise CsvError(
                f"{noun} {names} missing: {self.template_label} needs {', '.join(self.required_keys)}"
            )

    def _make_plan(self) -> tuple[tuple[int, str, bool], ...]:
        """(column index, params key, checked?) for every column that goes into params."""
        index = {name: i for i, name in enumerate(self.columns) if name}
        plan: list[tuple[int, str, bool]] = []
        used: set[int] = set()
        for key in self.required_keys:
            column = index.get(column_key(key))
            if column is not None and column not in used:
                plan.append((column, key, True))
                used.add(column)
        for i, name in enumerate(self.columns):
            if name and name != PHONE_COLUMN and i not in used:
                plan.append((i, name, False))
        return tuple(plan)

    def _has_data(self, raw: BinaryIO) -> bool:
        """Whether a non-blank record follows the header (a read error means yes: iteration reports it)."""
        try:
            for cells in csv.reader(_decoded_lines(raw), delimiter=self.delimiter):
                if not _is_blank(cells):
                    return True
        except (UnicodeDecodeError, csv.Error):
            return True
        return False

    def _error(self, what: str) -> CsvError:
        return CsvError(f"recipients file {self.display_name} {what}")

    def _decode_error(self, exc: UnicodeDecodeError, line_no: int) -> CsvError:
        data = exc.object if isinstance(exc.object, bytes) else b""
        column = len(data[: exc.start].decode("utf-8", errors="replace")) + 1
        bad = data[exc.start : exc.start + 1].hex() or "??"
        return self._error(
            f"line {line_no} is not UTF-8 (byte 0x{bad} at column {column}); save it as 'CSV UTF-8'"
        )


def _decoded_lines(raw: BinaryIO) -> Iterator[str]:
    """The file's lines, decoded strictly one at a time, split like newline='' (at LF, CRLF and CR).

    Decoding line by line keeps the line number of a bad byte exact and raises it when the reader gets
    there, where a TextIOWrapper decodes 8 KiB ahead of the csv reader.
    """
    for data in raw:
        line = data.decode("utf-8")
        # A CR that does not end the line also ends a line (universal newlines); the csv module then
        # rejoins the pieces of a quoted field.
        if "\r" in line[:-2]:
            yield from _split_at_lone_cr(line)
        else:
            yield line


def _split_at_lone_cr(line: str) -> Iterator[str]:
    start = 0
    for found in _LONE_CR.finditer(line):
        yield line[start : found.end()]
        start = found.end()
    if start < len(line):
        yield line[start:]


def _sniff_delimiter(header: str) -> str | None:
    """The most frequent of tab, ';' and ',' outside quotes (',' if none); None for an unclosed quote."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    in_quotes = False
    for ch in header:
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch in counts:
            counts[ch] += 1
    if in_quotes:
        return None
    best = max(_DELIMITERS, key=lambda d: counts[d])  # max keeps the first of equals
    return best if counts[best] else ","


def _is_blank(cells: list[str]) -> bool:
    return not "".join(cells).strip()


def _shown(value: str) -> str:
    return value if len(value) <= _MAX_SHOWN_VALUE else value[: _MAX_SHOWN_VALUE - 1] + "…"
