"""Values shared across the race engine: fixes, entrants, checkpoints, race settings.

Everything here is an immutable value. Times on the wire and inside the engine are
integer epoch milliseconds (UTC); durations from the start are seconds as float.
Distances are metres along the course ("progress"), never straight-line distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from race_engine.course import Course


@dataclass(frozen=True, slots=True)
class Fix:
    """One position report from a runner's device (the device JSON format, decoded).

    ``t`` is the fix time (event time) in epoch milliseconds UTC, not arrival time.
    """

    device: str
    t: int
    lat: float
    lon: float
    ele: float | None = None
    acc: float | None = None
    bat: float | None = None
    sos: bool = False


@dataclass(frozen=True, slots=True)
class ChipRead:
    """A timing-mat read: the authoritative crossing time of a checkpoint."""

    bib: str
    checkpoint: str
    t: int
    reader: str = ""


class Status(StrEnum):
    DNS = "dns"  # registered, never started
    RUNNING = "running"
    FINISHED = "finished"
    DNF = "dnf"
    DSQ = "dsq"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    name: str
    km: float
    cutoff_s: float | None = None  # seconds after the start; None when no cutoff

    @property
    def m(self) -> float:
        return self.km * 1000.0


@dataclass(frozen=True, slots=True)
class DangerZone:
    """An exposed stretch of course (e.g. a ridge) that race control watches in bad weather."""

    id: str
    name: str
    km_from: float
    km_to: float

    def contains(self, progress_m: float) -> bool:
        return self.km_from * 1000.0 <= progress_m <= self.km_to * 1000.0


@dataclass(frozen=True, slots=True)
class RecordSplit:
    """The reference (course record) time at one checkpoint, in seconds from the start."""

    checkpoint: str
    t_s: float


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    no_fix_min: float = 10.0
    stopped_min: float = 8.0
    off_course_m: float = 150.0
    off_course_s: float = 120.0
    low_battery: float = 0.15
    # A projected cutoff miss is raised when the runner misses it with at least this
    # probability (race_engine.projections.p_by), the cutoff taken this much later.
    # 0.9 is the projection's optimistic edge (p10) past the cutoff.
    cutoff_risk_margin_min: float = 0.0
    cutoff_risk_p_miss: float = 0.9


@dataclass(frozen=True, slots=True)
class Entrant:
    """A registered runner. ``private`` holds fields that must never reach spectators."""

    bib: str
    name: str
    sex: str
    category: str
    country: str
    device: str
    private: dict[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, str]:
        return {
            "bib": self.bib,
            "name": self.name,
            "sex": self.sex,
            "category": self.category,
            "country": self.country,
        }


@dataclass(frozen=True)
class Race:
    """A loaded race folder: course, settings and entrants."""

    id: str
    name: str
    start_ms: int
    timezone: str
    time_limit_s: float
    course: Course
    checkpoints: tuple[Checkpoint, ...]
    record: tuple[RecordSplit, ...]
    danger_zones: tuple[DangerZone, ...]
    thresholds: AlertThresholds
    entrants: tuple[Entrant, ...]
    approximate: bool = False  # the course is a stand-in, not the organiser's official GPX

    def checkpoint(self, checkpoint_id: str) -> Checkpoint:
        for cp in self.checkpoints:
            if cp.id == checkpoint_id:
                return cp
        raise KeyError(checkpoint_id)

    def entrant_by_device(self) -> dict[str, Entrant]:
        return {e.device: e for e in self.entrants if e.device}
