"""Tests template parameter keys, send components, the preview and value checks."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ValidationFailed
from shared.parsing.template_params import (
    TemplateParams,
    build_send_components,
    check_param_value,
    header_format_of,
    param_keys,
    render_preview,
)

POSITIONAL: list[dict[str, Any]] = [
    {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"},
    {"type": "BODY", "text": "Hello {{1}}, order {{2}} ships {{3}}. Thanks {{1}}!"},
    {"type": "FOOTER", "text": "Reply STOP to opt out"},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}"},
            {"type": "QUICK_REPLY", "text": "Stop"},
        ],
    },
]

NAMED: list[dict[str, Any]] = [
    {"type": "HEADER", "format": "TEXT", "text": "Order {{order_id}}"},
    {"type": "BODY", "text": "Hi {{first_name}}, order {{order_id}} is ready, {{first_name}}."},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "QUICK_REPLY", "text": "Stop"},
            {"type": "URL", "text": "Static", "url": "https://x.example/help"},
            {"type": "URL", "text": "Open", "url": "https://x.example/o/{{1}}"},
        ],
    },
]


def test_positional_keys() -> None:
    tp = param_keys(POSITIONAL, "POSITIONAL")
    assert tp == TemplateParams(
        body=("1", "2", "3"), header=("header_1",), buttons=("button_0_1",), header_format="TEXT"
    )
    assert tp.all_keys == ("1", "2", "3", "header_1", "button_0_1")
    assert tp.body_count == 3


def test_named_keys_in_order_of_first_appearance() -> None:
    tp = param_keys(NAMED, "NAMED")
    assert tp.body == ("first_name", "order_id")
    assert tp.header == ("header_order_id",)
    assert tp.buttons == ("button_2_1",)  # the index counts every button, dynamic or not
    assert tp.body_count == 2
    assert tp.unsupported == ()


def test_format_is_case_insensitive_and_defaults_to_positional() -> None:
    assert param_keys(POSITIONAL, None) == param_keys(POSITIONAL, "positional")
    assert param_keys([{"type": "body", "text": "{{a}}"}], "named").body == ("a",)


def test_positional_count_runs_to_the_highest_placeholder() -> None:
    assert param_keys([{"type": "BODY", "text": "{{2}} and {{1}} and {{ 3 }}"}], "POSITIONAL").body == (
        "1",
        "2",
        "3",
    )


def test_template_without_parameters() -> None:
    tp = param_keys([{"type": "BODY", "text": "Hello!"}, {"type": "FOOTER", "text": "bye"}], "POSITIONAL")
    assert tp.all_keys == ()
    assert tp.header_format is None
    assert build_send_components(tp, "POSITIONAL", {}) == []


@pytest.mark.parametrize("fmt", ["IMAGE", "VIDEO", "DOCUMENT"])
def test_media_header_needs_one_link(fmt: str) -> None:
    components = [{"type": "HEADER", "format": fmt}, {"type": "BODY", "text": "See {{1}}"}]
    tp = param_keys(components, "POSITIONAL")
    assert tp.header == ("header_1",)
    assert tp.header_format == fmt
    assert header_format_of(components) == fmt
    sent = build_send_components(tp, "POSITIONAL", {"1": "this", "header_1": "https://cdn.example/a"})
    media = fmt.lower()
    assert sent[0] == {
        "type": "header",
        "parameters": [{"type": media, media: {"link": "https://cdn.example/a"}}],
    }


def test_mixed_placeholder_styles_are_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"placeholder \{\{name\}\} in the body is named"):
        param_keys([{"type": "BODY", "text": "{{1}} {{name}}"}], "POSITIONAL")
    with pytest.raises(ValidationFailed, match=r"placeholder \{\{1\}\} in the header is positional"):
        param_keys([{"type": "HEADER", "format": "TEXT", "text": "{{1}}"}], "NAMED")
    with pytest.raises(ValidationFailed, match="unknown parameter_format 'BOTH'"):
        param_keys(POSITIONAL, "BOTH")


def test_unsupported_parts_are_listed() -> None:
    tp = param_keys(
        [
            {"type": "HEADER", "format": "LOCATION"},
            {"type": "BODY", "text": "{{1}}"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY"}, {"type": "COPY_CODE", "example": "X"}]},
            {"type": "CAROUSEL", "cards": []},
        ],
        "POSITIONAL",
    )
    assert tp.unsupported == ("LOCATION header", "COPY_CODE button 1", "CAROUSEL component")
    assert tp.all_keys == ("1",)


def test_positional_send_shape() -> None:
    tp = param_keys(POSITIONAL, "POSITIONAL")
    values = {"1": "Ada", "2": "A-1", "3": "today", "header_1": "Ada L.", "button_0_1": "A-1", "extra": "x"}
    assert build_send_components(tp, "POSITIONAL", values) == [
        {"type": "header", "parameters": [{"type": "text", "text": "Ada L."}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ada"},
                {"type": "text", "text": "A-1"},
                {"type": "text", "text": "today"},
            ],
        },
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-1"}]},
    ]


def test_named_send_shape_carries_parameter_names() -> None:
    tp = param_keys(NAMED, "NAMED")
    values = {"first_name": "Ada", "order_id": "A-1", "header_order_id": "A-1", "button_2_1": "tok"}
    assert build_send_components(tp, "NAMED", values) == [
        {"type": "header", "parameters": [{"type": "text", "parameter_name": "order_id", "text": "A-1"}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Ada"},
                {"type": "text", "parameter_name": "order_id", "text": "A-1"},
            ],
        },
        {"type": "button", "sub_type": "url", "index": "2", "parameters": [{"type": "text", "text": "tok"}]},
    ]


def test_header_format_argument_wins() -> None:
    tp = TemplateParams(body=(), header=("header_1",))
    assert build_send_components(tp, "POSITIONAL", {"header_1": "https://v"}, "VIDEO") == [
        {"type": "header", "parameters": [{"type": "video", "video": {"link": "https://v"}}]}
    ]
    assert build_send_components(tp, "POSITIONAL", {"header_1": "Hi"}, None) == [
        {"type": "header", "parameters": [{"type": "text", "text": "Hi"}]}
    ]


def test_components_without_parameters_are_omitted() -> None:
    tp = param_keys(
        [{"type": "HEADER", "format": "TEXT", "text": "Fixed"}, {"type": "BODY", "text": "{{1}}"}], None
    )
    assert [c["type"] for c in build_send_components(tp, None, {"1": "x"})] == ["body"]


def test_missing_value_is_named() -> None:
    tp = param_keys(NAMED, "NAMED")
    with pytest.raises(ValidationFailed, match="no value for template parameter order_id, button_2_1"):
        build_send_components(tp, "NAMED", {"first_name": "Ada", "header_order_id": "A-1"})


def test_render_preview() -> None:
    values = {"1": "Ada", "2": "A-1", "header_1": "Ada L.", "button_0_1": "A-1"}
    assert render_preview(POSITIONAL, values) == (
        "Hi Ada L.\n\n"
        "Hello Ada, order A-1 ships {{3}}. Thanks Ada!\n\n"
        "Reply STOP to opt out\n\n"
        "[Track] https://x.example/t/A-1\n[Stop]"
    )


def test_render_preview_named_and_media() -> None:
    components = [{"type": "HEADER", "format": "IMAGE"}, *NAMED[1:2]]
    assert render_preview(components, {"first_name": "Ada"}) == (
        "[image]\n\nHi Ada, order {{order_id}} is ready, Ada."
    )
    assert render_preview(components, {"header_1": "https://i/a.png"}).startswith("[image: https://i/a.png]")
    assert render_preview(NAMED[:1], {"header_order_id": "A-1"}) == "Order A-1"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Ada", None),
        ("Ada  Lovelace", None),
        ("a    b", None),  # four spaces are fine
        ("ünïcødé ✓ 😀", None),
        ("", "empty value"),
        ("   ", "empty value"),
        ("a\nb", "contains a line break (WhatsApp refuses it)"),
        ("a\r\nb", "contains a line break (WhatsApp refuses it)"),
        ("a\u2028b", "contains a line break (WhatsApp refuses it)"),
        ("a\tb", "contains a tab (WhatsApp refuses it)"),
        ("a     b", "more than 4 spaces in a row (WhatsApp refuses it)"),
        ("x" * 1024, None),
        ("x" * 1025, "longer than 1024 characters"),
    ],
)
def test_check_param_value(value: str, reason: str | None) -> None:
    assert check_param_value(value) == reason


def test_check_param_value_custom_limit() -> None:
    assert check_param_value("x" * 61, max_length=60) == "longer than 60 characters"
