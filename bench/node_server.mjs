// The Node reference for the Shotx benchmark: socket.io 4.8 speaking the Shotx protocol.
//
// Why it exists: the original Shotx server is a thin layer over socket.io
// (its own cost is small), so "as fast as Node" is measured against this:
// the same wire protocol as our server (README "Wire protocol"), on Node's
// socket.io with its defaults (engine.io declines permessage-deflate), and
// no more work than the protocol needs. It keeps no log: a room message is
// numbered and broadcast, as the original does for a room with members.
//
//   node bench/node_server.mjs [--port 0]
//     Binds 127.0.0.1, prints "READY <port>" once it accepts connections.
//
// Protocol: handshake `auth: {token}` ("valid" passes; none -> AUTH_NULL,
// another -> AUTH_FAIL as `connect_error`), then `auth_success` with the auth
// data. Event `message` `{meta: {type, id}, data}` acked with
// `{meta: {success: true}, data}` or `{meta: {success: false, code, error}, data: null}`:
//   test_route     -> {status: "ok", data, auth}
//   sx_join {room} -> joins, answers like ours: {room, since, head, replayed, missed, after, until, epoch}
//   sx_leave {room} -> leaves, {room}
//   bench_publish {room, count} -> broadcasts `count` room messages
//                  `{meta: {type: "notification", id, room, offset}, data: {message, n}}`, then {room, sent, head}
//   bench_stats    -> {sockets: <open Engine.IO connections>} (the memory scenario waits for 1: its own)

import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { uuid7 } from "./uuid7.mjs";
import { Server } from "socket.io";

const VALID_TOKEN = "valid";
const AUTH = { user_id: "bench" };
const EPOCH = randomBytes(8).toString("hex");

class Refusal extends Error {}

function roomOf(data) {
  const room = data && data.room;
  if (typeof room !== "string" || room.length === 0 || room.length > 256) throw new Refusal("Invalid room");
  return room;
}

function routes(io, heads) {
  return {
    test_route: (socket, data) => ({ status: "ok", data, auth: socket.data.auth }),
    sx_join: (socket, data) => {
      const room = roomOf(data);
      socket.join(room);
      const head = heads.get(room) ?? 0;
      return { room, since: null, head, replayed: 0, missed: 0, after: head, until: head, epoch: EPOCH };
    },
    sx_leave: (socket, data) => {
      const room = roomOf(data);
      socket.leave(room);
      return { room };
    },
    bench_publish: (socket, data) => {
      const room = roomOf(data);
      const count = Number.isInteger(data.count) && data.count > 0 ? data.count : 1;
      let head = heads.get(room) ?? 0;
      for (let n = 0; n < count; n++) {
        head += 1;
        io.to(room).emit("message", {
          meta: { type: "notification", id: uuid7(), room, offset: head },
          data: { message: "Hello from server!", n },
        });
      }
      heads.set(room, head);
      return { room, sent: count, head };
    },
    bench_stats: () => ({ sockets: io.engine.clientsCount }),
  };
}

function failure(code, error) {
  return { meta: { success: false, code, error }, data: null };
}

async function answer(handlers, socket, message) {
  if (!message || typeof message !== "object" || Array.isArray(message)) return failure(2001, "Invalid message format");
  const { meta, data } = message;
  if (!meta || typeof meta.type !== "string") return failure(2002, "Invalid message type");
  const handler = handlers[meta.type];
  if (!handler) return failure(2003, `Unknown message type: ${meta.type}`);
  try {
    return { meta: { success: true }, data: await handler(socket, data) };
  } catch (error) {
    return failure(2004, error.message || "Error processing message");
  }
}

function attach(httpServer) {
  const io = new Server(httpServer, {
    path: "/shotx/", cors: { origin: "*", methods: ["GET", "POST"] }, maxHttpBufferSize: 2 * 1024 * 1024,
  });
  io.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (!token) return next(new Error("AUTH_NULL"));
    if (token !== VALID_TOKEN) return next(new Error("AUTH_FAIL"));
    socket.data.auth = { ...AUTH };
    return next();
  });
  const handlers = routes(io, new Map());
  io.on("connection", (socket) => {
    socket.emit("auth_success", socket.data.auth);
    socket.on("message", async (message, callback) => {
      const reply = await answer(handlers, socket, message);
      if (typeof callback === "function") callback(reply);
    });
  });
  return io;
}

const portIndex = process.argv.indexOf("--port");
const port = portIndex > 0 ? Number(process.argv[portIndex + 1]) : 0;
const httpServer = createServer();
attach(httpServer);
httpServer.listen({ port, host: "127.0.0.1", backlog: 1024 }, () => {
  console.log(`READY ${httpServer.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
