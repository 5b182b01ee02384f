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
//   node bench/loadgen.mjs fanout --url ... --members 1000 --burst 20 --bursts 5
//     <members> clients join one room; a publisher client (not a member)
//     asks the server for a burst of <burst> room messages (`bench_publish`),
//     waits until every member has every message, and repeats (one warm-up
//     burst, then <bursts> measured between MEASURE_START and MEASURE_END).
//     Per burst: time from the request to the first member's first message
//     and to the last member's last one (medians over bursts); deliveries/s =
//     members * burst * bursts / the bursts' summed times.
//   node bench/loadgen.mjs connect --url ... --clients 500
//     <clients> clients connect at once over WebSocket (MEASURE_START before,
//     MEASURE_END once each has its auth_success), then all disconnect.
//   node bench/loadgen.mjs churn --url ... --clients 5000 --wave 500
//     Waves of <wave> clients connect at once, each sends one test_route and
//     joins one of 50 rooms, then all leave; after the last wave it waits
//     until the server reports no connection but its own (`bench_stats`)
//     and prints one JSON line. The runner reads the server's RSS then.
//
// Every loop is bounded by a deadline; connection errors exit non-zero.

import { io } from "socket.io-client";
import { uuid7 } from "./uuid7.mjs";  // every request id is new: the server takes its normal path (recall miss, remember)

const DEFAULTS = {
  url: "http://127.0.0.1:3000", path: "/shotx/", token: "valid", clients: 1,
  warmup: 1, duration: 3, room: "live", rooms: 1, expect: 1, timeout: 60,
  members: 100, burst: 20, bursts: 5, wave: 500,
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

// Resolves at ``ready``: Socket.IO's "connect", or "auth_success" for connected in
// Shotx's sense (the server sends it right after CONNECT).
function connect(options, ready = "connect") {
  const socket = io(options.url, {
    path: options.path, auth: { token: options.token }, transports: ["websocket"],
    reconnection: false, forceNew: true, timeout: options.timeout * 1000,
  });
  return new Promise((resolve, reject) => {
    socket.once(ready, () => resolve(socket));
    socket.once("connect_error", (error) => reject(error));
  });
}

async function request(socket, type, data) {
  const reply = await socket.emitWithAck("message", { meta: { type, id: uuid7() }, data });
  if (!reply || !reply.meta || reply.meta.success !== true) throw new Error(`${type} failed: ${JSON.stringify(reply)}`);
  return reply.data;
}

// Connects in batches of at most <wave> at once: a thousand handshakes in one
// go would measure the listen queue, not the server.
async function connectMany(options, count) {
  const sockets = [];
  while (sockets.length < count) {
    const batch = Math.min(options.wave, count - sockets.length);
    sockets.push(...await Promise.all(Array.from({ length: batch }, () => connect(options, "auth_success"))));
  }
  return sockets;
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

// One burst: resolves with {firstMs, lastMs} once every member has <burst> messages.
function burstWatch(members, burst, stats) {
  const started = performance.now();
  let first = null;
  let pending = members.length * burst;
  return new Promise((resolve) => {
    stats.onMessage = (member, message) => {
      const offset = message.meta.offset;
      if (!(offset > member.lastOffset)) stats.errors++;
      member.lastOffset = offset;
      const now = performance.now();
      if (first === null) first = now;
      if (--pending === 0) resolve({ firstMs: first - started, lastMs: now - started });
    };
  });
}

async function runFanout(options) {
  const room = `fan-${uuid7()}`;
  const sockets = await connectMany(options, options.members);
  const stats = { errors: 0, onMessage: null };
  const members = sockets.map((socket) => ({ socket, lastOffset: 0 }));
  for (const member of members) {
    member.socket.on("message", (message) => {
      if (message && message.meta && message.meta.room === room) stats.onMessage(member, message);
    });
  }
  await Promise.all(members.map((member) => request(member.socket, "sx_join", { room })));
  const publisher = await connect(options, "auth_success");
  const deadline = setTimeout(() => { console.error("fanout: deadline passed"); process.exit(1); },
    options.timeout * 1000);
  const bursts = [];
  let cpuAtStart = null;
  for (let i = 0; i <= options.bursts; i++) {
    if (i === 1) { console.log("MEASURE_START"); cpuAtStart = process.cpuUsage(); }
    const delivered = burstWatch(members, options.burst, stats);
    const [times] = await Promise.all([delivered, request(publisher, "bench_publish", { room, count: options.burst })]);
    if (i > 0) bursts.push(times);
  }
  console.log("MEASURE_END");
  const cpu = process.cpuUsage(cpuAtStart);
  clearTimeout(deadline);
  [publisher, ...sockets].forEach((socket) => socket.disconnect());
  const median = (values) => percentile([...values].sort((a, b) => a - b), 50);
  const deliveries = options.members * options.burst;
  console.log(JSON.stringify({
    members: options.members, burst: options.burst, bursts: bursts.length, deliveries: deliveries * bursts.length,
    errors: stats.errors, first_ms: median(bursts.map((b) => b.firstMs)), last_ms: median(bursts.map((b) => b.lastMs)),
    // over all measured bursts (total deliveries / total burst time), as the server CPU is counted
    deliveries_per_s: (deliveries * bursts.length) / (bursts.reduce((sum, b) => sum + b.lastMs, 0) / 1000),
    loadgen_cpu_s: (cpu.user + cpu.system) / 1e6,
  }));
}

async function runConnect(options) {
  console.log("MEASURE_START");
  const started = performance.now();
  const times = [];
  const sockets = await Promise.all(Array.from({ length: options.clients }, () => connect(options, "auth_success")
    .then((socket) => { times.push(performance.now() - started); return socket; })));
  console.log("MEASURE_END");
  const allMs = performance.now() - started;
  sockets.forEach((socket) => socket.disconnect());
  const sorted = times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    clients: options.clients, all_ms: allMs, p50_ms: percentile(sorted, 50), p99_ms: percentile(sorted, 99),
  }));
}

// Waits (bounded) until the server holds no connection but <socket>'s: the closes it was sent are handled.
async function settled(socket, deadlineMs) {
  for (;;) {
    const { sockets } = await request(socket, "bench_stats", {});
    if (sockets <= 1) return;
    if (performance.now() > deadlineMs) throw new Error(`server still holds ${sockets} connections`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function runChurn(options) {
  const started = performance.now();
  let done = 0;
  while (done < options.clients) {
    const wave = await connectMany({ ...options, wave: Math.min(options.wave, options.clients - done) },
      Math.min(options.wave, options.clients - done));
    await Promise.all(wave.map((socket, i) => request(socket, "test_route", { n: done + i, text: "hello" })
      .then(() => request(socket, "sx_join", { room: `churn-${(done + i) % 50}` }))));
    wave.forEach((socket) => socket.disconnect());
    done += wave.length;
  }
  const probe = await connect(options, "auth_success");
  await settled(probe, performance.now() + options.timeout * 1000);
  probe.disconnect();
  console.log(JSON.stringify({ clients: done, wave: options.wave, elapsed_s: (performance.now() - started) / 1000 }));
}

const MODES = { ack: runAck, member: runMember, fanout: runFanout, connect: runConnect, churn: runChurn };
const options = parseArgs(process.argv.slice(2));
const run = MODES[options.mode];
if (!run) {
  console.error(`usage: node loadgen.mjs ${Object.keys(MODES).join("|")} [--url URL] [--clients N] ...`);
  process.exit(2);
}
// A connect_error from the transport carries the socket-level cause (ECONNRESET, ...) in `description`.
function explain(error) {
  const cause = error && error.description;
  const detail = cause && (cause.message || cause.error?.message || cause.code);
  return detail ? `${error} (${detail})` : String(error);
}

run(options).then(() => process.exit(0), (error) => { console.error(explain(error)); process.exit(1); });
