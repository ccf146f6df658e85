"""Build the demo race folders: races/zegama-2026/ and races/example-loop/.

    .venv/bin/python tools/build_demo_race.py [--out races]

No official GPX of the Zegama-Aizkorri course is public, so the demo course is a
stand-in built from public facts (docs: /races/zegama-2026/README.md): the listed points
in order, each leg as long as the km table says, altitudes at the listed km, about
2,736 m of climb, and the same street out of and back into Zegama. Everything is seeded,
so running the script again writes the same bytes.

races/example-loop/ is a different kind of folder on purpose: a Garmin-style recorded
GPX (several <trkseg>, namespaced extensions, timestamps, paused duplicates), a nominal
finish km that differs from the measured length, and an Excel-style entrants.csv.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from race_engine.course import EARTH_RADIUS_M, Course, course_to_gpx, haversine_m
from race_engine.racefolder import load_race

Array = npt.NDArray[np.float64]
SEED = 20260517
SPACING_M = 14.0
STREET_M = 500.0
CLIMB_TARGET_M = 2736.0


@dataclass
class Anchor:
    id: str
    name: str
    km: float
    alt: float
    lat: float
    lon: float
    mobility: float = 1.0  # 0 = fixed; the facts' coordinates are good to about 1 km


# The facts' table (zegama-facts.md). "p" is the end of the shared street.
ANCHORS = [
    Anchor("start", "Zegama (start)", 0.0, 296, 42.975, -2.290, 0.0),
    Anchor("street", "end of the shared street", 0.5, 302, 42.9706, -2.2888, 0.0),
    Anchor("otzaurte", "Otzaurte", 7.0, 671, 42.944, -2.266),
    Anchor("ultzama", "Ultzama", 8.7, 822, 42.935, -2.262),
    Anchor("aratz", "Aratz", 16.1, 1443, 42.906, -2.274),
    Anchor("san-adrian", "San Adrián", 19.0, 1040, 42.918, -2.322),
    Anchor("sancti-spiritu", "Sancti Spiritu", 19.6, 969, 42.921, -2.313),
    Anchor("aizkorri", "Aizkorri", 22.1, 1528, 42.9514, -2.3258, 0.15),
    Anchor("aketegi", "Aketegi", 22.8, 1549, 42.953, -2.335),
    Anchor("aitxuri", "Aitxuri", 23.2, 1551, 42.955, -2.340),
    Anchor("urbia", "Urbia", 27.0, 1134, 42.963, -2.368),
    Anchor("andraitz", "Andraitz", 31.0, 1432, 42.965, -2.352),
    Anchor("moano", "Moano", 34.0, 900, 42.970, -2.325),
    Anchor("street-back", "end of the shared street", 42.195 - 0.5, 302, 42.9706, -2.2888, 0.0),
    Anchor("finish", "Zegama (finish)", 42.195, 296, 42.975, -2.290, 0.0),
]
# A leg's straight line may be at most this share of its length (trails wind).
MAX_STRAIGHT = 0.85


def to_xy(lat: Array, lon: Array, lat0: float, lon0: float) -> tuple[Array, Array]:
    k = math.pi / 180 * EARTH_RADIUS_M
    return (lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k


def to_latlon(x: Array, y: Array, lat0: float, lon0: float) -> tuple[Array, Array]:
    k = math.pi / 180 * EARTH_RADIUS_M
    return lat0 + y / k, lon0 + x / (k * math.cos(math.radians(lat0)))


def length_m(lat: Array, lon: Array) -> float:
    return float(haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:]).sum())


def relax_anchors(xy: Array, km: Array, mobility: Array) -> Array:
    """Move anchors (weighted) until every leg's straight line fits its length."""
    xy = xy.copy()
    for _ in range(500):
        moved = False
        for i in range(len(xy) - 1):
            d = xy[i + 1] - xy[i]
            dn = float(np.hypot(*d))
            limit = MAX_STRAIGHT * (km[i + 1] - km[i]) * 1000
            w = mobility[i] + mobility[i + 1]
            if dn > limit + 0.5 and w > 0:
                shift = (dn - limit) * d / dn
                xy[i] += shift * mobility[i] / w
                xy[i + 1] -= shift * mobility[i + 1] / w
                moved = True
        if not moved:
            break
    return xy


def solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Bisection for an increasing f: the x in [lo, hi] with f(x) == target."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wiggly_leg(a: Array, b: Array, target_m: float, rng: np.random.Generator,
               origin: tuple[float, float]) -> tuple[Array, Array]:
    """Points (lat, lon) from a to b, a wandering path exactly target_m long.

    The path is a graph over the straight line (a sum of sines that vanish at both ends),
    so it never crosses itself; its amplitude is solved so the length matches.
    """
    d = b - a
    straight = float(np.hypot(*d))
    ux, nx = d / straight, np.array([-d[1], d[0]]) / straight
    kmax = max(3, int(straight / 180))
    ks = np.arange(1, kmax + 1)
    coef = rng.normal(size=kmax) / ks**0.6
    s = np.linspace(0, 1, max(400, int(target_m / 2)))
    # The extra sin(pi s) factor makes the path leave and reach each anchor along the
    # straight line, so consecutive legs never fold back on each other at an anchor.
    shape = (np.sin(np.pi * np.outer(s, ks)) @ coef) * np.sin(np.pi * s)
    shape /= np.abs(shape).max()
    n_out = max(2, round(target_m / SPACING_M) + 1)

    def build(amp: float) -> tuple[Array, Array]:
        pts = a + np.outer(s * straight, ux) + np.outer(amp * shape, nx)
        seg = np.hypot(*np.diff(pts, axis=0).T)
        arc = np.concatenate(([0], np.cumsum(seg)))
        at = np.linspace(0, arc[-1], n_out)
        x, y = np.interp(at, arc, pts[:, 0]), np.interp(at, arc, pts[:, 1])
        return to_latlon(x, y, *origin)

    amp = solve(lambda A: length_m(*build(A)), target_m, 0.0, 3 * target_m)
    return build(amp)


def zegama_geometry(rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """(lat, lon, anchor index per point) of the whole course."""
    origin = (ANCHORS[0].lat, ANCHORS[0].lon)
    lat = np.array([a.lat for a in ANCHORS])
    lon = np.array([a.lon for a in ANCHORS])
    km = np.array([a.km for a in ANCHORS])
    xy = np.column_stack(to_xy(lat, lon, *origin))
    xy = relax_anchors(xy, km, np.array([a.mobility for a in ANCHORS]))
    street_lat, street_lon = wiggly_leg(xy[0], xy[1], STREET_M, rng, origin)
    lats, lons = [street_lat], [street_lon]
    for i in range(1, len(ANCHORS) - 2):
        la, lo = wiggly_leg(xy[i], xy[i + 1], (km[i + 1] - km[i]) * 1000, rng, origin)
        lats.append(la[1:])
        lons.append(lo[1:])
    lats.append(street_lat[::-1][1:])  # back along the same street, point for point
    lons.append(street_lon[::-1][1:])
    return np.concatenate(lats), np.concatenate(lons), km


def zegama_elevation(dist: Array, km: Array, rng: np.random.Generator, bump: float) -> Array:
    """Elevation at each dist: anchors' altitudes, eased between, plus rolling bumps."""
    alt = np.array([a.alt for a in ANCHORS])
    ele = np.empty_like(dist)
    edges = km * 1000
    for i in range(len(ANCHORS) - 1):
        m = (dist >= edges[i]) & (dist <= edges[i + 1])
        leg = edges[i + 1] - edges[i]
        u = (dist[m] - edges[i]) / leg
        ease = u - np.sin(2 * np.pi * u) / (2 * np.pi) * 0.6
        e = alt[i] + (alt[i + 1] - alt[i]) * ease
        if leg >= 2500 and 0 < i < len(ANCHORS) - 2:
            n = int(leg / 700)
            js = np.arange(2, 2 + n)
            c = rng.uniform(0.5, 1.0, n) * rng.choice([-1, 1], n)
            e += bump * np.sin(np.pi * u) * (np.sin(np.pi * np.outer(u, js)) @ c) / np.sqrt(n)
        ele[m] = e
    ele += rng.normal(0, 0.8, ele.size)  # barometric jitter, as a recorded track has
    ele = np.clip(ele, 290.0, 1551.0)  # Aitxuri stays the high point
    ele[(dist <= STREET_M) | (dist >= edges[-1] - STREET_M)] = np.interp(
        np.minimum(dist, edges[-1] - dist), [0, STREET_M], [alt[0], alt[1]]
    )[(dist <= STREET_M) | (dist >= edges[-1] - STREET_M)]
    return ele


def build_zegama_course() -> Course:
    rng = np.random.default_rng(SEED)
    lat, lon, km = zegama_geometry(rng)
    flat = Course.from_points(lat, lon)
    state = rng.bit_generator.state

    def with_bump(b: float) -> Course:
        rng.bit_generator.state = state  # the same bumps, only scaled
        return Course.from_points(lat, lon, zegama_elevation(flat.dist, km, rng, b))

    bump = solve(lambda b: with_bump(b).total_climb()[0], CLIMB_TARGET_M, 0.0, 400.0)
    return with_bump(bump)


# ---------------------------------------------------------------- zegama race.toml

# (id, name, km, cutoff, comment). Two controls are invented to make the facts' 13.
CHECKPOINTS = [
    ("start", "Zegama (start)", 0.0, None, ""),
    ("otzaurte", "Otzaurte", 7.0, None, ""),
    ("ultzama", "Ultzama", 8.7, None, ""),
    ("altzania", "Altzania control", 12.4, None, "invented control, approximate position"),
    ("aratz", "Aratz", 16.1, None, ""),
    ("san-adrian", "San Adrián", 19.0, None, ""),
    ("sancti-spiritu", "Sancti Spiritu", 19.6, "3:15:00", ""),
    ("aizkorri", "Aizkorri", 22.1, None, ""),
    ("aketegi", "Aketegi", 22.8, None, ""),
    ("aitxuri", "Aitxuri", 23.2, None, ""),
    ("urbia", "Urbia", 27.0, None, ""),
    ("andraitz", "Andraitz", 31.0, None, ""),
    ("moano", "Moano", 34.0, None, ""),
    ("errekaundi", "Errekaundi control", 38.5, None, "invented control, approximate position"),
    ("finish", "Zegama (finish)", 42.195, None, ""),
]


def zegama_toml() -> str:
    out = [
        "# Zegama-Aizkorri 2026: demo race folder. The course is an approximate stand-in",
        "# built from public facts (see README.md); replace course.gpx with the official one.",
        "",
        "[race]",
        'name = "Zegama-Aizkorri Mendi Maratoia 2026"',
        'start = "2026-05-17T09:00:00+02:00"',
        'timezone = "Europe/Madrid"',
        'time_limit = "8:00:00"',
        "approximate = true",
        "",
        "# The first checkpoint is the start (km 0), the last the finish (time limit = cutoff).",
    ]
    for cid, name, km, cutoff, comment in CHECKPOINTS:
        out += ["", "[[checkpoints]]"] + ([f"# {comment}"] if comment else [])
        out += [f'id = "{cid}"', f'name = "{name}"', f"km = {km}"]
        out += [f'cutoff = "{cutoff}"'] if cutoff else []
    out += ["", "# Course record: Kilian Jornet, 2022."]
    for cid, t in (("sancti-spiritu", "1:43:12"), ("aizkorri", "2:05:13"), ("finish", "3:36:40")):
        out += ["", "[[record]]", f'checkpoint = "{cid}"', f'time = "{t}"']
    out += [
        "", "[[danger_zones]]", 'id = "aizkorri-ridge"', 'name = "Aizkorri ridge"',
        "km_from = 22.0", "km_to = 24.0",
        "", "[alerts]", "no_fix_min = 10.0", "stopped_min = 8.0", "off_course_m = 150.0",
        "off_course_s = 120.0", "low_battery = 0.15", "cutoff_risk_margin_min = 0.0", "",
    ]
    return "\n".join(out)


ZEGAMA_README = """\
# Zegama-Aizkorri 2026 (demo race folder)

**The course in `course.gpx` is an approximate stand-in, not the official course.** No
official GPX is public, so `tools/build_demo_race.py` builds one from public facts: the
listed points in order (Otzaurte, Ultzama, Aratz, San Adrián, Sancti Spiritu, Aizkorri,
Aketegi, Aitxuri, Urbia, Andraitz, Moano), each leg as long as the published km, the
published altitudes at those km, about 2,736 m of climb, and the same street out of and
back into Zegama (start = finish). Anchor positions were moved by up to about 1.5 km so
every leg fits its published length; the path between them is invented.

The Altzania (km 12.4) and Errekaundi (km 38.5) controls are invented to reach the 13
obligatory checkpoints; their positions are approximate. `entrants.csv` holds 500
invented people; `emergency_phone` is a private column and the numbers are fictional.

An organiser replaces `course.gpx` with the official one (and corrects the km in
`race.toml`); nothing in the code depends on this course's shape. The format of this
folder is described in `docs/race-folder.md`. Rebuild with:

    .venv/bin/python tools/build_demo_race.py
"""


# ---------------------------------------------------------------- entrants

NAMES = {
    "ES-EU": (["Aitor", "Iker", "Unai", "Jon", "Mikel", "Eneko", "Ander", "Gorka", "Asier",
               "Ibai", "Xabier", "Imanol", "Oier", "Julen", "Peio"],
              ["Oihana", "Maider", "Ane", "Garazi", "Nerea", "Leire", "Amaia", "Itziar",
               "Haizea", "Irati", "Uxue", "Ainhoa", "Miren", "Edurne", "Maialen"],
              ["Etxeberria", "Agirre", "Goikoetxea", "Arrieta", "Zubizarreta", "Urrutia",
               "Elizondo", "Larrañaga", "Iturralde", "Mendizabal", "Otxoa", "Aranburu",
               "Azpeitia", "Galdos", "Irigoien", "Lasa", "Olano", "Zabala", "Arregi", "Ugarte"]),
    "ES": (["Carlos", "Javier", "Pablo", "Daniel", "Sergio", "Alberto", "Raúl", "Diego"],
           ["Laura", "María", "Lucía", "Marta", "Elena", "Cristina", "Paula", "Sara"],
           ["García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz",
            "Díaz", "Moreno", "Álvarez", "Romero"]),
    "FR": (["Thomas", "Julien", "Nicolas", "Maxime", "Antoine"],
           ["Camille", "Léa", "Manon", "Chloé", "Juliette"],
           ["Dubois", "Martin", "Lefèvre", "Moreau", "Laurent", "Garnier", "Fournier"]),
    "IT": (["Marco", "Luca", "Matteo", "Davide"], ["Giulia", "Chiara", "Francesca", "Sara"],
           ["Rossi", "Bianchi", "Ferrari", "Colombo", "Ricci"]),
    "GB": (["James", "Oliver", "Harry", "Tom"], ["Emily", "Sophie", "Hannah", "Kate"],
           ["Smith", "Taylor", "Brown", "Walker", "Hughes"]),
    "NO": (["Erik", "Magnus", "Jonas"], ["Ingrid", "Sigrid", "Kari"],
           ["Hansen", "Johansen", "Larsen", "Berg"]),
    "US": (["Ryan", "Tyler", "Kyle"], ["Megan", "Ashley", "Lauren"],
           ["Miller", "Anderson", "Clark", "Young"]),
    "CH": (["Lukas", "Reto"], ["Anna", "Nina"], ["Müller", "Meier", "Keller"]),
    "PT": (["João", "Tiago"], ["Inês", "Beatriz"], ["Silva", "Santos", "Costa"]),
}
COUNTRY_WEIGHT = {"ES-EU": 0.45, "ES": 0.2, "FR": 0.12, "IT": 0.06, "GB": 0.05, "NO": 0.03,
                  "US": 0.03, "CH": 0.03, "PT": 0.03}
DIAL = {"ES": "+34", "FR": "+33", "IT": "+39", "GB": "+44", "NO": "+47", "US": "+1",
        "CH": "+41", "PT": "+351"}


def person(rng: np.random.Generator) -> tuple[str, str, str, str]:
    """(name, sex, category, country) of an invented entrant."""
    pools = list(COUNTRY_WEIGHT)
    pool = pools[rng.choice(len(pools), p=list(COUNTRY_WEIGHT.values()))]
    male, female, surnames = NAMES[pool]
    sex = "F" if rng.random() < 0.3 else "M"
    first = str(rng.choice(female if sex == "F" else male))
    last = " ".join(str(x) for x in rng.choice(surnames, 2 if pool.startswith("ES") else 1,
                                               replace=False))
    age = int(rng.integers(20, 68))
    category = "SEN" if age < 40 else f"V{min(age // 10 * 10, 60)}"  # veteran classes
    return f"{first} {last}", sex, category, pool[:2]


def zegama_entrants_csv(n: int = 500) -> str:
    rng = np.random.default_rng(SEED + 1)
    rows = ["bib,name,sex,category,country,device,emergency_phone"]
    for bib in range(1, n + 1):
        name, sex, category, country = person(rng)
        # 555 numbers are fictional; never a real person's phone.
        phone = f"{DIAL[country]} 555 {int(rng.integers(0, 10_000)):04d}"
        rows.append(f"{bib},{name},{sex},{category},{country},ZGM-{bib:04d},{phone}")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------- example-loop

LOOP_ORIGIN = (54.6008, -3.1347)  # a fell loop from Keswick, Lake District


def example_loop_points(rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """A closed loop (lat, lon, ele) recorded every ~5 m, about 14.2 km long."""
    th = np.linspace(0, 2 * np.pi, 2900)
    r = 1860 * (1 + 0.25 * np.sin(2 * th + 0.4) + 0.08 * np.sin(7 * th) + 0.03 * np.sin(23 * th))
    x, y = r * np.cos(th) - r[0], r * np.sin(th)
    lat, lon = to_latlon(x, y, *LOOP_ORIGIN)
    u = th / (2 * np.pi)
    ele = 80 + 770 * np.sin(np.pi * u) ** 3 + 25 * np.sin(9 * np.pi * u) ** 2
    ele = ele + rng.normal(0, 0.4, u.size)  # barometric noise
    return lat, lon, np.round(ele, 1)


def example_loop_gpx() -> str:
    """A Garmin-style recorded activity: 3 segments (two pauses), extensions, times."""
    rng = np.random.default_rng(SEED + 2)
    lat, lon, ele = example_loop_points(rng)
    t0 = np.datetime64("2025-09-14T08:03:12")
    step_s = np.cumsum(rng.integers(1, 3, lat.size))
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx creator="Fell recorder 2.1" version="1.1" '
        'xmlns="http://www.topografix.com/GPX/1/1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1" '
        'xsi:schemaLocation="http://www.topografix.com/GPX/1/1 '
        'http://www.topografix.com/GPX/1/1/gpx.xsd">',
        " <metadata>", '  <link href="https://example.org/activities/8812"><text>Fell loop</text>'
        "</link>", f"  <time>{t0}Z</time>", " </metadata>",
        " <trk>", "  <name>Keswick fell loop recce</name>", "  <type>trail_running</type>",
    ]
    body = []
    pauses = {950, 2100}  # the watch was paused: a new segment, the last point repeated
    body.append("  <trkseg>")
    for i in range(lat.size):
        if i in pauses:
            body += ["  </trkseg>", "  <trkseg>"]
            body += _garmin_point(lat[i - 1], lon[i - 1], ele[i - 1], t0 + step_s[i] - 30, 101)
        hr = int(120 + 40 * math.sin(i / 300) + rng.integers(0, 6))
        body += _garmin_point(lat[i], lon[i], ele[i], t0 + step_s[i], hr)
    body += ["  </trkseg>", " </trk>", "</gpx>", ""]
    return "\n".join(head + body)


def _garmin_point(lat: float, lon: float, ele: float, t: np.datetime64, hr: int) -> list[str]:
    return [
        f'   <trkpt lat="{lat:.7f}" lon="{lon:.7f}">',
        f"    <ele>{ele:.1f}</ele>", f"    <time>{t}Z</time>",
        "    <extensions>", "     <gpxtpx:TrackPointExtension>",
        f"      <gpxtpx:hr>{hr}</gpxtpx:hr>", "      <gpxtpx:cad>84</gpxtpx:cad>",
        "     </gpxtpx:TrackPointExtension>", "    </extensions>", "   </trkpt>",
    ]


EXAMPLE_TOML = """\
# A small fell race whose course.gpx was recorded on a watch during a recce. The
# organiser's published distance is 14 km; the GPX measures a little more, and the
# loader scales every km below to the measured length.
[race]
name = "Keswick Fell Loop (example)"
start = "2026-06-06T10:00:00+01:00"
timezone = "Europe/London"
time_limit = "4:00:00"

[[checkpoints]]
id = "moot-hall"
name = "Moot Hall (start)"
km = 0

[[checkpoints]]
id = "woodland-gate"
name = "Woodland gate"
km = 3.1

[[checkpoints]]
id = "summit-cairn"
name = "Summit cairn"
km = 6.4
cutoff = "2:00:00"

[[checkpoints]]
id = "beck-crossing"
name = "Beck crossing"
km = 10.2

[[checkpoints]]
id = "finish"
name = "Moot Hall (finish)"
km = 14

[[record]]
checkpoint = "finish"
time = "1:12:30"

[[danger_zones]]
id = "summit-plateau"
name = "Summit plateau"
km_from = 5.5
km_to = 7.5

[alerts]
off_course_m = 100
"""

EXAMPLE_README = """\
# Keswick Fell Loop (example race folder)

A second, deliberately different race folder, used by the tests to show that any
organiser's files load: a GPX recorded on a watch (three track segments after two pauses,
repeated points, heart-rate extensions in their own XML namespace), a published finish
distance (14 km) that differs from the GPX's measured length, only some alert thresholds
set, and an entrants.csv saved by a spreadsheet (byte-order mark, CRLF line ends, its own
column order, extra private columns, some runners without a tracker). The course and
people are invented. Rebuilt by `tools/build_demo_race.py`.
"""


def example_entrants_csv(n: int = 40) -> str:
    rng = np.random.default_rng(SEED + 3)
    rows = ["name,bib,sex,category,club,country,device,emergency_phone"]
    for k in range(n):
        name, sex, category, country = person(rng)
        device = "" if k % 9 == 4 else f"35{int(rng.integers(10**12, 10**13))}"  # IMEI-like
        club = str(rng.choice(["Keswick AC", "Borrowdale Fell Runners", "", "Ambleside AC"]))
        rows.append(f'"{name}",{101 + k},{sex},{category},{club},{country},{device},'
                    f"{DIAL[country]} 555 {int(rng.integers(0, 10_000)):04d}")
    return "\ufeff" + "\r\n".join(rows) + "\r\n"


# ---------------------------------------------------------------- main

def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("races"), help="races directory")
    args = parser.parse_args(argv)
    zegama = args.out / "zegama-2026"
    course = build_zegama_course()
    write(zegama / "course.gpx", course_to_gpx(course, "Zegama-Aizkorri 2026 (approximate)"))
    write(zegama / "race.toml", zegama_toml())
    write(zegama / "entrants.csv", zegama_entrants_csv())
    write(zegama / "README.md", ZEGAMA_README)
    loop = args.out / "example-loop"
    write(loop / "course.gpx", example_loop_gpx())
    write(loop / "race.toml", EXAMPLE_TOML)
    write(loop / "entrants.csv", example_entrants_csv())
    write(loop / "README.md", EXAMPLE_README)
    for folder in (zegama, loop):
        race = load_race(folder)  # what we wrote must load
        up, _ = race.course.total_climb()
        print(f"{folder}: {race.course.length_m:.1f} m, {len(race.course)} points, "
              f"climb {up:.0f} m, {len(race.checkpoints)} checkpoints, "
              f"{len(race.entrants)} entrants")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
