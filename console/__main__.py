"""Provides the blast-console entry point: no subcommand opens the TUI, a subcommand is the scriptable CLI."""

from __future__ import annotations

import sys

import click

from console.cli.blast import blast_group
from console.cli.common import CliState
from console.cli.ops import resume_all_cmd, stop_all_cmd
from console.cli.pricing import pricing_group
from console.cli.queue import queue_group
from console.cli.search import search_cmd
from console.cli.sender import sender_group
from console.cli.suppression import suppression_group
from console.cli.template import template_group
from console.cli.token import token_group


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--read-only", is_flag=True, help="Refuse (and hide) every action that changes something.")
@click.option(
    "--with-daemon",
    is_flag=True,
    help="Run the daemon inside the console (all-in-one demo mode; not for production).",
)
@click.pass_context
def cli(ctx: click.Context, read_only: bool, with_daemon: bool) -> None:
    """blast-console: operate scheduled WhatsApp blasts. Without a command it opens the console UI.

    Add --json anywhere for machine-readable output.
    """
    state = ctx.ensure_object(CliState)
    state.read_only = state.read_only or read_only
    if ctx.invoked_subcommand is None:
        from console.tui import run_tui  # deferred: the CLI should not pay for importing Textual

        run_tui(read_only=state.read_only, with_daemon=with_daemon)


cli.add_command(blast_group)
cli.add_command(template_group)
cli.add_command(token_group)
cli.add_command(queue_group)
cli.add_command(suppression_group)
cli.add_command(sender_group)
cli.add_command(pricing_group)
cli.add_command(search_cmd)
cli.add_command(stop_all_cmd)
cli.add_command(resume_all_cmd)


def main(argv: list[str] | None = None) -> None:
    """Run the console; `--json` may stand anywhere on the line."""
    args = list(sys.argv[1:] if argv is None else argv)
    state = CliState(json="--json" in args)
    args = [a for a in args if a != "--json"]
    try:
        cli.main(args=args, prog_name="blast-console", obj=state, standalone_mode=False)
    except click.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else ""
        sub = path.split(" ", 1)[1] + " " if " " in path else ""
        hint = f" (see: blast-console {sub}--help)"
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        click.echo("error: aborted", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
