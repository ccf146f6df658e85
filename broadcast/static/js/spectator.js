// The spectator page: course profile and map with the runners, the leaderboard, search,
// followed runners and the runner card, all live over the broadcaster's websocket.

import { Board } from "./board.js";
import { cardHtml } from "./card.js";
import { CourseMap, normaliseCourse, Profile } from "./course.js";
import { clock, esc, lastSeen, leaderGap, STALE_S, STATUS_LABEL, wallClock } from "./format.js";
import { Live, racesOf, websocketUrl } from "./live.js";
import { getJson, raceClock, showError, showStatus, setupRaceSelect } from "./page.js";

// A connection holds at most 64 subscriptions (docs/websocket.md): the standings, the
// opened runner and the followed ones.
const MAX_FOLLOWED = 60;
// Rows the leaderboard shows at first, and adds per "show more".
const PAGE_ROWS = 100;
const $ = (sel) => document.querySelector(sel);

const state = {
  race: null, timeZone: undefined, course: null, profile: null, map: null,
  board: new Board(), boardAt: 0, cards: new Map(), followed: new Set(),
  selected: null, query: "", view: "all", live: null, renderQueued: false,
  limit: PAGE_ROWS, rowCache: new Map(),
};

function followedKey() { return `zegama-live:followed:${state.race}`; }

function loadFollowed() {
  try {
    const saved = JSON.parse(localStorage.getItem(followedKey()) || "[]");
    state.followed = new Set(Array.isArray(saved) ? saved.map(String).slice(0, MAX_FOLLOWED) : []);
  } catch {
    state.followed = new Set();
  }
}

function saveFollowed() {
  localStorage.setItem(followedKey(), JSON.stringify([...state.followed]));
}

function runnerChannel(bib) { return `runner:${state.race}:${bib}`; }

function wanted(bib) { return state.followed.has(bib) || state.selected === bib; }

function watchRunner(bib) {
  if (!state.live || state.live.subs.has(runnerChannel(bib))) return;
  state.live.subscribe(runnerChannel(bib), (frame) => {
    state.cards.set(bib, { ...frame.data, receivedAt: Date.now() });
    schedule();
  });
}

function unwatchRunner(bib) {
  if (wanted(bib)) return;
  state.live?.unsubscribe(runnerChannel(bib));
  state.cards.delete(bib);
}

function toggleFollow(bib) {
  if (state.followed.has(bib)) {
    state.followed.delete(bib);
    unwatchRunner(bib);
  } else {
    if (state.followed.size >= MAX_FOLLOWED) {
      showError(`You can follow up to ${MAX_FOLLOWED} runners; unfollow one first.`);
      return;
    }
    state.followed.add(bib);
    watchRunner(bib);
  }
  saveFollowed();
  schedule();
}

function select(bib) {
  const before = state.selected;
  state.selected = bib;
  if (before && before !== bib) unwatchRunner(before);
  if (bib) watchRunner(bib);
  history.replaceState(null, "", bib ? `#runner=${encodeURIComponent(bib)}` : location.pathname + location.search);
  schedule();
}

function onStandings(frame) {
  if (!state.board.apply(frame)) {
    state.live.resync(frame.channel);
    return;
  }
  state.boardAt = Date.now();
  schedule();
}

function schedule() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => { state.renderQueued = false; render(); });
}

/** Seconds since a fix at ``ms``, by the race clock of the latest board. */
function secondsSince(ms, fallback) {
  const now = raceClock(state.board.generatedMs, state.boardAt);
  if (ms === null || ms === undefined || now === null) return fallback ?? null;
  return Math.max(0, (now - ms) / 1000);
}

function normalise(text) {
  return String(text).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

function matches(row, q) {
  if (!q) return true;
  return row.bib.startsWith(q) || normalise(row.name).includes(normalise(q));
}

function render() {
  renderBoard();
  renderCourse();
  renderCard();
  const b = state.board;
  $("#followed-count").textContent = state.followed.size ? `(${state.followed.size})` : "";
  $("#updated").textContent = b.generatedMs
    ? `Standings at ${wallClock(b.generatedMs, state.timeZone, { seconds: true })}` : "";
}

function renderBoard() {
  const b = state.board;
  const status = $("#board-status");
  if (!b.ready || b.rows.size === 0) {
    status.hidden = false;
    status.textContent = b.ready ? "No standings yet: the race has not started." : "Waiting for the standings…";
  }
  const q = state.query.trim();
  const rows = b.ranked().filter((r) => (state.view === "all" || state.followed.has(r.bib)) && matches(r, q));
  if (b.ready && b.rows.size) {
    status.hidden = rows.length > 0;
    status.textContent = state.view === "followed" && !q
      ? "You follow no runner yet: tap ☆ next to a runner."
      : `No runner matches “${q}”.`;
  }
  // Laying out 500 rows takes a phone far longer than an update interval: the board
  // shows the first rows and grows on demand; only rows whose text changed are rebuilt.
  const shown = rows.slice(0, state.limit);
  const selected = state.selected && rows.find((r) => r.bib === state.selected);
  if (selected && !shown.includes(selected)) shown.push(selected);
  patchRows($("#leaderboard tbody"), shown);
  const more = $("#show-more");
  more.hidden = rows.length <= state.limit;
  more.textContent = `Show more (${rows.length - shown.length} more runners)`;
}

/** Make ``tbody`` hold one row per entry of ``rows``, reusing unchanged row elements. */
function patchRows(tbody, rows) {
  const template = document.createElement("template");
  const next = new Map();
  const trs = rows.map((r) => {
    const html = rowHtml(r);
    const old = state.rowCache.get(r.bib);
    if (old && old.html === html) { next.set(r.bib, old); return old.tr; }
    template.innerHTML = html;
    const tr = template.content.firstElementChild;
    next.set(r.bib, { html, tr });
    return tr;
  });
  state.rowCache = next;
  const current = tbody.children;
  const same = current.length === trs.length && trs.every((tr, i) => current[i] === tr);
  if (!same) tbody.replaceChildren(...trs);
}

function rowHtml(r) {
  const followed = state.followed.has(r.bib);
  const seen = secondsSince(r.last_fix_ms, r.last_seen_s);
  const stale = r.status === "running" && r.last_fix_ms !== null && seen !== null && seen > STALE_S;
  const record = r.record_delta
    ? `<span class="record ${r.record_delta_s > 0 ? "behind" : "ahead"}">${esc(r.record_delta)}</span>` : "";
  const cls = [followed ? "followed" : "", state.selected === r.bib ? "selected" : "",
    r.status !== "running" ? `st-${r.status}` : ""].filter(Boolean).join(" ");
  return `<tr data-bib="${esc(r.bib)}" class="${cls}">
    <td class="num rank">${r.rank ?? ""}</td>
    <td class="num bib">${esc(r.bib)}</td>
    <td class="who"><span class="name">${esc(r.name)}</span>
      <span class="country">${esc(r.country)}</span>
      ${stale ? `<span class="seen">${esc(lastSeen(seen))}</span>` : ""}
      ${r.status === "running" && r.last_fix_ms === null ? `<span class="seen">no signal yet</span>` : ""}
      ${r.status !== "running" ? `<span class="status-s show-s s-${esc(r.status)}">${esc(STATUS_LABEL[r.status] || r.status)}</span>` : ""}</td>
    <td class="hide-s"><span class="status s-${esc(r.status)}">${esc(STATUS_LABEL[r.status] || r.status)}</span></td>
    <td class="num hide-s">${esc(clock(r.elapsed_s))}</td>
    <td class="num"><span class="gap">${esc(leaderGap(r))}</span>${gapMarks(r)}</td>
    <td class="num">${record}</td>
    <td class="star"><button type="button" class="follow-btn ${followed ? "on" : ""}" data-follow="${esc(r.bib)}"
      aria-pressed="${followed}" aria-label="${followed ? "Unfollow" : "Follow"} ${esc(r.name)}">${followed ? "★" : "☆"}</button></td>
  </tr>`;
}

/** A row's marks beside its gap: level with the runner ahead; ranked at an estimated
 * position (its tracker silent for over a minute). */
function gapMarks(r) {
  const tie = r.tied ? `<span class="tie" title="Level with the runner ahead">=</span>` : "";
  const est = r.estimated
    ? `<span class="est" title="Position estimated from the runner's pace: no signal for over a minute">~</span>` : "";
  return tie + est;
}

function markers() {
  const out = [];
  for (const r of state.board.ranked()) {
    if (r.status !== "running" && r.status !== "finished") continue;
    const card = state.cards.get(r.bib)?.card;
    const pos = card?.position;
    out.push({
      bib: r.bib, name: r.name, leader: r.bib === state.board.leader,
      followed: state.followed.has(r.bib), selected: state.selected === r.bib,
      progress_m: pos ? pos.progress_m : (r.est_m ?? r.progress_m),
      lat: pos?.lat, lon: pos?.lon, estimated: Boolean(pos ? pos.estimated : r.estimated),
    });
  }
  return out;
}

function renderCourse() {
  if (!state.course) return;
  const m = markers();
  state.profile.drawRunners(m);
  state.map.drawRunners(m);
}

function renderCard() {
  const box = $("#card");
  const bib = state.selected;
  const row = bib ? state.board.rows.get(bib) : null;
  const held = bib ? state.cards.get(bib) : null;
  if (!bib || (!row && !held?.card)) {
    box.hidden = true;
    document.body.classList.remove("card-open");
    return;
  }
  let card = held?.card || null;
  if (card) card = { ...card, last_seen_s: secondsSince(card.last_fix_ms, card.last_seen_s) };
  const splitRanks = new Map();
  for (const c of state.board.checkpoints) {
    const s = (c.splits || []).find((x) => x.bib === bib);
    if (s) splitRanks.set(c.id, s.rank);
  }
  box.innerHTML = cardHtml(card, row && { ...row, last_seen_s: secondsSince(row.last_fix_ms, row.last_seen_s) }, {
    checkpoints: state.course?.checkpoints || [], timeZone: state.timeZone,
    followed: state.followed.has(bib), splitRanks,
  });
  box.hidden = false;
  box.dataset.bib = bib;
  document.body.classList.add("card-open");
}

function bindUi() {
  $("#search").addEventListener("input", (ev) => { state.query = ev.target.value; schedule(); });
  $("#show-more").addEventListener("click", () => { state.limit += PAGE_ROWS; schedule(); });
  for (const tab of document.querySelectorAll(".tabs [data-view]")) {
    tab.addEventListener("click", () => {
      state.view = tab.dataset.view;
      for (const t of document.querySelectorAll(".tabs [data-view]")) {
        t.setAttribute("aria-selected", String(t === tab));
      }
      schedule();
    });
  }
  document.addEventListener("click", (ev) => {
    const follow = ev.target.closest("[data-follow]");
    if (follow) { toggleFollow(follow.dataset.follow); return; }
    if (ev.target.closest("[data-close]")) { select(null); return; }
    const row = ev.target.closest("#leaderboard tbody tr[data-bib]");
    if (row) { select(row.dataset.bib); return; }
    const dot = ev.target.closest("svg .runner[data-bib]");
    if (dot) select(dot.dataset.bib);
  });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") select(null); });
  // "Last seen" ages between updates.
  setInterval(schedule, 15_000);
}

async function main() {
  bindUi();
  const config = await getJson("/api/v1/config");
  const races = racesOf(config);
  if (races.length === 0) throw new Error("the broadcaster serves no race: start it with a race folder");
  const race = setupRaceSelect(races);
  state.race = race.id;
  state.timeZone = race.timezone || undefined;
  document.title = `${race.name || race.id} · Zegama Live`;
  $("#race-name").textContent = race.name || race.id;
  loadFollowed();
  state.live = new Live(websocketUrl(config), {
    onStatus: showStatus,
    onError: (err) => showError(`${err.code}: ${err.message}`),
    onHeartbeat: (msg) => showStale(msg.stale?.[race.id]),
  });
  state.live.subscribe(`standings:${race.id}`, onStandings);
  for (const bib of state.followed) watchRunner(bib);
  const m = /^#runner=(.+)$/.exec(location.hash);
  if (m) select(decodeURIComponent(m[1]));
  try {
    const doc = await getJson(`/api/v1/races/${encodeURIComponent(race.id)}/course`);
    state.course = normaliseCourse(doc);
    state.timeZone = state.timeZone || doc.timezone || undefined;
    state.profile = new Profile($("#profile"), state.course);
    state.map = new CourseMap($("#map"), state.course);
    $("#course-facts").textContent = courseFacts(state.course);
  } catch (err) {
    showError(`The course could not be drawn: ${err.message}. The standings still update.`);
  }
  schedule();
}

/** The board has had no news for ``age`` s (the tracking is delayed), or is live again. */
function showStale(age) {
  if (state.live?.ws?.readyState !== WebSocket.OPEN) return;
  if (age === undefined) {
    if ($("#conn").dataset.state === "stale") showStatus("live");
    return;
  }
  const took = age < 120 ? `${age} s` : `${Math.round(age / 60)} min`;
  showStatus("stale", `no new positions for ${took}: the live tracking is delayed, `
    + "the board shows the last known standings");
  $("#conn").textContent = `delayed · ${took}`;
}

function courseFacts(course) {
  let climb = course.climb;
  if (climb === null) {  // an older server: sum the rises between the drawn points
    climb = 0;
    for (let i = 1; i < course.points.length; i += 1) {
      climb += Math.max(0, course.points[i].ele - course.points[i - 1].ele);
    }
  }
  return `${(course.length / 1000).toFixed(1)} km · ${Math.round(climb).toLocaleString("en")} m climb`
    + ` · ${course.checkpoints.length} checkpoints`;
}

main().catch((err) => showError(err.message));
// For the console and the page tests.
window.zegamaLive = { state };
