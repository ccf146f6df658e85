"""The course: a polyline with cumulative distance, elevation and climb.

A ``Course`` is an immutable value built from latitude/longitude (and optional elevation)
arrays. Lengths are great-circle (haversine) distances between consecutive points;
geometry for map-matching uses a local equirectangular projection (x east, y north, in
metres around the course's mean latitude), precise to well under a metre over a race's
extent. ``course_from_gpx`` and ``course_to_gpx`` read and write GPX text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

import gpxpy
import gpxpy.gpx
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

EARTH_RADIUS_M = 6_371_008.8
# Points closer than this to the previous kept point are duplicates (devices and editors
# repeat points when paused); dropping them keeps ``dist`` strictly increasing.
DUPLICATE_M = 1e-3
# Elevation is smoothed over this scale (Gaussian sigma) before counting climb, so GPS or
# barometric jitter of a few metres per point does not add hundreds of metres of "climb".
CLIMB_SMOOTH_SIGMA_M = 40.0
_CLIMB_GRID_M = 10.0


def haversine_m(lat1: Array, lon1: Array, lat2: Array, lon2: Array) -> Array:
    """Great-circle distance in metres between arrays of points (degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0))))


def _frozen(a: npt.ArrayLike) -> Array:
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Course:
    """An immutable course polyline. Build it with ``Course.from_points``.

    ``dist[i]`` is the distance in metres from the start to point ``i`` (``dist[0] == 0``,
    strictly increasing). ``x``/``y`` are the projected points in metres and ``seg_len`` the
    length along the course of each segment (``dist[i+1] - dist[i]``); ``seg_dx``/``seg_dy``
    are each segment's projected vector and ``seg_inv_len2`` one over its squared projected
    length. The matcher uses them.
    """

    lat: Array
    lon: Array
    ele: Array
    dist: Array
    has_elevation: bool
    x: Array
    y: Array
    seg_len: Array
    seg_dx: Array
    seg_dy: Array
    seg_inv_len2: Array
    lat0: float
    lon0: float
    kx: float  # metres per degree of longitude at lat0
    ky: float  # metres per degree of latitude
    _climb_grid: Array  # distances of the smoothed-profile grid
    _ascent_cum: Array  # cumulative ascent on that grid
    _descent_cum: Array  # cumulative descent on that grid

    @classmethod
    def from_points(
        cls,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        ele: npt.ArrayLike | None = None,
    ) -> Course:
        """Build a course from point arrays (degrees; elevation in metres or None).

        Elevation entries that are NaN are filled by interpolation along the course; with
        no elevation at all, ``ele`` is zeros and ``has_elevation`` is False. Consecutive
        duplicate points are dropped.

        Raises:
            ValueError: fewer than two distinct points, mismatched array lengths,
                non-finite or out-of-range coordinates.
        """
        la = np.asarray(lat, dtype=np.float64).ravel()
        lo = np.asarray(lon, dtype=np.float64).ravel()
        el = (np.full(la.shape, np.nan) if ele is None
              else np.asarray(ele, dtype=np.float64).ravel())
        if not la.shape == lo.shape == el.shape:
            raise ValueError(f"lat, lon and ele differ in length: {la.size}, {lo.size}, {el.size}")
        if not (np.all(np.isfinite(la)) and np.all(np.isfinite(lo))):
            raise ValueError("a point has a non-finite latitude or longitude")
        if np.any(np.abs(la) > 90) or np.any(np.abs(lo) > 180):
            raise ValueError("a latitude is outside [-90, 90] or a longitude outside [-180, 180]")
        if la.size < 2:
            raise ValueError(f"a course needs at least 2 points, got {la.size}")
        keep = _keep_distinct(la, lo)
        la, lo, el = la[keep], lo[keep], el[keep]
        if la.size < 2:
            raise ValueError("a course needs at least 2 distinct points; all points coincide")
        step = haversine_m(la[:-1], lo[:-1], la[1:], lo[1:])
        dist = np.concatenate(([0.0], np.cumsum(step)))
        el, has_ele = _fill_elevation(dist, el)
        lat0, lon0 = float(np.mean(la)), float(np.mean(lo))
        x, y = project(la, lo, lat0, lon0)
        dx, dy = np.diff(x), np.diff(y)
        len2 = dx * dx + dy * dy
        grid, asc, desc = _climb_tables(dist, el)
        ky = math.pi / 180.0 * EARTH_RADIUS_M
        return cls(
            lat=_frozen(la), lon=_frozen(lo), ele=_frozen(el), dist=_frozen(dist),
            has_elevation=has_ele, x=_frozen(x), y=_frozen(y), seg_len=_frozen(np.diff(dist)),
            seg_dx=_frozen(dx), seg_dy=_frozen(dy),
            seg_inv_len2=_frozen(np.divide(1.0, len2, out=np.zeros_like(len2), where=len2 > 0)),
            lat0=lat0, lon0=lon0, kx=ky * math.cos(math.radians(lat0)), ky=ky,
            _climb_grid=_frozen(grid), _ascent_cum=_frozen(asc), _descent_cum=_frozen(desc),
        )

    @property
    def length_m(self) -> float:
        """Total length in metres."""
        return float(self.dist[-1])

    def __len__(self) -> int:
        return int(self.dist.size)

    def __repr__(self) -> str:
        return f"Course({self.dist.size} points, {self.length_m / 1000:.3f} km)"

    def position_at(self, progress_m: float) -> tuple[float, float]:
        """The (lat, lon) at ``progress_m`` along the course, clamped to [0, length]."""
        d = min(max(progress_m, 0.0), self.length_m)
        return float(np.interp(d, self.dist, self.lat)), float(np.interp(d, self.dist, self.lon))

    def elevation_at(self, progress_m: float) -> float:
        """The elevation in metres at ``progress_m`` (clamped), linearly interpolated."""
        return float(np.interp(progress_m, self.dist, self.ele))

    def climb_between(self, a_m: float, b_m: float) -> tuple[float, float]:
        """(ascent, descent) in metres from ``a_m`` to ``b_m`` along the course (a <= b).

        Counted on a profile smoothed over about 100 m, so elevation jitter does not
        inflate it; additive: climb(a, b) + climb(b, c) == climb(a, c).

        Raises:
            ValueError: ``b_m`` is before ``a_m``.
        """
        if b_m < a_m:
            raise ValueError(f"climb_between needs a <= b, got {a_m} > {b_m}")
        g = self._climb_grid
        asc = np.interp([a_m, b_m], g, self._ascent_cum)
        desc = np.interp([a_m, b_m], g, self._descent_cum)
        return float(asc[1] - asc[0]), float(desc[1] - desc[0])

    def total_climb(self) -> tuple[float, float]:
        """(ascent, descent) in metres over the whole course."""
        return float(self._ascent_cum[-1]), float(self._descent_cum[-1])

    def profile(self, step_m: float = 100.0) -> tuple[Array, Array]:
        """(dist, ele) resampled every ``step_m`` metres, the last sample at the finish.

        Raises:
            ValueError: ``step_m`` is not positive.
        """
        if not step_m > 0:
            raise ValueError(f"profile step must be positive, got {step_m}")
        d = np.arange(0.0, self.length_m, step_m)
        d = np.append(d, self.length_m)
        return d, np.interp(d, self.dist, self.ele)

    def project(self, lat: float, lon: float) -> tuple[float, float]:
        """(x, y) in metres of a point in this course's local projection."""
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky


def project(lat: Array, lon: Array, lat0: float, lon0: float) -> tuple[Array, Array]:
    """Equirectangular projection around (lat0, lon0): (x east, y north) in metres."""
    k = math.pi / 180.0 * EARTH_RADIUS_M
    return (lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k


def _keep_distinct(lat: Array, lon: Array) -> npt.NDArray[np.bool_]:
    """Mask of points at least DUPLICATE_M from the previous kept point."""
    step = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
    keep = np.ones(lat.size, dtype=bool)
    keep[1:] = step >= DUPLICATE_M
    if keep.all():
        return keep
    # Rare path (repeated points): re-check against the last *kept* point.
    last = 0
    for i in range(1, lat.size):
        d = haversine_m(lat[last:last + 1], lon[last:last + 1], lat[i:i + 1], lon[i:i + 1])
        keep[i] = bool(d[0] >= DUPLICATE_M)
        if keep[i]:
            last = i
    return keep


def _fill_elevation(dist: Array, ele: Array) -> tuple[Array, bool]:
    known = np.isfinite(ele)
    if not known.any():
        return np.zeros_like(dist), False
    if known.all():
        return ele, True
    return np.interp(dist, dist[known], ele[known]), True


def _climb_tables(dist: Array, ele: Array) -> tuple[Array, Array, Array]:
    """Cumulative ascent and descent on a smoothed, regularly resampled profile."""
    n = max(math.ceil(dist[-1] / _CLIMB_GRID_M), 1)
    grid = np.linspace(0.0, dist[-1], n + 1)
    prof = np.interp(grid, dist, ele)
    step = grid[1] - grid[0]
    half = math.ceil(3 * CLIMB_SMOOTH_SIGMA_M / step)
    if half > 0 and prof.size > 1:
        k = np.exp(-0.5 * (np.arange(-half, half + 1) * step / CLIMB_SMOOTH_SIGMA_M) ** 2)
        k /= k.sum()
        # Edge padding keeps the start and finish elevations instead of pulling them to 0.
        prof = np.convolve(np.pad(prof, half, mode="edge"), k, mode="valid")
    d = np.diff(prof)
    asc = np.concatenate(([0.0], np.cumsum(np.maximum(d, 0.0))))
    desc = np.concatenate(([0.0], np.cumsum(np.maximum(-d, 0.0))))
    return grid, asc, desc


def course_from_gpx(text: str, *, source: str = "course.gpx") -> Course:
    """Parse GPX 1.0/1.1 text into a Course.

    Track points are used (all tracks and segments concatenated in file order); a file
    without track points falls back to its route points. Waypoints are ignored.

    Raises:
        RaceFolderError: malformed XML, no track or route points, bad coordinates
            (``file`` is ``source``).
    """
    # Imported here: racefolder imports this module at load time.
    from race_engine.racefolder import RaceFolderError

    export = "export the course again from the planning tool as a GPX track"
    try:
        gpx = gpxpy.parse(text)
    except gpxpy.gpx.GPXXMLSyntaxException as e:
        m = re.search(r"line (\d+), column (\d+)", str(e))
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "XML"
        raise RaceFolderError(source, where, f"not well-formed XML ({e})", export) from e
    except gpxpy.gpx.GPXException as e:
        raise RaceFolderError(source, "GPX", f"not a valid GPX document ({e})", export) from e
    points: list[gpxpy.gpx.GPXTrackPoint | gpxpy.gpx.GPXRoutePoint]
    points = [p for t in gpx.tracks for s in t.segments for p in s.points]
    kind = "track point"
    if not points:
        points = [p for r in gpx.routes for p in r.points]
        kind = "route point"
    if not points:
        raise RaceFolderError(
            source, "<trk>/<rte>", "the file has no track or route points",
            "export the course (not only waypoints) as a GPX track or route",
        )
    for i, p in enumerate(points, start=1):
        if not (-90 <= p.latitude <= 90 and -180 <= p.longitude <= 180):
            raise RaceFolderError(
                source, f"{kind} {i}", f"lat={p.latitude} lon={p.longitude} is not a position "
                "on Earth", "check that the file stores degrees with lat and lon not swapped",
            )
    lat = np.fromiter((p.latitude for p in points), np.float64, len(points))
    lon = np.fromiter((p.longitude for p in points), np.float64, len(points))
    ele = np.fromiter((np.nan if p.elevation is None else p.elevation for p in points),
                      np.float64, len(points))
    try:
        return Course.from_points(lat, lon, ele)
    except ValueError as e:
        raise RaceFolderError(source, f"{kind}s", str(e), export) from e


def course_to_gpx(course: Course, name: str) -> str:
    """Write the course as a GPX 1.1 document with one track and one segment.

    Coordinates keep 9 decimals (0.1 mm) and elevations 2, so reading it back gives the
    same course; elevations are omitted when the course has none.
    """
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="zegama-live" xmlns="http://www.topografix.com/GPX/1/1">',
        f"  <metadata><name>{escape(name)}</name></metadata>",
        f"  <trk><name>{escape(name)}</name><trkseg>",
    ]
    for i in range(course.lat.size):
        ele = f"<ele>{course.ele[i]:.2f}</ele>" if course.has_elevation else ""
        pos = f'lat="{course.lat[i]:.9f}" lon="{course.lon[i]:.9f}"'
        lines.append(f"    <trkpt {pos}>{ele}</trkpt>")
    lines += ["  </trkseg></trk>", "</gpx>", ""]
    return "\n".join(lines)
