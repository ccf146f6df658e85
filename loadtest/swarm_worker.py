"""One swarm worker process: many spectators on one asyncio loop, reporting every second.

The worker connects its clients (at most ``connect_concurrency`` handshakes at a time, so
the server's listen backlog is not flooded), and on every whole second since the run's
start puts ``("second", index, k, Tally)`` on the parent's queue: what happened during
second k. At the deadline it closes its connections normally and puts ``("done", index)``.
A crash is reported as ``("failed", index, message)`` rather than lost.
"""

from __future__ import annotations

import asyncio
import resource
import time
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any

from loadtest import swarm_wire as wire
from loadtest.swarm_client import Spectator, Tally


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What one worker does: ``clients`` connections with ids from ``first_id``."""

    index: int
    host: str
    port: int
    path: str
    subscribe: bytes | None  # the text message each client sends once connected
    clients: int
    first_id: int
    parse_every: int  # clients whose id is a multiple of this parse rows (e2e latency)
    start_wall: float
    deadline_wall: float
    connect_concurrency: int = 200
    connect_timeout_s: float = 15.0


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft open-files limit to the hard one; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Worker:
    """The spectators of one process and the tally of the current second."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.tally = Tally()
        self.open: set[Spectator] = set()

    def fail(self, reason: str) -> None:
        f = self.tally.connect_failures
        f[reason] = f.get(reason, 0) + 1

    async def connect_one(self, cid: int, gate: asyncio.Semaphore) -> None:
        plan = self.plan
        if time.time() >= plan.deadline_wall:
            return self.fail("run over before connecting")
        parse = plan.parse_every > 0 and cid % plan.parse_every == 0
        request, key = wire.handshake_request(plan.host, plan.port, plan.path)
        loop = asyncio.get_running_loop()
        async with gate:
            t0 = time.perf_counter()
            spectator: Spectator | None = None
            try:
                async with asyncio.timeout(plan.connect_timeout_s):
                    _, spectator = await loop.create_connection(
                        lambda: Spectator(self, parse, key, request), plan.host, plan.port)
                    await spectator.upgraded
            except TimeoutError:
                if spectator is not None and spectator.transport is not None:
                    spectator.transport.close()
                return self.fail("connect timeout")
            except OSError as exc:
                return self.fail(f"connect: {exc.strerror or exc}")
            except ConnectionError as exc:
                return self.fail(str(exc))
        self.tally.connect.add((time.perf_counter() - t0) * 1000.0)
        self.tally.connects += 1
        self.open.add(spectator)
        if plan.subscribe is not None:
            spectator._send(wire.client_frame(wire.OP_TEXT, plan.subscribe))

    async def report_seconds(self, queue: Queue[Any]) -> None:
        """Put each whole second's tally on the queue until the deadline."""
        plan = self.plan
        k = 0
        while True:
            edge = plan.start_wall + k + 1
            if edge > plan.deadline_wall:
                return
            await asyncio.sleep(max(0.0, edge - time.time()))
            tally, self.tally = self.tally, Tally()
            tally.open = len(self.open)
            queue.put(("second", plan.index, k, tally))
            k += 1

    async def run(self, queue: Queue[Any]) -> None:
        plan = self.plan
        await asyncio.sleep(max(0.0, plan.start_wall - time.time()))
        gate = asyncio.Semaphore(plan.connect_concurrency)
        reporter = asyncio.create_task(self.report_seconds(queue))
        connects = [asyncio.create_task(self.connect_one(plan.first_id + i, gate))
                    for i in range(plan.clients)]
        await asyncio.sleep(max(0.0, plan.deadline_wall - time.time()))
        await reporter
        for task in connects:
            task.cancel()
        for spectator in list(self.open):
            spectator.finish()
        await asyncio.sleep(0.2)  # let the close frames go out


def worker_main(plan: WorkerPlan, queue: Queue[Any]) -> None:
    """Process entry point (importable, so the ``spawn`` start method can find it)."""
    try:
        soft, _ = raise_open_files_limit()
        if soft < plan.clients + 32:
            raise OSError(f"open-files limit {soft} is below {plan.clients + 32}")
        asyncio.run(Worker(plan).run(queue))
        queue.put(("done", plan.index))
    except BaseException as exc:  # the parent must hear of any end, even an interrupt
        queue.put(("failed", plan.index, f"{exc!r}\n{traceback.format_exc()}"))
