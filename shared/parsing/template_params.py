"""Provides a template's parameter keys, the send-time components built from values, and a text preview."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import ValidationFailed

__all__ = [
    "MEDIA_FORMATS",
    "TemplateParams",
    "build_send_components",
    "check_param_value",
    "header_format_of",
    "param_keys",
    "render_preview",
]

#: {{1}} or {{first_name}}; Meta writes no spaces inside the braces, but people do when drafting.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})
#: Button types that need parameters this module does not build.
_UNSUPPORTED_BUTTONS = frozenset({"COPY_CODE", "OTP", "MPM", "CATALOG"})
_FORMATS = ("POSITIONAL", "NAMED")
MAX_TEXT_PARAM = 1024
#: Meta refuses text parameters with line breaks, tabs or more than four spaces in a row.
_FORBIDDEN = re.compile(r"[\n\r\t\v\f\x85\u2028\u2029]| {5}")


@dataclass(frozen=True, slots=True)
class TemplateParams:
    """The value keys one template needs, in the order Meta expects them.

    Attributes:
        body: body keys: the names in order of first appearance (NAMED) or "1".."N" (POSITIONAL).
        header: header keys: "header_1" (positional text or media link) or "header_<name>" (named text).
        buttons: "button_<index>_1" for each URL button whose url has a placeholder.
        header_format: TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION, or None without a header.
        unsupported: parts this module cannot fill, e.g. "LOCATION header" or "COPY_CODE button 1";
            a template with any cannot be sent by blast.
    """

    body: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()
    header_format: str | None = None
    unsupported: tuple[str, ...] = ()

    @property
    def all_keys(self) -> tuple[str, ...]:
        """Body, header and button keys, in that order."""
        return self.body + self.header + self.buttons

    @property
    def body_count(self) -> int:
        """How many body parameters a send carries."""
        return len(self.body)


def param_keys(components: Sequence[Mapping[str, Any]], parameter_format: str | None) -> TemplateParams:
    """Find the parameters a template definition needs.

    Args:
        components: the template's components as Meta lists them (HEADER, BODY, FOOTER, BUTTONS).
        parameter_format: "POSITIONAL" or "NAMED" (None means POSITIONAL, Meta's default).

    Returns:
        The keys, see TemplateParams.

    Raises:
        ValidationFailed: an unknown parameter_format, or a placeholder of the other style.
    """
    fmt = _format(parameter_format)
    body: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    buttons: list[str] = []
    header_format: str | None = None
    unsupported: list[str] = []
    for component in components:
        kind = str(component.get("type", "")).upper()
        if kind == "BODY":
            body = _keys(_placeholders(component.get("text")), fmt, "body", "")
        elif kind == "HEADER":
            header_format = str(component.get("format") or "TEXT").upper()
            if header_format in MEDIA_FORMATS:
                header = ("header_1",)
            elif header_format == "TEXT":
                header = _keys(_placeholders(component.get("text")), fmt, "header", "header_")
            else:
                unsupported.append(f"{header_format} header")
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or ()):
                button_type = str(button.get("type", "")).upper()
                if button_type == "URL" and _placeholders(button.get("url")):
                    buttons.append(f"button_{index}_1")
                elif button_type in _UNSUPPORTED_BUTTONS:
                    unsupported.append(f"{button_type} button {index}")
        elif kind not in ("FOOTER", ""):
            unsupported.append(f"{kind} component")
    return TemplateParams(
        body=body,
        header=header,
        buttons=tuple(buttons),
        header_format=header_format,
        unsupported=tuple(unsupported),
    )


def header_format_of(components: Sequence[Mapping[str, Any]]) -> str | None:
    """The HEADER component's format (TEXT when it names none), or None without a header."""
    for component in components:
        if str(component.get("type", "")).upper() == "HEADER":
            return str(component.get("format") or "TEXT").upper()
    return None


def build_send_components(
    tp: TemplateParams,
    parameter_format: str | None,
    values: Mapping[str, str],
    header_format: str | None = None,
) -> list[dict[str, Any]]:
    """Build the "components" of a template send for one recipient.

    Args:
        tp: the template's keys (from param_keys).
        parameter_format: "POSITIONAL" or "NAMED"; named text parameters carry "parameter_name".
        values: a value for every key in tp.all_keys (extra keys are ignored).
        header_format: the header's format; defaults to tp.header_format. IMAGE, VIDEO and DOCUMENT
            headers take "header_1" as the media link.

    Returns:
        Meta's send shape: lowercase "header", "body" and "button" components, each only if it has
        parameters.

    Raises:
        ValidationFailed: a key has no value.
    """
    named = _format(parameter_format) == "NAMED"
    missing = [key for key in tp.all_keys if key not in values]
    if missing:
        raise ValidationFailed(f"no value for template parameter {', '.join(missing)}")
    out: list[dict[str, Any]] = []
    if tp.header:
        fmt = (header_format or tp.header_format or "TEXT").upper()
        if fmt in MEDIA_FORMATS:
            media = fmt.lower()
            header_params: list[dict[str, Any]] = [{"type": media, media: {"link": values[tp.header[0]]}}]
        else:
            header_params = [
                _text(values[key], key.removeprefix("header_") if named else None) for key in tp.header
            ]
        out.append({"type": "header", "parameters": header_params})
    if tp.body:
        out.append(
            {"type": "body", "parameters": [_text(values[key], key if named else None) for key in tp.body]}
        )
    for key in tp.buttons:
        index = key.split("_")[1]
        out.append(
            {
                "type": "button",
                "sub_type": "url",
                "index": index,
                "parameters": [{"type": "text", "text": values[key]}],
            }
        )
    return out


def render_preview(components: Sequence[Mapping[str, Any]], values: Mapping[str, str]) -> str:
    """Render a template as text with values filled in, for the console's preview.

    Placeholders without a value stay as they are ("{{first_name}}").

    Args:
        components: the template's components as Meta lists them.
        values: parameter values by key ("1", "first_name", "header_1", "button_0_1" …).

    Returns:
        Header, body and footer separated by blank lines, then the buttons as "[label]".
    """
    parts: list[str] = []
    for component in components:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            fmt = str(component.get("format") or "TEXT").upper()
            if fmt == "TEXT":
                parts.append(_fill(str(component.get("text") or ""), values, "header_"))
            else:
                link = values.get("header_1")
                parts.append(f"[{fmt.lower()}: {link}]" if link else f"[{fmt.lower()}]")
        elif kind == "BODY":
            parts.append(_fill(str(component.get("text") or ""), values, ""))
        elif kind == "FOOTER":
            parts.append(str(component.get("text") or ""))
        elif kind == "BUTTONS":
            labels = []
            for index, button in enumerate(component.get("buttons") or ()):
                label = f"[{button.get('text') or str(button.get('type', '')).lower()}]"
                if button.get("url"):
                    label += " " + _fill(str(button["url"]), values, f"button_{index}_", number_only=True)
                labels.append(label)
            parts.append("\n".join(labels))
    return "\n\n".join(p for p in parts if p)


def check_param_value(value: str, *, max_length: int = MAX_TEXT_PARAM) -> str | None:
    """Say why a parameter value cannot be sent, if it cannot.

    Args:
        value: the value as it would be sent.
        max_length: the longest value allowed (1024 for body text).

    Returns:
        None if the value is fine, else a short reason such as "empty value".
    """
    if not value or value.isspace():
        return "empty value"
    # Line breaks and tabs are not printable: the regex only runs for the few values that are not.
    found = _FORBIDDEN.search(value) if not value.isprintable() or "     " in value else None
    if found is not None:
        if found.group() == "\t":
            return "contains a tab (WhatsApp refuses it)"
        if found.group().startswith(" "):
            return "more than 4 spaces in a row (WhatsApp refuses it)"
        return "contains a line break (WhatsApp refuses it)"
    if len(value) > max_length:
        return f"longer than {max_length} characters"
    return None


def _format(parameter_format: str | None) -> str:
    fmt = (parameter_format or "POSITIONAL").upper()
    if fmt not in _FORMATS:
        raise ValidationFailed(f"unknown parameter_format {parameter_format!r}: expected POSITIONAL or NAMED")
    return fmt


def _placeholders(text: object) -> list[str]:
    return PLACEHOLDER.findall(text) if isinstance(text, str) else []


def _keys(names: list[str], fmt: str, where: str, prefix: str) -> tuple[str, ...]:
    if not names:
        return ()
    if fmt == "POSITIONAL":
        wrong = next((n for n in names if not n.isdigit()), None)
        if wrong is not None:
            raise ValidationFailed(
                f"placeholder {{{{{wrong}}}}} in the {where} is named but the template is POSITIONAL"
            )
        count = max(int(n) for n in names)
        return tuple(f"{prefix}{i}" for i in range(1, count + 1))
    wrong = next((n for n in names if n.isdigit()), None)
    if wrong is not None:
        raise ValidationFailed(
            f"placeholder {{{{{wrong}}}}} in the {where} is positional but the template is NAMED"
        )
    return tuple(f"{prefix}{n}" for n in dict.fromkeys(names))


def _text(value: str, name: str | None) -> dict[str, Any]:
    if name is None:
        return {"type": "text", "text": value}
    return {"type": "text", "parameter_name": name, "text": value}


def _fill(text: str, values: Mapping[str, str], prefix: str, *, number_only: bool = False) -> str:
    def one(found: re.Match[str]) -> str:
        name = found.group(1)
        key = f"{prefix}1" if number_only else f"{prefix}{name}"
        value = values.get(key)
        return found.group(0) if value is None else value

    return PLACEHOLDER.sub(one, text)
