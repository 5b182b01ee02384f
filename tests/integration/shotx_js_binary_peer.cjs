// A JavaScript peer sending a file as the original Shotx client does,
// send(type, buffer): the buffer is the message's data, a Socket.IO binary
// attachment. It prints one JSON object with what it saw.
const crypto = require("crypto");
const { io } = require("socket.io-client");

const url = process.argv[2];
const sha = (bytes) => crypto.createHash("sha256").update(bytes).digest("hex");
const kind = (value) => (Buffer.isBuffer(value) ? "Buffer" : value instanceof ArrayBuffer ? "ArrayBuffer" : typeof value);

async function main() {
  const socket = io(url, { path: "/shotx/", auth: { token: "valid" }, reconnection: false,
    transports: ["websocket"], forceNew: true });
  await new Promise((resolve, reject) => { socket.on("auth_success", resolve); socket.on("connect_error", reject); });
  const file = crypto.randomBytes(1024 * 1024);
  const room = [];
  socket.on("message", (m) => room.push(m));
  const ask = (payload) => socket.timeout(10000).emitWithAck("message", payload);
  const reply = await ask({ meta: { type: "file_route", id: "0190b6c0-0000-7000-8000-0000000b1a55" }, data: file });
  const out = { sent: sha(file), replyKind: kind(reply.data.back), replySha: reply.data.sha,
    backSha: sha(Buffer.from(reply.data.back).reverse()), meta: reply.meta };
  out.join = (await ask({ meta: { type: "sx_join", id: "j1" }, data: { room: "files" } })).meta;
  await ask({ meta: { type: "publish_file", id: "p1" }, data: file });
  while (room.length === 0) await new Promise((r) => setTimeout(r, 10));
  out.roomKind = kind(room[0].data.file);
  out.roomSha = sha(Buffer.from(room[0].data.file));
  out.roomName = room[0].data.name;
  socket.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
