"""Provides the recovery of dead daemons' leases: which daemon a lease belongs to and whether it is alive, and
moving what a dead daemon held (SENDING recipients become UNKNOWN: their request may have reached Meta; claimed
PENDING ones are free again). The daemon's startup sweep and its periodic check (daemon/recovery.py) call it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.clock import utcnow
from shared.models import Blast, Recipient
from shared.services import transitions
from shared.status import RecipientStatus

log = logging.getLogger(__name__)
R = RecipientStatus


def owner_daemon(lease_owner: str) -> str:
    """The daemon id of a lease token ("host:pid:nonce/chunk" -> "host:pid:nonce")."""
    return lease_owner.split("/", 1)[0]


def pid_is_dead(daemon_id: str, this_host: str) -> bool:
    """True when the daemon ran on this host and its process is gone (pids are checked, not heartbeats)."""
    parts = daemon_id.split(":")
    if len(parts) < 3 or parts[0] != this_host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class RecoveryCounts:
    unknown: int = 0
    released: int = 0
    dead_owners: tuple[str, ...] = ()

    @property
    def touched(self) -> bool:
        return bool(self.unknown or self.released)


UNKNOWN_TEXT = (
    "the daemon sending it stopped (crash, kill or outage) before the result was written: the message may "
    "have gone out; check the status webhooks or retry with --include-unknown"
)


async def recover_leases(*, is_dead: Callable[[str], bool]) -> RecoveryCounts:
    """SENDING recipients of dead daemons (or with an expired lease) become UNKNOWN; PENDING recipients leased
    by dead daemons are freed. Safe to run in every daemon at once (conditional updates).

    Args:
        is_dead: tells whether a daemon id (from a lease token) is dead.
    """
    now = utcnow()
    unknown = released = 0
    dead: set[str] = set()
    found: list[Any] = await Blast.filter(n_sending__gt=0).values_list("id", flat=True)
    blast_ids = [int(b) for b in found]
    for blast_id in blast_ids:
        owners = set(
            await Recipient.filter(blast_id=blast_id, status=R.SENDING, lease_owner__isnull=False)
            .distinct()
            .values_list("lease_owner", flat=True)
        )
        for owner in owners:
            if not is_dead(owner_daemon(str(owner))):
                continue
            dead.add(owner_daemon(str(owner)))
            n = await _sending_to_unknown(blast_id, {"lease_owner": owner})
            if n:
                log.warning("blast %s: %s SENDING recipients of dead lease %s -> UNKNOWN", blast_id, n, owner)
            unknown += n
            released += await Recipient.filter(blast_id=blast_id, status=R.PENDING, lease_owner=owner).update(
                lease_owner=None, lease_expires_at=None
            )
        n = await _sending_to_unknown(blast_id, {"lease_expires_at__lt": now})
        if n:
            log.warning("blast %s: %s SENDING recipients with an expired lease -> UNKNOWN", blast_id, n)
        unknown += n
    return RecoveryCounts(unknown, released, tuple(sorted(dead)))


async def _sending_to_unknown(blast_id: int, lease_filter: dict[str, Any]) -> int:
    """SENDING recipients matching `lease_filter` become UNKNOWN (their request may have left); returns how many."""
    moved = await transitions.move_recipients(
        blast_id,
        R.UNKNOWN,
        sources=[R.SENDING],
        extra_filter=lease_filter,
        values={"error_text": UNKNOWN_TEXT, "lease_owner": None, "lease_expires_at": None},
    )
    return sum(moved.values())


async def release_dead_pending(blast_id: int, *, is_dead: Callable[[str], bool]) -> int:
    """Free PENDING recipients of a blast leased by dead daemons (scans the blast's leased rows)."""
    owners = set(
        await Recipient.filter(blast_id=blast_id, status=R.PENDING, lease_owner__isnull=False)
        .filter(lease_expires_at__gt=utcnow())
        .distinct()
        .values_list("lease_owner", flat=True)
    )
    n = 0
    for owner in owners:
        if is_dead(owner_daemon(str(owner))):
            n += await Recipient.filter(blast_id=blast_id, status=R.PENDING, lease_owner=owner).update(
                lease_owner=None, lease_expires_at=None
            )
    if n:
        log.info("blast %s: %s PENDING recipients leased by dead daemons released", blast_id, n)
    return n
