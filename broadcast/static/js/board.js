// The standings board kept in the browser: a snapshot plus the updates applied to it,
// with the same rules as standings.v1 (docs/streams.md).

export class Board {
  constructor() {
    this.rows = new Map();     // bib -> ROW
    this.order = [];           // bibs, ranked first
    this.checkpoints = [];     // CHECKPOINT entries
    this.finishers = [];
    this.leader = null;
    this.generatedMs = null;
    this.seq = null;           // seq of the last applied standings record
    this.awaitingSnapshot = false;
  }

  get ready() { return this.seq !== null; }

  /** Replace everything with a snapshot frame's board (``seq`` is the frame's). */
  applySnapshot(data, seq) {
    const b = data || {};  // before the race's first snapshot the data is empty
    const runners = b.runners || [];
    this.rows = new Map(runners.map((r) => [r.bib, r]));
    this.order = runners.map((r) => r.bib);
    this.checkpoints = b.checkpoints || [];
    this.finishers = b.finishers || [];
    this.leader = b.leader ?? null;
    this.generatedMs = b.generated_ms ?? null;
    this.seq = seq ?? 0;
    return true;
  }

  /**
   * Apply an update frame's data (streams.md). Returns false, changing nothing, when it
   * does not follow the state held (its base_seq is not the seq held): the caller then
   * asks for a fresh snapshot.
   */
  applyUpdate(u, seq) {
    if (this.seq === null) return false;
    if (seq !== undefined && seq === this.seq) return true;  // a resume repeats the last one
    if (u.base_seq !== undefined && u.base_seq !== null && u.base_seq !== this.seq) return false;
    // A row holds the fields that changed (the whole row for a bib not held yet).
    for (const row of u.rows || []) this.rows.set(row.bib, { ...this.rows.get(row.bib), ...row });
    if (Array.isArray(u.order)) {
      this.order = u.order.filter((bib) => this.rows.has(bib));
      // With "top", rows outside the order are no longer in view.
      const keep = new Set(this.order);
      for (const bib of [...this.rows.keys()]) if (!keep.has(bib)) this.rows.delete(bib);
      if (typeof u.ranked === "number") {
        // Changed rows leave rank out: the first "ranked" bibs of the order are 1, 2, 3...
        u.order.forEach((bib, i) => {
          const row = this.rows.get(bib);
          const rank = i < u.ranked ? i + 1 : null;
          if (row && row.rank !== rank) this.rows.set(bib, { ...row, rank });
        });
      }
    }
    if (u.checkpoints) {
      const byId = new Map(this.checkpoints.map((c) => [c.id, c]));
      for (const c of u.checkpoints) {
        // A checkpoint's splits come as a tail: keep the first "from" held, append.
        const held = byId.get(c.id)?.splits || [];
        const splits = c.from === undefined ? c.splits : held.slice(0, c.from).concat(c.splits);
        byId.set(c.id, { id: c.id, km: c.km, splits });
      }
      this.checkpoints = [...byId.values()].sort((a, b) => a.km - b.km);
    }
    if ("finishers" in u) this.finishers = u.finishers || [];
    if ("leader" in u) this.leader = u.leader;
    if (u.generated_ms) this.generatedMs = u.generated_ms;
    this.seq = seq ?? u.seq ?? this.seq;
    return true;
  }

  /**
   * Apply a websocket frame of a standings channel. Returns false when the caller should
   * ask for a snapshot: once per gap, later updates wait quietly for the snapshot.
   */
  apply(frame) {
    if (frame.type === "snapshot") {
      this.awaitingSnapshot = false;
      return this.applySnapshot(frame.data, frame.seq);
    }
    if (this.awaitingSnapshot) return true;
    if (this.applyUpdate(frame.data, frame.seq)) return true;
    this.awaitingSnapshot = true;
    return false;
  }

  /** Rows in board order. */
  ranked() {
    return this.order.map((bib) => this.rows.get(bib)).filter(Boolean);
  }

  /** The last runners still out on the course, last first (the sweepers' runners). */
  lastOnCourse(n) {
    return this.ranked().filter((r) => r.status === "running" && r.progress_m !== null)
      .reverse().slice(0, n);
  }
}
