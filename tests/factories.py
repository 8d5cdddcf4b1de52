"""Provides small builders of database rows for tests (setup only: behaviour goes through the services)."""

from __future__ import annotations

from typing import Any

from shared.clock import utcnow
from shared.models import Blast, Recipient, Template
from shared.status import BlastStatus, TemplateStatus

POSITIONAL_COMPONENTS: list[dict[str, Any]] = [
    {
        "type": "BODY",
        "text": "Hi {{1}}, your order {{2}} is on its way.",
        "example": {"body_text": [["Ada", "A-1"]]},
    }
]
NAMED_COMPONENTS: list[dict[str, Any]] = [
    {
        "type": "BODY",
        "text": "Halo {{first_name}}, promo {{code}} berlaku hari ini.",
        "example": {
            "body_text_named_params": [
                {"param_name": "first_name", "example": "Budi"},
                {"param_name": "code", "example": "HEMAT"},
            ]
        },
    }
]


async def make_template(
    name: str = "order_update",
    language: str = "en_US",
    status: TemplateStatus = TemplateStatus.APPROVED,
    components: list[dict[str, Any]] | None = None,
    parameter_format: str = "POSITIONAL",
    category: str = "UTILITY",
) -> Template:
    comps = components if components is not None else POSITIONAL_COMPONENTS
    names = (
        ["1", "2"]
        if comps is POSITIONAL_COMPONENTS
        else (["first_name", "code"] if comps is NAMED_COMPONENTS else [])
    )
    return await Template.create(
        name=name,
        language=language,
        status=status,
        components=comps,
        parameter_format=parameter_format,
        category=category,
        parameter_names=names,
        parameter_count=len(names),
        meta_id=f"meta-{name}-{language}",
    )


async def make_blast(
    template: Template,
    n: int = 10,
    status: BlastStatus = BlastStatus.SCHEDULED,
    name: str = "test blast",
    **fields: Any,
) -> Blast:
    """A blast with n PENDING recipients +6281200000000.., counters consistent."""
    fields.setdefault("send_at", utcnow())
    blast = await Blast.create(name=name, template=template, status=status, total=n, n_pending=n, **fields)
    await Recipient.bulk_create(
        [
            Recipient(
                blast_id=blast.id, phone=f"+62812{i:08d}", params={"1": f"N{i}", "2": f"O{i}"}, row=i + 1
            )
            for i in range(n)
        ]
    )
    return blast
