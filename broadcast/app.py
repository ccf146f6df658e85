"""The broadcaster in one object, to run from the CLI, a test or a benchmark.

``Broadcaster(settings)`` loads the race folders; ``await start()`` connects to Kafka,
rebuilds the views, and listens on the HTTP and websocket ports (``http_port`` and
``ws_port`` hold the bound ports, useful with port 0); ``await stop()`` undoes it all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from broadcast.commands import Publisher
from broadcast.connections import WebsocketServer
from broadcast.credentials import Credentials
from broadcast.feed import Feed
from broadcast.follower import Follower
from broadcast.hub import Hub
from broadcast.metrics import BroadcastMetrics
from broadcast.ratelimit import RateLimiter
from broadcast.settings import BroadcastSettings
from broadcast.views import RaceView
from broadcast.web import build_http_app
from race_engine.model import Race
from race_engine.racefolder import load_race
from zegama_live.kafka_probe import KafkaProbe

log = logging.getLogger("broadcast")
STOP_GRACE_S = 3.0


class Broadcaster:
    """Kafka follower, websocket server and HTTP server of the served races."""

    def __init__(self, settings: BroadcastSettings) -> None:
        """Load the race folders. Raises ValueError (from the race folder) naming what is wrong."""
        self.settings = settings
        self.races: dict[str, Race] = {}
        for folder in settings.races:
            race = load_race(folder)
            if race.id in self.races:
                raise ValueError(f"race {race.id} is given twice (--race {folder})")
            self.races[race.id] = race
        self.views = {rid: RaceView(race, settings.window_ms) for rid, race in self.races.items()}
        self.hub = Hub(self.views, settings.resume_s, settings.resume_frames,
                       settings.max_channels)
        self.credentials = Credentials(settings.feed_keys, settings.control_tokens)
        self.follower = Follower(settings.bootstrap, self.views,
                                 on_record=lambda: self.websocket.records_arrived())
        self.hub.ready = self.follower.caught_up.is_set
        self.metrics = BroadcastMetrics(lag=self.follower.lag)
        self.publisher = Publisher(settings.bootstrap, settings.publish_timeout_s)
        self.probe = KafkaProbe(settings.bootstrap)
        self.websocket = WebsocketServer(settings, self.hub, self.credentials, self.publisher,
                                         self.metrics, stale=self.stale)
        self.feed = Feed(self.views, self.credentials,
                         RateLimiter(settings.feed_rate, settings.feed_burst), self.metrics,
                         ready=self.follower.caught_up.is_set, lag=self.follower.lag,
                         stale=self.stale)
        self.http_port = 0
        self.ws_port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, wait_caught_up_s: float | None = None) -> None:
        """Connect to Kafka and listen on both ports.

        With ``wait_caught_up_s``, also wait until the views are rebuilt (TimeoutError
        when that takes longer). Raises KafkaError when the broker cannot be reached.
        """
        await self.publisher.start()
        await self.follower.start()
        await self.probe.start()
        self.ws_port = await self.websocket.start()
        app = build_http_app(self.settings, self.races, self.feed, self.metrics,
                             lambda: self.ws_port, self.health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.http_port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)  # how a port-0 binding is learnt
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        log.info("broadcasting %s: HTTP on %s:%d, websocket on %s:%d, Kafka %s",
                 ", ".join(self.races), self.settings.host, self.http_port, self.settings.host,
                 self.ws_port, self.settings.bootstrap)
        if wait_caught_up_s is not None:
            await asyncio.wait_for(self.follower.caught_up.wait(), wait_caught_up_s)

    def stale(self) -> dict[str, int]:
        """The served races whose board has not moved for ``stale_after_s`` -> age (s)."""
        return self.follower.stale(int(time.time() * 1000),
                                   int(self.settings.stale_after_s * 1000))

    def health(self) -> dict[str, Any]:
        """What /healthz says: ok once the views are rebuilt from Kafka and while Kafka
        answers; how old the newest record is, and which boards are stale."""
        ready = self.follower.caught_up.is_set()
        kafka = self.probe.state()
        status = ("kafka_unreachable" if kafka["kafka"] == "down"
                  else "ok" if ready else "starting")
        newest = self.follower.newest_ms
        age = None if newest is None else round(time.time() - newest / 1000, 1)
        return {"status": status, "rebuilt": ready, **kafka,
                "kafka_lag": self.follower.lag(), "records": self.follower.records,
                "newest_record_age_s": age, "stale_races": self.stale(),
                "connections": len(self.websocket.connections), "races": list(self.races)}

    async def stop(self) -> None:
        """Close connections, stop listening, stop following Kafka. Each Kafka client gets
        ``STOP_GRACE_S`` to close: with the brokers away a producer's flush or a
        consumer's goodbye would otherwise hold the process until SIGKILL."""
        if self._runner is not None:
            await self._runner.cleanup()
        await self.websocket.stop()
        for part in (self.probe, self.follower, self.publisher):
            try:
                await asyncio.wait_for(part.stop(), STOP_GRACE_S)
            except TimeoutError:
                log.warning("%s did not stop within %.0f s (is Kafka away?): left behind",
                            type(part).__name__, STOP_GRACE_S)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this stop itself was cancelled
                # aiokafka's consumer, closed with the brokers away, lets its own
                # fetch task's cancellation out of stop(): the client is closed anyway.
                log.info("%s stopped with Kafka away", type(part).__name__)
            except Exception as exc:  # a client failing to say goodbye: it is closed anyway
                log.info("%s stopped with an error: %r", type(part).__name__, exc)
