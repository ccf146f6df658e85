"""The spectator and race-control pages in a real browser, against the running stack.

Debian's headless Chromium (tests/broadcast/browser.py) loads the pages from a real
broadcaster (broadcast.app.Broadcaster) that follows the session's real Kafka broker.
The test produces the processors' records (docs/streams.md) itself, made by the real
race engine over a simulated field of the example race, and reads what the control
page publishes on control.v1. Screenshots go to var/test-artifacts/pages/.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from browser import artifact, chromium
from playwright.sync_api import Page

from broadcast.app import Broadcaster
from broadcast.settings import BroadcastSettings
from race_engine.alerts import ORDER
from race_engine.engine import RaceEngine
from race_engine.racefolder import load_race
from race_engine.simulate import SimOptions, simulate
from zegama_live.topics import ALERTS, CONTROL, CONTROL_LOG, RUNNER_UPDATES, STANDINGS

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "races" / "example-loop"
TOKEN = "pages-test-token"
TICK_MS = 30_000
WAIT_MS = 15_000
PHONE = (360, 740)
KINDS_JS = "els => els.map(e => e.dataset.kind)"
BIBS_JS = "els => els.map(e => e.dataset.bib)"
# Keeps what the page sends on its websocket, for the resume assertions.
RECORD_SENT_JS = """
window.__sent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.__sent.push(JSON.parse(data));
  return send.call(this, data);
};
"""
Json = dict[str, Any]
Record = tuple[str, bytes, Json]
T = TypeVar("T")


# ----------------------------------------------------------------- the race's records


@dataclass
class RaceRecords:
    """The records of a race at two moments, made by the real engine.

    ``first``: the state at ``t1`` (a standings snapshot, every card, the open alerts).
    ``standings_later``: four minutes on (a standings update with ranks and gaps
    changed, the changed cards). ``alerts_later``: race control turns the weather alert
    on for the danger zone at that moment, and the engine raises its alerts.
    """

    race_id: str
    first: list[Record] = field(default_factory=list)
    standings_later: list[Record] = field(default_factory=list)
    alerts_later: list[Record] = field(default_factory=list)
    board1: Json = field(default_factory=dict)
    board2: Json = field(default_factory=dict)
    raised_later: list[Json] = field(default_factory=list)
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def alert_record(self, action: str, alert: Json, t_ms: int, by: str | None = None
                     ) -> Record:
        rec = {"v": 1, "race": self.race_id, "seq": self.next_seq(), "t_ms": t_ms,
               "action": action, "alert": alert, "by": by}
        return ALERTS, f"{self.race_id}:{alert['id']}".encode(), rec

    def card_record(self, engine: RaceEngine, bib: str, now: int) -> Record:
        rec = {"v": 1, "race": self.race_id, "bib": bib, "seq": self.next_seq(),
               "generated_ms": now, "card": engine.runner_view(bib, now), "track": []}
        return RUNNER_UPDATES, f"{self.race_id}:{bib}".encode(), rec


def build_records(folder: Path, at_min: float = 50.0, later_min: float = 4.0) -> RaceRecords:
    """Simulate the race in ``folder`` and run the engine to ``at_min`` and beyond."""
    race = load_race(folder)
    sim = simulate(race, np.random.default_rng(7),
                   SimOptions(runners=len(race.entrants), weather="bad"))
    pings = sorted(sim.pings(), key=lambda p: p[1])
    engine = RaceEngine(race)
    out = RaceRecords(race.id)
    t1 = race.start_ms + int(at_min * 60_000)
    t2 = t1 + int(later_min * 60_000)
    state = {"i": 0, "tick": race.start_ms + TICK_MS}

    def run_until(until: int) -> None:
        while state["i"] < len(pings) and pings[state["i"]][1] <= until:
            fix, arrival = pings[state["i"]]
            while state["tick"] <= arrival:
                engine.tick(state["tick"])
                state["tick"] += TICK_MS
            engine.on_fix(None, fix, arrival)
            state["i"] += 1
        engine.tick(until)

    run_until(t1)
    engine.take_dirty()
    out.board1 = engine.board(t1)
    snap_seq = out.next_seq()
    out.first.append((STANDINGS, race.id.encode(),
                      {"v": 1, "type": "snapshot", "race": race.id, "seq": snap_seq,
                       "generated_ms": t1, "board": out.board1}))
    out.first += [out.card_record(engine, row["bib"], t1) for row in out.board1["runners"]]
    out.first += [out.alert_record("raised", a, t1) for a in engine.alerts()]

    run_until(t2)
    out.board2 = b2 = engine.board(t2)
    out.standings_later.append((STANDINGS, race.id.encode(), {
        "v": 1, "type": "update", "race": race.id, "seq": out.next_seq(), "base_seq": snap_seq,
        "generated_ms": t2, "leader": b2["leader"], "order": [r["bib"] for r in b2["runners"]],
        "rows": b2["runners"], "checkpoints": b2["checkpoints"], "finishers": b2["finishers"]}))
    out.standings_later += [out.card_record(engine, bib, t2) for bib in sorted(engine.take_dirty())]
    zone = race.danger_zones[0].id
    for change in engine.on_control({"op": "weather", "zone": zone, "on": True}, t2):
        out.alerts_later.append(out.alert_record(change["action"], change["alert"], t2))
        if change["action"] == "raised":
            out.raised_later.append(change["alert"])
    return out


# ------------------------------------------------------------------------ the stack


class Stack:
    """A broadcaster and a producer on a background event loop (the browser is driven
    from the test's thread with Playwright's synchronous API)."""

    def __init__(self, bootstrap: str, folder: Path) -> None:
        self.bootstrap = bootstrap
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.producer: AIOKafkaProducer | None = None
        self.broadcaster: Broadcaster | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    @property
    def base_url(self) -> str:
        assert self.broadcaster is not None
        return f"http://127.0.0.1:{self.broadcaster.http_port}"

    def start(self, records: list[Record]) -> None:
        """Produce ``records``, then start the broadcaster and wait for its rebuild."""
        async def start() -> None:
            self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            await self.producer.start()
            await self._send(records)
            settings = BroadcastSettings(host="127.0.0.1", http_port=0, ws_port=0,
                                         bootstrap=self.bootstrap, races=(self.folder,),
                                         control_tokens=(("maite", TOKEN),))
            self.broadcaster = Broadcaster(settings)
            await self.broadcaster.start(wait_caught_up_s=30.0)
        self.run(start())

    async def _send(self, records: list[Record]) -> None:
        assert self.producer is not None
        for topic, key, rec in records:
            await self.producer.send_and_wait(topic, orjson.dumps(rec), key=key)

    def publish(self, records: list[Record]) -> None:
        self.run(self._send(records))

    def control_records(self, race_id: str, want: Callable[[Json], bool],
                        timeout_s: float = 15.0) -> Json:
        """The first control.v1 record of ``race_id`` for which ``want`` is true."""
        async def read() -> Json:
            consumer = AIOKafkaConsumer(CONTROL, bootstrap_servers=self.bootstrap,
                                        group_id=None, auto_offset_reset="earliest",
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        for m in msgs:
                            rec = orjson.loads(m.value)
                            if rec.get("race") == race_id and want(rec):
                                return dict(rec)
                raise TimeoutError(f"no matching control.v1 record of {race_id} "
                                   f"within {timeout_s} s")
            finally:
                await consumer.stop()
        return self.run(read(), timeout_s + 10)

    def stop(self) -> None:
        async def stop() -> None:
            if self.broadcaster is not None:
                await self.broadcaster.stop()
            if self.producer is not None:
                await self.producer.stop()
        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@dataclass
class Live:
    stack: Stack
    records: RaceRecords


@pytest.fixture(scope="module")
def live(kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # A race id of its own, so records of other tests on the same broker never mix in.
    folder = tmp_path_factory.mktemp("pages") / f"pages-{uuid.uuid4().hex[:8]}"
    shutil.copytree(EXAMPLE, folder)
    records = build_records(folder)
    stack = Stack(kafka_broker.bootstrap, folder)
    try:
        stack.start(records.first)
        yield Live(stack, records)
    finally:
        stack.stop()


def watch_console(page: Page) -> list[str]:
    """Errors the page logs or throws (a favicon or similar 404 is not one)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def plain(text: str) -> str:
    """Lower case without accents, as the page's search compares names."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if not unicodedata.combining(c)).lower()


def gap_text(seconds: float) -> str:
    """The page's gap format: +m:ss under an hour, +h:mm:ss from an hour."""
    s = round(abs(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"+{h}:{m:02d}:{sec:02d}" if h else f"+{m}:{sec:02d}"


# ------------------------------------------------------------------------- the tests


def test_spectator_page_renders_and_updates_live(live: Live) -> None:
    rec, b1, b2 = live.records, live.records.board1, live.records.board2
    ranked1 = {r["bib"]: r for r in b1["runners"]}
    # A runner whose rank changes between the two moments (the simulated field has some).
    moved = next(r for r in b2["runners"]
                 if r["rank"] is not None and r["rank"] != ranked1[r["bib"]]["rank"])
    with chromium((1280, 900)) as ctx:
        page = ctx.new_page()
        page.add_init_script(RECORD_SENT_JS)
        errors = watch_console(page)
        page.goto(f"{live.stack.base_url}/?race={rec.race_id}")
        page.wait_for_function(
            f"document.querySelectorAll('#leaderboard tbody tr').length === {len(b1['runners'])}",
            timeout=WAIT_MS)
        leader = b1["runners"][0]
        first = page.locator("#leaderboard tbody tr").first
        assert first.get_attribute("data-bib") == leader["bib"]
        assert first.locator(".rank").inner_text() == "1"
        assert leader["name"] in first.inner_text()
        second = b1["runners"][1]
        row2 = page.locator(f"#leaderboard tr[data-bib='{second['bib']}']")
        assert row2.locator(".gap").inner_text() == gap_text(second["gap_leader_s"])
        assert second["record_delta"] in row2.inner_text()
        # The course drawings: profile, map, one marker per checkpoint, runners on both.
        on_course = sum(1 for r in b1["runners"] if r["progress_m"] is not None
                        and r["status"] in ("running", "finished"))
        page.wait_for_function(
            f"document.querySelectorAll('#map .runner').length === {on_course}", timeout=WAIT_MS)
        assert page.locator("#profile .runner").count() == on_course
        n_cp = len(load_race(live.stack.folder).checkpoints)
        assert page.locator("#profile path.terrain").count() == 1
        assert page.locator("#profile .checkpoint").count() == n_cp
        assert page.locator("#map polyline.route").count() == 1
        # A runner not heard from for a while is shown "last seen N min ago".
        t1 = b1["generated_ms"]
        stale = next(r for r in b1["runners"] if r["status"] == "running"
                     and r["last_fix_ms"] is not None and t1 - r["last_fix_ms"] > 180_000)
        minutes = (t1 - stale["last_fix_ms"]) // 60_000
        seen = page.locator(f"#leaderboard tr[data-bib='{stale['bib']}'] .seen").inner_text()
        assert seen in (f"last seen {minutes} min ago", f"last seen {minutes + 1} min ago")
        # Ranked at an estimated position, and level with the runner ahead: marked.
        assert stale["estimated"] is True
        assert page.locator(f"#leaderboard tr[data-bib='{stale['bib']}'] .est").count() == 1
        n_est = sum(1 for r in b1["runners"] if r["estimated"])
        n_tied = sum(1 for r in b1["runners"] if r["tied"])
        assert page.locator("#leaderboard .est").count() == n_est
        assert page.locator("#leaderboard .tie").count() == n_tied
        # Search, follow (kept in localStorage), and the runner card of the moved runner.
        query = moved["name"].split()[0].upper()  # any case, any accents
        expected = [r["bib"] for r in b1["runners"] if plain(query) in plain(r["name"])]
        page.fill("#search", query)
        page.wait_for_function("document.querySelectorAll('#leaderboard tbody tr').length === "
                               f"{len(expected)}", timeout=WAIT_MS)
        shown = page.eval_on_selector_all("#leaderboard tbody tr", BIBS_JS)
        assert moved["bib"] in shown and sorted(shown) == sorted(expected)
        assert len(expected) < len(b1["runners"])
        page.fill("#search", "")
        page.click(f"#leaderboard tr[data-bib='{moved['bib']}'] .follow-btn")
        saved = page.evaluate(f"localStorage.getItem('zegama-live:followed:{rec.race_id}')")
        assert orjson.loads(saved) == [moved["bib"]]
        page.click(f"#leaderboard tr[data-bib='{moved['bib']}'] .name")
        card = page.locator("#card")
        card.locator("table.splits").wait_for(timeout=WAIT_MS)
        assert moved["name"] in card.inner_text()
        assert card.locator("table.etas tbody tr").count() >= 1
        # Each GPS split shows how sure it is (the half-width of its 95% interval).
        sent = next(v for topic, _, v in reversed(rec.first)
                    if topic == RUNNER_UPDATES and v["bib"] == moved["bib"])["card"]
        sure = [s for s in sent["splits"] if s["source"] == "gps" and s["err_s"]]
        assert sure and card.locator("table.splits .err").count() == len(sure)
        assert f"±{max(1, round(sure[-1]['err_s']))} s" in card.inner_text()
        # And the chance of making each cutoff still ahead (Sancti Spiritu's, 3:15).
        assert sent["cutoffs"] and card.locator(".cutoff").count() == len(sent["cutoffs"])
        assert "chance to make it" in card.locator(".cutoff").first.inner_text()
        assert page.locator(f"#map .runner.selected[data-bib='{moved['bib']}']").count() == 1
        page.evaluate("window.__notReloaded = true")
        page.screenshot(path=artifact("spectator-desktop-before.png"), full_page=True)

        # The connection drops; the page reconnects and resumes each channel by seq.
        held = page.evaluate("zegamaLive.state.board.seq")
        page.evaluate("zegamaLive.state.live.ws.close()")
        live.stack.publish(rec.standings_later)
        page.wait_for_function(
            "window.__sent.some(m => m.op === 'subscribe' && m.since !== undefined "
            f"&& m.channel === 'standings:{rec.race_id}')", timeout=WAIT_MS)
        resumed = [m for m in page.evaluate("window.__sent") if "since" in m]
        assert {"op": "subscribe", "channel": f"standings:{rec.race_id}", "since": held} in resumed
        assert any(m["channel"] == f"runner:{rec.race_id}:{moved['bib']}" for m in resumed)

        row = page.locator(f"#leaderboard tr[data-bib='{moved['bib']}']")
        page.wait_for_function(
            f"document.querySelector(\"#leaderboard tr[data-bib='{moved['bib']}'] .rank\")"
            f".textContent === '{moved['rank']}'", timeout=WAIT_MS)
        assert row.locator(".gap").inner_text() == gap_text(moved["gap_leader_s"])
        assert page.evaluate("window.__notReloaded") is True
        # The card (its own channel) follows the update too.
        card.filter(has_text=f"#{moved['rank']}").wait_for(timeout=WAIT_MS)
        assert page.locator("#conn").inner_text() == "live"
        page.screenshot(path=artifact("spectator-desktop-after.png"), full_page=True)
        assert errors == []


def test_control_page_alerts_acknowledge_and_dnf(live: Live) -> None:
    rec, stack = live.records, live.stack
    with chromium((1280, 900)) as ctx:
        page = ctx.new_page()
        errors = watch_console(page)
        page.goto(f"{stack.base_url}/control?race={rec.race_id}")
        page.fill("#token", "not-the-token")
        page.click("#sign-in button[type=submit]")
        page.locator("#error").filter(has_text="Sign-in refused").wait_for(timeout=WAIT_MS)
        assert page.locator("#sign-in").is_visible()
        errors.clear()  # the refusal is expected

        page.fill("#token", TOKEN)
        page.click("#sign-in button[type=submit]")
        page.locator("#alert-list .alert").first.wait_for(timeout=WAIT_MS)
        open_first = [a for _, _, r in rec.first if (a := r.get("alert"))]
        page.wait_for_function(
            f"document.querySelectorAll('#alert-list .alert').length === {len(open_first)}",
            timeout=WAIT_MS)
        kinds = page.eval_on_selector_all("#alert-list .alert", KINDS_JS)
        assert kinds == sorted(kinds, key=ORDER.index)  # most urgent first
        last = [r for r in rec.board1["runners"] if r["status"] == "running"
                and r["progress_m"] is not None][-1]
        page.locator(f"#last-runners tr.last[data-bib='{last['bib']}']").wait_for(timeout=WAIT_MS)
        # A filter shows only its kind (and SOS).
        page.click("[data-filter=stopped]")
        page.wait_for_function("[...document.querySelectorAll('#alert-list .alert')]"
                               ".every(e => ['stopped', 'sos'].includes(e.dataset.kind))",
                               timeout=WAIT_MS)
        shown = page.eval_on_selector_all("#alert-list .alert", KINDS_JS)
        assert shown.count("stopped") == sum(1 for a in open_first if a["kind"] == "stopped")
        page.click("[data-filter=all]")
        page.wait_for_function(
            f"document.querySelectorAll('#alert-list .alert').length === {len(open_first)}",
            timeout=WAIT_MS)
        page.evaluate("window.__notReloaded = true")

        # A new alert produced to Kafka shows up live: the weather alert's danger-zone alerts.
        stack.publish(rec.alerts_later)
        page.wait_for_function(  # the records may arrive over several ticks
            "document.querySelectorAll('.alert[data-kind=danger_zone]').length === "
            f"{len(rec.raised_later)}", timeout=WAIT_MS)
        shown_ids = page.eval_on_selector_all(".alert[data-kind=danger_zone]",
                                              "els => els.map(e => e.dataset.alertId)")
        assert sorted(shown_ids) == sorted(a["id"] for a in rec.raised_later)
        assert "ON" in page.locator("#zone-list .zone").first.inner_text()
        assert page.evaluate("window.__notReloaded") is True

        # Acknowledge: a control.v1 command; the page waits for the stream to show it.
        target = page.locator("#alert-list .alert").first
        alert_id = target.get_attribute("data-alert-id")
        assert alert_id is not None
        target.locator("[data-ack]").click()
        cmd = stack.control_records(rec.race_id, lambda r: r.get("op") == "ack"
                                    and r.get("alert_id") == alert_id)
        assert cmd["by"] == "control:maite" and cmd["id"].startswith("c-")
        page.wait_for_function(
            f"document.querySelector(\".alert[data-alert-id='{alert_id}'] [data-ack]\")"
            ".textContent.includes('waiting')", timeout=WAIT_MS)
        assert "acknowledged" not in target.locator(".alert-actions").inner_text()
        # The processors' answer, as they would publish it: the alert and the audit entry.
        alert = next(a for a in open_first if a["id"] == alert_id)
        now = rec.board2["generated_ms"]
        log = {"v": 1, "race": rec.race_id, "seq": rec.next_seq(), "t_ms": now, "id": cmd["id"],
               "op": "ack", "by": cmd["by"], "at_ms": cmd["at_ms"], "result": "applied",
               "error": None, "command": cmd}
        stack.publish([rec.alert_record("acknowledged", {**alert, "acknowledged": True}, now,
                                        by=cmd["by"]),
                       (CONTROL_LOG, rec.race_id.encode(), log)])
        page.locator(f".alert[data-alert-id='{alert_id}'] .acked").wait_for(timeout=WAIT_MS)
        page.locator(f"#command-log li[data-id='{cmd['id']}'].res-applied").wait_for(
            timeout=WAIT_MS)

        # The weather alert off again: a command, the zone's state from the stream only.
        zone = page.locator("#zone-list .zone").first
        zone.locator("[data-weather]").click()
        weather = stack.control_records(rec.race_id, lambda r: r.get("op") == "weather")
        assert weather["on"] is False and weather["zone"] == zone.get_attribute("data-zone")
        assert weather["id"].startswith("c-")  # the page's own id, to match the answer
        assert "ON" in zone.locator(".weather-state").inner_text()
        # The processors' verdict: the zone's state is the control channel's weather map,
        # so it shows off although the zone's danger_zone alerts are still open.
        stack.publish([(CONTROL_LOG, rec.race_id.encode(), {
            "v": 1, "race": rec.race_id, "seq": rec.next_seq(), "t_ms": now + 1000,
            "id": weather["id"], "op": "weather", "by": weather["by"],
            "at_ms": weather["at_ms"], "result": "applied", "error": None,
            "command": weather})])
        zone.locator(".weather-state").filter(has_text="off").wait_for(timeout=WAIT_MS)
        assert "control:maite" in zone.locator(".weather-state").inner_text()
        assert zone.locator("[data-weather]").get_attribute("data-on") == "true"
        assert page.locator(".alert[data-kind=danger_zone]").count() == len(rec.raised_later)
        # A page that connects now shows the same toggle, from the channel's snapshot.
        fresh = ctx.new_page()
        fresh.goto(f"{stack.base_url}/control?race={rec.race_id}")
        fresh.fill("#token", TOKEN)
        fresh.click("#sign-in button[type=submit]")
        fresh_zone = fresh.locator(f"#zone-list .zone[data-zone='{weather['zone']}']")
        fresh_zone.locator(".weather-state").filter(has_text="control:maite").wait_for(
            timeout=WAIT_MS)
        assert "off" in fresh_zone.locator(".weather-state").inner_text()
        assert fresh.evaluate("zegamaControl.state.weather") == {
            weather["zone"]: {"on": False, "by": "control:maite", "t_ms": now + 1000}}
        fresh.close()

        # DNF with a reason.
        bib = rec.board1["runners"][-1]["bib"]
        page.fill("#dnf-bib", bib)
        page.fill("#dnf-reason", "twisted ankle at the summit cairn")
        page.click("#dnf-form button[type=submit]")
        dnf = stack.control_records(rec.race_id, lambda r: r.get("op") == "dnf"
                                    and r.get("bib") == bib)
        assert dnf["reason"] == "twisted ankle at the summit cairn"
        page.screenshot(path=artifact("control-desktop.png"), full_page=True)

        # A command the broadcaster refuses: the error names it (matched by its id).
        page.fill("#dnf-bib", "9999")
        page.fill("#dnf-reason", "no such runner")
        page.click("#dnf-form button[type=submit]")
        page.locator("#error").filter(has_text="dnf 9999 not sent").wait_for(timeout=WAIT_MS)
        assert "9999" in page.locator("#error").inner_text()
        assert errors == []


def test_command_answers_are_matched_by_id(live: Live) -> None:
    """With several commands in flight, an ack or error settles the command of its id."""
    with chromium((800, 600)) as ctx:
        page = ctx.new_page()
        page.goto(f"{live.stack.base_url}/control?race={live.records.race_id}")
        outcome = page.evaluate("""async () => {
          const { Live } = await import("/static/js/live.js");
          const live = new Live("ws://127.0.0.1:9/");  // never opens: frames are fed by hand
          const sent = [];
          live.ws = { readyState: WebSocket.OPEN, send: (t) => sent.push(JSON.parse(t)),
                      close() {} };
          const settle = (p) => p.then((ack) => ["ack", ack.id], (e) => [e.code, e.id]);
          const first = settle(live.command("r", { op: "dnf", bib: "1" }));
          const second = settle(live.command("r", { op: "dnf", bib: "2", id: "mine" }));
          const third = settle(live.command("r", { op: "ack", alert_id: "a" }));
          const ids = sent.map((m) => m.command.id);
          live.receive(JSON.stringify({ type: "error", code: "invalid_command",
                                        message: "no", id: ids[1] }));
          live.receive(JSON.stringify({ type: "ack", id: ids[2], command: {} }));
          live.receive(JSON.stringify({ type: "error", code: "publish_failed",
                                        message: "kafka", id: "someone-else" }));
          live.receive(JSON.stringify({ type: "ack", id: ids[0], command: {} }));
          const out = { ids, answers: await Promise.all([first, second, third]) };
          live.close();
          return out;
        }""")
    ids = outcome["ids"]
    assert ids[1] == "mine" and all(i.startswith("c-") and len(i) == 34 for i in (ids[0], ids[2]))
    assert len(set(ids)) == 3
    assert outcome["answers"] == [["ack", ids[0]], ["invalid_command", "mine"], ["ack", ids[2]]]


def test_pages_fit_a_phone_screen(live: Live) -> None:
    rec = live.records
    with chromium(PHONE, is_mobile=True) as ctx:
        page = ctx.new_page()
        errors = watch_console(page)
        page.goto(f"{live.stack.base_url}/?race={rec.race_id}")
        page.locator("#leaderboard tbody tr").first.wait_for(timeout=WAIT_MS)
        page.locator("#profile path.terrain").wait_for(timeout=WAIT_MS)
        # A mobile browser widens its layout viewport to fit wider content, so the
        # content's width is compared with the screen's, not with innerWidth.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE[0], f"horizontal overflow on a {PHONE[0]} px screen: {width} px"
        page.screenshot(path=artifact("spectator-phone.png"), full_page=True)
        bib = rec.board1["runners"][2]["bib"]
        page.click(f"#leaderboard tr[data-bib='{bib}'] .name")
        page.locator("#card table.splits").wait_for(timeout=WAIT_MS)
        box = page.locator("#card").bounding_box()
        assert box is not None and box["width"] <= PHONE[0]
        page.screenshot(path=artifact("spectator-phone-card.png"))

        page.goto(f"{live.stack.base_url}/control?race={rec.race_id}")
        page.fill("#token", TOKEN)
        page.click("#sign-in button[type=submit]")
        page.locator("#alert-list .alert").first.wait_for(timeout=WAIT_MS)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE[0], f"the control page overflows a {PHONE[0]} px screen: {width} px"
        page.screenshot(path=artifact("control-phone.png"), full_page=True)
        assert errors == []
