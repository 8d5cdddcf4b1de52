"""Provides the `blast.send_chunk` task: send one chunk of a running blast."""

from __future__ import annotations

from taskiq import Context, TaskiqDepends


async def send_chunk(
    blast_id: int,
    chunk_id: str,
    sender: str | None = None,
    context: Context = TaskiqDepends(),  # noqa: B008
) -> None:
    """Send up to ~10 s of blast `blast_id` (the chunk claims its recipients from the database).

    Args:
        blast_id: the blast.
        chunk_id: this chunk's booking id.
        sender: the phone number id of the blast's pool this chunk sends from (None: the default sender).
        context: taskiq's context; its state carries the daemon's runtime and dispatcher.
    """
    from daemon.dispatch import run_chunk

    state = context.state
    await run_chunk(state.runtime, state.dispatcher, int(blast_id), str(chunk_id), sender and str(sender))
