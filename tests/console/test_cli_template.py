"""`blast-console template sync|submit|list` in-process against the fake Graph API (running in a thread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shared.clock import utcnow
from shared.config import Settings, get_settings
from shared.fake_graph.server import FakeGraph
from shared.models import Blast, Recipient, Template
from shared.status import BlastStatus, TemplateStatus
from tests.console.cli_helpers import run_cli, with_db

T = TypeVar("T")

ORDER_UPDATE: dict[str, Any] = {
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [
        {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships.", "example": {"body_text": [["a", "b"]]}}
    ],
}


class ThreadedFake:
    """The fake Graph API on its own event loop in a thread, so the CLI's asyncio.run can call it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-graph", daemon=True)
        self.thread.start()
        self.fake = self.call(self._make())

    async def _make(self) -> FakeGraph:
        fake = FakeGraph(templates=[ORDER_UPDATE], seed=3)
        await fake.start()
        return fake

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return self.call(run())

    def close(self) -> None:
        self.call(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def graph() -> Iterator[ThreadedFake]:
    server = ThreadedFake()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cloud_env(
    env_settings: Settings, graph: ThreadedFake, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The CLI's environment: this test's database and Redis, the cloud provider pointing at the fake."""
    cfg = graph.fake.config
    monkeypatch.setenv("WHATSAPP_PROVIDER", "cloud")
    monkeypatch.setenv("WHATSAPP_API_URL", graph.fake.url)
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", cfg.access_token)
    monkeypatch.setenv("WHATSAPP_BUSINESS_ACCOUNT_ID", cfg.business_account_id)
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", cfg.phone_number_id)
    get_settings.cache_clear()

    async def empty() -> None:  # the PostgreSQL test database is shared by the run's tests
        await Recipient.all().delete()
        await Blast.all().delete()
        await Template.all().delete()

    with_db(env_settings, empty)
    yield get_settings()
    get_settings.cache_clear()


def test_sync_prints_changes_and_works_without_a_daemon(
    cloud_env: Settings, graph: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(capsys, "template", "sync")
    assert r.code == 0, r.err
    assert "new      order_update (en_US) APPROVED" in r.out
    assert "1 template at Meta: 1 new, 0 changed, 0 unchanged" in r.out

    async def blast() -> int:
        tmpl = await Template.get(name="order_update")
        row = await Blast.create(name="promo", template=tmpl, status=BlastStatus.SCHEDULED, send_at=utcnow())
        return row.id

    blast_id = with_db(cloud_env, blast)
    graph.do(lambda: graph.fake.set_template_status("order_update", "PAUSED", reason="LOW_QUALITY"))
    r = run_cli(capsys, "template", "sync")
    assert r.code == 0, r.err
    assert "changed  order_update (en_US) APPROVED -> PAUSED" in r.out
    assert f"paused   blast {blast_id}: template order_update (en_US) became PAUSED at Meta" in r.out

    r = run_cli(capsys, "template", "sync", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert (data["created"], data["changed"], data["unchanged"], data["paused_blasts"]) == ([], [], 1, [])

    r = run_cli(capsys, "--json", "template", "list")
    assert r.json() == [
        {
            "name": "order_update",
            "language": "en_US",
            "category": "UTILITY",
            "previous_category": None,
            "status": "PAUSED",
        }
    ]


def test_sync_failure_exits_non_zero_with_the_reason(
    cloud_env: Settings, graph: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "template", "sync").code == 0
    graph.do(lambda: graph.fake.set_template_status("order_update", "DISABLED"))
    graph.do(lambda: graph.fake.configure(access_token="rotated"))
    r = run_cli(capsys, "template", "sync")
    assert r.code == 1
    assert r.out == ""
    assert r.err.startswith("error: template sync failed, nothing was changed:")
    assert "190" in r.err and len(r.err.strip().splitlines()) == 1
    assert "rotated" not in r.err and cloud_env.WHATSAPP_ACCESS_TOKEN is not None
    assert cloud_env.WHATSAPP_ACCESS_TOKEN.get_secret_value() not in r.err
    r = run_cli(capsys, "--json", "template", "list")
    assert r.json()[0]["status"] == "APPROVED"


def test_missing_credentials_say_who_has_them(
    env_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHATSAPP_PROVIDER", "cloud")
    monkeypatch.delenv("WHATSAPP_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("WHATSAPP_BUSINESS_ACCOUNT_ID", raising=False)
    get_settings.cache_clear()
    for args in (
        ("template", "sync"),
        (
            "template",
            "submit",
            "--name",
            "hello",
            "--language",
            "en",
            "--category",
            "UTILITY",
            "--body",
            "Hello there",
        ),
    ):
        r = run_cli(capsys, *args)
        assert r.code == 1
        assert (
            "needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_BUSINESS_ACCOUNT_ID (the daemon's secrets file)"
            in r.err
        )
        assert "ask an administrator or run it on the daemon host" in r.err
    assert run_cli(capsys, "template", "list").code == 0  # reading needs no secrets


def test_sync_is_refused_read_only(cloud_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "--read-only", "template", "sync")
    assert r.code == 1 and "read-only" in r.err


def test_submit_stores_submitted_with_meta_id(
    cloud_env: Settings, graph: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_cli(
        capsys,
        "template",
        "submit",
        "--name",
        "shipping_update",
        "--language",
        "en_US",
        "--category",
        "utility",
        "--body",
        "Hi {{1}}, parcel {{2}} is on its way.",
        "--example",
        "Ada",
        "--example",
        "PX-1",
    )
    assert r.code == 0, r.err
    assert "template shipping_update (en_US) submitted: Meta id" in r.out and "SUBMITTED" in r.out
    meta_ids = graph.do(lambda: [t.id for t in graph.fake.templates() if t.name == "shipping_update"])

    async def stored() -> tuple[str | None, TemplateStatus, list[str]]:
        row = await Template.get(name="shipping_update", language="en_US")
        return row.meta_id, TemplateStatus(row.status), list(row.parameter_names)

    assert with_db(cloud_env, stored) == (meta_ids[0], TemplateStatus.SUBMITTED, ["1", "2"])

    r = run_cli(
        capsys,
        "--json",
        "template",
        "submit",
        "--name",
        "welcome",
        "--language",
        "id",
        "--category",
        "MARKETING",
        "--body",
        "Halo {{first_name}}, kode {{code}} ya.",
        "--example",
        "first_name=Ada",
        "--example",
        "code=X1",
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["status"] == "SUBMITTED" and data["parameter_format"] == "NAMED"
    assert data["parameters"] == ["first_name", "code"] and data["meta_id"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--name", "Bad Name", "--body", "Hello there"], "template name 'Bad Name' is invalid"),
        (["--body", "Hi {{1}} and {{3}} ok", "--example", "a", "--example", "b"], "number them 1, 2"),
        (["--body", "Hi {{1}} and {{2}} ok", "--example", "a"], "2 parameter(s) but 1 example(s)"),
        (["--body", "Hi {{name}} ok", "--example", "nmae=Ada"], "example for 'nmae'"),
        (["--language", "english", "--body", "Hello there"], "language 'english' is invalid"),
    ],
)
def test_submit_validation_errors_send_nothing(
    cloud_env: Settings,
    graph: ThreadedFake,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragment: str,
) -> None:
    base = {"--name": "order_status", "--language": "en_US", "--category": "UTILITY"}
    given = dict(zip(args[::2], args[1::2], strict=True)) if "--example" not in args else {}
    line = [x for k, v in base.items() if k not in given and k not in args for x in (k, v)]
    r = run_cli(capsys, "template", "submit", *line, *args)
    assert r.code == 1
    assert r.out == ""
    assert r.err.startswith("error: ") and fragment in r.err and len(r.err.strip().splitlines()) == 1
    assert graph.do(lambda: graph.fake.counts.get("templates_created", 0)) == 0


def test_submit_refused_by_meta_is_one_line(
    cloud_env: Settings, graph: ThreadedFake, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fake knows order_update (en_US) but this database does not: Meta refuses the duplicate.
    r = run_cli(
        capsys,
        "template",
        "submit",
        "--name",
        "order_update",
        "--language",
        "en_US",
        "--category",
        "UTILITY",
        "--body",
        "Hello there",
    )
    assert r.code == 1
    assert r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1

    async def count() -> int:
        return await Template.all().count()

    assert with_db(cloud_env, count) == 0


def test_sandbox_sync_needs_no_credentials(
    env_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WHATSAPP_SANDBOX_DIR", str(tmp_path))
    get_settings.cache_clear()

    async def empty() -> None:
        await Recipient.all().delete()
        await Blast.all().delete()
        await Template.all().delete()

    with_db(env_settings, empty)
    r = run_cli(capsys, "--json", "template", "sync")
    assert r.code == 0, r.err
    assert {c["name"] for c in r.json()["created"]} >= {"hello_world"}
    r = run_cli(
        capsys,
        "template",
        "submit",
        "--name",
        "sandbox_note",
        "--language",
        "en",
        "--category",
        "UTILITY",
        "--body",
        "Hi {{1}}, noted.",
        "--example",
        "Ada",
    )
    assert r.code == 0, r.err
    assert "SUBMITTED" in r.out
