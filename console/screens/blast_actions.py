"""Provides the operator actions on blasts (cancel, pause/resume, retry, edit/reschedule, test send) shared
by the blasts screen and the blast detail screen: each asks for confirmation where it destroys something, then calls
the service layer in a worker and reports the outcome.
"""

from __future__ import annotations

from dataclasses import replace

from textual import work
from textual.binding import Binding

from console.format import example_send_time, local_time
from console.modals.confirm import ConfirmModal
from console.modals.edit import EditBlastModal, EditRequest
from console.modals.retry import RetryModal
from console.screens.base import BaseScreen
from shared.errors import BlastError
from shared.services import blast_actions, blast_reads, blasts
from shared.status import BLAST_EDITABLE, BlastStatus
from shared.text import plural

B = BlastStatus
BlastView = blast_reads.BlastSummary | blast_reads.BlastDetail

BLAST_ACTION_BINDINGS = [
    Binding(
        "c", "cancel_blast", "Cancel", tooltip="Cancel the blast (or the marked ones)", id="blast.cancel"
    ),
    Binding(
        "p",
        "pause_resume",
        "Pause/Resume",
        tooltip="Pause a sending blast or resume a paused one",
        id="blast.pause",
    ),
    Binding("r", "retry_blast", "Retry", tooltip="Re-queue failed recipients", id="blast.retry"),
    Binding("e", "edit_blast", "Edit", tooltip="Edit or reschedule the blast", id="blast.edit"),
    Binding("t", "test_send", "Test", tooltip="Send one template message to one number", id="blast.test"),
]
PAST = {"cancel": "cancelled", "pause": "paused", "resume": "resumed", "retry": "retried"}


class BlastActionScreen(BaseScreen):
    """A screen whose actions apply to `targets()` (the cursor's blast, or the marked ones)."""

    def targets(self) -> list[int]:
        raise NotImplementedError

    def blast_view(self, blast_id: int) -> BlastView | None:
        raise NotImplementedError

    def actions_done(self, ids: list[int]) -> None:
        """Called after an action changed these blasts (reload the screen)."""

    def _describe(self, ids: list[int]) -> str:
        b = self.blast_view(ids[0]) if len(ids) == 1 else None
        if b is not None:
            return f"blast {b.id} “{b.name}” ({b.status.value}, {b.counts['pending']:,} pending)"
        return f"{plural(len(ids), 'blast')} ({', '.join(map(str, ids[:8]))}{' …' if len(ids) > 8 else ''})"

    def _acting_on(self) -> list[int]:
        """The blasts an action applies to; empty (do nothing) when read-only (refused) or nothing is selected."""
        if self.refuse_if_read_only():
            return []
        return self.targets()

    def _confirm_bulk(self, verb: str, ids: list[int], title: str, question: str, label: str) -> None:
        """Ask `question`; on yes, apply `verb` to the blasts."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_bulk(verb, ids)

        self.app.push_screen(ConfirmModal(title, question, confirm_label=label), answered)

    def _views(self, ids: list[int]) -> list[BlastView]:
        return [v for v in (self.blast_view(i) for i in ids) if v is not None]

    def action_cancel_blast(self) -> None:
        if ids := self._acting_on():
            self._confirm_bulk(
                "cancel",
                ids,
                "Cancel",
                f"Cancel {self._describe(ids)}? Pending recipients will not be sent. This cannot be undone.",
                "Cancel blast",
            )

    def action_pause_resume(self) -> None:
        if not (ids := self._acting_on()):
            return
        views = self._views(ids)
        if views and all(v.status == B.PAUSED for v in views):
            self.run_bulk("resume", ids)
        elif len(ids) == 1:
            self.run_bulk("pause", ids)
        else:
            self._confirm_bulk("pause", ids, "Pause", f"Pause {self._describe(ids)}?", "Pause")

    def action_retry_blast(self) -> None:
        if not (ids := self._acting_on()):
            return
        views = self._views(ids)
        failed = sum(v.counts["failed"] for v in views)
        unknown = sum(v.counts["unknown"] for v in views)

        def answered(include_unknown: bool | None) -> None:
            if include_unknown is not None:
                self.run_bulk("retry", ids, include_unknown=include_unknown)

        title = f"Retry blast {ids[0]}" if len(ids) == 1 else f"Retry {len(ids)} blasts"
        self.app.push_screen(RetryModal(title=title, failed=failed, unknown=unknown), answered)

    def action_edit_blast(self) -> None:
        if self.refuse_if_read_only():
            return
        ids = self.targets()
        b = self.blast_view(ids[0]) if ids else None
        if b is None:
            self.notify("no blast selected", severity="warning")
            return
        if b.status not in BLAST_EDITABLE and b.status != B.PAUSED:
            self.notify(
                f"blast {b.id} is {b.status.value}; only DRAFT, SCHEDULED or PAUSED blasts can be edited "
                "or rescheduled",
                title="Not allowed",
                severity="error",
            )
            return
        settings = self.console.settings
        blast_id, status = b.id, b.status

        def answered(req: EditRequest | None) -> None:
            if req is not None:
                self.edit_worker(blast_id, status, req)

        self.app.push_screen(
            EditBlastModal(
                blast_id=b.id,
                name=b.name,
                send_at=local_time(b.send_at, settings.zone),
                zone=settings.BLAST_TIMEZONE,
                name_editable=b.status in BLAST_EDITABLE,
                template=(b.template, b.language),
                example=example_send_time(self.console.now(), settings.zone),
                is_draft=b.status == B.DRAFT,
            ),
            answered,
        )

    def action_test_send(self) -> None:
        if self.refuse_if_read_only():
            return
        self.console.open_test_send()

    @work(exclusive=False, exit_on_error=False, group="action")
    async def run_bulk(self, verb: str, ids: list[int], include_unknown: bool = False) -> None:
        """Apply one action to each blast; report what worked and the first refusal."""
        done: list[int] = []
        errors: list[str] = []
        settings = self.console.settings
        for blast_id in ids:
            try:
                if verb == "cancel":
                    await blast_actions.cancel_blast(blast_id, settings=settings)
                elif verb == "pause":
                    await blast_actions.pause_blast(blast_id, settings=settings)
                elif verb == "resume":
                    await blast_actions.resume_blast(blast_id, settings=settings)
                elif verb == "retry":
                    await blast_actions.retry_blast(
                        blast_id, settings=settings, include_unknown=include_unknown
                    )
                done.append(blast_id)
            except BlastError as exc:
                errors.append(exc.message)
        past = PAST[verb]
        if done:
            plural = "s" if len(done) > 1 else ""
            self.notify(
                f"{len(done)} blast{plural} {past}: {', '.join(map(str, done[:10]))}", title=past.capitalize()
            )
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            self.notify(errors[0] + more, title="Not allowed", severity="error")
        self.actions_done(done)

    @work(exclusive=False, exit_on_error=False, group="action")
    async def edit_worker(self, blast_id: int, status: BlastStatus, req: EditRequest) -> None:
        settings = self.console.settings
        if status in BLAST_EDITABLE:
            if req == EditRequest(None, None, None, None):
                return
            if replace(req, schedule_at=None) != EditRequest(None, None, None, None):
                result = await blasts.edit_blast(
                    blast_id,
                    settings=settings,
                    name=req.name,
                    send_at=req.send_at,
                    valid_until=req.valid_until,
                    recipients=req.recipients,
                    quiet_hours=req.quiet_hours,
                )
                replaced = (
                    f": {plural(result.recipients, 'recipient')}, {plural(result.rejected_total, 'rejected row')}"
                    if req.recipients
                    else ""
                )
                self.notify(f"blast {blast_id} updated{replaced}", title="Edited")
            if req.schedule_at is not None:
                done = await blast_actions.reschedule_blast(
                    blast_id, settings=settings, send_at=req.schedule_at
                )
                quiet = f"\nquiet hours: {done.quiet_note}" if done.quiet_note else ""
                self.notify(
                    f"blast {blast_id} scheduled at {local_time(done.send_at, settings.zone)}{quiet}",
                    title="Scheduled",
                )
        elif req.send_at:
            done = await blast_actions.reschedule_blast(blast_id, settings=settings, send_at=req.send_at)
            quiet = f"\nquiet hours: {done.quiet_note}" if done.quiet_note else ""
            self.notify(
                f"blast {blast_id} rescheduled to {local_time(done.send_at, settings.zone)}{quiet}",
                title="Rescheduled",
            )
        self.actions_done([blast_id])
