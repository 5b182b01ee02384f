// A JavaScript peer speaking the Shotx protocol with the npm socket.io-client,
// as the original Shotx client does. It prints one JSON object with what it saw.
const { io } = require("socket.io-client");

const url = process.argv[2];
const transport = process.argv[3] || "websocket"; // "polling": long-polling only, no upgrade
const opts = (token) => ({ path: "/shotx/", auth: token === undefined ? {} : { token },
  reconnection: false, transports: [transport], forceNew: true });

function refusal(token) {
  return new Promise((resolve) => {
    const s = io(url, opts(token));
    s.on("connect_error", (err) => { s.close(); resolve(err.message); });
    s.on("connect", () => { s.close(); resolve("CONNECTED"); });
  });
}

async function main() {
  const out = {};
  const socket = io(url, opts("valid"));
  out.auth = await new Promise((resolve, reject) => {
    socket.on("auth_success", resolve);
    socket.on("connect_error", (e) => reject(e));
  });
  const ask = (payload) => socket.timeout(5000).emitWithAck("message", payload);
  const id = "0190b6c0-0000-7000-8000-00000000abcd";
  out.ok = await ask({ meta: { type: "test_route", id }, data: { n: 1 } });
  out.unknown = await ask({ meta: { type: "missing_route", id: "x1" }, data: {} });
  out.raises = await ask({ meta: { type: "error_route", id: "x2" }, data: {} });
  out.notObject = await ask("text");
  out.noType = await ask({ meta: {}, data: 1 });
  const room = [];
  socket.on("message", (m) => room.push(m));
  out.join = await ask({ meta: { type: "sx_join", id: "j1" }, data: { room: "user-room" } });
  await ask({ meta: { type: "publish_live", id: "p1" }, data: { n: 3 } });
  await new Promise((r) => setTimeout(r, 200));
  out.room = room.slice();
  out.leave = await ask({ meta: { type: "sx_leave", id: "l1" }, data: { room: "user-room" } });
  // The original's room demo registers its handler after `await join()`: the backlog follows the answer.
  const late = [];
  out.lateJoin = await ask({ meta: { type: "sx_join", id: "j2" }, data: { room: "late-room" } });
  socket.on("message", (m) => { if (m.meta.room === "late-room") late.push(m.data.n); });
  await new Promise((r) => setTimeout(r, 200));
  out.late = late;
  socket.close();
  out.badToken = await refusal("invalid");
  out.noToken = await refusal(undefined);
  out.throws = await refusal("throws");
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
