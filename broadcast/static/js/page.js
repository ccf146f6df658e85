// What both pages share: fetching JSON, the connection badge, errors, the race choice.

import { esc } from "./format.js";

const $ = (sel) => document.querySelector(sel);

/** GET a JSON document; throws Error naming the URL and the HTTP status. */
export async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  return res.json();
}

/** The race clock now (epoch ms), from the latest board's time and when it arrived. */
export function raceClock(generatedMs, receivedAt) {
  if (!generatedMs) return null;
  return generatedMs + (Date.now() - receivedAt);
}

const STATUS_TEXT = {
  connecting: "connecting…", live: "live", reconnecting: "reconnecting…", closed: "offline",
  stale: "delayed",
};

/** Show the websocket's state in the header badge. */
export function showStatus(state, detail) {
  const badge = $("#conn");
  badge.dataset.state = state;
  badge.textContent = STATUS_TEXT[state] || state;
  badge.title = detail || "";
}

/** Show a message in the page's error bar (hidden again after a while). */
export function showError(message, { sticky = false } = {}) {
  const bar = $("#error");
  bar.textContent = message;
  bar.hidden = false;
  clearTimeout(showError.timer);
  if (!sticky) showError.timer = setTimeout(() => { bar.hidden = true; }, 12_000);
}

/** Fill the race selector (shown with two races or more); returns the race of ?race=. */
export function setupRaceSelect(races) {
  const wantedId = new URLSearchParams(location.search).get("race");
  const race = races.find((r) => r.id === wantedId) || races[0];
  const select = $("#race-select");
  if (races.length > 1) {
    select.innerHTML = races.map((r) => `<option value="${esc(r.id)}">${esc(r.name || r.id)}</option>`).join("");
    select.value = race.id;
    select.hidden = false;
    select.addEventListener("change", () => {
      const u = new URL(location.href);
      u.searchParams.set("race", select.value);
      u.hash = "";
      location.href = u.toString();
    });
  }
  return race;
}
