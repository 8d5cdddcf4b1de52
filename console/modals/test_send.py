"""Provides the test send dialog: one APPROVED template to one number, through the configured provider."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.widgets.template_select import TemplateSelect
from shared.errors import BlastError
from shared.services import messaging, templates
from shared.status import TemplateStatus


class TestSendModal(ModalScreen[str | None]):
    """Dismisses with the wamid of the accepted message, or None."""

    DEFAULT_CSS = """
    TestSendModal { align: center middle; }
    TestSendModal > Vertical { width: 76; max-width: 98%; height: auto; border: thick $accent;
                               background: $surface; padding: 0 2; }
    TestSendModal .title { text-style: bold; }
    TestSendModal Horizontal { height: auto; align-horizontal: right; }
    TestSendModal Button { margin-left: 2; }
    TestSendModal #test-result { color: $error; height: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without sending", id="test.cancel"),
        Binding("ctrl+s", "send", "Send", tooltip="Send the test message", id="test.send"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Test send: one message to one number", classes="title")
            yield Label("Template (APPROVED)")
            yield TemplateSelect(id="test-template")
            yield Label("To (phone number)")
            yield Input(id="test-to", placeholder="+6281234567890")
            yield Label("Parameters: values in order, or name=value, separated by |")
            yield Input(id="test-params", placeholder="Ada | A-1")
            yield Static("", id="test-result")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Send", variant="primary", id="send")

    def on_mount(self) -> None:
        self.load_templates()

    @work(exclusive=True, exit_on_error=False)
    async def load_templates(self) -> None:
        items = await templates.list_templates(statuses=[TemplateStatus.APPROVED])
        self.query_one(TemplateSelect).set_templates(
            items, empty="no APPROVED template (sync first)", choose_first=True
        )
        self.query_one("#test-to", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "test-to":
            self.query_one("#test-params", Input).focus()
        else:
            self.action_send()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "send":
            self.action_send()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_send(self) -> None:
        template = self.query_one(TemplateSelect).chosen
        to = self.query_one("#test-to", Input).value.strip()
        if template is None or not to:
            self.query_one("#test-result", Static).update("choose a template and type a number")
            return
        name, language = template
        raw = self.query_one("#test-params", Input).value
        params = messaging.parse_params([p.strip() for p in raw.split("|") if p.strip()])
        self.send(name, language, to, params)

    @work(exclusive=True, exit_on_error=False)
    async def send(self, name: str, language: str, to: str, params: dict[str, str]) -> None:
        settings = getattr(self.app, "settings", None)
        assert settings is not None
        self.query_one("#test-result", Static).update("sending …")
        try:
            result = await messaging.test_send(settings, name, language, to, params)
        except BlastError as exc:
            self.query_one("#test-result", Static).update(exc.message)
            return
        where = " (sandbox: simulated)" if result.is_sandbox else ""
        self.app.notify(f"{name} sent to {result.to}{where}: {result.wamid}", title="Test send")
        self.dismiss(result.wamid)
