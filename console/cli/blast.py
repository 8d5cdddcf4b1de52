"""Provides `blast-console blast …`: create, list, show, edit, cancel, pause, resume, retry, reschedule."""

from __future__ import annotations

from typing import Any

import click

from console.cli.common import emit_json, fmt_time, run, state, table
from shared.config import Settings
from shared.services import blast_actions, blast_reads, blasts, cost_estimate
from shared.services import senders as sender_service
from shared.status import BlastStatus
from shared.text import plural

COUNT_KEYS = ("pending", "sending", "sent", "delivered", "read", "failed", "cancelled", "skipped", "unknown")


def _parse_consts(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--const")
        key, value = item.split("=", 1)
        out[key.strip().lower()] = value
    return out


def _create_json(result: blasts.CreateResult, estimate: cost_estimate.Cost) -> dict[str, Any]:
    return {
        "id": result.id,
        "status": result.status.value,
        "recipients": result.recipients,
        "rejected": [{"row": r.row, "value": r.value, "reason": r.reason} for r in result.rejected],
        "cost": {"estimate": estimate.to_json()},
        **({"quiet_hours": result.quiet_note} if result.quiet_note else {}),
    }


async def _with_estimate(result: blasts.CreateResult) -> tuple[blasts.CreateResult, cost_estimate.Cost]:
    return result, await cost_estimate.estimate_blast(result.id)


def _print_create(done: tuple[blasts.CreateResult, cost_estimate.Cost], verb: str) -> None:
    result, estimate = done
    if state().json:
        emit_json(_create_json(result, estimate))
        return
    if result.existing:
        click.echo(
            f"blast {result.id} already exists for this key ({result.status.value}, {plural(result.recipients, 'recipient', grouped=False)})"
        )
        return
    click.echo(
        f"blast {result.id} {verb}: {result.status.value}, {plural(result.recipients, 'recipient', grouped=False)}, "
        f"{result.rejected_total} rejected"
    )
    for r in result.rejected[:20]:
        click.echo(f"  row {r.row}: {r.value!r}: {r.reason}")
    if result.rejected_total > 20:
        click.echo(f"  … and {result.rejected_total - 20} more (use --json for all)")
    if result.quiet_note:
        click.echo(f"  quiet hours: {result.quiet_note}")
    for line in cost_estimate.summary_lines(estimate):
        click.echo(line)


@click.group("blast")
def blast_group() -> None:
    """Create, inspect and control blasts."""


@blast_group.command("create")
@click.option("--name", required=True, help="A name operators recognise.")
@click.option("--template", required=True, help="Template name (must be APPROVED).")
@click.option("--language", required=True, help="Template language code, e.g. en_US or id.")
@click.option("--recipients", required=True, type=click.Path(dir_okay=False), help="CSV with a phone column.")
@click.option(
    "--send-at", default=None, help="ISO 8601 time (naive = BLAST_TIMEZONE), 'now' or +10m; default now."
)
@click.option("--valid-until", default=None, help="Do not send after this time.")
@click.option(
    "--key", "client_key", default=None, help="Idempotency key: the same key returns the same blast."
)
@click.option(
    "--const", "consts", multiple=True, help="NAME=VALUE parameter for every recipient (repeatable)."
)
@click.option("--draft", is_flag=True, help="Create as DRAFT instead of scheduling it.")
@click.option(
    "--sender", default=None, help="Phone number id to send from (default: WHATSAPP_PHONE_NUMBER_ID)."
)
@click.option(
    "--senders", default=None, help="ID,ID: a pool of numbers of one WABA; recipients are spread over it."
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse (create nothing) when the portfolio's 24 h messaging limit would be passed.",
)
@click.option(
    "--local-time",
    is_flag=True,
    help="Send each recipient at --send-at (a wall-clock time) in their own zone (CSV column timezone).",
)
@click.option(
    "--timezone", default=None, help="Zone of recipients whose zone is not known (default BLAST_TIMEZONE)."
)
@click.option(
    "--quiet-hours",
    default=None,
    help="HH:MM-HH:MM (recipient's local time) in which messages wait, or off (default BLAST_QUIET_HOURS).",
)
def create_cmd(
    name: str,
    template: str,
    language: str,
    recipients: str,
    send_at: str | None,
    valid_until: str | None,
    client_key: str | None,
    consts: tuple[str, ...],
    draft: bool,
    sender: str | None,
    senders: str | None,
    strict: bool,
    local_time: bool,
    timezone: str | None,
    quiet_hours: str | None,
) -> None:
    """Create a blast from a recipients CSV."""
    constants = _parse_consts(consts)
    warnings: list[str] = []

    async def work(settings: Settings) -> tuple[blasts.CreateResult, cost_estimate.Cost]:
        pool = sender_service.parse_pool(sender, senders)
        check = sender_service.messaging_limit_check(settings, strict=strict, warnings=warnings)
        created = await blasts.create_blast(
            settings=settings,
            name=name,
            template=template,
            language=language,
            recipients=recipients,
            send_at=send_at,
            valid_until=valid_until,
            client_key=client_key,
            constants=constants,
            draft=draft,
            senders=pool,
            check_accepted=check,
            local_time=local_time,
            timezone=timezone,
            quiet_hours=quiet_hours,
        )
        return await _with_estimate(created)

    done = run(work, mutating=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    _print_create(done, "created")


@blast_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in BlastStatus], case_sensitive=False),
    help="Only these statuses (repeatable).",
)
@click.option("--search", "text", default=None, help="Text in the blast or template name.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
def list_cmd(statuses: tuple[str, ...], text: str | None, limit: int) -> None:
    """List blasts, newest first."""

    async def work(settings: Settings) -> tuple[list[blast_reads.BlastSummary], Settings]:
        wanted = [BlastStatus(s.upper()) for s in statuses]
        return await blast_reads.list_blasts(statuses=wanted, text=text, limit=limit), settings

    items, settings = run(work)
    if state().json:
        emit_json(
            [
                {
                    "id": b.id,
                    "name": b.name,
                    "template": b.template,
                    "status": b.status.value,
                    "send_at": b.send_at,
                    "counts": {k: b.counts[k] for k in COUNT_KEYS},
                }
                for b in items
            ]
        )
        return
    table(
        ["ID", "NAME", "TEMPLATE", "STATUS", "SEND AT", "DONE/TOTAL", "FAILED"],
        [
            [
                str(b.id),
                b.name[:30],
                f"{b.template}/{b.language}",
                b.status.value,
                fmt_time(b.send_at, settings),
                f"{b.total - b.counts['pending'] - b.counts['sending']}/{b.total}",
                str(b.counts["failed"]),
            ]
            for b in items
        ],
    )


def _detail_json(
    d: blast_reads.BlastDetail,
    cost: cost_estimate.BlastCost,
    zones: list[blast_reads.ZoneProgress],
    quiet: blast_reads.QuietHold | None = None,
) -> dict[str, Any]:
    local = (
        {"local_time": d.local_time, "timezone": d.timezone, "zones": [z.to_json() for z in zones]}
        if d.local_time
        else {}
    )
    return {
        "id": d.id,
        "name": d.name,
        "template": d.template,
        "language": d.language,
        "status": d.status.value,
        "send_at": d.send_at,
        "valid_until": d.valid_until,
        "started_at": d.started_at,
        "finished_at": d.finished_at,
        "error": d.error,
        "counts": {k: d.counts[k] for k in COUNT_KEYS},
        "cost": {"estimate": cost.estimate.to_json(), "actual": cost.actual.to_json()},
        **local,
        **({"quiet": quiet.to_json()} if quiet is not None else {}),
    }


@blast_group.command("show")
@click.argument("blast_id", type=int)
def show_cmd(blast_id: int) -> None:
    """Show one blast, its counts per status, and its cost (estimate and actual)."""

    async def work(
        settings: Settings,
    ) -> tuple[
        blast_reads.BlastDetail,
        Settings,
        cost_estimate.BlastCost,
        list[blast_reads.ZoneProgress],
        blast_reads.QuietHold | None,
    ]:
        detail = await blast_reads.show_blast(blast_id)
        zones = await blast_reads.zone_progress(blast_id) if detail.local_time else []
        quiet = await blast_reads.quiet_hold(blast_id)
        return detail, settings, await cost_estimate.blast_cost(blast_id), zones, quiet

    d, settings, cost, zones, quiet = run(work)
    if state().json:
        emit_json(_detail_json(d, cost, zones, quiet))
        return
    click.echo(f"blast {d.id}: {d.name}")
    click.echo(f"  template   {d.template} ({d.language})")
    click.echo(f"  status     {d.status.value}" + (f" — {d.error}" if d.error else ""))
    click.echo(f"  send at    {fmt_time(d.send_at, settings)}")
    if d.local_time:
        click.echo(
            f"  local time {d.local_time.replace('T', ' ')} in each recipient's zone (else {d.timezone})"
        )
        for z in zones:
            click.echo(
                f"    {z.zone:<20} due {fmt_time(z.due_at, settings)}  sent {z.sent}  waiting {z.waiting}"
                + (f"  failed {z.failed}" if z.failed else "")
            )
    if quiet is not None:
        click.echo(f"  quiet hours {quiet.quiet_hours} (recipient's local time); {quiet.line()}")
    if d.valid_until:
        click.echo(f"  valid until {fmt_time(d.valid_until, settings)}")
    click.echo(f"  started    {fmt_time(d.started_at, settings)}")
    click.echo(f"  finished   {fmt_time(d.finished_at, settings)}")
    click.echo(f"  total      {d.total}")
    for key in COUNT_KEYS:
        click.echo(f"    {key:<10} {d.counts[key]}")
    for line in [*cost_estimate.summary_lines(cost.estimate), *cost_estimate.summary_lines(cost.actual)]:
        click.echo(f"  {line}")


@blast_group.command("edit")
@click.argument("blast_id", type=int)
@click.option("--name", default=None)
@click.option("--template", default=None)
@click.option("--language", default=None)
@click.option("--recipients", default=None, type=click.Path(dir_okay=False), help="Replace all recipients.")
@click.option("--send-at", default=None)
@click.option("--valid-until", default=None)
@click.option(
    "--quiet-hours",
    default=None,
    help="A DRAFT's quiet hours, HH:MM-HH:MM or off (they apply when scheduled).",
)
def edit_cmd(
    blast_id: int,
    name: str | None,
    template: str | None,
    language: str | None,
    recipients: str | None,
    send_at: str | None,
    valid_until: str | None,
    quiet_hours: str | None,
) -> None:
    """Edit a DRAFT or SCHEDULED blast."""

    async def work(settings: Settings) -> tuple[blasts.CreateResult, cost_estimate.Cost]:
        edited = await blasts.edit_blast(
            blast_id,
            settings=settings,
            name=name,
            template=template,
            language=language,
            recipients=recipients,
            send_at=send_at,
            valid_until=valid_until,
            quiet_hours=quiet_hours,
        )
        return await _with_estimate(edited)

    _print_create(run(work, mutating=True), "updated")


def _simple(verb: str, action: Any, help_text: str) -> Any:
    @click.argument("blast_id", type=int)
    def command(blast_id: int) -> None:
        async def work(settings: Settings) -> tuple[Any, blast_reads.BlastDetail]:
            result = await action(blast_id, settings=settings)
            return result, await blast_reads.show_blast(blast_id)

        result, detail = run(work, mutating=True)
        if state().json:
            out: dict[str, Any] = {"id": blast_id, "status": detail.status.value}
            if verb == "cancelled":
                out["recipients_cancelled"] = result
            emit_json(out)
        else:
            extra = (
                f" ({plural(result, 'pending recipient', grouped=False)} cancelled)"
                if verb == "cancelled"
                else ""
            )
            click.echo(f"blast {blast_id} {verb}: now {detail.status.value}{extra}")

    command.__doc__ = help_text
    return command


blast_group.command("cancel")(
    _simple(
        "cancelled",
        blast_actions.cancel_blast,
        "Cancel a blast: no request leaves after this; pending ones are cancelled.",
    )
)
blast_group.command("pause")(
    _simple("paused", blast_actions.pause_blast, "Pause a scheduled or sending blast.")
)
blast_group.command("resume")(_simple("resumed", blast_actions.resume_blast, "Resume a paused blast."))


@blast_group.command("retry")
@click.argument("blast_id", type=int)
@click.option("--include-unknown", is_flag=True, help="Also resend recipients whose outcome is UNKNOWN.")
def retry_cmd(blast_id: int, include_unknown: bool) -> None:
    """Re-queue a blast's retryable FAILED recipients."""

    async def work(settings: Settings) -> blast_actions.RetryResult:
        return await blast_actions.retry_blast(blast_id, settings=settings, include_unknown=include_unknown)

    r = run(work, mutating=True)
    if state().json:
        emit_json(
            {
                "id": blast_id,
                "requeued": r.requeued,
                "skipped_opted_out": r.skipped_opted_out,
                "skipped_recent_cap": r.skipped_recent_cap,
            }
        )
    else:
        click.echo(
            f"blast {blast_id}: {plural(r.requeued, 'recipient', grouped=False)} re-queued"
            + (f", {r.skipped_opted_out} opted out kept FAILED" if r.skipped_opted_out else "")
            + (f", {r.skipped_recent_cap} hit the marketing cap < 24 h ago" if r.skipped_recent_cap else "")
        )


@blast_group.command("reschedule")
@click.argument("blast_id", type=int)
@click.option("--send-at", required=True)
def reschedule_cmd(blast_id: int, send_at: str) -> None:
    """Give a blast a new send time (a DRAFT is scheduled; its quiet hours apply from then)."""

    async def work(settings: Settings) -> tuple[Any, Settings]:
        return await blast_actions.reschedule_blast(blast_id, settings=settings, send_at=send_at), settings

    done, settings = run(work, mutating=True)
    if state().json:
        emit_json(
            {"id": blast_id, "send_at": done.send_at}
            | ({"quiet_hours": done.quiet_note} if done.quiet_note else {})
        )
    else:
        click.echo(f"blast {blast_id} rescheduled to {fmt_time(done.send_at, settings)}")
        if done.quiet_note:
            click.echo(f"  quiet hours: {done.quiet_note}")
