// wscore.js against a scripted server (a fake WebSocket): request/response by `c`, errors,
// ping/pong, the offline queue, and the session resume of sessions-resume.md with the edge
// cases a real server cannot be made to produce on cue (the browser test resumes against
// the engine itself).
//
//   node --test examples/web/test/wscore.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

/** A WebSocket whose "server" is the test: `deliver` a message, `drop` the connection. */
class FakeSocket {
  static OPEN = 1;
  static all = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
    }, 0);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close() {
    this.drop();
  }

  deliver(e, p = {}, extra = {}) {
    this.onmessage({ data: JSON.stringify({ v: "1.0", e, p, t: Date.now(), ...extra }) });
  }

  drop() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code: 1006 }), 0);
  }

  events() {
    return this.sent.map((m) => m.e);
  }
}
globalThis.WebSocket = FakeSocket;

const { connect, WsError } = await import("../wscore.js");

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));
const last = () => FakeSocket.all.at(-1);

/** A client on a fresh fake socket, its session created (with `created` as the payload). */
async function ready(options = {}, created = { sessionId: "s1", userId: null }) {
  const log = { status: [], sessions: [], errors: [] };
  const client = connect("ws://test/ws", {
    reconnectInitialMs: 1,
    onStatus: (s) => log.status.push(s),
    onSession: (s) => log.sessions.push(s),
    onError: (e) => log.errors.push(e),
    ...options,
  });
  await tick();
  last().deliver("sys.session.created", created);
  return { client, log, socket: last() };
}

test("a request resolves with its answer and rejects with the sys.error code", async () => {
  const { client, socket } = await ready();
  const heard = [];
  client.on("room.join.response", (p) => heard.push(p));
  const ok = client.request("room.join", { room: "lobby" });
  const bad = client.request("chat.send", { text: "" });
  const [join, send] = socket.sent;
  assert.equal(join.e, "room.join");
  assert.equal(join.v, "1.0");
  assert.ok(Number.isInteger(join.t) && typeof join.c === "string" && join.c !== send.c);
  socket.deliver("chat.send.response", {}, {}); // no c: not an answer
  socket.deliver("sys.error", { code: 1009, message: "Validation failed for field: text" }, { c: send.c });
  socket.deliver("room.join.response", { room: "lobby", members: 1 }, { c: join.c });
  assert.deepEqual(await ok, { room: "lobby", members: 1 });
  await assert.rejects(bad, (e) => e instanceof WsError && e.code === 1009);
  assert.deepEqual(heard, [], "an answer goes to its request only");
  client.close();
});

test("a request times out", async () => {
  const { client } = await ready();
  await assert.rejects(client.request("slow", {}, { timeoutMs: 10 }), { code: "timeout" });
  client.close();
});

test("sys.ping is answered with sys.pong and its t", async () => {
  const { client, socket } = await ready();
  socket.deliver("sys.ping", { t: 1234 });
  assert.deepEqual(socket.sent.at(-1).p, { t: 1234 });
  assert.equal(socket.sent.at(-1).e, "sys.pong");
  client.close();
});

test("sends wait for the session, in order; a full queue refuses the oldest", async () => {
  const errors = [];
  const client = connect("ws://test/ws", { maxQueue: 2, onError: (e) => errors.push(e) });
  client.send("a");
  const b = client.request("b");
  client.send("c"); // the queue holds 2: "a" is refused
  client.send("d"); // and then the request "b"
  await assert.rejects(b, { code: "queue_full" });
  assert.deepEqual(errors.map((e) => e.code), ["queue_full"]);
  await tick();
  const socket = last();
  assert.deepEqual(socket.sent, [], "nothing before sys.session.created");
  socket.deliver("sys.session.created", { sessionId: "s1", userId: null });
  assert.deepEqual(socket.events(), ["c", "d"]);
  client.close();
});

test("without a resumeSecret a reconnect starts a new session", async () => {
  const { client, log, socket } = await ready();
  const answer = client.request("room.join", { room: "lobby" });
  socket.drop();
  await assert.rejects(answer, { code: "disconnected" });
  client.send("queued");
  await tick(20);
  const second = last();
  assert.notEqual(second, socket);
  second.deliver("sys.session.created", { sessionId: "s2", userId: null });
  assert.deepEqual(second.events(), ["queued"], "no sys.reconnect.request");
  assert.deepEqual(log.sessions.map((s) => [s.sessionId, s.reconnect, s.resumed]), [
    ["s1", false, false],
    ["s2", true, false],
  ]);
  assert.deepEqual(log.status, ["connecting", "open", "reconnecting", "open"]);
  client.close();
  assert.equal(log.status.at(-1), "closed");
});

test("with a resumeSecret: each s once, sys.ack every 32, resume first after a reconnect", async () => {
  const secret = { sessionId: "s1", userId: "u", resumeSecret: "k".repeat(32) };
  const { client, log, socket } = await ready({}, secret);
  const seen = [];
  client.on("chat.message", (p) => seen.push(p.n));
  for (let s = 1; s <= 40; s++) socket.deliver("chat.message", { n: s }, { s });
  socket.deliver("chat.message", { n: 40 }, { s: 40 }); // a duplicate
  assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => i + 1));
  assert.deepEqual(socket.sent.filter((m) => m.e === "sys.ack").map((m) => m.p), [{ s: 32 }]);

  // A request in flight survives the drop: its answer is replayed after the resume.
  const answer = client.request("rooms.list");
  const c = socket.sent.at(-1).c;
  socket.drop();
  client.send("while away");
  await tick(20);
  const second = last();
  second.deliver("sys.session.created", { sessionId: "s2", userId: null, resumeSecret: "x" });
  assert.deepEqual(second.sent.map((m) => [m.e, m.p]), [
    ["sys.reconnect.request", { sessionId: "s1", resumeSecret: secret.resumeSecret, lastSeq: 40 }],
  ]);
  const request = second.sent[0];
  second.deliver("sys.session.restored", { sessionId: "s1", userId: "u", rooms: ["lobby"], lastSeq: 40, replayed: 3 }, { c: request.c });
  assert.deepEqual(second.events().slice(1), ["while away"], "queued sends after the resume");
  second.deliver("chat.message", { n: 40 }, { s: 40 });
  second.deliver("rooms.list.response", { rooms: [] }, { s: 41, c });
  second.deliver("chat.message", { n: 42 }, { s: 42 });
  assert.deepEqual(await answer, { rooms: [] });
  assert.deepEqual(seen.slice(40), [42]);
  assert.deepEqual(log.sessions.at(-1), { sessionId: "s1", userId: "u", reconnect: true, resumed: true });

  // A refused resume: the new connection's own session, numbered from 1 again.
  second.drop();
  await tick(20);
  const third = last();
  third.deliver("sys.session.created", { sessionId: "s3", userId: null, resumeSecret: "y" });
  assert.equal(third.sent[0].p.lastSeq, 42);
  third.deliver("sys.error", { code: 1006, message: "Session expired" }, { c: third.sent[0].c });
  assert.deepEqual(log.sessions.at(-1), { sessionId: "s3", userId: null, reconnect: true, resumed: false });
  assert.equal(log.errors.at(-1).code, 1006);
  third.deliver("chat.message", { n: 1 }, { s: 1 });
  assert.equal(seen.at(-1), 1);
  client.close();
});
