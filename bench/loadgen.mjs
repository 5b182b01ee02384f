// Load generator for the Shotx benchmark: the reference JS socket.io-client.
//
// Why Node: the generator shares this 2-core machine with the server under
// test, so it must cost little per round trip; socket.io-client on Node costs
// a fraction of what a python-socketio AsyncClient would.
//
//   node bench/loadgen.mjs ack --url http://127.0.0.1:PORT --clients 10 --warmup 1 --duration 3
//     Each client: send a Shotx request, await its ack, repeat. Prints
//     "MEASURE_START" and "MEASURE_END" on stdout when the measured window
//     opens and closes (the runner samples the server's CPU time then), then
//     one JSON line of results.
//   node bench/loadgen.mjs member --url ... --room live --expect 20000 [--rooms N]
//     One client joins a room (or N rooms live-0 .. live-<N-1>), prints
//     "JOINED", and prints "DONE <n>" once it has received <expect> room
//     messages in all (the in-process room bench waits for that, so its CPU
//     time includes delivering every message).
//
// Every loop is bounded by a deadline; connection errors exit non-zero.

import { io } from "socket.io-client";
import { randomBytes } from "node:crypto";

const DEFAULTS = {
  url: "http://127.0.0.1:3000", path: "/shotx/", token: "valid", clients: 1,
  warmup: 1, duration: 3, room: "live", rooms: 1, expect: 1, timeout: 60,
};

function parseArgs(argv) {
  const options = { ...DEFAULTS, mode: argv[0] };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in DEFAULTS)) throw new Error(`unknown option ${argv[i]}`);
    options[key] = typeof DEFAULTS[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return options;
}

// A UUIDv7 like the Shotx client makes: every request id is new, so the
// server's idempotency layer takes its normal path (recall miss, remember).
function uuid7() {
  const bytes = randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function connect(options) {
  const socket = io(options.url, {
    path: options.path, auth: { token: options.token }, transports: ["websocket"],
    reconnection: false, forceNew: true, timeout: options.timeout * 1000,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => reject(error));
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function clientLoop(socket, clock, stats) {
  let n = 0;
  while (performance.now() < clock.end) {
    const started = performance.now();
    const reply = await socket.emitWithAck("message", {
      meta: { type: "test_route", id: uuid7() }, data: { n: n++, text: "hello" },
    });
    const done = performance.now();
    if (!reply || !reply.meta || reply.meta.success !== true) stats.errors++;
    if (done >= clock.start && done <= clock.end) stats.latencies.push(done - started);
  }
}

async function runAck(options) {
  const sockets = await Promise.all(Array.from({ length: options.clients }, () => connect(options)));
  const now = performance.now();
  const clock = { start: now + options.warmup * 1000, end: now + (options.warmup + options.duration) * 1000 };
  const stats = { latencies: [], errors: 0 };
  let cpuAtStart = null;
  const startTimer = setTimeout(() => { cpuAtStart = process.cpuUsage(); console.log("MEASURE_START"); },
    clock.start - now);
  const loops = sockets.map((socket) => clientLoop(socket, clock, stats));
  await new Promise((resolve) => setTimeout(resolve, clock.end - performance.now()));
  console.log("MEASURE_END");
  const cpu = process.cpuUsage(cpuAtStart ?? undefined);
  await Promise.all(loops);
  clearTimeout(startTimer);
  sockets.forEach((socket) => socket.disconnect());
  const sorted = stats.latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({
    clients: options.clients, window_s: options.duration, acks: sorted.length, errors: stats.errors,
    acks_per_s: sorted.length / options.duration, p50_ms: percentile(sorted, 50), p99_ms: percentile(sorted, 99),
    loadgen_cpu_s: (cpu.user + cpu.system) / 1e6,
  }));
}

function roomsOf(options) {
  if (options.rooms <= 1) return [options.room];
  return Array.from({ length: options.rooms }, (_, i) => `${options.room}-${i}`);
}

async function runMember(options) {
  const socket = await connect(options);
  const rooms = new Set(roomsOf(options));
  let received = 0;
  const finished = new Promise((resolve) => {
    socket.on("message", (message) => {
      if (message && message.meta && rooms.has(message.meta.room) && ++received >= options.expect) resolve();
    });
  });
  for (const room of rooms) {
    const reply = await socket.emitWithAck("message", { meta: { type: "sx_join", id: uuid7() }, data: { room } });
    if (!reply || !reply.meta || reply.meta.success !== true) throw new Error(`join failed: ${JSON.stringify(reply)}`);
  }
  console.log("JOINED");
  const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${received} messages`)), options.timeout * 1000).unref());
  await Promise.race([finished, deadline]);
  console.log(`DONE ${received}`);
  socket.disconnect();
}

const options = parseArgs(process.argv.slice(2));
const run = options.mode === "ack" ? runAck : options.mode === "member" ? runMember : null;
if (!run) {
  console.error("usage: node loadgen.mjs ack|member [--url URL] [--clients N] ...");
  process.exit(2);
}
run(options).then(() => process.exit(0), (error) => { console.error(String(error)); process.exit(1); });
