// Formatting of times, gaps and distances for both pages. Pure functions.

/** "m:ss" under an hour, "h:mm:ss" from an hour; "" for null. */
export function clock(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.round(Math.abs(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  const sign = seconds < 0 ? "-" : "";
  return h ? `${sign}${h}:${String(m).padStart(2, "0")}:${sec}` : `${sign}${m}:${sec}`;
}

/** A time gap behind someone: "+1:12", "+1:02:03"; "" for null. */
export function gap(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  return seconds < 0 ? clock(seconds) : "+" + clock(seconds);
}

/** "12.4 km" from metres. */
export function km(metres, digits = 1) {
  if (metres === null || metres === undefined) return "";
  return `${(metres / 1000).toFixed(digits)} km`;
}

/** Wall-clock "HH:MM" (or "HH:MM:SS") of an epoch-ms time in the race's time zone (the browser's if none). */
export function wallClock(ms, timeZone, { seconds = false } = {}) {
  if (ms === null || ms === undefined) return "";
  const opts = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (seconds) opts.second = "2-digit";
  if (timeZone) opts.timeZone = timeZone;
  try {
    return new Intl.DateTimeFormat("en-GB", opts).format(new Date(ms));
  } catch {
    delete opts.timeZone;
    return new Intl.DateTimeFormat("en-GB", opts).format(new Date(ms));
  }
}

/** "just now", "last seen 4 min ago", "last seen 1 h 10 min ago". */
export function lastSeen(seconds) {
  if (seconds === null || seconds === undefined) return "no signal yet";
  if (seconds < 60) return "just now";
  const min = Math.floor(seconds / 60);
  if (min < 60) return `last seen ${min} min ago`;
  return `last seen ${Math.floor(min / 60)} h ${min % 60} min ago`;
}

/** A runner counts as stale (shown "last seen") after this many seconds without a fix. */
export const STALE_S = 120;

/** Status words as shown to people. */
export const STATUS_LABEL = {
  running: "Running", finished: "Finished", dnf: "DNF", dsq: "DSQ", dns: "DNS",
};

/** Text for a ROW or CARD's gap to the leader: the leader gets their elapsed time. */
export function leaderGap(row) {
  if (row.rank === 1) return clock(row.elapsed_s);
  return gap(row.gap_leader_s);
}

/** Escape text for HTML. */
export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
