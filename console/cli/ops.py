"""Provides the CLI commands added for automation: `blast export`, `blast test-send`, `stop-all`, `resume-all`."""

from __future__ import annotations

import csv
import sys

import click

from console.cli.blast import blast_group
from console.cli.common import emit_json, fail, run, state
from shared.config import Settings
from shared.services import blast_actions, blast_reads, messaging, recipients
from shared.text import plural


@blast_group.command("export")
@click.argument("blast_id", type=int)
@click.option("--csv", "as_csv", is_flag=True, required=True, help="Write CSV to stdout (the only format).")
def export_cmd(blast_id: int, as_csv: bool) -> None:
    """Write a blast's recipients with status, wamid and error as CSV (streamed page by page)."""

    async def work(settings: Settings) -> int:
        await blast_reads.show_blast(blast_id)  # NotFound before the header is written
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(recipients.EXPORT_FIELDS)
        n = 0
        async for page in recipients.export_recipients(blast_id):
            writer.writerows(recipients.export_values(r) for r in page)
            n += len(page)
            sys.stdout.flush()
        return n

    run(work)


@blast_group.command("test-send")
@click.option("--template", required=True, help="An APPROVED template.")
@click.option("--language", required=True, help="Its language code, e.g. en_US.")
@click.option("--to", "to", required=True, help="The phone number.")
@click.argument("params", nargs=-1)
def test_send_cmd(template: str, language: str, to: str, params: tuple[str, ...]) -> None:
    """Send one template message to one number. PARAMS: values in order, or NAME=VALUE."""

    async def work(settings: Settings) -> messaging.TestSendResult:
        return await messaging.test_send(settings, template, language, to, messaging.parse_params(params))

    result = run(work, mutating=True)
    if state().json:
        emit_json(
            {
                "to": result.to,
                "wamid": result.wamid,
                "provider": result.provider,
                "sandbox": result.is_sandbox,
            }
        )
    else:
        click.echo(
            f"sent to {result.to}: {result.wamid}" + (" (sandbox: simulated)" if result.is_sandbox else "")
        )


@click.command("stop-all")
@click.option("--yes", is_flag=True, help="Confirm without the typed prompt (for scripts).")
def stop_all_cmd(yes: bool) -> None:
    """EMERGENCY STOP: pause every SCHEDULED and PROCESSING blast."""
    if not yes:
        if not sys.stdin.isatty():
            fail("stop-all needs --yes when it cannot ask (not a terminal); nothing was paused")
        typed = click.prompt("type STOP to pause every sending blast", default="", show_default=False)
        if typed.strip() != "STOP":
            fail("not confirmed; nothing was paused")

    async def work(settings: Settings) -> list[int]:
        return await blast_actions.pause_all(settings=settings)

    paused = run(work, mutating=True)
    if state().json:
        emit_json({"paused": paused})
    else:
        click.echo(
            f"{plural(len(paused), 'blast', grouped=False)} paused"
            + (f": {', '.join(map(str, paused))}" if paused else "")
        )


@click.command("resume-all")
def resume_all_cmd() -> None:
    """Resume every blast paused by the emergency stop."""

    async def work(settings: Settings) -> list[int]:
        return await blast_actions.resume_all(settings=settings)

    resumed = run(work, mutating=True)
    if state().json:
        emit_json({"resumed": resumed})
    else:
        click.echo(
            f"{plural(len(resumed), 'blast', grouped=False)} resumed"
            + (f": {', '.join(map(str, resumed))}" if resumed else "")
        )
