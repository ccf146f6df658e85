// Race control's open alerts: kept from control-channel frames, ordered most urgent first.

import { ALERT_KINDS } from "./records.js";

/** Kinds, most urgent first (declared in race_engine/alerts.py, generated into records.js). */
export const ORDER = ALERT_KINDS;

export const KIND_LABEL = {
  sos: "SOS", stopped: "Stopped", danger_zone: "Danger zone", off_course: "Off course",
  no_fix: "No signal", missed_cutoff: "Missed cutoff", cutoff_risk: "Cutoff risk",
  low_battery: "Low battery", implausible_chip_read: "Chip read held",
};

/** The page's filters: which kinds each shows (SOS is always shown). */
export const FILTERS = {
  all: null,
  no_fix: ["no_fix"],
  stopped: ["stopped"],
  off_course: ["off_course"],
  cutoff: ["cutoff_risk", "missed_cutoff"],
  danger_zone: ["danger_zone"],
  timing: ["implausible_chip_read"],
};

const rank = (kind) => {
  const i = ORDER.indexOf(kind);
  return i < 0 ? ORDER.length : i;
};

/** Most urgent first: kind order, then raise time, then id. */
export function compareAlerts(a, b) {
  return rank(a.kind) - rank(b.kind) || a.raised_ms - b.raised_ms || (a.id < b.id ? -1 : 1);
}

export class AlertSet {
  constructor() { this.open = new Map(); }

  /** Replace everything with a snapshot's ``alerts`` list. */
  reset(alerts) {
    this.open = new Map((alerts || []).map((a) => [a.id, a]));
  }

  /** Apply an update's ``alerts`` changes in order. */
  apply(changes) {
    for (const c of changes || []) {
      const a = c.alert;
      if (!a || !a.id) continue;
      if (c.action === "cleared") {
        this.open.delete(a.id);
      } else {
        const merged = { ...a };
        if (c.action === "acknowledged") {
          merged.acknowledged = true;
          merged.acknowledged_by = a.acknowledged_by ?? c.by ?? null;
        }
        this.open.set(a.id, merged);
      }
    }
  }

  /** Open alerts passing ``filter`` (a FILTERS key), most urgent first; SOS always. */
  list(filter = "all") {
    const kinds = FILTERS[filter] || null;
    return [...this.open.values()]
      .filter((a) => !kinds || a.kind === "sos" || kinds.includes(a.kind))
      .sort(compareAlerts);
  }

  /** Count of open alerts per kind. */
  counts() {
    const out = {};
    for (const a of this.open.values()) out[a.kind] = (out[a.kind] || 0) + 1;
    return out;
  }
}

/**
 * Each zone's weather alert, ``{zone: {on, by, t_ms}}``, from the control channel's
 * ``weather`` state. A zone that state does not hold (its command is older than the
 * topic's retention) is on while it has open ``danger_zone`` alerts, which the engine
 * raises only during a weather alert.
 */
export function zoneWeather(weather, alerts) {
  const out = { ...(weather || {}) };
  for (const a of alerts.open.values()) {
    if (a.kind === "danger_zone" && a.subject && !(a.subject in out)) {
      out[a.subject] = { on: true, by: null, t_ms: null };
    }
  }
  return out;
}
