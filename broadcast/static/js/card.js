// The runner card: splits, gaps, record pace, projections and last seen, as HTML.

import { clock, esc, gap, km, lastSeen, STALE_S, STATUS_LABEL, wallClock } from "./format.js";

/**
 * HTML of a runner's card. ``card`` is a runner_view (docs/race-engine.md), ``row`` the
 * board row (used before the card arrives), ``ctx`` {checkpoints, timeZone, followed,
 * splitRanks: Map checkpoint id -> rank}.
 */
export function cardHtml(card, row, ctx) {
  const r = card || row;
  // The place in the race is the board's: the row follows every standings update.
  const place = row || card;
  const status = r.status || "running";
  const followed = ctx.followed;
  const head = `
    <header class="card-head">
      <div class="card-title">
        <span class="bib">${esc(r.bib)}</span>
        <h2>${esc(r.name)}</h2>
        <span class="meta">${esc(r.country)} · ${esc(r.sex)} ${esc(r.category)}</span>
      </div>
      <div class="card-actions">
        <button type="button" class="follow ${followed ? "on" : ""}" data-follow="${esc(r.bib)}"
          aria-pressed="${followed}">${followed ? "★ Following" : "☆ Follow"}</button>
        <button type="button" class="close" data-close aria-label="Close">✕</button>
      </div>
    </header>`;
  const facts = [
    fact("Status", `<span class="status s-${esc(status)}">${esc(STATUS_LABEL[status] || status)}</span>`
      + (r.reason ? ` <small>${esc(r.reason)}</small>` : "")),
    fact("Rank", place.rank ? `#${place.rank}` : "–"),
    fact("Gap to leader", place.rank === 1 ? "leader" : esc(gap(place.gap_leader_s)) || "–"),
    fact("Gap ahead", esc(gap(place.gap_ahead_s)) || "–"),
    fact("Record pace", r.record_delta
      ? `<span class="record ${r.record_delta_s > 0 ? "behind" : "ahead"}">${esc(r.record_delta)}</span>`
        + `<small> vs ${esc(card?.reference || "record")}</small>`
      : "–"),
    fact("Position", positionHtml(card, row)),
  ].join("");
  const seen = r.last_seen_s;
  const stale = status === "running" && (seen === null || seen === undefined || seen > STALE_S);
  const seenHtml = stale
    ? `<p class="stale" data-stale>⚠ ${esc(lastSeen(seen))}${card?.position?.estimated ? ", position estimated" : ""}</p>`
    : "";
  return `${head}${seenHtml}<dl class="facts">${facts}</dl>
    ${card ? projectionsHtml(card, ctx) : `<p class="muted">Loading the runner's card…</p>`}
    ${card ? splitsHtml(card, ctx) : ""}`;
}

function fact(label, value) {
  return `<div><dt>${esc(label)}</dt><dd>${value}</dd></div>`;
}

function positionHtml(card, row) {
  const pos = card?.position;
  const m = pos ? pos.progress_m : row?.progress_m;
  if (m === null || m === undefined) return "–";
  return `${esc(km(m, 2))}${pos?.estimated ? ' <span class="estimated-tag">estimated</span>' : ""}`;
}

function cpName(ctx, id) {
  const c = (ctx.checkpoints || []).find((x) => x.id === id);
  return c ? c.name : id;
}

/** A probability as people read it: "35%", "over 99%", "under 1%". */
function chance(p) {
  if (p > 0.99) return "over 99%";
  if (p < 0.01) return "under 1%";
  return `${Math.round(p * 100)}%`;
}

function band(e, tz) {
  return `${wallClock(e.p10_ms, tz)}–${wallClock(e.p90_ms, tz)}`;
}

function projectionsHtml(card, ctx) {
  const tz = ctx.timeZone;
  const fin = card.finish_eta;
  const finish = fin
    ? `<p class="finish-eta">Projected finish <strong>${esc(clock(fin.elapsed_s))}</strong>
        at ${esc(wallClock(fin.t_ms, tz))} <small>(${esc(band(fin, tz))}, ${esc(fin.model)})</small></p>`
    : "";
  const cutoffs = (card.cutoffs || []).map((c) => `<p class="cutoff">Cutoff at ${esc(c.name)}
      ${esc(wallClock(c.cutoff_ms, tz))}: <strong>${esc(chance(c.p_make))}</strong> chance to make it</p>`).join("");
  if (!card.etas || card.etas.length === 0) return finish + cutoffs;
  const rows = card.etas.map((e) => `<tr>
      <td>${esc(cpName(ctx, e.checkpoint))}</td>
      <td class="num">${esc(wallClock(e.t_ms, tz))}</td>
      <td class="num">${esc(band(e, tz))}</td>
      <td class="num hide-s">${esc(clock(e.elapsed_s))}</td>
      <td class="hide-s"><small>${esc(e.model)}</small></td></tr>`).join("");
  return `${finish}${cutoffs}<h3>Next checkpoints</h3>
    <table class="etas"><thead><tr><th>Checkpoint</th><th class="num">ETA</th>
      <th class="num">Band (p10–p90)</th><th class="num hide-s">Race time</th><th class="hide-s">Model</th></tr></thead>
      <tbody>${rows}</tbody></table>`;
}

/** " ±6 s" for a GPS split: the half-width of its 95% interval (err_s). */
function sure(split) {
  if (!(split.err_s > 0) || split.source !== "gps") return "";  // none for the gun (0)
  return ` <span class="err" title="95% sure within this of the true time">±${Math.max(1, Math.round(split.err_s))} s</span>`;
}

function splitsHtml(card, ctx) {
  if (!card.splits || card.splits.length === 0) return `<p class="muted">No splits yet.</p>`;
  const tz = ctx.timeZone;
  let prev = 0;
  const rows = card.splits.map((s) => {
    const leg = s.elapsed_s - prev;
    prev = s.elapsed_s;
    const rank = ctx.splitRanks?.get(s.checkpoint);
    return `<tr><td>${esc(s.name)}</td><td class="num">${esc(s.km.toFixed(1))}</td>
      <td class="num">${esc(clock(s.elapsed_s))}</td><td class="num hide-s">${esc(clock(leg))}</td>
      <td class="num">${esc(wallClock(s.t_ms, tz))}</td><td class="num">${rank ? "#" + rank : ""}</td>
      <td class="hide-s"><small class="source">${esc(s.source)}${sure(s)}</small></td></tr>`;
  }).join("");
  return `<h3>Splits</h3><table class="splits"><thead><tr><th>Checkpoint</th><th class="num">km</th>
    <th class="num">Time</th><th class="num hide-s">Leg</th><th class="num">At</th><th class="num">Pos</th>
    <th class="hide-s">Source</th></tr></thead><tbody>${rows}</tbody></table>`;
}
