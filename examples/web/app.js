// The chat page: rooms, a message log per room, and the connection's status, on the
// websocket_core JSON protocol through wscore.js. Served by `cargo run --example web_chat`.
//
// The WebSocket endpoint is the page's own host, the port given as `?ws=PORT` (9004, the
// example's default, without it), and the path /ws: http://127.0.0.1:8080/?ws=9004 talks
// to ws://127.0.0.1:9004/ws. `?ws=` may also be a whole ws:// or wss:// URL.

import { connect } from "./wscore.js";

const LOBBY = "lobby";
const $ = (id) => document.getElementById(id);

function endpoint() {
  const ws = new URLSearchParams(location.search).get("ws") ?? "9004";
  if (/^wss?:\/\//.test(ws)) return ws;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname}:${ws}/ws`;
}

const state = {
  current: LOBBY, // the room shown
  joined: new Set(), // rooms the server has us in
  logs: new Map(), // room -> [entry]
  counts: new Map(), // room -> members, as last heard
};

// ---- the connection ----

const client = connect(endpoint(), {
  onStatus: showStatus,
  onSession: async ({ reconnect, resumed }) => {
    if (reconnect) {
      notice(resumed ? "reconnected (session resumed)" : "reconnected (new session)");
    }
    if (resumed) return; // the server kept our rooms
    // A new session is in no room: (re)join the ones we were in, the shown one first.
    const shown = state.current;
    const rooms = [shown, ...state.joined].filter((r, i, all) => all.indexOf(r) === i);
    state.joined.clear();
    for (const room of rooms) await join(room, { quiet: reconnect });
    show(shown);
  },
  onError: (error) => showError(error),
});

client.on("chat.message", ({ room, name, text, at }) => {
  addEntry(room, { name, text, at, mine: name === myName() });
});

// For a look from the browser's console: `chat.client`, `chat.state`.
window.chat = { client, state };

// ---- actions ----

async function join(room, { quiet = false } = {}) {
  try {
    const joined = await client.request("room.join", { room });
    state.joined.add(joined.room);
    state.counts.set(joined.room, joined.members);
    if (!quiet) {
      const others = joined.members - 1;
      const who = others === 0 ? "nobody else here yet" : `${others} other${others === 1 ? "" : "s"} here`;
      addEntry(joined.room, { system: `you joined #${joined.room} (${who})` });
      show(joined.room);
    }
    await refreshRooms();
  } catch (error) {
    showError(error);
  }
}

async function leave(room) {
  try {
    await client.request("room.leave", { room });
    state.joined.delete(room);
    state.logs.delete(room);
    if (state.current === room) show([...state.joined][0] ?? LOBBY);
    await refreshRooms();
  } catch (error) {
    showError(error);
  }
}

async function say(text) {
  showError(null);
  try {
    await client.request("chat.send", { room: state.current, text, name: myName() });
    return true;
  } catch (error) {
    showError(error);
    return false;
  }
}

async function refreshRooms() {
  try {
    const { rooms } = await client.request("rooms.list");
    for (const { room, members } of rooms) state.counts.set(room, members);
    renderRooms(rooms.map((r) => r.room));
  } catch (error) {
    showError(error);
  }
}

// ---- rendering (textContent only: nothing a user typed is ever parsed as HTML) ----

function showStatus(status) {
  const badge = $("status");
  badge.textContent = status;
  badge.dataset.status = status;
}

function notice(text) {
  $("notice").textContent = text;
  addEntry(state.current, { system: text });
}

function showError(error) {
  if (!error) {
    $("error").textContent = "";
    return;
  }
  const reasons = (error.details?.errors ?? []).map((e) => e.reason).filter(Boolean);
  const why = reasons.length ? ` (${reasons.join(", ")})` : "";
  $("error").textContent = `${error.code}: ${error.message}${why}`;
}

function show(room) {
  state.current = room;
  $("room-title").textContent = `#${room}`;
  renderLog();
  renderRooms();
}

function addEntry(room, entry) {
  if (!state.logs.has(room)) state.logs.set(room, []);
  const log = state.logs.get(room);
  log.push(entry);
  if (log.length > 500) log.shift();
  if (room === state.current) appendEntry(entry);
}

function renderLog() {
  $("log").replaceChildren();
  for (const entry of state.logs.get(state.current) ?? []) appendEntry(entry);
}

function appendEntry(entry) {
  const li = document.createElement("li");
  if (entry.system) {
    li.className = "system";
    li.textContent = entry.system;
  } else {
    if (entry.mine) li.className = "mine";
    const time = document.createElement("time");
    const at = new Date(entry.at);
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = entry.name;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = entry.text;
    li.append(time, who, text);
  }
  const log = $("log");
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

let listed = [];
function renderRooms(rooms = listed) {
  listed = rooms;
  const all = [...new Set([...state.joined, ...rooms])].sort();
  $("rooms").replaceChildren(
    ...all.map((room) => {
      const li = document.createElement("li");
      if (room === state.current) li.className = "current";
      const button = document.createElement("button");
      button.type = "button";
      const label = document.createElement("span");
      label.textContent = `#${room}${state.joined.has(room) ? "" : " (join)"}`;
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = state.counts.get(room) ?? "";
      button.append(label, count);
      button.onclick = () => (state.joined.has(room) ? show(room) : join(room));
      li.append(button);
      return li;
    }),
  );
}

function myName() {
  return $("name").value.trim();
}

// ---- wiring ----

$("name").value = localStorage.getItem("chat.name") ?? "";
$("name").addEventListener("change", () => localStorage.setItem("chat.name", myName()));

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("room-input").value.trim();
  if (!room) return;
  $("room-input").value = "";
  join(room);
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("text");
  // Sent as typed, empty included: the server checks it (and the page shows its answer).
  // The box is cleared at once, so a line typed while this one is on its way is neither
  // wiped by this one's answer nor sent twice; a refused line comes back if the box is
  // still empty.
  const text = input.value;
  input.value = "";
  if (!(await say(text)) && input.value === "") input.value = text;
  input.focus();
});

$("leave").addEventListener("click", () => leave(state.current));
$("refresh").addEventListener("click", refreshRooms);

show(LOBBY);
