// Shotx JavaScript peers as a page makes them: npm socket.io-client with its default
// transports (long-polling first, then the upgrade to WebSocket), several in one Node
// process. Each joins the demo room and publishes once; prints what each saw as one JSON object.
const { io } = require("socket.io-client");

const [url, count] = [process.argv[2], Number(process.argv[3])];

function peer(index) {
  const socket = io(url, { path: "/shotx/", auth: { token: "valid" }, reconnection: false, forceNew: true });
  const seen = { index, sids: [], transports: [], offsets: [] };
  socket.on("message", (m) => seen.offsets.push(m.meta.offset));
  socket.io.on("open", () => {  // the Engine.IO handshake: the first transport, then its upgrade
    seen.transports.push(socket.io.engine.transport.name);
    socket.io.engine.on("upgrade", (t) => seen.transports.push(t.name));
  });
  return new Promise((resolve, reject) => {
    socket.on("connect_error", reject);
    socket.on("auth_success", () => {
      seen.sids.push(socket.io.engine.id);
      resolve({ socket, seen });
    });
  });
}

const ask = (socket, type, data) =>
  socket.timeout(10000).emitWithAck("message", { meta: { type, id: `${type}-${Math.random()}` }, data });

async function main() {
  const peers = [];
  for (let i = 0; i < count; i++) peers.push(await peer(i));  // one after another: round-robin
  for (const { socket } of peers) await ask(socket, "sx_join", { room: "user-room" });
  for (const { socket, seen } of peers) await ask(socket, "publish", { from: seen.index });
  const deadline = Date.now() + 15000;
  while (peers.some(({ seen }) => seen.offsets.length < count) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const { socket, seen } of peers) {
    seen.echo = await ask(socket, "test_route", { from: seen.index });
    seen.transportAtEnd = socket.io.engine.transport.name;
    socket.close();
  }
  console.log(JSON.stringify(peers.map(({ seen }) => seen)));
}

main().catch((error) => { console.error(error); process.exit(1); });
