// The course drawn from its points: an elevation profile and a map (a plain lat/lon
// projection, no tiles), each with a layer of runner markers redrawn on every update.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

/**
 * The course from GET /api/v1/races/{race}/course, normalised: points as objects with
 * lat, lon, ele, dist_m (arrays [lat, lon, ele, dist_m] are accepted too), checkpoints
 * with km, danger zones with km_from/km_to. Throws Error naming what is missing.
 */
export function normaliseCourse(doc) {
  const raw = doc && (doc.points || (doc.course && doc.course.points));
  if (!Array.isArray(raw) || raw.length < 2) {
    throw new Error("the course document has no 'points' list of at least two points");
  }
  const points = raw.map((p) => (Array.isArray(p)
    ? { lat: p[0], lon: p[1], ele: p[2], dist_m: p[3] }
    : { lat: p.lat, lon: p.lon, ele: p.ele, dist_m: p.dist_m ?? p.d ?? p.m }));
  let prev = 0;
  for (const p of points) {  // an elevation gap is filled with the previous value
    if (p.ele === null || p.ele === undefined) p.ele = prev; else prev = p.ele;
  }
  const length = doc.length_m ?? points[points.length - 1].dist_m;
  const checkpoints = (doc.checkpoints || []).map((c) => ({
    ...c, km: c.km ?? (c.m !== undefined ? c.m / 1000 : 0),
  }));
  const dangerZones = (doc.danger_zones || []).map((z) => ({
    ...z, km_from: z.km_from ?? z.from_km, km_to: z.km_to ?? z.to_km,
  }));
  return { points, length, checkpoints, dangerZones, climb: doc.climb_m ?? null };
}

/** Index of the last point at or before ``d`` metres (binary search). */
function indexAt(points, d) {
  let lo = 0;
  let hi = points.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (points[mid].dist_m <= d) lo = mid; else hi = mid - 1;
  }
  return lo;
}

/** {lat, lon, ele} at ``d`` metres along the course, interpolated. */
export function pointAt(course, d) {
  const pts = course.points;
  const i = indexAt(pts, Math.max(0, Math.min(d, course.length)));
  const a = pts[i];
  const b = pts[Math.min(i + 1, pts.length - 1)];
  const span = b.dist_m - a.dist_m;
  const f = span > 0 ? Math.min(1, Math.max(0, (d - a.dist_m) / span)) : 0;
  return { lat: a.lat + f * (b.lat - a.lat), lon: a.lon + f * (b.lon - a.lon),
    ele: a.ele + f * (b.ele - a.ele) };
}

/** The elevation profile: distance along x, elevation up, checkpoints and zones marked. */
export class Profile {
  constructor(svg, course) {
    this.svg = svg;
    this.course = course;
    // A narrower drawing on a phone, so its labels stay readable once scaled down.
    const narrow = svg.clientWidth > 0 && svg.clientWidth < 600;
    this.w = narrow ? 560 : 1000;
    this.h = narrow ? 230 : 260;
    this.pad = { l: 44, r: 10, t: 14, b: 26 };
    const eles = course.points.map((p) => p.ele);
    this.lo = Math.floor(Math.min(...eles) / 50) * 50;
    this.hi = Math.ceil(Math.max(...eles) / 50) * 50 + 50;
    svg.setAttribute("viewBox", `0 0 ${this.w} ${this.h}`);
    svg.replaceChildren();
    this.drawCourse();
    this.runners = el("g", { class: "runners" }, svg);
  }

  x(d) { return this.pad.l + (d / this.course.length) * (this.w - this.pad.l - this.pad.r); }

  y(ele) {
    const f = (ele - this.lo) / Math.max(1, this.hi - this.lo);
    return this.h - this.pad.b - f * (this.h - this.pad.t - this.pad.b);
  }

  drawCourse() {
    const { svg, course } = this;
    const base = this.y(this.lo);
    for (const z of course.dangerZones) {
      const x0 = this.x(z.km_from * 1000);
      const zone = el("rect", { class: "zone", x: x0, y: this.pad.t,
        width: Math.max(2, this.x(z.km_to * 1000) - x0), height: base - this.pad.t }, svg);
      el("title", {}, zone).textContent = `${z.name} (danger zone)`;
    }
    const line = course.points.map((p) => `${this.x(p.dist_m).toFixed(1)},${this.y(p.ele).toFixed(1)}`);
    el("path", { class: "terrain", d: `M${this.x(0)},${base} L${line.join(" L")} L${this.x(course.length)},${base} Z` }, svg);
    el("polyline", { class: "ridge", points: line.join(" ") }, svg);
    const axis = el("g", { class: "axis" }, svg);
    const step = this.hi - this.lo > 1200 ? 500 : this.hi - this.lo > 500 ? 250 : 100;
    for (let e = Math.ceil((this.lo + 1) / step) * step; e <= this.hi; e += step) {
      el("line", { x1: this.pad.l, x2: this.w - this.pad.r, y1: this.y(e), y2: this.y(e) }, axis);
      el("text", { x: this.pad.l - 4, y: this.y(e) + 4, "text-anchor": "end" }, axis).textContent = `${e}`;
    }
    const stepKm = course.length > 30000 ? 5 : course.length > 8000 ? 2 : 1;
    // Ticks stop short of the "km" unit label at the right end.
    for (let k = 0; this.x(k * 1000) < this.w - this.pad.r - 28; k += stepKm) {
      el("text", { x: this.x(k * 1000), y: this.h - 8, "text-anchor": "middle" }, axis).textContent = `${k}`;
    }
    el("text", { x: this.w - this.pad.r, y: this.h - 8, "text-anchor": "end" }, axis).textContent = "km";
    const cps = el("g", { class: "checkpoints" }, svg);
    course.checkpoints.forEach((c, i) => {
      const d = c.km * 1000;
      const x = this.x(d);
      const g = el("g", { class: "checkpoint", "data-id": c.id ?? "" }, cps);
      el("line", { x1: x, x2: x, y1: this.pad.t, y2: base }, g);
      el("circle", { cx: x, cy: this.y(pointAt(course, d).ele), r: 4 }, g);
      el("title", {}, g).textContent = `${c.name} · km ${c.km}`;
      // Labels alternate up and down so neighbouring checkpoints don't collide.
      const atEnd = x > this.w - 110;
      const label = el("text", { x: atEnd ? x - 3 : x + 3, y: this.pad.t + 10 + (i % 2) * 12,
        "text-anchor": atEnd ? "end" : "start" }, g);
      label.textContent = shortName(c.name);
    });
  }

  /** Draw ``markers`` ([{bib, progress_m, followed, estimated, selected}]). */
  drawRunners(markers) {
    const g = this.runners;
    g.replaceChildren();
    for (const m of orderForDrawing(markers)) {
      const p = pointAt(this.course, m.progress_m);
      drawMarker(g, this.x(m.progress_m), this.y(p.ele), m);
    }
  }
}

/** The course map: an equirectangular projection scaled by cos(latitude), fitted to the box. */
export class CourseMap {
  constructor(svg, course) {
    this.svg = svg;
    this.course = course;
    const lats = course.points.map((p) => p.lat);
    const lons = course.points.map((p) => p.lon);
    const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
    this.k = Math.cos((lat0 * Math.PI) / 180);
    this.minX = Math.min(...lons) * this.k;
    this.maxY = Math.max(...lats);
    const spanX = Math.max(1e-6, Math.max(...lons) * this.k - this.minX);
    const spanY = Math.max(1e-6, this.maxY - Math.min(...lats));
    this.scale = 1000 / Math.max(spanX, spanY);
    this.pad = 20;
    this.w = spanX * this.scale + 2 * this.pad;
    this.h = spanY * this.scale + 2 * this.pad;
    svg.setAttribute("viewBox", `0 0 ${this.w.toFixed(0)} ${this.h.toFixed(0)}`);
    svg.replaceChildren();
    this.drawCourse();
    this.runners = el("g", { class: "runners" }, svg);
  }

  xy(lat, lon) {
    return [this.pad + (lon * this.k - this.minX) * this.scale, this.pad + (this.maxY - lat) * this.scale];
  }

  path(points) {
    return points.map((p) => this.xy(p.lat, p.lon).map((v) => v.toFixed(1)).join(",")).join(" ");
  }

  drawCourse() {
    const { svg, course } = this;
    el("polyline", { class: "route", points: this.path(course.points) }, svg);
    for (const z of course.dangerZones) {
      const pts = course.points.filter((p) => p.dist_m >= z.km_from * 1000 && p.dist_m <= z.km_to * 1000);
      const seg = el("polyline", { class: "zone", points: this.path(pts) }, svg);
      el("title", {}, seg).textContent = `${z.name} (danger zone)`;
    }
    const cps = el("g", { class: "checkpoints" }, svg);
    for (const c of course.checkpoints) {
      const p = pointAt(course, c.km * 1000);
      const [x, y] = this.xy(p.lat, p.lon);
      const g = el("g", { class: "checkpoint" }, cps);
      el("rect", { x: x - 6, y: y - 6, width: 12, height: 12, rx: 2 }, g);
      el("title", {}, g).textContent = `${c.name} · km ${c.km}`;
    }
  }

  /** Draw ``markers`` ([{bib, progress_m, lat?, lon?, followed, estimated}]). */
  drawRunners(markers) {
    const g = this.runners;
    g.replaceChildren();
    for (const m of orderForDrawing(markers)) {
      const p = m.lat !== undefined && m.lat !== null ? m : pointAt(this.course, m.progress_m);
      const [x, y] = this.xy(p.lat, p.lon);
      drawMarker(g, x, y, m, 1.8);
    }
  }
}

/** Followed and selected runners last, so they are drawn on top. */
function orderForDrawing(markers) {
  const weight = (m) => (m.selected ? 2 : m.followed ? 1 : 0);
  return markers.filter((m) => m.progress_m !== null && m.progress_m !== undefined)
    .sort((a, b) => weight(a) - weight(b));
}

function drawMarker(g, x, y, m, scale = 1) {
  const cls = ["runner", m.followed ? "followed" : "", m.selected ? "selected" : "",
    m.estimated ? "estimated" : "", m.leader ? "leader" : ""].filter(Boolean).join(" ");
  const big = m.followed || m.selected;
  const node = el("g", { class: cls, "data-bib": m.bib }, g);
  el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: (big ? 6 : 3.2) * scale }, node);
  el("title", {}, node).textContent = `${m.bib} ${m.name ?? ""}${m.estimated ? " (estimated position)" : ""}`;
  if (big) {
    el("text", { x: (x + 8 * scale).toFixed(1), y: (y - 6 * scale).toFixed(1),
      style: `font-size:${12 * scale}px` }, node).textContent = m.bib;
  }
}

function shortName(name) {
  const s = String(name || "").replace(/\s*\(.*\)\s*/, "");
  return s.length > 14 ? s.slice(0, 13) + "…" : s;
}
