// The websocket client of both pages (docs/websocket.md): subscriptions that survive
// reconnects, resuming each channel from the last seq it holds, and commands.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
// The server sends a heartbeat every 15 s; this much silence means the link is dead.
const SILENCE_MS = 40_000;
// Error codes that answer a command rather than a subscription.
const COMMAND_ERRORS = ["invalid_command", "publish_failed", "not_subscribed", "bad_request"];

/** A new command id: "c-" and 32 hex digits (crypto.randomUUID needs https off localhost). */
export function commandId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "c-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The websocket URL from GET /api/v1/config, as seen from this page's host. */
export function websocketUrl(config) {
  const ws = config.websocket;
  let url = config.websocket_url || config.ws_url || (typeof ws === "string" ? ws : ws?.url);
  const port = config.websocket_port || config.ws_port || ws?.port;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  if (!url && port) url = `${scheme}//${location.hostname}:${port}/`;
  if (!url) url = `${scheme}//${location.host}/ws`;
  const u = new URL(url, location.href);
  // A server bound to every interface reports 0.0.0.0: the browser must use the host it
  // loaded the page from.
  if (["0.0.0.0", "::", "[::]"].includes(u.hostname)) u.hostname = location.hostname;
  return u.toString();
}

/** The races of GET /api/v1/config as [{id, name, timezone}]. */
export function racesOf(config) {
  const races = config.races || [];
  return (Array.isArray(races) ? races : Object.entries(races).map(([id, r]) => ({ id, ...r })))
    .map((r) => (typeof r === "string" ? { id: r, name: r } : { ...r, id: r.id ?? r.race, name: r.name ?? r.id }));
}

export class Live {
  /**
   * ``onStatus(state, detail)``: state is connecting, live, reconnecting or closed.
   * ``onHeartbeat(msg)``: each heartbeat; ``msg.stale`` names the races whose board has
   * not moved for a while (race -> seconds), and is absent when none.
   */
  constructor(url, { onStatus = () => {}, onError = () => {}, onHeartbeat = () => {} } = {}) {
    this.url = url;
    this.onStatus = onStatus;
    this.onError = onError;
    this.onHeartbeat = onHeartbeat;
    this.subs = new Map();     // channel -> {options, handler, seq}
    this.pending = new Map();  // command id -> {resolve, reject}, in send order
    this.ws = null;
    this.backoff = BACKOFF_MIN_MS;
    this.closed = false;
    this.lastHeard = 0;
    this.connect();
    this.watchdog = setInterval(() => this.checkSilence(), 5000);
  }

  connect() {
    this.onStatus(this.ws ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = BACKOFF_MIN_MS;
      this.lastHeard = Date.now();
      this.onStatus("live");
      for (const channel of this.subs.keys()) this.sendSubscribe(channel, true);
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.failPending("the connection closed before the command was confirmed");
      if (this.closed) return;
      // 1001: this broadcaster is going away; another one resumes us at once (since).
      if (ev.code === 1001) this.backoff = BACKOFF_MIN_MS;
      this.onStatus("reconnecting", ev.code === 4008 ? "too slow" : ev.reason);
      const delay = this.backoff * (0.75 + Math.random() * 0.5);
      this.backoff = Math.min(BACKOFF_MAX_MS, this.backoff * 2);
      setTimeout(() => { if (!this.closed) this.connect(); }, delay);
    };
  }

  checkSilence() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && Date.now() - this.lastHeard > SILENCE_MS) {
      this.ws.close();
    }
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  sendSubscribe(channel, resume) {
    const sub = this.subs.get(channel);
    if (!sub) return;
    const msg = { op: "subscribe", channel, ...sub.options };
    if (resume && sub.seq !== null) msg.since = sub.seq;
    this.send(msg);
  }

  /**
   * Receive ``channel``'s frames: ``handler(frame)`` gets every snapshot and every update
   * not older than the last one held. ``options``: {top, token}.
   */
  subscribe(channel, handler, options = {}) {
    this.subs.set(channel, { options, handler, seq: null });
    this.sendSubscribe(channel, false);
  }

  unsubscribe(channel) {
    if (this.subs.delete(channel)) this.send({ op: "unsubscribe", channel });
  }

  /** Ask for a fresh snapshot (the state held cannot take the next update). */
  resync(channel) {
    const sub = this.subs.get(channel);
    if (sub) { sub.seq = null; this.sendSubscribe(channel, false); }
  }

  /**
   * Send a race-control command with an id (its own ``command.id``, else a new one), so
   * the server's ack or error is matched to it even with several in flight. Resolves
   * with the ack; rejects with an Error carrying ``code`` and ``id``.
   */
  command(race, command) {
    const sent = { ...command, id: command.id ?? commandId() };
    return new Promise((resolve, reject) => {
      if (this.pending.has(sent.id)) {
        reject(new Error(`command ${sent.id} is already waiting for its answer`));
        return;
      }
      if (!this.send({ op: "command", race, command: sent })) {
        reject(new Error("not connected: the command was not sent, try again"));
        return;
      }
      this.pending.set(sent.id, { resolve, reject });
    });
  }

  failPending(message) {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(new Error(message));
  }

  /**
   * The waiting command an ack or error answers: the one of that id (none when it is not
   * waiting: an answer to a command of a closed connection), else the oldest one.
   */
  takePending(id) {
    const found = id !== undefined && id !== null ? id : this.pending.keys().next().value;
    if (found === undefined || !this.pending.has(found)) return null;
    const p = this.pending.get(found);
    this.pending.delete(found);
    return p;
  }

  receive(text) {
    this.lastHeard = Date.now();
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    // What waited for this client at one tick comes as one batch, in order.
    for (const one of msg.type === "batch" ? msg.messages : [msg]) this.handle(one);
  }

  handle(msg) {
    if (msg.type === "snapshot" || msg.type === "update") {
      const sub = this.subs.get(msg.channel);
      if (!sub) return;
      if (msg.type === "update" && sub.seq !== null && msg.seq < sub.seq) return;
      sub.seq = msg.seq;
      sub.handler(msg);
    } else if (msg.type === "heartbeat") {
      this.onHeartbeat(msg);
    } else if (msg.type === "ack") {
      this.takePending(msg.id)?.resolve(msg);
    } else if (msg.type === "error" && msg.code === "ahead" && this.subs.has(msg.channel)) {
      // This broadcaster is behind what we hold and gave up waiting: start over there.
      this.sendSubscribe(msg.channel, false);
    } else if (msg.type === "error") {
      // A command's error names its id; one without (an id the server could not read)
      // answers the oldest command still waiting.
      const forCommand = (msg.id !== undefined && msg.id !== null)
        || (!msg.channel && COMMAND_ERRORS.includes(msg.code));
      const p = forCommand ? this.takePending(msg.id) : null;
      if (p) {
        const err = new Error(msg.message);
        err.code = msg.code;
        err.id = msg.id ?? null;
        p.reject(err);
      } else {
        this.onError(msg);
      }
    }
  }

  close() {
    this.closed = true;
    clearInterval(this.watchdog);
    this.onStatus("closed");
    this.ws?.close();
  }
}
