"""Provides `serve()`: every part of the daemon as tasks of one TaskGroup in one asyncio process.

The taskiq receiver (driven by us, so that SIGTERM is graceful), the scheduler, recovery and supervisor loops,
the heartbeat, the pub/sub listener, the template sync and the HTTP server. Tortoise must be initialised before
`serve()` is called (its context binds to tasks created afterwards). Redis or database outages never end the
process: each loop logs, waits and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from taskiq.receiver import Receiver

from daemon.broker import build_broker, ensure_group
from daemon.dispatch import CHUNKS_PER_DAEMON, CHUNKS_RUNNING, Dispatcher
from daemon.rate_limit import RateLimiter
from daemon.recovery import Liveness, run_recovery, sweep
from daemon.runtime import Runtime
from daemon.scheduling import Scheduler
from shared.config import Settings
from shared.events import EVENTS_CHANNEL
from shared.outage import OutageLog
from shared.redis_conn import EVICTING_POLICIES, describe_server, eviction_warning, make_client
from shared.services import live, senders
from shared.services.webhooks import run_applier
from shared.whatsapp.base import WhatsAppProvider

log = logging.getLogger(__name__)

HEARTBEAT_S = 3.0
#: In-flight chunks get this long to finish their requests and write results after SIGTERM.
SHUTDOWN_WAIT_S = 25.0
VERSION = "0.1.0"
#: The longest wait between reconnection attempts to Redis: work resumes within about this long of Redis (or a
#: failover's new master) answering. A try is one connection attempt, cheap for Redis.
REDIS_RETRY_CAP_S = 1.0


def _new_readiness() -> Any:
    from daemon.http.health import Readiness

    return Readiness()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _chunk_slots() -> int:
    """Chunk tasks this daemon runs at once: CHUNKS_PER_DAEMON, or one per sender number when there are more
    (a pool's numbers each need a running chunk), at most CHUNKS_RUNNING; read at each (re)start of the receiver."""
    try:
        numbers = await senders.count_senders()
    except Exception:  # database outage: the receiver restarts when it is back
        numbers = 0
    return max(CHUNKS_PER_DAEMON, min(CHUNKS_RUNNING, numbers))


async def run_receiver(rt: Runtime, broker: Any, stop: asyncio.Event, readiness: Any) -> None:
    """Drive taskiq's Receiver until `stop`; re-create the consumer group and reconnect after Redis errors."""
    outage = OutageLog(log, "work queue", cap_s=REDIS_RETRY_CAP_S)
    while not stop.is_set():
        try:
            await ensure_group(rt.settings, rt.redis)
            receiver = Receiver(
                broker,
                max_async_tasks=await _chunk_slots(),
                max_prefetch=0,
                run_startup=False,
                propagate_exceptions=False,
                wait_tasks_timeout=SHUTDOWN_WAIT_S,
            )
            readiness.receiver_running = True
            outage.ok()
            await receiver.listen(stop)
        except Exception as exc:
            readiness.receiver_running = False
            if stop.is_set():
                break
            await _wait(stop, outage.failed(exc))  # it names the group's first leaf and its cause
    readiness.receiver_running = False
    log.info("receiver stopped")


async def run_heartbeat(rt: Runtime, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    while not stop.is_set():
        info = live.DaemonInfo(
            id=rt.daemon_id,
            host=rt.host,
            pid=os.getpid(),
            started_at=rt.started_at,
            last_seen=time.time(),
            provider=rt.provider.name,
            version=VERSION,
            chunks=sorted(rt.chunks.values()),
        )
        try:
            await live.heartbeat(rt.settings, info, client=rt.redis)
            alive = [d for d in await live.daemons(rt.settings, client=rt.redis) if d.alive]
            dispatcher.alive_daemons = max(1, len(alive))
        except (RedisError, OSError) as exc:
            log.debug("heartbeat not written: %s", exc)
        await _wait(stop, HEARTBEAT_S)


async def run_events(rt: Runtime, scheduler: Scheduler, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    """Listen to `{prefix}:events`: wake the scheduler, halt or release blasts; re-subscribe after outages."""
    channel = rt.settings.key(EVENTS_CHANNEL)
    outage = OutageLog(log, "event channel", cap_s=REDIS_RETRY_CAP_S)
    pending: set[asyncio.Task[Any]] = set()
    while not stop.is_set():
        client = make_client(rt.settings, socket_connect_timeout=2, health_check_interval=10)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            log.info("subscribed to %s", channel)
            scheduler.wake.set()  # anything announced while we were away: re-read the database
            outage.ok()
            while not stop.is_set():
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None or msg.get("type") != "message":
                    continue
                task = _handle_event(rt, scheduler, dispatcher, msg["data"])
                if task is not None:
                    pending.add(task)
                    task.add_done_callback(pending.discard)
        except (RedisError, OSError) as exc:
            await _wait(stop, outage.failed(exc))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            with contextlib.suppress(Exception):
                await client.aclose()


def _handle_event(
    rt: Runtime, scheduler: Scheduler, dispatcher: Dispatcher, data: bytes | str
) -> asyncio.Task[Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    kind = event.get("event")
    blast_id = event.get("blast_id")
    if kind in ("scheduled", "rescheduled"):
        scheduler.wake.set()
    elif kind in ("cancelled", "paused") and isinstance(blast_id, int):
        rt.halts.halt(blast_id, f"blast {kind}")
    elif kind == "stop_all":
        for bid in event.get("blast_ids") or []:
            if isinstance(bid, int):
                rt.halts.halt(bid, "emergency stop")
    elif kind == "sender_changed":
        # a number's throughput level or quality changed (Meta's webhook, an operator): its limiter follows now
        rt.expire_lanes()
    elif kind == "resumed" and isinstance(blast_id, int):
        rt.halts.clear(blast_id)
        rt.streaks.forget(blast_id)
        scheduler.wake.set()
        return asyncio.create_task(_ensure_quietly(dispatcher, blast_id))
    return None


async def _ensure_quietly(dispatcher: Dispatcher, blast_id: int) -> None:
    try:
        await dispatcher.ensure_chunks(blast_id)
    except Exception as exc:
        log.warning("blast %s: chunks not queued after resume (%s); the supervisor retries", blast_id, exc)


async def _wait_for_redis(rt: Runtime, broker: Any, stop: asyncio.Event) -> bool:
    outage = OutageLog(log, "Redis", cap_s=REDIS_RETRY_CAP_S)
    while not stop.is_set():
        try:
            await rt.redis.ping()
            await broker.startup()
            await ensure_group(rt.settings, rt.redis)
            outage.ok()
            await _log_redis_server(rt)
            return True
        except (RedisError, OSError) as exc:
            await _wait(stop, outage.failed(exc))
    return False


async def _log_redis_server(rt: Runtime) -> None:
    """Say which Redis the daemon uses, and warn when its eviction policy may drop keys the daemon needs."""
    try:
        server = await describe_server(rt.settings, rt.redis)
    except (RedisError, OSError) as exc:
        log.debug("Redis server not described: %s", exc)
        return
    log.info("Redis: %s, Redis %s", server.text(), server.version)
    if server.maxmemory_policy in EVICTING_POLICIES:
        log.warning("Redis: %s", eviction_warning(server.maxmemory_policy))


async def _run_http(settings: Settings, readiness: Any, stop: asyncio.Event) -> None:
    from daemon.http.app import create_app
    from daemon.http.app import serve as serve_http

    app = create_app(settings, readiness=readiness)
    runner = await serve_http(app, settings.BLAST_HTTP_HOST, settings.BLAST_HTTP_PORT)
    try:
        log.info(
            "HTTP server on %s:%s (webhook, healthz, metrics%s)",
            settings.BLAST_HTTP_HOST,
            settings.BLAST_HTTP_PORT,
            ", API /api/v1/" if settings.BLAST_API and not settings.api_has_own_listener else "",
        )
        await stop.wait()
    finally:
        await runner.cleanup()


async def _run_api(settings: Settings, stop: asyncio.Event) -> None:
    """The HTTP API on a listener of its own (BLAST_API_PORT)."""
    from aiohttp import web

    from daemon.http.api import create_api_server

    runner = web.AppRunner(create_api_server(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.BLAST_API_PORT)
    try:
        await site.start()
        log.info("HTTP API on %s:%s (/api/v1/)", settings.api_host, settings.BLAST_API_PORT)
        await stop.wait()
    finally:
        await runner.cleanup()


async def _run_template_sync(
    settings: Settings, provider: WhatsAppProvider, rt: Runtime, stop: asyncio.Event
) -> None:
    from daemon.lanes import run_standing_loop
    from daemon.template_sync_loop import run_template_sync_loop

    # The sender numbers' throughput level, quality and messaging limit are read with the same cadence.
    await asyncio.gather(
        run_template_sync_loop(settings, provider, stop, daemon_id=rt.daemon_id), run_standing_loop(rt, stop)
    )


async def serve(
    settings: Settings,
    provider: WhatsAppProvider,
    stop: asyncio.Event,
    *,
    with_http: bool = True,
    with_template_sync: bool = True,
    readiness: Any = None,
    on_start: Callable[[Runtime], None] | None = None,
) -> Runtime:
    """Run the daemon until `stop` is set (SIGTERM), then shut down gracefully.

    Args:
        settings: the deployment.
        provider: a started WhatsApp provider.
        stop: set it to stop taking chunks; in-flight requests finish and their results are written.
        with_http: run the webhook/health/metrics server (when BLAST_HTTP_PORT is not 0), and the API's own
            listener (BLAST_API=1 with BLAST_API_PORT).
        with_template_sync: run the periodic template sync.
        readiness: the /healthz milestones to flip (a new one by default).
        on_start: called with the runtime once it exists (tests use it).

    Returns:
        The runtime (tests look at it).
    """
    readiness = readiness if readiness is not None else _new_readiness()
    readiness.schema_migrated = True
    redis = make_client(settings, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15)
    limiter = RateLimiter.for_sender(settings, redis, settings.WHATSAPP_PHONE_NUMBER_ID)
    rt = Runtime(settings=settings, provider=provider, redis=redis, limiter=limiter, stopping=stop)
    broker = build_broker(settings, consumer_name=rt.daemon_id)
    dispatcher = Dispatcher(rt, broker)
    broker.state.runtime = rt
    broker.state.dispatcher = dispatcher
    scheduler = Scheduler(rt, dispatcher)
    if on_start is not None:
        on_start(rt)
    log.info(
        "daemon %s starting: provider %s, rate limit %s/s, prefix %s",
        rt.daemon_id,
        provider.describe(),
        settings.BLAST_RATE_LIMIT,
        settings.BLAST_REDIS_PREFIX,
    )
    if provider.is_sandbox:
        log.warning("SANDBOX provider: nothing is sent to WhatsApp; every message goes to a local fake")
    try:
        if not await _wait_for_redis(rt, broker, stop):
            return rt
        with contextlib.suppress(RedisError, OSError):
            await live.heartbeat(
                settings,
                live.DaemonInfo(
                    id=rt.daemon_id,
                    host=rt.host,
                    pid=os.getpid(),
                    started_at=rt.started_at,
                    last_seen=time.time(),
                    provider=provider.name,
                    version=VERSION,
                ),
                client=redis,
            )
        try:
            await sweep(rt, dispatcher, Liveness(rt), startup=True)
        except Exception as exc:
            log.warning("startup recovery sweep failed (%s); the periodic sweep retries", exc)
        readiness.recovery_done = True
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_receiver(rt, broker, stop, readiness), name="receiver")
            tg.create_task(scheduler.run(stop), name="scheduler")
            tg.create_task(run_recovery(rt, dispatcher, stop), name="recovery")
            tg.create_task(run_heartbeat(rt, dispatcher, stop), name="heartbeat")
            tg.create_task(run_events(rt, scheduler, dispatcher, stop), name="events")
            if with_template_sync:
                tg.create_task(_run_template_sync(settings, provider, rt, stop), name="template-sync")
            if with_http and settings.BLAST_HTTP_PORT:
                tg.create_task(_run_http(settings, readiness, stop), name="http")
            if with_http and settings.api_has_own_listener:
                tg.create_task(_run_api(settings, stop), name="api")
            elif settings.BLAST_API and not (with_http and settings.BLAST_HTTP_PORT):
                log.warning(
                    "BLAST_API=1 but the HTTP server is off (BLAST_HTTP_PORT=0): the API is not served"
                )
            # Stored webhook events are applied by every daemon (claims keep them apart), also by one without
            # an HTTP server, so events received by another daemon are never stranded; unless this one is
            # told to leave them to another (BLAST_WEBHOOK_APPLIER=false: a busy host's second instance).
            if settings.BLAST_WEBHOOK_APPLIER:
                tg.create_task(run_applier(stop, settings=settings), name="webhook-applier")
            else:
                log.info(
                    "webhook applier off (BLAST_WEBHOOK_APPLIER=false): stored events are left to others"
                )
    finally:
        with contextlib.suppress(Exception):
            await rt.close_engine()
        with contextlib.suppress(Exception):
            await live.forget_daemon(settings, rt.daemon_id, client=redis)
        with contextlib.suppress(Exception):
            await broker.shutdown()
        with contextlib.suppress(Exception):
            await redis.aclose()
        log.info("daemon %s stopped", rt.daemon_id)
    return rt
