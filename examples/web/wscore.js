// wscore.js: a small browser client for the websocket_core JSON protocol, as ConnectMe
// serves it. One ES module, no dependencies, no build step.
//
//   import { connect } from "./wscore.js";
//   const client = connect("ws://127.0.0.1:9004/ws", { onStatus: (s) => console.log(s) });
//   client.on("chat.message", (p) => console.log(p.name, p.text));
//   const joined = await client.request("room.join", { room: "lobby" });
//   client.send("typing", { room: "lobby" });
//
// The wire (one JSON object per text frame): {"v":"1.0","e":event,"p":{...},"c":corr?,"t":ms}.
// What it does for you:
//  - request(): a fresh `c`, resolved by the answer carrying the same `c` (whatever its
//    event), rejected with a WsError on `sys.error` (its `code`, `message`, `details`) or
//    on timeout (code "timeout");
//  - `sys.ping {t}` is answered with `sys.pong {t}`;
//  - reconnects after a drop with exponential backoff and full jitter, forever until close();
//  - sends made while disconnected wait in a bounded queue (the oldest is refused when full)
//    and go out, in order, once the connection is ready;
//  - sessions (sessions-resume.md): it remembers `sessionId` and `resumeSecret` from
//    `sys.session.created`, processes each sequenced message (`s`) once, acknowledges
//    every 32 with `sys.ack {s}`, and after a reconnect asks `sys.reconnect.request
//    {sessionId, resumeSecret, lastSeq}` first. A server that sends no `resumeSecret`
//    offers no resume: a reconnect then starts a new session, and onSession says so.

const VERSION = "1.0";

/** An error answer (`sys.error`) or a local failure ("timeout", "disconnected", ...). */
export class WsError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = "WsError";
    this.code = code;
    this.details = details;
  }
}

const DEFAULTS = {
  // Offered to the server; ConnectMe's example selects its JSON protocol by it (and by path).
  protocols: ["wscore.json"],
  requestTimeoutMs: 10_000,
  // Backoff: the n-th retry waits a random time in [0, min(max, initial * 2^n)].
  reconnectInitialMs: 250,
  reconnectMaxMs: 10_000,
  maxQueue: 256,
  ackEvery: 32,
  onStatus: () => {},
  onSession: () => {},
  onError: () => {},
};

/**
 * Opens a client to `url` and keeps it connected until close().
 * Options: protocols, requestTimeoutMs, reconnectInitialMs, reconnectMaxMs, maxQueue,
 * ackEvery, and three callbacks:
 *  - onStatus(status): "connecting" | "open" | "reconnecting" | "closed";
 *  - onSession({sessionId, userId, resumed, reconnect}): a session is ready (new, or
 *    resumed after a reconnect; `reconnect && !resumed` means messages may have been lost);
 *  - onError(error): a WsError nobody else gets (a refused queued send, a `sys.error`
 *    without a request waiting for it).
 */
export function connect(url, options = {}) {
  return new WsClient(url, options);
}

export class WsClient {
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options };
    this.status = "closed";
    this.session = null; // {sessionId, userId, resumeSecret}
    this.lastSeq = 0; // the highest `s` processed
    this.ackedSeq = 0;
    this.ws = null;
    this.ready = false; // the session is established: sends go out directly
    this.resuming = null; // the `c` of our sys.reconnect.request
    this.attempt = 0;
    this.connections = 0;
    this.closed = false;
    this.timer = null;
    this.resumeTimer = null;
    this.fresh = null; // the new connection's own session, while a resume is asked for
    this.handlers = new Map(); // event -> Set of functions
    this.pending = new Map(); // c -> {resolve, reject, timer}
    this.queue = []; // [{frame, c?}], sent once ready
    this.nextId = 0;
    this.open();
  }

  // ---- the application's API ----

  /** Calls `fn(payload, envelope)` for every `event`; returns a function that removes it. */
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** Removes `fn` from `event`, or every handler of `event` without `fn`. */
  off(event, fn) {
    const set = this.handlers.get(event);
    if (!set) return;
    if (fn) set.delete(fn);
    if (!fn || set.size === 0) this.handlers.delete(event);
  }

  /** Sends `event` without waiting for an answer; queued while disconnected. */
  send(event, payload = {}) {
    this.enqueue({ e: event, p: payload });
  }

  /**
   * Sends `event` and resolves with the payload of the answer carrying its `c`; rejects
   * with a WsError (the server's `sys.error` code, or "timeout", "queue_full", "closed",
   * "disconnected"). The timeout runs from now, time in the queue included.
   */
  request(event, payload = {}, { timeoutMs = this.options.requestTimeoutMs } = {}) {
    const c = this.newId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(c);
        this.queue = this.queue.filter((item) => item.c !== c);
        reject(new WsError("timeout", `${event}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(c, { resolve, reject, timer });
      this.enqueue({ e: event, p: payload, c }, c);
    });
  }

  /** Closes the connection for good: no more reconnects; waiting requests are rejected. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.resumeTimer);
    this.failPending("closed", "the client was closed");
    for (const item of this.queue) this.refuse(item, "closed", "the client was closed");
    this.queue = [];
    if (this.ws) this.ws.close(1000, "bye");
    this.setStatus("closed");
  }

  // ---- the connection ----

  open() {
    if (this.closed) return;
    this.setStatus(this.connections === 0 ? "connecting" : "reconnecting");
    this.ready = false;
    this.resuming = null;
    let ws;
    try {
      ws = new WebSocket(this.url, this.options.protocols);
    } catch (error) {
      // A malformed URL: retrying will not help.
      this.options.onError(new WsError("bad_url", String(error)));
      this.close();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => {
      if (ws === this.ws) this.receive(event.data);
    };
    ws.onclose = () => {
      if (ws === this.ws) this.dropped();
    };
    // An error is always followed by a close; nothing to do here.
    ws.onerror = () => {};
  }

  dropped() {
    this.ws = null;
    this.ready = false;
    this.resuming = null;
    clearTimeout(this.resumeTimer);
    if (this.closed) return;
    // Without a resume, answers to what was sent will never come.
    if (!this.session?.resumeSecret) {
      this.failPending("disconnected", "the connection dropped before the answer");
    }
    this.setStatus("reconnecting");
    const ceiling = Math.min(
      this.options.reconnectMaxMs,
      this.options.reconnectInitialMs * 2 ** this.attempt,
    );
    this.attempt += 1;
    this.timer = setTimeout(() => this.open(), Math.random() * ceiling);
  }

  receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return; // not JSON: ignored, as the protocol's clients do
    }
    if (!msg || typeof msg !== "object" || typeof msg.e !== "string") return;
    const p = msg.p && typeof msg.p === "object" ? msg.p : {};

    // Control events (no `s`).
    switch (msg.e) {
      case "sys.ping":
        this.write({ e: "sys.pong", p: { t: p.t } });
        return;
      case "sys.session.created":
        this.created(p);
        return;
      case "sys.session.restored":
        if (this.resuming) this.restored(p);
        return;
      case "sys.error":
        if (this.resuming && msg.c === this.resuming) {
          this.resumeFailed(p);
          return;
        }
        break;
    }

    // Sequenced messages: each `s` once, in order (the server replays from lastSeq + 1).
    if (Number.isInteger(msg.s)) {
      if (msg.s <= this.lastSeq) return; // a replayed copy already processed
      this.lastSeq = msg.s;
      if (this.lastSeq - this.ackedSeq >= this.options.ackEvery) {
        this.ackedSeq = this.lastSeq;
        this.write({ e: "sys.ack", p: { s: this.lastSeq } });
      }
    }

    const waiting = typeof msg.c === "string" ? this.pending.get(msg.c) : undefined;
    if (waiting) {
      this.pending.delete(msg.c);
      clearTimeout(waiting.timer);
      if (msg.e === "sys.error") waiting.reject(toError(p));
      else waiting.resolve(p);
      return; // an answer goes to its request only
    }
    if (msg.e === "sys.error" && !this.handlers.has("sys.error")) {
      this.options.onError(toError(p));
      return;
    }
    for (const fn of [...(this.handlers.get(msg.e) ?? [])]) {
      try {
        fn(p, msg);
      } catch (error) {
        console.error(`wscore: a handler of ${msg.e} threw`, error);
      }
    }
  }

  /** The first message of every connection: a fresh session, or the one to resume from. */
  created(p) {
    const previous = this.session;
    const reconnect = this.connections > 0;
    this.connections += 1;
    if (reconnect && previous?.resumeSecret) {
      // Ask for the old session back before anything else; the fresh one is kept in case
      // the server refuses.
      this.fresh = p;
      const c = (this.resuming = this.newId());
      // A server that never answers must not leave the client stuck.
      this.resumeTimer = setTimeout(() => {
        if (this.resuming === c) {
          this.resumeFailed({ code: "timeout", message: "no answer to sys.reconnect.request" });
        }
      }, this.options.requestTimeoutMs);
      this.write({
        e: "sys.reconnect.request",
        p: {
          sessionId: previous.sessionId,
          resumeSecret: previous.resumeSecret,
          lastSeq: this.lastSeq,
        },
        c: this.resuming,
      });
      return;
    }
    this.startSession(p, { resumed: false, reconnect });
  }

  restored(p) {
    this.resuming = null;
    clearTimeout(this.resumeTimer);
    this.session = { ...this.session, userId: p.userId ?? this.session.userId };
    this.becomeReady({ resumed: true, reconnect: true });
  }

  resumeFailed(p) {
    this.resuming = null;
    clearTimeout(this.resumeTimer);
    this.options.onError(toError(p));
    // The old session is gone: answers to what was sent on it will never come.
    this.failPending("disconnected", "the session was lost before the answer");
    this.startSession(this.fresh, { resumed: false, reconnect: true });
  }

  startSession(p, how) {
    this.session = {
      sessionId: p.sessionId,
      userId: p.userId ?? null,
      resumeSecret: typeof p.resumeSecret === "string" ? p.resumeSecret : null,
    };
    // A new session numbers its messages from 1 again.
    this.lastSeq = 0;
    this.ackedSeq = 0;
    this.becomeReady(how);
  }

  becomeReady(how) {
    this.ready = true;
    this.attempt = 0;
    this.setStatus("open");
    this.options.onSession({
      sessionId: this.session.sessionId,
      userId: this.session.userId,
      ...how,
    });
    const queued = this.queue;
    this.queue = [];
    for (const item of queued) this.write(item.frame);
  }

  // ---- sending ----

  enqueue(frame, c) {
    if (this.closed) {
      this.refuse({ frame, c }, "closed", "the client was closed");
      return;
    }
    // A socket closing under us (its close event still to come) counts as disconnected.
    if (this.ready && this.write(frame)) return;
    if (this.queue.length >= this.options.maxQueue) {
      const oldest = this.queue.shift();
      this.refuse(oldest, "queue_full", `offline queue full (${this.options.maxQueue}): dropped`);
    }
    this.queue.push({ frame, c });
  }

  /** Sends now; `v` and `t` are added here. */
  write(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ v: VERSION, ...frame, t: Date.now() }));
    return true;
  }

  refuse(item, code, message) {
    const error = new WsError(code, `${item.frame.e}: ${message}`);
    const waiting = item.c && this.pending.get(item.c);
    if (waiting) {
      this.pending.delete(item.c);
      clearTimeout(waiting.timer);
      waiting.reject(error);
    } else {
      this.options.onError(error);
    }
  }

  failPending(code, message) {
    const queued = new Set(this.queue.map((item) => item.c));
    for (const [c, waiting] of this.pending) {
      if (queued.has(c)) continue; // not sent yet: it goes out after the reconnect
      this.pending.delete(c);
      clearTimeout(waiting.timer);
      waiting.reject(new WsError(code, message));
    }
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.options.onStatus(status);
  }

  newId() {
    if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
    this.nextId += 1;
    return `${Date.now().toString(36)}-${this.nextId}-${Math.random().toString(36).slice(2)}`;
  }
}

function toError(p) {
  return new WsError(p.code ?? "error", p.message ?? "error", p.details);
}
