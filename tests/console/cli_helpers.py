"""Provides running blast-console in-process for CLI tests, and seeding its database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from console.__main__ import main
from shared.config import Settings
from shared.db import close_db, open_db

T = TypeVar("T")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    capsys.readouterr()
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def with_db(settings: Settings, fn: Callable[[], Awaitable[T]]) -> T:
    async def go() -> T:
        await open_db(settings)
        try:
            return await fn()
        finally:
            await close_db()

    return asyncio.run(go())


def create_args(recipients: object | None, *, name: str = "x", send_at: str | None = None) -> list[str]:
    """The arguments of `blast create` for the seeded order_update (en_US) template."""
    args = ["blast", "create", "--name", name, "--template", "order_update", "--language", "en_US"]
    if recipients is not None:
        args += ["--recipients", str(recipients)]
    if send_at is not None:
        args += ["--send-at", send_at]
    return args
