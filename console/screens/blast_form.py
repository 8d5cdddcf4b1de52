"""Provides the create-blast form: name, APPROVED template, recipients CSV with a preview (first rows
rendered into the template, rejected rows with reasons), send time in BLAST_TIMEZONE (or each recipient's local
time), optional valid-until, quiet hours, the estimated duration at the rate limit, a messaging-limit warning and
who quiet hours will hold, then a confirmation. The CSV is read off the UI loop.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Header, Input, Label, Select

from console.format import example_send_time
from console.modals.confirm import ConfirmModal
from console.screens.base import BaseScreen
from console.widgets.banner import Banner
from console.widgets.csv_preview import CsvPreviewBox, PreviewReady
from console.widgets.footer import ConsoleFooter
from console.widgets.path_suggester import PathSuggester
from console.widgets.template_select import TemplateSelect
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import BlastError
from shared.parsing.quiet import parse_quiet_hours
from shared.parsing.zones import parse_zone
from shared.services import blasts, cost_estimate, messaging, preview, senders, templates
from shared.status import TemplateStatus
from shared.text import plural


async def read_preview(
    settings: Settings, template: str, language: str, path: str, *, with_zones: bool = False
) -> PreviewReady:
    """Read a recipients file against a template (parsing runs in a thread) and estimate the send;
    `with_zones`: each recipient's zone too (for quiet hours).

    Used by the create form and the edit dialog; a file that cannot be used comes back as `error`.
    """
    try:
        result = await preview.preview_csv(
            settings=settings, template=template, language=language, path=path, with_zones=with_zones
        )
        estimate = await messaging.estimate(settings, result.accepted)
        cost = await cost_estimate.estimate_numbers(
            category=result.category, numbers=result.prefixes, on=utcnow().date()
        )
    except BlastError as exc:
        return PreviewReady(None, None, exc.message)
    return PreviewReady(result, estimate, None, cost)


class BlastFormScreen(BaseScreen):
    """Create a blast; `ctrl+s` asks for confirmation, then creates it through the service layer."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Leave without creating", id="form.back"),
        Binding("ctrl+s", "create_blast", "Create", tooltip="Review and create the blast", id="form.create"),
        Binding("ctrl+r", "preview", "Preview", tooltip="Read the CSV again", id="form.preview"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.preview: preview.CsvPreview | None = None
        self.estimate: messaging.SendEstimate | None = None
        self.cost: cost_estimate.Cost | None = None
        self.last: PreviewReady | None = None

    def compose(self) -> ComposeResult:
        zone = self.console.settings.BLAST_TIMEZONE
        yield Header()
        yield Banner()
        with VerticalScroll(id="form"):
            yield Label("Name")
            yield Input(id="form-name", placeholder="e.g. June promo, Jakarta")
            yield Label("Template (APPROVED only)")
            yield TemplateSelect(id="form-template")
            yield Label("Recipients CSV (a phone column and one column per parameter)")
            yield Input(
                id="form-csv",
                placeholder="/path/to/recipients.csv (→ completes, Enter reads it)",
                suggester=PathSuggester(),
            )
            yield CsvPreviewBox(id="form-preview")
            example = example_send_time(self.console.now(), self.console.settings.zone)
            yield Label(f"Send at — {zone} (now, +10m, {example})")
            yield Input("now", id="form-send-at")
            yield Checkbox(
                "Local time: send at this wall-clock time in each recipient's zone (CSV column timezone)",
                id="form-local-time",
            )
            yield Label(
                "Time zone of recipients whose zone is not known (WIB, WITA, WIT, Asia/Makassar, +08:00)"
            )
            yield Input(zone, id="form-timezone")
            yield Label(f"Valid until — {zone} (optional: nothing is sent after it)")
            yield Input(id="form-valid-until")
            yield Label(
                "Quiet hours — HH:MM-HH:MM in each recipient's local time, when messages wait; or off"
            )
            yield Input(self.console.settings.BLAST_QUIET_HOURS or "off", id="form-quiet-hours")
            yield Label(
                "Senders — phone number ids, comma-separated: one number, or a pool of one WABA (empty: default)"
            )
            yield Input(
                id="form-senders", placeholder="e.g. 106540352242922,107700000000001 (see Senders, 8)"
            )
            with Horizontal(id="form-buttons"):
                yield Button("Cancel", id="form-cancel")
                yield Button("Create…", variant="primary", id="form-create")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one("#form-name", Input).focus()
        self.load_templates()

    @work(exclusive=True, exit_on_error=False, group="form")
    async def load_templates(self) -> None:
        items = await templates.list_templates(statuses=[TemplateStatus.APPROVED])
        self.query_one(TemplateSelect).set_templates(
            items, empty="no APPROVED template: sync templates first (s)", choose_first=False
        )

    def _template(self) -> tuple[str, str] | None:
        return self.query_one(TemplateSelect).chosen

    @on(Input.Submitted, "#form-csv")
    @on(Select.Changed, "#form-template")
    def action_preview(self) -> None:
        path = self.query_one("#form-csv", Input).value.strip()
        template = self._template()
        if not path or template is None:
            return
        self.query_one(CsvPreviewBox).show_reading()
        self.read_csv(template[0], template[1], path, self._wants_zones())

    @on(Input.Submitted, "#form-name")
    @on(Input.Submitted, "#form-send-at")
    @on(Input.Submitted, "#form-timezone")
    @on(Input.Submitted, "#form-valid-until")
    @on(Input.Submitted, "#form-quiet-hours")
    @on(Input.Submitted, "#form-senders")
    def next_field(self, event: Input.Submitted) -> None:
        self.focus_next()

    def _times(self) -> tuple[str | None, bool, str | None, str | None]:
        """send_at (None: now), local time, zone, quiet hours (None: BLAST_QUIET_HOURS) as typed.

        Raises:
            ValueError: the zone or the quiet hours field is wrong (one line naming the field).
        """
        send_at = self.query_one("#form-send-at", Input).value.strip()
        zone = self.query_one("#form-timezone", Input).value.strip() or None
        quiet = self.query_one("#form-quiet-hours", Input).value.strip() or None
        if zone is not None:
            try:
                parse_zone(zone)
            except ValueError as exc:
                raise ValueError(f"Time zone: {exc}") from None
        parse_quiet_hours(quiet, name="Quiet hours")
        local = self.query_one("#form-local-time", Checkbox).value
        return (None if send_at in ("", "now") else send_at), local, zone, quiet

    def quiet_line(self) -> tuple[str | None, bool]:
        """The preview's quiet-hours line ("about 3,200 recipients will wait until 08:00 WITA") and whether it
        is an error of the form's fields; (None, False) when nobody waits or no file was read."""
        if self.preview is None:
            return None, False
        try:
            send_at, local, zone, quiet = self._times()
            note = preview.quiet_estimate(
                self.preview,
                self.console.settings,
                send_at=send_at,
                local_time=local,
                timezone=zone,
                quiet_hours=quiet,
            )
        except ValueError as exc:
            return str(exc), True
        except BlastError as exc:
            return exc.message, True
        return note, False

    @on(Input.Changed, "#form-send-at")
    @on(Input.Changed, "#form-timezone")
    @on(Input.Changed, "#form-quiet-hours")
    @on(Checkbox.Changed, "#form-local-time")
    def show_quiet(self) -> None:
        if self.last is None:
            return
        if self.preview is not None and self.preview.zones is None and self._wants_zones():
            self.action_preview()  # read again, with the zones quiet hours need
            return
        self.query_one(CsvPreviewBox).show_result(self.last, self.quiet_line())

    @work(exclusive=True, exit_on_error=False, group="form")
    async def read_csv(self, template: str, language: str, path: str, with_zones: bool) -> None:
        self.post_message(
            await read_preview(self.console.settings, template, language, path, with_zones=with_zones)
        )

    def _wants_zones(self) -> bool:
        """Whether the fields ask for recipients' zones (quiet hours on, or local time): only then does reading
        the file look them up (about 12 µs a number without a `timezone` cell)."""
        if self.query_one("#form-local-time", Checkbox).value:
            return True
        text = (
            self.query_one("#form-quiet-hours", Input).value.strip()
            or self.console.settings.BLAST_QUIET_HOURS
        )
        try:
            return parse_quiet_hours(text) is not None
        except ValueError:
            return False

    def on_preview_ready(self, m: PreviewReady) -> None:
        self.preview, self.estimate, self.cost, self.last = m.preview, m.estimate, m.cost, m
        self.query_one(CsvPreviewBox).show_result(m, self.quiet_line())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "form-create":
            self.action_create_blast()
        else:
            self.app.pop_screen()

    def action_create_blast(self) -> None:
        if self.refuse_if_read_only():
            return
        name = self.query_one("#form-name", Input).value.strip()
        template = self._template()
        path = self.query_one("#form-csv", Input).value.strip()
        until = self.query_one("#form-valid-until", Input).value.strip() or None
        pool_text = self.query_one("#form-senders", Input).value.strip()
        try:
            pool = senders.parse_pool(None, pool_text or None)
            at, local, zone, quiet = self._times()
        except BlastError as exc:
            self.notify(exc.message, title="Create blast", severity="error")
            return
        except ValueError as exc:
            self.notify(str(exc), title="Create blast", severity="error")
            return
        send_at = at or "now"
        missing = [label for label, ok in (("name", name), ("template", template), ("CSV", path)) if not ok]
        if missing:
            self.notify(f"fill in: {', '.join(missing)}", title="Create blast", severity="warning")
            return
        assert template is not None
        count = plural(self.preview.accepted, "recipient") if self.preview else "the recipients in the file"
        when = "now" if send_at == "now" else f"at {send_at} ({self.console.settings.BLAST_TIMEZONE})"
        if local:
            when = (
                f"at {send_at} in each recipient's zone (else {zone or self.console.settings.BLAST_TIMEZONE})"
            )
        if pool:
            when += f" from {plural(len(pool), 'number')} ({', '.join(pool)})"
        warn = f"\n\nWARNING: {self.estimate.warning}" if self.estimate and self.estimate.warning else ""
        window = parse_quiet_hours(quiet if quiet is not None else self.console.settings.BLAST_QUIET_HOURS)
        if window is not None:
            note, _ = self.quiet_line()
            warn += f"\n\nQuiet hours {window} (each recipient's local time)" + (f": {note}" if note else "")
        cost = (
            "\n\n" + "\n".join(cost_estimate.summary_lines(self.cost, limit=5))
            if self.cost is not None
            else ""
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.create(name, template[0], template[1], path, send_at, until, pool, local, zone, quiet)

        self.app.push_screen(
            ConfirmModal(
                "Create blast",
                f"Send {template[0]} ({template[1]}) to {count} {when}?" + warn + cost,
                confirm_label="Create",
            ),
            answered,
        )

    @work(exclusive=True, exit_on_error=False, group="action")
    async def create(
        self,
        name: str,
        template: str,
        language: str,
        path: str,
        send_at: str,
        until: str | None,
        pool: list[str] | None = None,
        local_time: bool = False,
        timezone: str | None = None,
        quiet_hours: str | None = None,
    ) -> None:
        result = await blasts.create_blast(
            settings=self.console.settings,
            name=name,
            template=template,
            language=language,
            recipients=path,
            send_at=None if send_at == "now" else send_at,
            valid_until=until,
            senders=pool,
            local_time=local_time,
            timezone=timezone,
            quiet_hours=quiet_hours,
        )
        quiet = f"\nquiet hours: {result.quiet_note}" if result.quiet_note else ""
        self.notify(
            f"blast {result.id}: {result.status.value}, {plural(result.recipients, 'recipient')}, "
            f"{result.rejected_total:,} rejected{quiet}",
            title="Blast created",
        )
        self.app.pop_screen()
        for screen in self.app.screen_stack:
            reload = getattr(screen, "reload", None)
            if callable(reload):
                reload()
