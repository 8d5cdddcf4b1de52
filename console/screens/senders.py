"""Provides the Senders screen: the numbers blasts send from, their rate, Meta level, quality and the portfolio's
messaging limit (never their tokens); add and remove numbers."""

from __future__ import annotations

from textual.binding import Binding

from console.format import sender_cells
from console.modals.confirm import ConfirmModal
from console.screens.table_screen import TableScreen
from console.widgets.table_rows import Rows
from shared.actors import current_actor
from shared.errors import ValidationFailed
from shared.services import senders


class SendersScreen(TableScreen[list[senders.SenderInfo]]):
    """The sender numbers, the default (WHATSAPP_PHONE_NUMBER_ID) first."""

    REFRESH_S = 10.0
    TABLE_ID = "senders-table"
    STATUS_ID = "senders-status"
    COLUMNS = ("Phone number id", "Name", "WABA", "Rate", "Level", "Quality", "Limit", "Token", "Default")
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

    async def fetch(self) -> list[senders.SenderInfo]:
        return await senders.list_senders(self.console.settings)

    def rows_of(self, data: list[senders.SenderInfo]) -> Rows:
        return [(s.phone_number_id, sender_cells(s)) for s in data]

    def status_of(self, data: list[senders.SenderInfo]) -> str:
        wabas = {s.waba_id for s in data}
        return f"{len(data)} sender numbers in {len(wabas)} WABA(s) · a blast sends from one, or a pool of one WABA"

    def action_add_sender(self) -> None:
        self.prompt(
            "Add a sender number",
            [
                ("phone_number_id", "Phone number id", ""),
                ("waba_id", "WABA id", ""),
                ("token_env", "Setting that holds its token (e.g. WHATSAPP_TOKEN_BRAND_B)", ""),
                ("name", "Name (optional)", ""),
                ("rate", "Rate cap, msg/s (optional)", ""),
            ],
            required="phone_number_id",
            then=self.add_sender,
        )

    async def add_sender(self, values: dict[str, str]) -> None:
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

    def action_remove_sender(self) -> None:
        self.confirm_remove()

    def removal_question(self, key: str) -> ConfirmModal:
        return ConfirmModal(f"Remove sender {key}", f"Remove sender number {key}?", confirm_label="Remove")

    async def remove_row(self, key: str) -> None:
        await senders.remove_sender(self.console.settings, key, actor=current_actor())
        self.notify(f"sender {key} removed", title="Senders")
