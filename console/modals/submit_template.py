"""Provides the template submission dialog (name, language, category, body with {{1}} or {{name}} and
examples)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from shared.errors import BlastError
from shared.services.messaging import parse_params, provider_session
from shared.services.template_drafts import submit_template

CATEGORIES = ("UTILITY", "MARKETING", "AUTHENTICATION")


class SubmitTemplateModal(ModalScreen[str | None]):
    """Dismisses with the new template's Meta id, or None."""

    DEFAULT_CSS = """
    SubmitTemplateModal { align: center middle; }
    SubmitTemplateModal > VerticalScroll { width: 80; max-width: 98%; height: 90%; border: thick $accent;
                                           background: $surface; padding: 0 2; }
    SubmitTemplateModal .title { text-style: bold; }
    SubmitTemplateModal Horizontal { height: auto; align-horizontal: right; }
    SubmitTemplateModal #submit-result { color: $error; height: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without submitting", id="submit.cancel"),
        Binding("ctrl+s", "submit", "Submit", tooltip="Submit the template to Meta", id="submit.go"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Submit a template for review", classes="title")
            yield Label("Name (lowercase, digits, _)")
            yield Input(id="tpl-name")
            yield Label("Language")
            yield Input("en_US", id="tpl-language")
            yield Label("Category")
            yield Select[str](
                [(c, c) for c in CATEGORIES], value="UTILITY", id="tpl-category", allow_blank=False
            )
            yield Label("Body, e.g. Hi {{1}}, your order {{2}} is ready.")
            yield Input(id="tpl-body")
            yield Label("Examples of the parameters, separated by | (Meta requires them)")
            yield Input(id="tpl-examples")
            yield Static("", id="submit-result")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Submit", variant="primary", id="submit")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        def value(name: str) -> str:
            return self.query_one(f"#tpl-{name}", Input).value.strip()

        category = self.query_one("#tpl-category", Select).value
        examples = parse_params([p.strip() for p in value("examples").split("|") if p.strip()])
        ordered = [
            examples[k]
            for k in sorted(examples, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        ]
        named = examples if any(not k.isdigit() for k in examples) else None
        self.submit(value("name"), value("language"), str(category), value("body"), named or ordered)

    @work(exclusive=True, exit_on_error=False)
    async def submit(
        self, name: str, language: str, category: str, body: str, examples: dict[str, str] | list[str]
    ) -> None:
        settings = getattr(self.app, "settings", None)
        assert settings is not None
        try:
            async with provider_session(settings) as provider:
                result = await submit_template(
                    settings=settings,
                    provider=provider,
                    name=name,
                    language=language,
                    category=category,
                    body=body,
                    examples=examples,
                )
        except BlastError as exc:
            self.query_one("#submit-result", Static).update(exc.message)
            return
        self.app.notify(
            f"{result.name} ({result.language}) submitted: {result.status.value}", title="Template"
        )
        self.dismiss(result.meta_id)
