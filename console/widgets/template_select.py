"""Provides TemplateSelect: a choice among templates (name, language and parameters shown), for the create form
and the test send. It only renders the templates it is given."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Select

from shared.services.templates import TemplateSummary


class TemplateSelect(Select[str]):
    """Options are "name (language) · parameters"; the value is the name and language."""

    def __init__(self, *, id: str | None = None) -> None:  # Textual's own parameter name
        super().__init__([], id=id, prompt="loading templates …")

    def set_templates(self, items: Sequence[TemplateSummary], *, empty: str, choose_first: bool) -> None:
        """Offer `items`; `empty` is the prompt when there is none; pick the first when asked (or when alone)."""
        self.set_options(
            [
                (
                    f"{t.name} ({t.language}) · {', '.join(t.parameters) or 'no parameters'}",
                    f"{t.name}\t{t.language}",
                )
                for t in items
            ]
        )
        self.prompt = "choose a template" if items else empty
        if items and (choose_first or len(items) == 1):
            self.value = f"{items[0].name}\t{items[0].language}"

    @property
    def chosen(self) -> tuple[str, str] | None:
        """(name, language) of the chosen template, or None."""
        value = self.value
        if not isinstance(value, str):
            return None
        name, language = value.split("\t", 1)
        return name, language
