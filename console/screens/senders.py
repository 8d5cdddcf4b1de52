"""Provides the Senders screen: the numbers blasts send from, their rate, Meta level, quality and the portfolio's
messaging limit (never their tokens); add and remove numbers."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Header, Static

from console.modals.confirm import ConfirmModal
from console.modals.prompt import PromptModal
from console.screens.base import REFRESH_GROUP, BaseScreen
from console.widgets.banner import Banner
from console.widgets.footer import ConsoleFooter
from shared.actors import current_actor
from shared.errors import ValidationFailed
from shared.services import senders


@dataclass
class SendersLoaded(Message):
    items: list[senders.SenderInfo]


class SendersScreen(BaseScreen):
    """The sender numbers, the default (WHATSAPP_PHONE_NUMBER_ID) first."""

    REFRESH_S = 10.0
    BINDINGS = [
        Binding(
            "a",
            "add_sender",
            "Add",
            tooltip="Add a sender number (its token stays in a setting)",
            id="senders.add",
        ),
        Binding(
            "d", "remove_sender", "Remove", tooltip="Remove the number under the cursor", id="senders.remove"
        ),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield DataTable(id="senders-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="senders-status", classes="status-line")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(
            "Phone number id", "Name", "WABA", "Rate", "Level", "Quality", "Limit", "Token", "Default"
        )
        self.query_one(DataTable).focus()
        super().on_mount()

    def refresh_data(self) -> None:
        self.load_senders()

    def reload(self) -> None:
        self.load_senders()

    @work(exclusive=True, exit_on_error=False, group=REFRESH_GROUP)
    async def load_senders(self) -> None:
        self.post_message(SendersLoaded(await senders.list_senders(self.console.settings)))

    def on_senders_loaded(self, m: SendersLoaded) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for s in m.items:
            table.add_row(
                s.phone_number_id,
                s.name,
                s.waba_id,
                f"{s.rate:g}/s",
                s.throughput_level or "-",
                s.quality_rating or "-",
                s.messaging_limit_tier or "-",
                s.token_env if s.has_token else f"{s.token_env} (unset)",
                "yes" if s.is_default else "",
                key=s.phone_number_id,
            )
        if m.items:
            table.move_cursor(row=min(row, len(m.items) - 1), animate=False)
        wabas = {s.waba_id for s in m.items}
        self.query_one("#senders-status", Static).update(
            f"{len(m.items)} sender numbers in {len(wabas)} WABA(s) · a blast sends from one, or a pool of one WABA"
        )

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if value is None else str(value)

    def action_add_sender(self) -> None:
        if self.refuse_if_read_only():
            return

        def answered(values: dict[str, str] | None) -> None:
            if values and values.get("phone_number_id"):
                self.add_worker(values)

        self.app.push_screen(
            PromptModal(
                "Add a sender number",
                [
                    ("phone_number_id", "Phone number id", ""),
                    ("waba_id", "WABA id", ""),
                    ("token_env", "Setting that holds its token (e.g. WHATSAPP_TOKEN_BRAND_B)", ""),
                    ("name", "Name (optional)", ""),
                    ("rate", "Rate cap, msg/s (optional)", ""),
                ],
            ),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def add_worker(self, values: dict[str, str]) -> None:
        rate_text = values.get("rate", "").strip()
        try:
            rate = float(rate_text) if rate_text else None
        except ValueError:
            raise ValidationFailed(f"rate {rate_text!r}: a number of messages per second") from None
        info = await senders.add_sender(
            self.console.settings,
            phone_number_id=values.get("phone_number_id", ""),
            waba_id=values.get("waba_id", ""),
            token_env=values.get("token_env", ""),
            name=values.get("name", ""),
            rate=rate,
            actor=current_actor(),
        )
        self.notify(f"sender {info.phone_number_id} added ({info.rate:g}/s)", title="Senders")
        self.reload()

    def action_remove_sender(self) -> None:
        if self.refuse_if_read_only():
            return
        pnid = self._current()
        if pnid is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.remove_worker(pnid)

        self.app.push_screen(
            ConfirmModal(f"Remove sender {pnid}", f"Remove sender number {pnid}?", confirm_label="Remove"),
            answered,
        )

    @work(exclusive=False, exit_on_error=False, group="action")
    async def remove_worker(self, pnid: str) -> None:
        await senders.remove_sender(self.console.settings, pnid, actor=current_actor())
        self.notify(f"sender {pnid} removed", title="Senders")
        self.reload()
