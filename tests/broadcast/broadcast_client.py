"""A client's side of docs/websocket.md: hold a channel's state from its frames.

Written from the protocol document, independently of the server's code, so the tests
check that what the server sends lets a client rebuild the server's state.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def unbatched(message: Json) -> list[Json]:
    """The messages of one websocket message: a batch's, in order, or the message itself."""
    return list(message["messages"]) if message.get("type") == "batch" else [message]


def without_clock(board: Json) -> Json:
    """A standings board without its rows' ``last_seen_s``, which updates leave out
    unless something else of the row changed (a client computes it from last_fix_ms)."""
    return {**board, "runners": [{k: v for k, v in r.items() if k != "last_seen_s"}
                                 for r in board.get("runners", [])]}


class ClientChannel:
    """The state one client holds for one channel."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = name.split(":")[0]
        self.state: Json | None = None
        self.seq = -1
        self.frames = 0

    def apply(self, frame: Json) -> None:
        """Apply a snapshot or update frame of this channel (raises AssertionError on misuse)."""
        assert frame["channel"] == self.name
        self.frames += 1
        if frame["type"] == "snapshot":
            self.state, self.seq = frame["data"], frame["seq"]
            return
        assert frame["type"] == "update" and self.state is not None, "update before a snapshot"
        if frame["seq"] < self.seq:
            return
        getattr(self, "_" + self.kind)(frame["data"])
        self.seq = frame["seq"]

    def _standings(self, data: Json) -> None:
        board = self.state
        assert board is not None and data["base_seq"] <= self.seq
        rows = {r["bib"]: r for r in board["runners"]}
        rows.update((r["bib"], {**rows.get(r["bib"], {}), **r}) for r in data["rows"])
        if "ranked" in data:  # ranks left out of the rows: the order's first N are 1..N
            for i, bib in enumerate(data["order"]):
                if bib in rows:
                    rows[bib] = {**rows[bib], "rank": i + 1 if i < data["ranked"] else None}
        board["runners"] = [rows[b] for b in data["order"] if b in rows]
        ids = [c["id"] for c in board["checkpoints"]]
        for tail in data["checkpoints"]:
            held = board["checkpoints"][ids.index(tail["id"])]["splits"] \
                if tail["id"] in ids else []
            assert tail["from"] <= len(held), "a tail starting past the splits held"
            cp = {"id": tail["id"], "km": tail["km"],
                  "splits": held[: tail["from"]] + tail["splits"]}
            if tail["id"] in ids:
                board["checkpoints"][ids.index(tail["id"])] = cp
            else:
                board["checkpoints"].append(cp)
        if "finishers" in data:
            board["finishers"] = data["finishers"]
        board["leader"], board["generated_ms"] = data["leader"], data["generated_ms"]

    def _runner(self, data: Json) -> None:
        self.state = data

    def _checkpoint(self, data: Json) -> None:
        assert self.state is not None
        tail, held = data["checkpoint"], self.state["checkpoint"]["splits"]
        self.state = {"generated_ms": data["generated_ms"], "checkpoint": {
            "id": tail["id"], "km": tail["km"], "splits": held[: tail["from"]] + tail["splits"]}}

    def _flow(self, data: Json) -> None:
        assert self.state is not None
        runners = self.state["runners"]
        for bib, change in data["runners"].items():
            old = runners.get(bib, {"track": []})["track"]
            runners[bib] = {"name": change["name"], "status": change["status"],
                            "track": old[: change["from"]] + change["points"]}

    def _control(self, data: Json) -> None:
        assert self.state is not None
        alerts = {a["id"]: a for a in self.state["alerts"]}
        for event in data.get("alerts", []):
            if event["action"] == "cleared":
                alerts.pop(event["alert"]["id"], None)
            else:
                alerts[event["alert"]["id"]] = event["alert"]
        self.state["alerts"] = list(alerts.values())
        self.state["log"] = (self.state["log"] + data.get("log", []))[-200:]
        self.state["runners"].update(data.get("runners", {}))
        self.state.setdefault("weather", {}).update(data.get("weather", {}))
