// The race-control page: alerts ranked by urgency with acknowledge, filters, danger zones
// with their weather alerts, the last runners on course, DNF. Every action is a websocket
// command; what the page shows comes back from the control stream, never assumed.

import { AlertSet, FILTERS, KIND_LABEL, zoneWeather } from "./alerts.js";
import { Board } from "./board.js";
import { normaliseCourse } from "./course.js";
import { esc, km, lastSeen, wallClock } from "./format.js";
import { Live, racesOf, websocketUrl } from "./live.js";
import { getJson, raceClock, setupRaceSelect, showError, showStatus } from "./page.js";

const TOKEN_KEY = "zegama-live:control-token";
const LOG_SHOWN = 40;
const LAST_SHOWN = 8;
const $ = (sel) => document.querySelector(sel);

const state = {
  config: null, race: null, timeZone: undefined, zones: [], live: null,
  board: new Board(), boardAt: 0, alerts: new AlertSet(), log: [], runners: {}, weather: {},
  filter: "all", controlReady: false, sending: new Map(), renderQueued: false,
};

function schedule() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => { state.renderQueued = false; render(); });
}

function onControl(frame) {
  const d = frame.data || {};
  if (frame.type === "snapshot") {
    state.alerts.reset(d.alerts);
    state.log = d.log || [];
    state.weather = d.weather || {};
    state.runners = d.runners || {};
  } else {
    state.alerts.apply(d.alerts);
    if (d.log) {
      const seen = new Set(state.log.map((e) => `${e.id}:${e.seq}`));
      state.log.push(...d.log.filter((e) => !seen.has(`${e.id}:${e.seq}`)));
      if (state.log.length > 500) state.log.splice(0, state.log.length - 500);
    }
    if (d.weather) Object.assign(state.weather, d.weather);
    if (d.runners) Object.assign(state.runners, d.runners);
  }
  state.controlReady = true;
  schedule();
}

function onStandings(frame) {
  if (!state.board.apply(frame)) { state.live.resync(frame.channel); return; }
  state.boardAt = Date.now();
  schedule();
}

/**
 * Send a command; ``key`` marks the control that sent it until its verdict. The ack or
 * error is matched to this command by its id, so with several in flight each control
 * learns its own outcome.
 */
async function send(command, key) {
  state.sending.set(key, "sending…");
  schedule();
  try {
    await state.live.command(state.race, command);
    state.sending.set(key, "sent, waiting for the processors…");
  } catch (err) {
    state.sending.delete(key);
    showError(`${describe(command)} not sent: ${err.message}`);
  }
  schedule();
}

/** A command in a few words, for a message naming which one failed. */
function describe(c) {
  const what = c.bib ?? c.zone ?? c.alert_id ?? c.device ?? "";
  const on = c.op === "weather" ? (c.on ? " on" : " off") : "";
  return `${c.op} ${what}${on}`.trim();
}

function runnerName(bib) {
  return state.runners[bib]?.name || state.board.rows.get(bib)?.name || "";
}

function secondsSince(ms, fallback) {
  const now = raceClock(state.board.generatedMs, state.boardAt);
  if (ms === null || ms === undefined || now === null) return fallback ?? null;
  return Math.max(0, (now - ms) / 1000);
}

function render() {
  renderAlerts();
  renderZones();
  renderLast();
  renderLog();
}

function renderAlerts() {
  const list = state.alerts.list(state.filter);
  const counts = state.alerts.counts();
  $("#alert-count").textContent = `(${state.alerts.open.size} open)`;
  for (const b of document.querySelectorAll("[data-filter]")) {
    const kinds = FILTERS[b.dataset.filter];
    const n = kinds ? kinds.reduce((s, k) => s + (counts[k] || 0), 0) : state.alerts.open.size;
    b.dataset.count = String(n);
    b.setAttribute("aria-pressed", String(b.dataset.filter === state.filter));
  }
  $("#alert-list").innerHTML = list.length
    ? list.map(alertHtml).join("")
    : `<li class="empty muted">${state.controlReady ? "No open alert." : "Loading…"}</li>`;
}

function alertHtml(a) {
  const key = `ack:${a.id}`;
  const pending = state.sending.get(key);
  const ackHtml = a.acknowledged
    ? `<span class="acked">✔ acknowledged${a.acknowledged_by ? ` by ${esc(a.acknowledged_by)}` : ""}</span>`
    : `<button type="button" class="ack" data-ack="${esc(a.id)}" ${pending ? "disabled" : ""}>${esc(pending || "Acknowledge")}</button>`;
  const sosKey = `sos:${a.bib}`;
  const sos = a.kind === "sos"
    ? `<button type="button" data-resolve="${esc(a.bib)}" ${state.sending.has(sosKey) ? "disabled" : ""}>${esc(state.sending.get(sosKey) || "Runner reached")}</button>`
    : "";
  return `<li class="alert sev-${esc(a.severity)} ${a.acknowledged ? "is-acked" : ""}" data-alert-id="${esc(a.id)}" data-kind="${esc(a.kind)}">
    <div class="alert-head"><span class="sev">${esc(KIND_LABEL[a.kind] || a.kind)}</span>
      <strong class="who">${esc(a.bib)} ${esc(runnerName(a.bib))}</strong>
      <span class="when">${esc(wallClock(a.raised_ms, state.timeZone))}</span></div>
    <div class="alert-body">${esc(a.message)} · ${esc(km(a.progress_m, 1))}${a.lat !== null && a.lat !== undefined ? ` · <span class="coords">${a.lat.toFixed(5)}, ${a.lon.toFixed(5)}</span>` : ""}</div>
    <div class="alert-actions">${ackHtml}${sos}<button type="button" data-dnf="${esc(a.bib)}">DNF…</button></div>
  </li>`;
}

/** Runners on course, by bib, with the freshest position known (control state or board). */
function positions() {
  const out = new Map();
  for (const r of state.board.rows.values()) {
    if (r.status === "running" && r.progress_m !== null) out.set(r.bib, { bib: r.bib, name: r.name, progress_m: r.progress_m, estimated: false });
  }
  for (const [bib, s] of Object.entries(state.runners)) {
    if (s.status !== "running") { out.delete(bib); continue; }
    if (s.progress_m !== null && s.progress_m !== undefined) out.set(bib, { bib, name: s.name, progress_m: s.progress_m, estimated: Boolean(s.estimated) });
  }
  return out;
}

function renderZones() {
  const weather = zoneWeather(state.weather, state.alerts);
  const pos = [...positions().values()];
  $("#zone-list").innerHTML = state.zones.length ? state.zones.map((z) => {
    const w = weather[z.id] || { on: false };
    const on = w.on;
    const who = w.by ? ` <span class="muted small">since ${esc(wallClock(w.t_ms, state.timeZone))}, ${esc(w.by)}</span>` : "";
    const key = `weather:${z.id}`;
    const inside = pos.filter((p) => p.progress_m >= z.km_from * 1000 && p.progress_m <= z.km_to * 1000)
      .sort((a, b) => b.progress_m - a.progress_m);
    const people = inside.map((p) => `<li data-bib="${esc(p.bib)}"><strong>${esc(p.bib)}</strong> ${esc(p.name)}
      <span class="muted">km ${(p.progress_m / 1000).toFixed(1)}${p.estimated ? " (estimated)" : ""}</span></li>`).join("");
    return `<article class="zone ${on ? "weather-on" : ""}" data-zone="${esc(z.id)}">
      <header><strong>${esc(z.name)}</strong> <span class="muted">km ${esc(z.km_from.toFixed(1))}–${esc(z.km_to.toFixed(1))}</span></header>
      <p class="weather-state">Weather alert: <strong>${on ? "ON" : "off"}</strong>${who}
        <button type="button" data-weather="${esc(z.id)}" data-on="${on ? "false" : "true"}" ${state.sending.has(key) ? "disabled" : ""}>
          ${esc(state.sending.get(key) || (on ? "Turn off" : "Turn on"))}</button></p>
      <p>${inside.length} runner${inside.length === 1 ? "" : "s"} in the zone${on && inside.length ? " during the weather alert" : ""}</p>
      ${inside.length ? `<ul class="zone-runners">${people}</ul>` : ""}
    </article>`;
  }).join("") : `<p class="muted">This race has no danger zone.</p>`;
}

function renderLast() {
  const last = state.board.lastOnCourse(LAST_SHOWN);
  const onCourse = state.board.ranked().filter((r) => r.status === "running").length;
  $("#on-course").textContent = state.board.ready ? `(${onCourse} on course)` : "";
  $("#last-runners tbody").innerHTML = last.map((r, i) => {
    const seen = secondsSince(r.last_fix_ms, r.last_seen_s);
    return `<tr data-bib="${esc(r.bib)}" class="${i === 0 ? "last" : ""}"><td class="num">${esc(r.bib)}</td>
      <td>${esc(r.name)}${i === 0 ? ' <span class="tag">last</span>' : ""}</td>
      <td class="num">${esc((r.progress_m / 1000).toFixed(1))}</td>
      <td class="small">${esc(lastSeen(seen))}</td>
      <td><button type="button" data-dnf="${esc(r.bib)}">DNF…</button></td></tr>`;
  }).join("") || `<tr><td colspan="5" class="muted">Nobody on course.</td></tr>`;
}

function renderLog() {
  const items = state.log.slice(-LOG_SHOWN).reverse();
  $("#command-log").innerHTML = items.map((e) => {
    const c = e.command || {};
    const what = c.bib ?? c.zone ?? c.alert_id ?? c.device ?? "";
    const extra = c.op === "weather" ? (c.on ? " on" : " off") : c.reason ? ` · ${c.reason}` : "";
    return `<li class="res-${esc(e.result)}" data-id="${esc(e.id)}"><span class="when">${esc(wallClock(e.t_ms ?? e.at_ms, state.timeZone))}</span>
      <strong>${esc(e.op || c.op)}</strong> ${esc(what)}${esc(extra)}
      <span class="muted">by ${esc(e.by)}</span> <span class="result">${esc(e.result)}</span>
      ${e.error ? `<span class="err">${esc(e.error)}</span>` : ""}</li>`;
  }).join("") || `<li class="muted">No command yet.</li>`;
  // A command's pending mark ends when its verdict is in the log.
  for (const e of items) {
    const c = e.command || {};
    if (c.op === "ack") state.sending.delete(`ack:${c.alert_id}`);
    if (c.op === "weather") state.sending.delete(`weather:${c.zone}`);
    if (c.op === "resolve_sos") state.sending.delete(`sos:${c.bib}`);
    if (c.op === "dnf" && state.sending.has(`dnf:${c.bib}`)) {
      state.sending.delete(`dnf:${c.bib}`);
      $("#dnf-who").textContent = `DNF of ${c.bib}: ${e.result}${e.error ? ` (${e.error})` : ""}`;
    }
  }
}

function bindUi() {
  document.addEventListener("click", (ev) => {
    const t = ev.target.closest("button");
    if (!t) return;
    if (t.dataset.filter) { state.filter = t.dataset.filter; schedule(); }
    if (t.dataset.ack) send({ op: "ack", alert_id: t.dataset.ack }, `ack:${t.dataset.ack}`);
    if (t.dataset.resolve) send({ op: "resolve_sos", bib: t.dataset.resolve }, `sos:${t.dataset.resolve}`);
    if (t.dataset.weather) {
      send({ op: "weather", zone: t.dataset.weather, on: t.dataset.on === "true" }, `weather:${t.dataset.weather}`);
    }
    if (t.dataset.dnf) {
      $("#dnf-bib").value = t.dataset.dnf;
      $("#dnf-reason").focus();
    }
  });
  $("#dnf-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const bib = $("#dnf-bib").value.trim();
    const reason = $("#dnf-reason").value.trim();
    if (!bib || !reason) return;
    $("#dnf-who").textContent = `DNF of ${bib}: sending…`;
    send({ op: "dnf", bib, reason }, `dnf:${bib}`).then(() => {
      if (state.sending.has(`dnf:${bib}`)) $("#dnf-who").textContent = `DNF of ${bib}: sent, waiting for the processors…`;
    });
    $("#dnf-reason").value = "";
  });
  $("#sign-in").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("#token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    start(token);
  });
  $("#sign-out").addEventListener("click", () => signOut());
  setInterval(schedule, 15_000);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.live?.close();
  state.live = null;
  $("#desk").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#token").value = "";
  showStatus("closed");
  $("#conn").textContent = "signed out";
  if (message) showError(message, { sticky: true });
}

function start(token) {
  $("#sign-in").hidden = true;
  $("#desk").hidden = false;
  $("#sign-out").hidden = false;
  $("#error").hidden = true;
  state.controlReady = false;
  state.live?.close();
  state.live = new Live(websocketUrl(state.config), {
    onStatus: showStatus,
    onError: (err) => {
      if (err.code === "unauthorized") signOut(`Sign-in refused: ${err.message}`);
      else showError(`${err.code}: ${err.message}`);
    },
  });
  state.live.subscribe(`control:${state.race}`, onControl, { token });
  state.live.subscribe(`standings:${state.race}`, onStandings);
  schedule();
}

async function main() {
  bindUi();
  state.config = await getJson("/api/v1/config");
  const races = racesOf(state.config);
  if (races.length === 0) throw new Error("the broadcaster serves no race: start it with a race folder");
  const race = setupRaceSelect(races);
  state.race = race.id;
  state.timeZone = race.timezone || undefined;
  $("#race-name").textContent = race.name || race.id;
  try {
    const doc = await getJson(`/api/v1/races/${encodeURIComponent(race.id)}/course`);
    state.zones = normaliseCourse(doc).dangerZones;
    state.timeZone = state.timeZone || doc.timezone || undefined;
  } catch (err) {
    showError(`The course could not be loaded (${err.message}): danger zones are not shown.`);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) start(token);
}

main().catch((err) => showError(err.message, { sticky: true }));
window.zegamaControl = { state };
