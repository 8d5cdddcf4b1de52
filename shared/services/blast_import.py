"""Provides the CSV import engine of blast creation: opening and checking a recipients file, streaming its rows
in batches into the recipient table (duplicates caught by a Bloom filter, each recipient's zone and due time
when the blast has any), and spooling an upload to a file first."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from shared.clock import utcnow
from shared.config import Settings
from shared.errors import TooLarge, ValidationFailed
from shared.models import Recipient, Template
from shared.parsing.csv_rows import AcceptedRow, RecipientCsv, RejectedRow
from shared.parsing.template_params import param_keys
from shared.parsing.zones import ZoneResolver
from shared.status import BlastStatus, RecipientStatus

log = logging.getLogger(__name__)
B, R = BlastStatus, RecipientStatus


#: The optional CSV column naming each recipient's zone (IANA, WIB/WITA/WIT or +08:00).
ZONE_COLUMN = "timezone"


#: Rows written per INSERT batch while importing.
IMPORT_BATCH = 5000


#: Rejected rows kept in a create/edit result (the count is exact; the list stops here).
MAX_REJECTED_LISTED = 10_000


@dataclass(frozen=True, slots=True)
class Rejected:
    row: int
    value: str
    reason: str


class _Bloom:
    """A Bloom filter of the numbers seen so far, so duplicate checks stay in flat memory for any file size."""

    def __init__(self, expected: int) -> None:
        self.m = max(1 << 16, expected * 12)
        self.bits = bytearray(self.m // 8 + 1)

    def _positions(self, key: str) -> Iterator[int]:
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        h1 = int.from_bytes(digest[:8], "little")
        h2 = int.from_bytes(digest[8:], "little") | 1
        for i in range(7):
            yield (h1 + i * h2) % self.m

    def add_check(self, key: str) -> bool:
        """Add key; True if it may have been there before."""
        seen = True
        for pos in self._positions(key):
            byte, bit = divmod(pos, 8)
            if not self.bits[byte] & (1 << bit):
                seen = False
                self.bits[byte] |= 1 << bit
        return seen


@dataclass(slots=True)
class ImportStats:
    accepted: int = 0
    rejected_total: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def reject(self, row: int, value: str, reason: str, *, duplicate: bool = False) -> None:
        self.rejected_total += 1
        self.duplicates += duplicate
        if len(self.rejected) < MAX_REJECTED_LISTED:
            self.rejected.append(Rejected(row=row, value=value, reason=reason))


def _next_chunk(reader: Iterator[AcceptedRow | RejectedRow], n: int) -> list[AcceptedRow | RejectedRow]:
    out: list[AcceptedRow | RejectedRow] = []
    for item in reader:
        out.append(item)
        if len(out) >= n:
            break
    return out


async def import_rows(
    blast_id: int,
    csv: RecipientCsv,
    expected_rows: int,
    tx: BaseDBAsyncClient,
    zones: ZoneResolver | None = None,
) -> ImportStats:
    """Stream the CSV into recipients of `blast_id` inside transaction `tx` (with `zones`: each with its zone,
    and its due time for a local-time blast; a row whose `timezone` cell names no zone is rejected)."""
    stats = ImportStats()
    bloom = _Bloom(expected_rows)
    zoned = None if zones is None else _ZoneValues(zones, postgres=tx.capabilities.dialect == "postgres")
    by_cell = {} if zoned is None else zoned.by_cell
    reader = iter(csv)
    while True:
        # Parsing is CPU work: run it off the event loop so a console stays responsive.
        chunk = await asyncio.to_thread(_next_chunk, reader, IMPORT_BATCH)
        if not chunk:
            break
        batch: dict[str, AcceptedRow] = {}
        row_zones: dict[int, tuple[str, Any]] = {}
        maybe_dupes: list[AcceptedRow] = []
        for item in chunk:
            if isinstance(item, RejectedRow):
                stats.reject(item.row, item.value, item.reason)
                continue
            if zoned is not None:
                cell = item.params.get(ZONE_COLUMN)
                try:
                    # Most rows name a zone already seen: one look-up (`of` is the whole answer).
                    row_zones[item.row] = (cell and by_cell.get(cell)) or zoned.of(item.phone, cell)
                except ValueError as exc:
                    stats.reject(item.row, str(cell).strip()[:200], f"{ZONE_COLUMN}: {exc}")
                    continue
            if item.phone in batch:
                stats.reject(
                    item.row, item.phone, f"duplicate of row {batch[item.phone].row}", duplicate=True
                )
                continue
            if bloom.add_check(item.phone):
                maybe_dupes.append(item)
                continue
            batch[item.phone] = item
        if maybe_dupes:
            phones = [r.phone for r in maybe_dupes]
            earlier = dict(
                await Recipient.filter(blast_id=blast_id, phone__in=phones)
                .using_db(tx)
                .values_list("phone", "row")
            )
            for item in maybe_dupes:
                first = earlier.get(item.phone) or (batch[item.phone].row if item.phone in batch else None)
                if first is not None:
                    stats.reject(item.row, item.phone, f"duplicate of row {first}", duplicate=True)
                else:
                    batch[item.phone] = item
        if batch:
            if zoned is None:
                await _insert_recipients(blast_id, list(batch.values()), tx)
            else:
                await _insert_zoned_recipients(blast_id, list(batch.values()), tx, row_zones)
            stats.accepted += len(batch)
    return stats


async def _insert_recipients(blast_id: int, rows: Sequence[AcceptedRow], tx: BaseDBAsyncClient) -> None:
    """One multi-row INSERT per batch: building a tortoise model per row costs more than the database work."""
    now = utcnow()
    if tx.capabilities.dialect == "postgres":
        marks = "($1, $2, $3::jsonb, $4, $5, 0, $6, $6)"
    else:
        marks = "(?, ?, ?, ?, ?, 0, ?, ?)"
    sql = (
        'INSERT INTO recipient (blast_id, phone, params, "row", status, attempts, created_at, updated_at) '
        f"VALUES {marks}"
    )
    pending = RecipientStatus.PENDING.value
    if tx.capabilities.dialect == "postgres":
        values = [
            [blast_id, r.phone, json.dumps(r.params, separators=(",", ":")), r.row, pending, now]
            for r in rows
        ]
    else:
        stamp = now.isoformat(" ")
        values = [
            [blast_id, r.phone, json.dumps(r.params, separators=(",", ":")), r.row, pending, stamp, stamp]
            for r in rows
        ]
    await tx.execute_many(sql, values)


class _ZoneValues:
    """The (zone, due_at) values of each recipient's INSERT, made once per zone and once per distinct `timezone`
    cell (a file has few), so a row with a cell costs one look-up; a row without one asks the zone of its
    number (`ZoneResolver.resolve`)."""

    def __init__(self, zones: ZoneResolver, *, postgres: bool) -> None:
        self.zones = zones
        self.postgres = postgres
        #: Each `timezone` cell that named a zone, with its values.
        self.by_cell: dict[str, tuple[str, Any]] = {}
        self._by_zone: dict[str, tuple[str, Any]] = {}

    def of(self, phone: str, cell: str | None) -> tuple[str, Any]:
        """Raises:
        ValueError: the cell names no zone (a short reason).
        """
        if cell:
            found = self.by_cell.get(cell)
            if found is not None:
                return found
            zone = self.zones.resolve(phone, cell)
        else:
            zone = self.zones.number_zone(phone)
        found = self._by_zone.get(zone)
        if found is None:
            due = self.zones.due(zone)
            # SQLite: the due time as the text tortoise writes, formatted once per zone.
            found = (zone, due if self.postgres or due is None else due.isoformat(" "))
            self._by_zone[zone] = found
        if cell and cell.strip():  # the cell named the zone (a blank one leaves it to the number)
            self.by_cell[cell] = found
        return found


async def _insert_zoned_recipients(
    blast_id: int,
    rows: Sequence[AcceptedRow],
    tx: BaseDBAsyncClient,
    row_zones: Mapping[int, tuple[str, Any]],
) -> None:
    """`_insert_recipients` with each recipient's zone and due time (`row_zones`, by row: `_ZoneValues.of`)."""
    now = utcnow()
    pending = RecipientStatus.PENDING.value
    columns = 'blast_id, phone, params, "row", status, attempts, created_at, updated_at, zone, due_at'
    stamps: tuple[Any, ...]
    if tx.capabilities.dialect == "postgres":
        sql = f"INSERT INTO recipient ({columns}) VALUES ($1, $2, $3::jsonb, $4, $5, 0, $6, $6, $7, $8)"
        stamps = (now,)
    else:
        sql = f"INSERT INTO recipient ({columns}) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
        stamp = now.isoformat(" ")
        stamps = (stamp, stamp)
    values = [
        [
            blast_id,
            r.phone,
            json.dumps(r.params, separators=(",", ":")),
            r.row,
            pending,
            *stamps,
            *row_zones[r.row],
        ]
        for r in rows
    ]
    await tx.execute_many(sql, values)


def open_csv(
    path: str | Path,
    template: Template,
    constants: Mapping[str, str],
    settings: Settings,
    display_name: str | None = None,
) -> RecipientCsv:
    """The recipients CSV read against what the template needs (used by create, edit and preview).

    Raises:
        ValidationFailed: the template has parts blast cannot fill.
    """
    keys = param_keys(template.components or [], template.parameter_format)
    if keys.unsupported:
        raise ValidationFailed(
            f"template {template.name} ({template.language}) has parts blast cannot fill yet "
            f"({', '.join(keys.unsupported)}); use another template"
        )
    return RecipientCsv(
        path,
        required_keys=list(keys.all_keys),
        constants=constants,
        default_region=settings.BLAST_DEFAULT_REGION,
        template_label=f"template {template.name} ({template.language})",
        display_name=display_name,
    )


def all_rejected(n: int) -> str:
    return "its one row was rejected" if n == 1 else f"all {n} rows were rejected"


def estimate_rows(path: str | Path) -> int:
    try:
        return max(1000, Path(path).stat().st_size // 16)
    except OSError:
        return 1000


#: Bytes gathered before each write of a spooled upload (one thread hop per write, not per network chunk).
SPOOL_WRITE_BYTES = 1 << 20


async def spool_to_file(chunks: AsyncIterable[bytes], *, max_bytes: int, what: str = "upload") -> Path:
    """Write a stream of bytes to a new temporary file (in TMPDIR) and return its path; memory stays flat.

    This is how a recipients CSV that arrives as a stream (an HTTP upload) reaches `create_blast`: the reader
    checks the header before it streams the rows, so it reads the start twice, and the same reader then
    imports it exactly as a file of the CLI (give `recipients_name` so that messages name the upload, not the
    temporary path). The caller deletes the file. Nothing is kept when the stream fails or passes `max_bytes`.

    Raises:
        TooLarge: the stream passed `max_bytes` (the file is deleted).
    """
    fd, name = tempfile.mkstemp(prefix="blast-upload-", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            buffer: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"{what} is larger than {max_bytes // (1 << 20)} MiB (BLAST_API_MAX_UPLOAD_MB); "
                        "split the recipients into several blasts"
                    )
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= SPOOL_WRITE_BYTES:
                    await asyncio.to_thread(out.write, b"".join(buffer))
                    buffer, buffered = [], 0
            if buffer:
                await asyncio.to_thread(out.write, b"".join(buffer))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return path
