"""Load and validate a race folder: ``course.gpx`` + ``race.toml`` + ``entrants.csv``.

The folder's name is the race id. Every problem is reported as a ``RaceFolderError``
that names the file, the line or field, and how to fix it; docs/race-folder.md
describes the format.

Nominal versus measured distance: organisers publish rounded km (42.195) while the GPX
measures slightly different. When the finish km in race.toml is within 2% of the GPX
length, the GPX is taken as the truth: every km in race.toml (checkpoints, danger
zones) is scaled by ``gpx length / finish km``, so the finish sits exactly at the end
of the course. A larger difference means the wrong file and is an error.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import tomllib
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from race_engine.course import Course, course_from_gpx
from race_engine.model import (
    AlertThresholds,
    Checkpoint,
    DangerZone,
    Entrant,
    Race,
    RecordSplit,
)


class RaceFolderError(ValueError):
    """A race folder problem: which file, where in it, what is wrong and how to fix it."""

    def __init__(self, file: str, where: str, problem: str, fix: str) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        self.fix = fix
        super().__init__(f"{file}, {where}: {problem}. Fix: {fix}")

    def __reduce__(self) -> tuple[type[RaceFolderError], tuple[str, str, str, str]]:
        # Keeps the error picklable (it crosses process boundaries in workers and tests).
        return RaceFolderError, (self.file, self.where, self.problem, self.fix)


ENTRANT_COLUMNS = ("bib", "name", "sex", "category", "country", "device")
_RACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def load_race(path: str | Path) -> Race:
    """Load the race folder at ``path``; the race id is the folder's name.

    Raises:
        RaceFolderError: a missing file or any invalid content.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise RaceFolderError(str(folder), "folder", "no such race folder",
                              "pass the folder that holds course.gpx, race.toml, entrants.csv")
    race_id = folder.resolve().name
    if not _RACE_ID.match(race_id):
        raise RaceFolderError(str(folder), "folder name", f"race id {race_id!r} has characters "
                              "other than letters, digits, '.', '_', '-'",
                              "rename the folder, e.g. zegama-2026")
    course = load_course(folder / "course.gpx")
    toml_path = folder / "race.toml"
    settings = parse_race_toml(_read_text(toml_path), course.length_m, source=str(toml_path))
    entrants = load_entrants(folder / "entrants.csv")
    return Race(
        id=race_id,
        name=settings.name,
        start_ms=settings.start_ms,
        timezone=settings.timezone,
        time_limit_s=settings.time_limit_s,
        course=course,
        checkpoints=settings.checkpoints,
        record=settings.record,
        danger_zones=settings.danger_zones,
        thresholds=settings.thresholds,
        entrants=entrants,
        approximate=settings.approximate,
    )


def load_course(path: str | Path) -> Course:
    """Load a GPX file as a Course.

    Raises:
        RaceFolderError: the file is missing, unreadable or not a usable GPX course.
    """
    p = Path(path)
    return course_from_gpx(_read_xml(p), source=str(p))


def load_entrants(path: str | Path) -> tuple[Entrant, ...]:
    """Read an entrants.csv (UTF-8, optional BOM); columns beyond the six are private.

    Raises:
        RaceFolderError: missing file or column, a row with a wrong number of fields,
            an empty bib or name, a duplicate bib or device (naming both lines).
    """
    p = Path(path)
    return parse_entrants(_read_text(p), source=str(p))


def parse_entrants(text: str, *, source: str = "entrants.csv") -> tuple[Entrant, ...]:
    """Parse entrants.csv text; see ``load_entrants``."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ENTRANT_COLUMNS if c not in header]
    if missing:
        raise RaceFolderError(source, "line 1 (header)", f"missing column(s) {', '.join(missing)}",
                              f"the header must include {','.join(ENTRANT_COLUMNS)}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise RaceFolderError(source, "line 1 (header)", f"column(s) {', '.join(dupes)} appear "
                              "twice", "give every column a distinct name")
    reader.fieldnames = header
    entrants: list[Entrant] = []
    bib_line: dict[str, int] = {}
    device_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        where = f"line {line}"
        if None in row or any(v is None for v in row.values()):
            raise RaceFolderError(source, where, f"the row has a different number of fields than "
                                  f"the header ({len(header)})",
                                  "quote fields that contain commas; fill empty fields with ''")
        values = {k: v.strip() for k, v in row.items()}
        bib, device = values["bib"], values["device"]
        if not bib or any(c.isspace() for c in bib):
            raise RaceFolderError(source, f"{where}, bib", f"bib {bib!r} is empty or has spaces",
                                  "give every entrant a bib without spaces")
        if not values["name"]:
            raise RaceFolderError(source, f"{where}, name", "the name is empty",
                                  "give every entrant a name")
        if bib in bib_line:
            raise RaceFolderError(source, f"{where}, bib", f"bib {bib} is already used on line "
                                  f"{bib_line[bib]}", "give every entrant a distinct bib")
        if device and device in device_line:
            raise RaceFolderError(source, f"{where}, device", f"device {device} is already used on "
                                  f"line {device_line[device]}",
                                  "give every device to one entrant; leave device empty if none")
        bib_line[bib] = line
        if device:
            device_line[device] = line
        private = {k: v for k, v in values.items() if k not in ENTRANT_COLUMNS}
        entrants.append(Entrant(bib=bib, name=values["name"], sex=values["sex"],
                                category=values["category"], country=values["country"],
                                device=device, private=private))
    return tuple(entrants)


_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")


def _read_xml(path: Path) -> str:
    """Decode an XML file by its declared encoding (GPX exports are not always UTF-8)."""
    raw = _read_bytes(path).removeprefix(b"\xef\xbb\xbf")
    m = _XML_ENCODING.match(raw.lstrip())
    encoding = m.group(1).decode("ascii") if m else "utf-8"
    try:
        return raw.decode(encoding)
    except LookupError as e:
        raise RaceFolderError(str(path), "line 1", f"unknown encoding {encoding!r}",
                              'save the file as UTF-8 with encoding="UTF-8"') from e
    except UnicodeDecodeError as e:
        raise RaceFolderError(str(path), f"byte {e.start}", f"not valid {encoding} text",
                              "save the file as UTF-8 and declare it so") from e


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise RaceFolderError(str(path), "file", "the file is missing",
                              f"add {path.name} to the race folder (see docs/race-folder.md)")
    try:
        return path.read_bytes()
    except OSError as e:
        raise RaceFolderError(str(path), "file", f"cannot be read ({e.strerror})",
                              "check the file's permissions") from e


def _read_text(path: Path) -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise RaceFolderError(str(path), f"line {line}", "not UTF-8 text",
                              "save the file as UTF-8") from e


# ---------------------------------------------------------------- race.toml

_KEYS: dict[str, tuple[set[str], set[str]]] = {  # table: (required keys, optional keys)
    "race": ({"name", "start", "timezone", "time_limit"}, {"approximate"}),
    "checkpoints": ({"id", "name", "km"}, {"cutoff"}),
    "record": ({"checkpoint", "time"}, set()),
    "danger_zones": ({"id", "name", "km_from", "km_to"}, set()),
    "alerts": (set(), {f.name for f in fields(AlertThresholds)}),
}
_TIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")
FINISH_TOLERANCE = 0.02


@dataclass(frozen=True, slots=True)
class RaceSettings:
    """The validated contents of race.toml (km already scaled to the course length)."""

    name: str
    start_ms: int
    timezone: str
    time_limit_s: float
    approximate: bool
    checkpoints: tuple[Checkpoint, ...]
    record: tuple[RecordSplit, ...]
    danger_zones: tuple[DangerZone, ...]
    thresholds: AlertThresholds


class _Toml:
    """Typed access to parsed TOML that raises RaceFolderError naming the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str, fix: str) -> RaceFolderError:
        return RaceFolderError(self.source, where, problem, fix)

    def table(self, value: Any, where: str, table: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a table",
                            f"write it as [{table}] with key = value lines")
        required, optional = _KEYS[table]
        known = required | optional
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(f"{where}.{key}", f"unknown key {key!r}", f"{hint}remove it or "
                                f"fix its spelling; known keys: {', '.join(sorted(known))}")
        for key in sorted(required):
            if key not in value:
                raise self.fail(f"{where}.{key}", f"missing key {key!r}", f"add {key} = ...")
        return value

    def text(self, t: dict[str, Any], key: str, where: str) -> str:
        v = t[key]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"{where}.{key}", f"{v!r} is not a non-empty string",
                            f'write {key} = "..."')
        return v.strip()

    def number(self, t: dict[str, Any], key: str, where: str) -> float:
        v = t[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
            raise self.fail(f"{where}.{key}", f"{v!r} is not a number", f"write {key} = 12.5")
        return float(v)

    def duration(self, t: dict[str, Any], key: str, where: str) -> float:
        v = t[key]
        m = _TIME.match(v.strip()) if isinstance(v, str) else None
        if m is None:
            raise self.fail(f"{where}.{key}", f"{v!r} is not a duration h:mm:ss",
                            f'write it as a quoted string, e.g. {key} = "3:15:00"')
        return int(m.group(1)) * 3600.0 + int(m.group(2)) * 60.0 + int(m.group(3))

    def array(self, doc: dict[str, Any], table: str) -> list[dict[str, Any]]:
        v = doc.get(table, [])
        if not isinstance(v, list):
            raise self.fail(table, "expected an array of tables", f"write each as [[{table}]]")
        return [self.table(item, f"{table}[{i}]", table) for i, item in enumerate(v, start=1)]


def parse_race_toml(
    text: str, course_length_m: float, *, source: str = "race.toml"
) -> RaceSettings:
    """Validate race.toml text against a course of ``course_length_m`` metres.

    Checkpoint indices in error locations count from 1 in file order.

    Raises:
        RaceFolderError: TOML syntax, unknown or missing keys, bad values or times,
            km not increasing, finish more than 2% away from the GPX length, cutoffs not
            increasing, record or danger zones referring to unknown places.
    """
    tf = _Toml(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+), column (\d+)", str(e))
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "syntax"
        raise tf.fail(where, f"not valid TOML ({e})", "fix the syntax (strings need quotes, "
                      "arrays of tables are written [[checkpoints]])") from e
    for key in doc:
        if key not in _KEYS:
            raise tf.fail(key, f"unknown table {key!r}",
                          f"remove it or fix its spelling; known: {', '.join(_KEYS)}")
    if "race" not in doc:
        raise tf.fail("race", "missing [race] table", "add [race] with name, start, timezone, "
                      "time_limit")
    race = tf.table(doc["race"], "race", "race")
    name = tf.text(race, "name", "race")
    timezone, start_ms = _start(tf, race)
    time_limit_s = tf.duration(race, "time_limit", "race")
    approximate = race.get("approximate", False)
    if not isinstance(approximate, bool):
        raise tf.fail("race.approximate", f"{approximate!r} is not true or false",
                      "write approximate = true or approximate = false")
    scale, checkpoints = _checkpoints(tf, tf.array(doc, "checkpoints"), course_length_m,
                                      time_limit_s)
    return RaceSettings(
        name=name, start_ms=start_ms, timezone=timezone, time_limit_s=time_limit_s,
        approximate=approximate, checkpoints=checkpoints,
        record=_record(tf, tf.array(doc, "record"), checkpoints),
        danger_zones=_danger_zones(tf, tf.array(doc, "danger_zones"), scale, course_length_m),
        thresholds=_thresholds(tf, doc),
    )


def _start(tf: _Toml, race: dict[str, Any]) -> tuple[str, int]:
    tz_name = tf.text(race, "timezone", "race")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise tf.fail("race.timezone", f"unknown time zone {tz_name!r}",
                      'use an IANA name such as "Europe/Madrid"') from e
    raw = race["start"]
    try:
        start = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    except ValueError as e:
        raise tf.fail("race.start", f"{raw!r} is not an ISO date-time",
                      'write start = "2026-05-17T09:00:00+02:00"') from e
    offset = start.utcoffset()
    if offset is None:
        raise tf.fail("race.start", f"{raw!r} has no UTC offset",
                      'add the offset, e.g. start = "2026-05-17T09:00:00+02:00"')
    local = start.astimezone(tz).utcoffset()
    if local != offset:
        raise tf.fail("race.start", f"offset {start:%z} does not match {tz_name}, which is "
                      f"UTC{start.astimezone(tz):%z} on that date",
                      "correct the offset or the time zone")
    return tz_name, round(start.timestamp() * 1000)


def _checkpoints(tf: _Toml, items: list[dict[str, Any]], length_m: float,
                 time_limit_s: float) -> tuple[float, tuple[Checkpoint, ...]]:
    """Validated checkpoints scaled so the finish is at the course end; returns the scale."""
    if len(items) < 2:
        raise tf.fail("checkpoints", f"{len(items)} checkpoint(s); a start and a finish are needed",
                      "add [[checkpoints]] for the start (km = 0) and the finish")
    ids: set[str] = set()
    kms: list[float] = []
    for i, cp in enumerate(items, start=1):
        cid = tf.text(cp, "id", f"checkpoints[{i}]")
        if cid in ids:
            raise tf.fail(f"checkpoints[{i}].id", f"id {cid!r} is used twice",
                          "give every checkpoint a distinct id")
        ids.add(cid)
        km = tf.number(cp, "km", f"checkpoints[{i}]")
        if i == 1 and km != 0:
            raise tf.fail("checkpoints[1].km", f"the first checkpoint is the start but km is {km}",
                          "put the start first, with km = 0")
        if km * 1000.0 > length_m * (1 + FINISH_TOLERANCE):
            raise tf.fail(f"checkpoints[{i}].km", f"{km} ({cid}) is beyond the course length "
                          f"{length_m / 1000:.3f} km (course.gpx)", "correct the km, or check "
                          "that course.gpx is the whole course")
        if kms and km <= kms[-1]:
            raise tf.fail(f"checkpoints[{i}].km", f"{km} ({cid}) is not after the previous "
                          f"checkpoint's {kms[-1]}", "list checkpoints in course order with "
                          "increasing km")
        kms.append(km)
    finish_m = kms[-1] * 1000.0
    if abs(finish_m - length_m) > FINISH_TOLERANCE * length_m:
        raise tf.fail(f"checkpoints[{len(items)}].km", f"the finish at {kms[-1]} km is more than "
                      f"2% away from the course length {length_m / 1000:.3f} km (course.gpx)",
                      "check that course.gpx is this race's course and the finish km is right")
    scale = length_m / finish_m
    out: list[Checkpoint] = []
    last_cutoff = 0.0
    for i, cp in enumerate(items, start=1):
        cutoff = tf.duration(cp, "cutoff", f"checkpoints[{i}]") if "cutoff" in cp else None
        if i == len(items) and cutoff is None:
            cutoff = time_limit_s  # the time limit is the finish's cutoff
        if cutoff is not None:
            if cutoff <= last_cutoff or cutoff > time_limit_s:
                raise tf.fail(f"checkpoints[{i}].cutoff", f"{cp.get('cutoff', cutoff)} is not "
                              "after the previous cutoff or exceeds the time limit",
                              "cutoffs must increase along the course up to race.time_limit")
            last_cutoff = cutoff
        km = length_m / 1000.0 if i == len(items) else kms[i - 1] * scale
        out.append(Checkpoint(id=cp["id"].strip(), name=tf.text(cp, "name", f"checkpoints[{i}]"),
                              km=km, cutoff_s=cutoff))
    return scale, tuple(out)


def _record(tf: _Toml, items: list[dict[str, Any]],
            checkpoints: tuple[Checkpoint, ...]) -> tuple[RecordSplit, ...]:
    order = {cp.id: n for n, cp in enumerate(checkpoints)}
    out: list[RecordSplit] = []
    for i, r in enumerate(items, start=1):
        where = f"record[{i}]"
        cid = tf.text(r, "checkpoint", where)
        if cid not in order:
            raise tf.fail(f"{where}.checkpoint", f"no checkpoint with id {cid!r}",
                          f"use one of: {', '.join(order)}")
        t_s = tf.duration(r, "time", where)
        if out and (order[cid] <= order[out[-1].checkpoint] or t_s <= out[-1].t_s):
            raise tf.fail(where, f"{cid} at {r['time']} does not come after {out[-1].checkpoint}",
                          "list record splits in course order with increasing times")
        out.append(RecordSplit(checkpoint=cid, t_s=t_s))
    return tuple(out)


def _danger_zones(tf: _Toml, items: list[dict[str, Any]], scale: float,
                  length_m: float) -> tuple[DangerZone, ...]:
    out: list[DangerZone] = []
    for i, z in enumerate(items, start=1):
        where = f"danger_zones[{i}]"
        a, b = tf.number(z, "km_from", where), tf.number(z, "km_to", where)
        if not 0 <= a < b or b * scale * 1000.0 > length_m * 1.000001:
            raise tf.fail(where, f"km_from {a} to km_to {b} is not a stretch of the course",
                          "use 0 <= km_from < km_to <= the finish km")
        out.append(DangerZone(id=tf.text(z, "id", where), name=tf.text(z, "name", where),
                              km_from=a * scale, km_to=min(b * scale, length_m / 1000.0)))
    return tuple(out)


_FRACTIONS = ("low_battery", "cutoff_risk_p_miss")


def _thresholds(tf: _Toml, doc: dict[str, Any]) -> AlertThresholds:
    alerts = tf.table(doc.get("alerts", {}), "alerts", "alerts")
    values = {}
    for key in alerts:
        v = tf.number(alerts, key, "alerts")
        if v < 0 or (key in _FRACTIONS and v > 1):
            raise tf.fail(f"alerts.{key}", f"{v} is out of range",
                          "use a value >= 0 (low_battery and cutoff_risk_p_miss are "
                          "fractions from 0 to 1)")
        values[key] = v
    return AlertThresholds(**values)
