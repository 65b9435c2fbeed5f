// The owner's page: polls /api/dashboard every 2 s and draws it; pause and resume post to
// /api/pause and /api/resume (the server checks the page's cookie and this page's Origin).
// No library, nothing from elsewhere: the Content-Security-Policy allows only this file.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function energy(period) {
  if (!period) return "–";
  const wh = period.wh;
  let out = wh >= 1000 ? `${(wh / 1000).toFixed(2)} kWh` : `${wh.toFixed(1)} Wh`;
  if (period.cost !== undefined) out += ` · ${period.cost.toFixed(2)} ${period.currency}`;
  if (period.co2_g !== undefined) out += ` · ${period.co2_g.toFixed(0)} g CO₂`;
  return out;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return seconds < 90 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function drawState(data) {
  const state = data.state || "converging";
  const badge = $("state");
  badge.textContent = state;
  badge.className = `badge ${state}`;
  let reason = "";
  const holding = (data.conditions || []).filter((c) => c.active);
  if (state === "paused" || state === "yielded") reason = holding.map((c) => c.reason).join("; ");
  else if (state === "degraded") {
    const bad = (data.containers || []).find((c) => c.error);
    reason = bad ? `${bad.name}: ${bad.error}` : "";
  }
  $("state-reason").textContent = reason;
  $("version").textContent = data.version || "";
}

function drawWorker(data) {
  const facts = [["Instance", data.instance], ["Mode", data.mode]];
  if (data.mode === "coordinator") {
    const reachable = data.last_heartbeat && !data.heartbeat_error;
    facts.push(
      ["Coordinator", `${data.coordinator} (${reachable ? "reachable" : "not reachable"})`],
      ["Worker id", data.worker_id || "not registered yet"],
      ["Tier", data.tier || "–"],
      ["Dialect", data.dialect || "–"],
      ["Last heartbeat", ago(data.last_heartbeat)],
    );
    if (data.heartbeat_error) facts.push(["Heartbeat error", data.heartbeat_error]);
    if (data.coordinator_notice) facts.push(["Notice", data.coordinator_notice]);
  } else {
    facts.push(["Manifest", data.manifest]);
  }
  $("worker-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function drawContainers(data) {
  const urls = {};
  for (const s of data.reachable || []) urls[s.name] = s.service_url;
  const rows = (data.containers || []).map((c) => {
    const state = c.healing ? "healing" : c.state;
    const url = urls[c.service];
    return el("tr", { "data-name": c.name, "data-state": state },
      el("td", {}, c.name + (c.gpus ? ` (GPU ${c.gpus.join(", ")})` : "")),
      el("td", {}, el("span", { class: `badge ${state}` }, state), c.reason ? ` ${c.reason}` : ""),
      el("td", {}, (c.health || "") + (c.starting_for != null ? ` ${c.starting_for} s` : "")),
      el("td", {}, c.restarts),
      el("td", {}, (c.uptime || "").replace(/^Up /, "")),
      el("td", { class: "image" }, c.image),
      el("td", {}, url ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url) : ""),
      el("td", { class: "error" }, c.error || ""));
  });
  replaceRows($("containers").tBodies[0], rows);
  $("pulls").replaceChildren(...(data.pulls || []).map((p) => el("div", { class: "pull" },
    `pulling ${p.image} `,
    el("progress", { max: String(p.total || 1), value: String(p.downloaded) }),
    ` ${bytes(p.downloaded)} of ${bytes(p.total)} at ${bytes(p.rate)}/s`)));
}

function meter(label, used, total, cap, unit) {
  const text = `${label}: ${unit(used)} of ${unit(total)}${cap ? ` (your cap ${unit(cap)})` : ""}`;
  return el("div", { class: "meter" }, el("label", {}, text),
    el("progress", { max: String(total || 1), value: String(used || 0) }));
}

function drawMachine(data) {
  const m = data.machine || {};
  const cores = (n) => `${(n ?? 0).toFixed(1)} CPUs`;
  $("machine").replaceChildren(
    meter("CPU", (m.cpu_percent || 0) / 100 * (m.cores || 1), m.cores, m.cpus_cap, cores),
    meter("Memory", m.memory_used, m.memory_total, m.memory_cap, bytes),
    meter(`Disk (${m.disk_path || "Docker"})`, m.disk_used, m.disk_total, null, bytes));
  const rows = (data.gpus || []).map((g) => el("tr", {},
    el("td", {}, `${g.index}`),
    el("td", {}, g.utilization === null || g.utilization === undefined ? "?" : `${g.utilization} %`),
    el("td", {}, g.temperature === null ? "?" : `${g.temperature} °C`),
    el("td", {}, `${bytes(g.memory_used)} of ${bytes(g.memory_total)}`),
    el("td", {}, g.power_w === null ? "?" : `${g.power_w.toFixed(0)} W`),
    el("td", {}, [g.agent ? "the agent" : "", g.others ? "other programs" : ""].filter(Boolean).join(", ") || "nobody",
      ...(g.processes || []).map((p) => el("div", { class: p.counts ? "error" : "" },
        `${p.name || "?"} (${p.pid}): ${p.counts ? "takes the GPU back" : "does not count"}: ${p.why}`)))));
  replaceRows($("gpus").tBodies[0], rows);
  $("gpus").hidden = rows.length === 0;
  $("no-gpu").hidden = rows.length > 0;
}

function drawDays(days) {
  const svg = $("days");
  const ns = "http://www.w3.org/2000/svg";
  const width = 560, height = 140, base = 120;
  const top = Math.max(1, ...days.map((d) => d.wh));
  const step = width / Math.max(days.length, 1);
  const bars = days.map((d, i) => {
    const h = Math.round((d.wh / top) * (base - 10));
    const bar = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x: i * step + 4, y: base - h, width: step - 8, height: h, class: "bar" })) bar.setAttribute(k, v);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${d.date}: ${d.wh.toFixed(1)} Wh`;
    bar.append(title);
    const label = document.createElementNS(ns, "text");
    for (const [k, v] of Object.entries({ x: i * step + step / 2, y: height - 4, "text-anchor": "middle" })) label.setAttribute(k, v);
    label.textContent = d.date.slice(8);
    return [bar, label];
  }).flat();
  const axis = document.createElementNS(ns, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: base, x2: width, y2: base, class: "axis" })) axis.setAttribute(k, v);
  const nothing = document.createElementNS(ns, "text");
  for (const [k, v] of Object.entries({ x: width / 2, y: base / 2, "text-anchor": "middle", class: "empty" })) nothing.setAttribute(k, v);
  nothing.textContent = days.some((d) => d.wh > 0) ? "" : "nothing measured in the last 14 days";
  svg.replaceChildren(axis, nothing, ...bars);
}

function drawContribution(data) {
  const e = data.energy;
  if (!e) return;
  $("energy").replaceChildren(...[["Today", e.today], ["This week", e.week], ["All time", e.all_time]]
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, energy(v))]));
  drawDays(e.days || []);
  $("sources").textContent = Object.entries(e.sources || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
  const served = Object.entries(e.served_hours || {}).map(([s, h]) => el("tr", {}, el("td", {}, s), el("td", {}, h.toFixed(2))));
  replaceRows($("served").tBodies[0], served);
}

function drawCredits(data) {
  const c = data.credits;
  $("credits-section").hidden = !c;
  if (!c) return;
  const got = c.credited;
  const rows = [
    ["Today", got ? got.credits.today.toFixed(2) : "—"],
    ["This week", got ? got.credits.week.toFixed(2) : "—"],
    ["All time", got ? got.credits.all_time.toFixed(2) : "—"],
    ["Rank", got && got.rank ? `#${got.rank}` : "—"],
    ["Receipts", `${c.sealed} signed, ${c.accepted} accepted, ${c.pending} waiting to be sent`],
    ["Shown as", c.display_name || "a short id (--display-name to choose)"],
    ["Contributor key", c.contributor_key || "none yet"],
  ];
  $("credits").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const held = got && got.held ? `Held by the coordinator: ${got.flags.join("; ")}. ` : "";
  $("credits-note").textContent = held + (got ? "As the coordinator counted them after the last receipt."
    : "The coordinator has not said yet (after the first receipt is delivered).");
}

function drawControls(data) {
  const items = (data.conditions || []).map((c) => el("li", { class: c.active ? "active" : "" },
    `${c.name}: ${c.active ? "holding" : "ok"} — ${c.reason}`,
    c.next_check ? ` (looks again ${when(c.next_check)})` : ""));
  $("conditions").replaceChildren(...items);
  const paused = (data.holds || []).includes("pause");
  $("resume").disabled = !paused || !data.writable;
  $("pause").disabled = !data.writable;
  if (!data.writable) $("action-result").textContent = "Read-only here: pause with `rma-worker pause`.";
}

function drawEvents(data) {
  $("events").replaceChildren(...(data.events || []).map((e) =>
    el("li", { class: e.level }, el("time", {}, when(e.at)), " ", e.text)));
}

async function refresh() {
  try {
    const resp = await fetch("/api/dashboard", { cache: "no-store" });
    const data = await resp.json();
    drawState(data);
    drawWorker(data);
    drawContainers(data);
    drawMachine(data);
    drawContribution(data);
    drawCredits(data);
    drawControls(data);
    drawEvents(data);
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    document.body.dataset.state = data.state || "";
  } catch (err) {
    $("updated").textContent = `The agent does not answer (${err}).`;
  }
}

async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await resp.json();
  $("action-result").textContent = answer.ok ? "Done." : `Refused: ${answer.refused}`;
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("pause-form").addEventListener("submit", (event) => {
    event.preventDefault();
    post("/api/pause", { for: $("pause-for").value, gpu_only: $("pause-scope").value === "gpu" });
  });
  $("resume").addEventListener("click", () => post("/api/resume", {}));
  refresh();
  setInterval(refresh, POLL_MS);
});
