"""Provides template drafts: local validation of a new template (name, language, category, body, parameters and
their examples, header, footer) into the components Meta expects, and its submission to Meta for review.

The submitted template is stored with what Meta answered (usually SUBMITTED); from then on the sync and the
status webhooks (shared.services.template_sync) keep it up to date.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from shared.actors import current_actor
from shared.clock import utcnow
from shared.config import Settings
from shared.errors import ValidationFailed
from shared.models import Template
from shared.services import transitions
from shared.services.templates import label, stored_parameters
from shared.status import TemplateStatus
from shared.whatsapp.base import WhatsAppProvider

log = logging.getLogger(__name__)
T = TemplateStatus

CATEGORIES = ("MARKETING", "UTILITY")
NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")
_PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}")
_POSITIONAL_RE = re.compile(r"^[1-9][0-9]*$")
_NAMED_RE = re.compile(r"^[a-z][a-z0-9_]*$")
BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
EXAMPLE_MAX = 200


@dataclass(frozen=True, slots=True)
class SubmitResult:
    id: int
    meta_id: str
    name: str
    language: str
    category: str
    status: TemplateStatus
    parameter_format: str
    parameters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TemplateDraft:
    """A validated template ready to be sent to Meta."""

    name: str
    language: str
    category: str
    parameter_format: Literal["POSITIONAL", "NAMED"]
    parameters: tuple[str, ...]
    components: list[dict[str, Any]]


def _placeholders(text: str, where: str) -> list[str]:
    """The placeholders of `text` in order of appearance, checking the braces are well formed."""
    found = [m.group(1) for m in _PLACEHOLDER_RE.finditer(text)]
    rest = _PLACEHOLDER_RE.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise ValidationFailed(
            f"{where} has unbalanced braces: write parameters as {{{{1}}}} or {{{{first_name}}}}"
        )
    for token in found:
        if not (_POSITIONAL_RE.match(token) or _NAMED_RE.match(token)):
            raise ValidationFailed(
                f"{where} has an invalid parameter {{{{{token}}}}}: use numbers {{{{1}}}}, {{{{2}}}} … "
                "or lowercase "
                "names such as {{first_name}} (letters, digits, _), without spaces"
            )
    return found


def _check_numbering(tokens: list[str]) -> tuple[Literal["POSITIONAL", "NAMED"], list[str]]:
    if not tokens:
        return "POSITIONAL", []
    positional = [t for t in tokens if _POSITIONAL_RE.match(t)]
    if positional and len(positional) != len(tokens):
        raise ValidationFailed(
            "the body mixes numbered ({{1}}) and named ({{name}}) parameters; use one kind"
        )
    unique = list(dict.fromkeys(tokens))
    if positional:
        numbers = sorted(int(t) for t in unique)
        expected = list(range(1, len(numbers) + 1))
        if numbers != expected:
            raise ValidationFailed(
                f"the body's parameters are numbered {', '.join(map(str, numbers))}; number them "
                f"{', '.join(map(str, expected))} without gaps, starting at 1"
            )
        return "POSITIONAL", [str(n) for n in expected]
    if len(unique) != len(tokens):
        dupes = sorted({t for t in tokens if tokens.count(t) > 1})
        raise ValidationFailed(f"the body uses the named parameter {{{{{dupes[0]}}}}} twice; each name once")
    return "NAMED", unique


def _examples_for(
    params: list[str], parameter_format: str, examples: Sequence[str] | Mapping[str, str]
) -> list[str]:
    if isinstance(examples, Mapping):
        given = {str(k).strip(): str(v) for k, v in examples.items()}
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise ValidationFailed(
                f"example for {unknown[0]!r}, which the body does not use "
                f"(its parameters: {', '.join(params) or 'none'})"
            )
        missing = [p for p in params if p not in given]
        if missing:
            raise ValidationFailed(
                f"no example for parameter {{{{{missing[0]}}}}}: give one example per parameter"
            )
        values = [given[p] for p in params]
    else:
        values = [str(v) for v in examples]
        if parameter_format == "NAMED" and params:
            raise ValidationFailed("the body uses named parameters: give examples as name=value")
        if len(values) != len(params):
            raise ValidationFailed(
                f"the body has {len(params)} parameter(s) but {len(values)} example(s) were given: "
                "give one example per parameter, in order"
            )
    for param, value in zip(params, values, strict=True):
        if not value.strip():
            raise ValidationFailed(f"the example for parameter {{{{{param}}}}} is empty")
        if len(value) > EXAMPLE_MAX:
            raise ValidationFailed(
                f"the example for parameter {{{{{param}}}}} is longer than {EXAMPLE_MAX} characters"
            )
        if "\n" in value:
            raise ValidationFailed(f"the example for parameter {{{{{param}}}}} must be one line")
    return values


def build_template(
    *,
    name: str,
    language: str,
    category: str,
    body: str,
    examples: Sequence[str] | Mapping[str, str] = (),
    header: str | None = None,
    footer: str | None = None,
) -> TemplateDraft:
    """Validate a template locally and build the components Meta expects.

    Args:
        name: lowercase letters, digits and _ (at most 512).
        language: Meta's language code, e.g. en_US or id.
        category: MARKETING or UTILITY (authentication templates are made in WhatsApp Manager).
        body: the text, with numbered ({{1}} …) or named ({{first_name}} …) parameters.
        examples: one example per parameter: a list in parameter order, or a name -> example mapping.
        header: an optional text header, without parameters.
        footer: an optional footer, without parameters.

    Returns:
        The validated draft.

    Raises:
        ValidationFailed: one line naming the first problem and the fix.
    """
    name = name.strip()
    if not NAME_RE.match(name):
        raise ValidationFailed(
            f"template name {name!r} is invalid: use lowercase letters, digits and _ only (at most 512), "
            "e.g. order_update"
        )
    language = language.strip()
    if not LANGUAGE_RE.match(language):
        raise ValidationFailed(
            f"language {language!r} is invalid: use Meta's code such as en, en_US, id or pt_BR"
        )
    category = category.strip().upper()
    if category == "AUTHENTICATION":
        raise ValidationFailed(
            "authentication templates have a fixed format: create them in WhatsApp Manager"
        )
    if category not in CATEGORIES:
        raise ValidationFailed(f"category {category!r} is invalid: use MARKETING or UTILITY")
    if not body.strip():
        raise ValidationFailed("the body must not be empty")
    if len(body) > BODY_MAX:
        raise ValidationFailed(f"the body is {len(body)} characters long; Meta allows at most {BODY_MAX}")
    tokens = _placeholders(body, "the body")
    parameter_format, params = _check_numbering(tokens)
    stripped = body.strip()
    if params and (stripped.startswith("{{") or stripped.endswith("}}")):
        raise ValidationFailed(
            "the body must not start or end with a parameter (Meta rejects it): add text around it"
        )
    values = _examples_for(params, parameter_format, examples)
    components: list[dict[str, Any]] = []
    if header is not None and header.strip():
        if len(header) > HEADER_MAX:
            raise ValidationFailed(
                f"the header is {len(header)} characters long; Meta allows at most {HEADER_MAX}"
            )
        if _placeholders(header, "the header"):
            raise ValidationFailed(
                "header parameters are not supported here: create such templates in WhatsApp Manager"
            )
        components.append({"type": "HEADER", "format": "TEXT", "text": header.strip()})
    body_component: dict[str, Any] = {"type": "BODY", "text": body}
    if params and parameter_format == "NAMED":
        body_component["example"] = {
            "body_text_named_params": [
                {"param_name": p, "example": v} for p, v in zip(params, values, strict=True)
            ]
        }
    elif params:
        body_component["example"] = {"body_text": [values]}
    components.append(body_component)
    if footer is not None and footer.strip():
        if len(footer) > FOOTER_MAX:
            raise ValidationFailed(
                f"the footer is {len(footer)} characters long; Meta allows at most {FOOTER_MAX}"
            )
        if _placeholders(footer, "the footer"):
            raise ValidationFailed("the footer must not contain parameters")
        components.append({"type": "FOOTER", "text": footer.strip()})
    return TemplateDraft(name, language, category, parameter_format, tuple(params), components)


async def submit_template(
    *,
    settings: Settings,
    provider: WhatsAppProvider,
    name: str,
    language: str,
    category: str,
    body: str,
    examples: Sequence[str] | Mapping[str, str] = (),
    header: str | None = None,
    footer: str | None = None,
    actor: str | None = None,
) -> SubmitResult:
    """Validate a template locally, submit it to Meta for review, and store it (SUBMITTED, with Meta's id).

    Args:
        settings: the deployment.
        provider: the WhatsApp provider (started).
        name, language, category, body, examples, header, footer: see `build_template`.
        actor: who submits (default: the OS user), for the audit log.

    Returns:
        The stored template; its status is what Meta answered (usually SUBMITTED).

    Raises:
        ValidationFailed: a local check failed, or the template already exists here; nothing was sent to Meta.
        ProviderError: Meta refused it or could not be reached (one line with the reason).
    """
    actor = actor or current_actor()
    draft = build_template(
        name=name,
        language=language,
        category=category,
        body=body,
        examples=examples,
        header=header,
        footer=footer,
    )
    existing = await Template.get_or_none(name=draft.name, language=draft.language)
    if existing is not None and TemplateStatus(existing.status) != T.DELETED:
        raise ValidationFailed(
            f"template {label(draft.name, draft.language)} already exists "
            f"({TemplateStatus(existing.status).value}); "
            "choose another name or language"
        )
    answer = await provider.submit_template(
        name=draft.name,
        language=draft.language,
        category=draft.category,
        components=draft.components,
        parameter_format=draft.parameter_format,
    )
    try:
        status = TemplateStatus.from_meta(answer.status or "PENDING")
    except ValueError:
        status = T.SUBMITTED
    names, count = stored_parameters(draft.components, draft.parameter_format)
    values: dict[str, Any] = {
        "meta_id": str(answer.id),
        "category": (answer.category or draft.category).upper()[:32],
        "status": status,
        "parameter_format": draft.parameter_format,
        "components": draft.components,
        "parameter_names": names,
        "parameter_count": count,
        "rejection_reason": None,
        "quality_score": None,
        "last_synced_at": utcnow(),
    }
    row = await Template.get_or_none(Q(meta_id=str(answer.id)) | Q(name=draft.name, language=draft.language))
    if row is None:
        try:
            row = await Template.create(name=draft.name, language=draft.language, **values)
        except IntegrityError:
            row = await Template.get_or_none(
                Q(meta_id=str(answer.id)) | Q(name=draft.name, language=draft.language)
            )
            if row is None:
                raise
            await Template.filter(id=row.id).update(**values, updated_at=utcnow())
    else:
        await Template.filter(id=row.id).update(**values, updated_at=utcnow())
    await transitions.audit(
        actor=actor,
        action="submit",
        entity="template",
        entity_id=row.id,
        detail={
            "name": draft.name,
            "language": draft.language,
            "category": values["category"],
            "meta_id": str(answer.id),
            "status": status.value,
        },
    )
    log.info(
        "template %s submitted by %s: Meta id %s, %s",
        label(draft.name, draft.language),
        actor,
        answer.id,
        status.value,
    )
    return SubmitResult(
        id=row.id,
        meta_id=str(answer.id),
        name=draft.name,
        language=draft.language,
        category=values["category"],
        status=status,
        parameter_format=draft.parameter_format,
        parameters=tuple(names),
    )
