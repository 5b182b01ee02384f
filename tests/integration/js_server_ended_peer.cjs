// A socket.io-client whose connection the server ends: it sends a frame the server
// cannot answer (no ack id), then reports why it was disconnected and how long it
// took to be connected again. Prints one JSON object.
const { io } = require("socket.io-client");

const url = process.argv[2];
const transports = (process.argv[3] || "websocket").split(","); // "polling,websocket": upgrade first
const socket = io(url, { path: "/shotx/", auth: { token: "valid" }, transports,
  reconnectionDelay: 50, reconnectionDelayMax: 50, forceNew: true });
let sent = 0;
let reason = null;
let connects = 0;
socket.on("connect", () => {
  connects += 1;
  if (connects === 1) {
    const end = () => {
      sent = Date.now();
      socket.io.engine.write("2not json"); // Engine.IO message "42not json": unanswerable
    };
    const engine = socket.io.engine;
    if (transports.length > 1 && engine.transport.name !== "websocket") engine.once("upgrade", end);
    else end();
  } else {
    console.log(JSON.stringify({ reason, reconnectedMs: Date.now() - sent }));
    socket.close();
    process.exit(0);
  }
});
socket.on("disconnect", (why) => { reason = reason || why; });
setTimeout(() => { // 45 s would pass before the ping timeout ends it: give up sooner
  console.log(JSON.stringify({ reason, reconnectedMs: null })); process.exit(0); }, 20000);
