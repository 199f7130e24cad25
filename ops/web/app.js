// The ops page: polls /ops/summary.json (aggregates, no token) and, once signed in with a
// viewer token (kept in sessionStorage), reads leads and threads from the /v1 API.
// Every value goes into the page as text (textContent / SVG text), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const pollMs = Math.min(2000, Number(document.body.dataset.pollMs) || 1000);
const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmtDuration(s) {
  const m = Math.floor(s / 60), r = Math.floor(s % 60);
  return `${m}:${String(r).padStart(2, "0")}`;
}

function renderCalls(live) {
  $("active-calls").textContent = String(live.count);
  const body = $("calls").tBodies[0];
  body.replaceChildren(...live.calls.map((c) => {
    const tr = el("tr");
    for (const v of [c.call_sid.slice(0, 10) + "…", c.direction, fmtDuration(c.duration_s),
      c.brain, c.state]) tr.append(el("td", {}, v));
    return tr;
  }));
}

function renderHealth(status, h) {
  const badge = $("status");
  badge.textContent = status;
  badge.className = "status " + status;
  const rows = [
    ["Redis", h.redis.configured ? (h.redis.connected ? "connected" : "down (memory fallback)")
      : "not configured (memory)", !h.redis.configured || h.redis.connected],
    ["Database", `${h.database.backend || "?"} ${h.database.open ? "open" : "closed"}`,
      !!h.database.open],
    ["Brain", `${h.brain.kind}, breaker ${h.brain.breaker}`, h.brain.breaker !== "open"],
    ["Dialer", h.dialer.enabled ? "on" : "off", true],
    ["Config reload", h.config.lastReload === null ? "none yet"
      : (h.config.lastReload.ok ? `ok at ${h.config.lastReload.at}`
        : `failed: ${h.config.lastReload.error}`),
      h.config.lastReload === null || h.config.lastReload.ok],
  ];
  $("health").replaceChildren(...rows.flatMap(([k, v, good]) =>
    [el("dt", {}, k), el("dd", { class: good ? "good" : "warn" }, v)]));
}

function barChart(values, labels, { width = 300, height = 120, cls = "bar" } = {}) {
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height + 30}`, role: "img" });
  const max = Math.max(1, ...values);
  const n = Math.max(1, values.length);
  const w = width / n;
  svg.append(el("svg:line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }));
  values.forEach((v, i) => {
    const h = (v / max) * (height - 14);
    const bar = el("svg:rect", { x: i * w + 2, y: height - h, width: Math.max(1, w - 4),
      height: h, class: cls });
    bar.append(el("svg:title", {}, `${labels[i]}: ${v}`));
    svg.append(bar);
    if (v > 0) svg.append(el("svg:text", { x: i * w + w / 2, y: height - h - 2,
      "text-anchor": "middle" }, String(Math.round(v))));
    if (n <= 12 || i % Math.ceil(n / 8) === 0) {
      svg.append(el("svg:text", { x: i * w + w / 2, y: height + 14, "text-anchor": "middle" },
        labels[i]));
    }
  });
  return svg;
}

function renderLatency(plots) {
  $("latency").replaceChildren(...plots.map((p) => {
    const box = el("div", { class: "plot", "data-metric": p.name });
    const mean = p.mean_s === null ? "no samples yet" : `mean ${(p.mean_s * 1000).toFixed(0)} ms`;
    box.append(el("h3", {}, `${p.title} — ${p.count} samples, ${mean} (buckets in ms)`));
    const labels = p.buckets.map((b) => b.le === null ? "+inf" : `${Math.round(b.le * 1000)}`);
    box.append(barChart(p.buckets.map((b) => b.count), labels));
    return box;
  }));
}

function renderFunnels(funnels) {
  if (!funnels.length) {
    $("funnel").replaceChildren(el("p", { class: "muted" }, "no campaigns yet"));
    return;
  }
  $("funnel").replaceChildren(...funnels.map((f) => {
    const box = el("div", { class: "plot", "data-campaign": f.name });
    box.append(el("h3", {}, `${f.name}${f.paused ? " (paused)" : ""} — ${f.enrolled} enrolled`));
    const stages = ["enrolled", "contacted", "replied", "interested", "booked"];
    box.append(barChart(stages.map((s) => f[s]), stages,
      { width: 1000, height: 100, cls: "funnel-bar" }));
    return box;
  }));
}

async function poll() {
  try {
    const r = await fetch("/ops/summary.json", { cache: "no-store" });
    if (r.ok) {
      const s = await r.json();
      renderCalls(s.live);
      renderHealth(s.status, s.health);
      renderLatency(s.latency);
      renderFunnels(s.funnels);
      $("updated").textContent = "updated " + new Date(s.at * 1000).toLocaleTimeString();
    }
  } catch (e) {
    $("updated").textContent = "server unreachable";
  }
  setTimeout(poll, pollMs);
}

// --- signed-in part: anything with a phone number, a name or a transcript ----------

const token = () => sessionStorage.getItem("leadline.token");

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  if (r.status === 401) { signOut(); throw new Error("token refused"); }
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function name(lead) {
  return [lead.first_name, lead.last_name].filter(Boolean).join(" ") || "(no name)";
}

async function showThread(lead, li) {
  for (const other of $("leads").children) other.classList.remove("sel");
  li.classList.add("sel");
  const t = await api("/v1/leads/" + encodeURIComponent(lead.phone) + "/thread");
  $("thread").replaceChildren(...(t.items.length ? t.items.map((m) => {
    const b = el("div", { class: "bubble " + (m.role === "lead" ? "lead" : "agent") });
    const meta = el("span", { class: "meta" },
      `${m.channel} · ${m.role} · ${new Date(m.at).toLocaleString()}`);
    if (m.intent) meta.append(el("span", { class: "intent" }, m.intent));
    b.append(meta, document.createTextNode(m.text));
    return b;
  }) : [el("p", { class: "muted" }, "no messages or calls yet")]));
}

async function loadLeads() {
  const page = await api("/v1/leads?limit=200");
  $("leads").replaceChildren(...page.items.map((lead) => {
    const li = el("li", { "data-phone": lead.phone }, name(lead));
    li.append(el("span", { class: "phone" }, `${lead.phone} · ${lead.status}`));
    li.addEventListener("click", () => showThread(lead, li).catch(console.warn));
    return li;
  }));
}

function signedIn() {
  $("conv-locked").hidden = true;
  $("conv").hidden = false;
  $("logout").hidden = false;
  $("token").hidden = true;
  $("signin").hidden = true;
  loadLeads().catch((e) => console.warn(String(e)));
}

function signOut() {
  sessionStorage.removeItem("leadline.token");
  $("conv").hidden = true;
  $("conv-locked").hidden = false;
  $("logout").hidden = true;
  $("token").hidden = false;
  $("signin").hidden = false;
  $("leads").replaceChildren();
  $("thread").replaceChildren();
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem("leadline.token", value);
  $("token").value = "";
  signedIn();
});
$("logout").addEventListener("click", signOut);

if (token()) signedIn();
poll();
