// A sales tool's side of the dialer, as a Node team would write it with BullMQ:
// enqueue "call" jobs, then listen on QueueEvents for their completion or failure.
//
// usage: node producer.mjs '<json spec>'
//   spec: {"redis": "redis://127.0.0.1:6379/15", "queue": "leadline-calls", "prefix": "bull",
//          "timeoutMs": 60000, "jobs": [{"name": "call", "data": {...}, "opts": {...}}]}
// Prints one JSON line per job added ({"added": id, "index": i}) and per outcome
// ({"event": "completed", "jobId", "returnvalue"} / {"event": "failed", "jobId",
// "failedReason"}); exits 0 once every job has finished, 1 on timeout.
import { Queue, QueueEvents } from "bullmq";

const spec = JSON.parse(process.argv[2]);
const url = new URL(spec.redis);
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  db: Number((url.pathname || "/0").slice(1) || 0),
};
const prefix = spec.prefix || "bull";
const queue = new Queue(spec.queue, { connection, prefix });
const events = new QueueEvents(spec.queue, { connection, prefix });
await events.waitUntilReady();

const pending = new Set();
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
let finish;
const allDone = new Promise((resolve) => { finish = resolve; });
const settle = (jobId) => {
  pending.delete(jobId);
  if (pending.size === 0) finish();
};
events.on("completed", ({ jobId, returnvalue }) => {
  if (!pending.has(jobId)) return;
  // QueueEvents carries the returnvalue as the JSON text the worker stored.
  const value = typeof returnvalue === "string" ? JSON.parse(returnvalue) : returnvalue;
  print({ event: "completed", jobId, returnvalue: value });
  settle(jobId);
});
events.on("failed", ({ jobId, failedReason }) => {
  if (!pending.has(jobId)) return;
  print({ event: "failed", jobId, failedReason });
  settle(jobId);
});
events.on("delayed", ({ jobId, delay }) => {
  if (pending.has(jobId)) print({ event: "delayed", jobId, delay: Number(delay) });
});

for (const [index, job] of spec.jobs.entries()) {
  const added = await queue.add(job.name, job.data, job.opts || {});
  pending.add(added.id);
  print({ added: added.id, index });
}
if (pending.size === 0) finish();

const timer = setTimeout(() => {
  print({ event: "timeout", pending: [...pending] });
  process.exit(1);
}, spec.timeoutMs || 60000);
await allDone;
clearTimeout(timer);
await events.close();
await queue.close();
process.exit(0);
