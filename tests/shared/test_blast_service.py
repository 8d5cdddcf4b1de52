"""The blast service: create from CSV (accepted/rejected rows, errors that create nothing), edit, operator actions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.clock import utcnow
from shared.config import Settings
from shared.errors import BlastError, CsvError, InvalidTransition, NotFound, ValidationFailed
from shared.models import AuditLog, Blast, Recipient
from shared.services import blast_actions, blast_reads, blasts, transitions
from shared.services.transitions import SendOutcome
from shared.status import BlastStatus, RecipientStatus, TemplateStatus
from tests.factories import NAMED_COMPONENTS, make_blast, make_template

B, R = BlastStatus, RecipientStatus


def write(tmp_path: Path, text: str | bytes, name: str = "r.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


async def create(settings: Settings, path: Path, **kw: object) -> blasts.CreateResult:
    args: dict[str, object] = {
        "name": "promo",
        "template": "order_update",
        "language": "en_US",
        "recipients": path,
    }
    args.update(kw)
    return await blasts.create_blast(settings=settings, **args)  # type: ignore[arg-type]


async def test_create_accepts_good_rows_and_reports_bad_ones(db: Settings, tmp_path: Path) -> None:
    await make_template()
    path = write(
        tmp_path,
        "\ufeffPhone;1;2\r\n+6281234567890;Ada;A1\r\nnot-a-number;Bob;B2\r\n"
        "+62 812-3456-7890;Ada;A1\r\n+14155552671;Cy;C3\r\n",
    )
    result = await create(db, path)
    assert result.status == B.SCHEDULED
    assert result.recipients == 2
    assert [(r.row, r.value, r.reason) for r in result.rejected][1] == (
        3,
        "+6281234567890",
        "duplicate of row 1",
    )
    assert result.rejected[0].row == 2 and result.rejected[0].value == "not-a-number"
    blast = await Blast.get(id=result.id)
    assert blast.total == 2 and blast.n_pending == 2
    phones = await Recipient.filter(blast_id=blast.id).order_by("row").values_list("phone", "params")
    assert phones[0][0] == "+6281234567890" and phones[0][1]["1"] == "Ada"
    entry = await AuditLog.get(entity="blast", entity_id=str(blast.id), action="create")
    assert entry.detail["recipients"] == 2 and entry.detail["rejected"] == 2


async def test_named_parameters_by_column_name(db: Settings, tmp_path: Path) -> None:
    await make_template("promo_id", "id", components=NAMED_COMPONENTS, parameter_format="NAMED")
    path = write(tmp_path, "phone,first_name,code\n+6281234567890,Budi,HEMAT\n")
    result = await create(db, path, template="promo_id", language="id")
    rec = await Recipient.get(blast_id=result.id)
    assert rec.params["first_name"] == "Budi" and rec.params["code"] == "HEMAT"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("phone,1,2\n", "no data rows|header only|no recipients"),
        ("name,1,2\nAda,x,y\n", "phone"),
        ("phone,1\n+6281234567890,Ada\n", "'2'|2"),
        (b"phone,1,2\n+6281234567890,\xff\xfe,x\n", "decode|UTF-8|utf-8"),
        ("phone,1,2\nnope,a,b\n", "rejected"),
    ],
)
async def test_bad_files_create_nothing(
    db: Settings, tmp_path: Path, content: str | bytes, message: str
) -> None:
    await make_template()
    with pytest.raises(CsvError, match=message) as info:
        await create(db, write(tmp_path, content))
    assert "\n" not in str(info.value)
    assert await Blast.all().count() == 0
    assert await Recipient.all().count() == 0


async def test_missing_file(db: Settings, tmp_path: Path) -> None:
    await make_template()
    with pytest.raises(CsvError):
        await create(db, tmp_path / "nope.csv")
    assert await Blast.all().count() == 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"template": "nope"}, "unknown template 'nope'"),
        ({"language": "fr"}, "has no language 'fr'"),
        ({"send_at": "tomorrow-ish"}, "cannot read send time"),
        ({"send_at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"send_at": "+1h", "valid_until": "+30m"}, "valid-until"),
        ({"name": "  "}, "--name"),
    ],
)
async def test_bad_arguments_create_nothing(
    db: Settings, tmp_path: Path, kw: dict[str, str], message: str
) -> None:
    await make_template()
    path = write(tmp_path, "phone,1,2\n+6281234567890,a,b\n")
    with pytest.raises(ValidationFailed, match=message):
        await create(db, path, **kw)
    assert await Blast.all().count() == 0


async def test_template_not_approved_is_refused(db: Settings, tmp_path: Path) -> None:
    await make_template(status=TemplateStatus.SUBMITTED)
    with pytest.raises(ValidationFailed, match="is SUBMITTED; only APPROVED"):
        await create(db, write(tmp_path, "phone,1,2\n+6281234567890,a,b\n"))


async def test_client_key_makes_create_idempotent(db: Settings, tmp_path: Path) -> None:
    await make_template()
    path = write(tmp_path, "phone,1,2\n+6281234567890,a,b\n")
    first = await create(db, path, client_key="campaign-7")
    second = await create(db, path, client_key="campaign-7")
    assert second.id == first.id and second.existing
    assert await Blast.all().count() == 1


async def test_send_at_in_zone_and_draft(db: Settings, tmp_path: Path, make_settings: object) -> None:
    assert callable(make_settings)
    settings = make_settings(BLAST_TIMEZONE="Asia/Jakarta")
    await make_template()
    path = write(tmp_path, "phone,1,2\n+6281234567890,a,b\n")
    future = (utcnow() + timedelta(days=2)).astimezone(settings.zone).replace(tzinfo=None, microsecond=0)
    result = await create(settings, path, send_at=future.isoformat(timespec="minutes"), draft=True)
    blast = await Blast.get(id=result.id)
    assert blast.status == B.DRAFT
    assert blast.send_at is not None
    assert blast.send_at.astimezone(settings.zone).replace(tzinfo=None) == future.replace(second=0)


async def test_edit_replaces_recipients_and_refuses_after_start(db: Settings, tmp_path: Path) -> None:
    await make_template()
    result = await create(db, write(tmp_path, "phone,1,2\n+6281234567890,a,b\n"), send_at="+1h")
    edited = await blasts.edit_blast(
        result.id,
        settings=db,
        name="renamed",
        recipients=write(tmp_path, "phone,1,2\n+6281234567891,a,b\n+6281234567892,c,d\n", "b.csv"),
    )
    assert edited.recipients == 2
    blast = await Blast.get(id=result.id)
    assert blast.name == "renamed" and blast.total == 2 and blast.n_pending == 2 and blast.generation == 1
    await transitions.transition_blast(result.id, B.PROCESSING, actor="t", action="start")
    with pytest.raises(InvalidTransition, match="only DRAFT or SCHEDULED"):
        await blasts.edit_blast(result.id, settings=db, name="x")


async def test_bad_edit_changes_nothing(db: Settings, tmp_path: Path) -> None:
    await make_template()
    result = await create(db, write(tmp_path, "phone,1,2\n+6281234567890,a,b\n"), send_at="+1h")
    with pytest.raises(BlastError):
        await blasts.edit_blast(
            result.id, settings=db, name="new", recipients=write(tmp_path, "phone\n", "c.csv")
        )
    blast = await Blast.get(id=result.id)
    assert blast.name == "promo" and blast.total == 1
    assert await Recipient.filter(blast_id=result.id).count() == 1


async def test_cancel_pause_resume(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=5)
    await blast_actions.pause_blast(blast.id, settings=db)
    assert (await Blast.get(id=blast.id)).status == B.PAUSED
    assert await blast_actions.resume_blast(blast.id, settings=db) == B.SCHEDULED
    with pytest.raises(InvalidTransition, match="only PAUSED blasts can be resumed"):
        await blast_actions.resume_blast(blast.id, settings=db)
    assert await blast_actions.cancel_blast(blast.id, settings=db) == 5
    b = await Blast.get(id=blast.id)
    assert b.status == B.CANCELLED and b.n_cancelled == 5 and b.n_pending == 0
    with pytest.raises(InvalidTransition, match="is CANCELLED"):
        await blast_actions.cancel_blast(blast.id, settings=db)
    with pytest.raises(NotFound):
        await blast_actions.cancel_blast(12345, settings=db)


async def test_resume_past_valid_until_expires_the_rest(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(
        template,
        n=3,
        status=B.PAUSED,
        started_at=utcnow() - timedelta(hours=2),
        valid_until=utcnow() - timedelta(minutes=1),
    )
    assert await blast_actions.resume_blast(blast.id, settings=db) == B.PROCESSING
    b = await Blast.get(id=blast.id)
    assert b.n_cancelled == 3 and b.n_pending == 0
    rec = await Recipient.filter(blast_id=blast.id).first()
    assert rec is not None and rec.error_text is not None and rec.error_text.startswith("expired")


async def test_retry_requeues_retryable_failures_only(db: Settings) -> None:
    template = await make_template()
    blast = await make_blast(template, n=4, status=B.PROCESSING)
    ids = [r.id for r in await Recipient.filter(blast_id=blast.id).order_by("id")]
    await transitions.move_recipients(blast.id, R.SENDING, sources=[R.PENDING])
    await transitions.record_send_outcomes(
        [
            SendOutcome(ids[0], blast.id, R.FAILED, error_code=131026),
            SendOutcome(ids[1], blast.id, R.FAILED, error_code=131050),
            SendOutcome(ids[2], blast.id, R.FAILED, error_code=131049),
            SendOutcome(ids[3], blast.id, R.UNKNOWN),
        ]
    )
    await transitions.transition_blast(blast.id, B.COMPLETED, actor="t", action="complete")
    result = await blast_actions.retry_blast(blast.id, settings=db)
    assert (result.requeued, result.skipped_opted_out, result.skipped_recent_cap) == (1, 1, 1)
    b = await Blast.get(id=blast.id)
    assert b.status == B.PROCESSING and b.n_pending == 1 and b.n_unknown == 1
    await transitions.transition_blast(blast.id, B.COMPLETED, actor="t", action="complete")
    with pytest.raises(InvalidTransition, match="--include-unknown"):
        await blast_actions.retry_blast(blast.id, settings=db)
    result = await blast_actions.retry_blast(blast.id, settings=db, include_unknown=True)
    assert result.requeued == 1


async def test_reschedule_and_stop_all(db: Settings) -> None:
    template = await make_template()
    a = await make_blast(template, n=1)
    b = await make_blast(template, n=1, status=B.PROCESSING, started_at=utcnow())
    done = await blast_actions.reschedule_blast(a.id, settings=db, send_at="+2h")
    assert done.send_at > utcnow() + timedelta(minutes=119)
    assert sorted(await blast_actions.pause_all(settings=db)) == sorted([a.id, b.id])
    assert {x.status for x in await Blast.all()} == {B.PAUSED}
    assert sorted(await blast_actions.resume_all(settings=db)) == sorted([a.id, b.id])
    assert (await Blast.get(id=b.id)).status == B.PROCESSING


async def test_list_and_show(db: Settings) -> None:
    template = await make_template()
    for i in range(3):
        await make_blast(template, n=2, name=f"blast {i}")
    items = await blast_reads.list_blasts(text="blast 1")
    assert [b.name for b in items] == ["blast 1"]
    detail = await blast_reads.show_blast(items[0].id)
    assert detail.counts["pending"] == 2 and sum(detail.counts.values()) == detail.total
    assert (await blast_reads.count_by_status())["SCHEDULED"] == 3
