// raytrader dashboard: plain JavaScript, no build step and no external resources, so the page
// works offline and ships inside the Python package.
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY_STORE = "raytrader.apiKey";
// sessionStorage: the key lives as long as the tab, never in a URL (URLs end up in logs).
let apiKey = sessionStorage.getItem(KEY_STORE);
let keyPrompt = null;

// ---- API calls --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
  }
}

function describeError(status, body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("\n");
  }
  return `${status}: ${typeof detail === "string" ? detail : JSON.stringify(body)}`;
}

function askKey(refused) {
  if (!keyPrompt) {
    keyPrompt = new Promise((resolve) => {
      const dialog = $("#key-dialog");
      $("#key-error").textContent = refused ? "The server refused that key." : "";
      $("#key-input").value = "";
      $("#key-form").onsubmit = (ev) => {
        ev.preventDefault();
        apiKey = $("#key-input").value.trim();
        sessionStorage.setItem(KEY_STORE, apiKey);
        $("#forget-key").hidden = false;
        dialog.close();
        keyPrompt = null;
        resolve();
      };
      if (!dialog.open) dialog.showModal();
    });
  }
  return keyPrompt;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (apiKey) h["X-API-Key"] = apiKey;
  return h;
}

// fetch with the key; a 401 asks for the key and tries again.
async function api(path, opts = {}) {
  for (;;) {
    const init = { method: opts.method || "GET", headers: headers(opts.headers), signal: opts.signal };
    if (opts.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
    }
    const resp = await fetch(path, init);
    if (resp.status !== 401) return resp;
    await askKey(Boolean(apiKey));
  }
}

async function apiJson(path, opts) {
  const resp = await api(path, opts);
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

// ---- formatting ---------------------------------------------------------------------------

const money = (v) => (v == null ? "n/a" : v.toLocaleString(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2 }));
const pct = (v) => (v == null || !isFinite(v) ? "n/a" : `${(v * 100).toFixed(2)}%`);
function num(v) {
  if (v == null || !isFinite(v)) return "n/a";
  if (Number.isInteger(v)) return v.toLocaleString();
  return Math.abs(v) >= 1000 ? money(v) : String(+v.toPrecision(5));
}
const shortTs = (ts) => (ts ? String(ts).replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "") : "");
const signClass = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : "");
const PCT_METRICS = new Set(["total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure"]);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

function row(cells) {
  return el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
}

function parseJson(text, what) {
  try {
    const value = JSON.parse(text || "{}");
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value;
  } catch (e) {
    throw new Error(`${what}: ${e.message}`);
  }
}

function dataSpec(choice) {
  if (choice === "synthetic") return { synthetic: { kind: "single", n_bars: 5000, seed: 7, freq: "1h" } };
  return { bundled: choice };
}

// ---- charts (canvas) ------------------------------------------------------------------------

function setupCanvas(canvas) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, w, h };
}

// A line over time; ``fill`` shades down to ``base`` (drawdown), ``fmt`` labels the y axis.
function lineChart(canvas, xs, ys, { color = "#2457c5", fill = null, fmt = num, title = "" } = {}) {
  const { ctx, w, h } = setupCanvas(canvas);
  const pad = { l: 70, r: 12, t: 18, b: 22 };
  ctx.fillStyle = "#667";
  ctx.fillText(title, pad.l, 12);
  const pts = [];
  for (let i = 0; i < xs.length; i++) if (ys[i] != null && isFinite(ys[i])) pts.push([xs[i], ys[i]]);
  if (pts.length < 1) {
    ctx.fillText("no data yet", w / 2 - 30, h / 2);
    return;
  }
  let x0 = pts[0][0], x1 = pts[pts.length - 1][0];
  let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (fill !== null) { y0 = Math.min(y0, fill); y1 = Math.max(y1, fill); }
  if (y1 === y0) { y1 += Math.abs(y1) * 0.01 || 1; y0 -= Math.abs(y0) * 0.01 || 1; }
  if (x1 === x0) x1 = x0 + 1;
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (y) => pad.t + (1 - (y - y0) / (y1 - y0)) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#e3e6ee";
  ctx.fillStyle = "#667";
  for (let k = 0; k <= 4; k++) {
    const y = y0 + ((y1 - y0) * k) / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, Y(y)); ctx.lineTo(w - pad.r, Y(y)); ctx.stroke();
    ctx.fillText(fmt(y), 4, Y(y) + 4);
  }
  const dates = [x0, (x0 + x1) / 2, x1].map((x) => new Date(x).toISOString().slice(0, 10));
  ctx.fillText(dates[0], pad.l, h - 6);
  ctx.fillText(dates[1], (pad.l + w - pad.r) / 2 - 30, h - 6);
  ctx.fillText(dates[2], w - pad.r - 62, h - 6);
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.3;
  ctx.stroke();
  if (fill !== null) {
    ctx.lineTo(X(pts[pts.length - 1][0]), Y(fill));
    ctx.lineTo(X(pts[0][0]), Y(fill));
    ctx.closePath();
    ctx.globalAlpha = 0.3;
    ctx.fillStyle = color;
    ctx.fill();
    ctx.globalAlpha = 1;
  }
}

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function viridis(t) {
  const s = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(s), VIRIDIS.length - 2), f = s - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// The objective over two parameters, the best over any others (as the run folder's heatmap).
function heatmap(canvas, trials, xName, yName, objective, maximize) {
  const { ctx, w, h } = setupCanvas(canvas);
  const xsSet = new Set(), ysSet = new Set(), cells = new Map();
  for (const t of trials) {
    if (t.value == null) continue;
    const x = t.params[xName], y = yName ? t.params[yName] : "";
    xsSet.add(x); ysSet.add(y);
    const key = `${x}|${y}`;
    const prev = cells.get(key);
    if (prev === undefined || (maximize ? t.value > prev : t.value < prev)) cells.set(key, t.value);
  }
  const sortVals = (s) => [...s].sort((a, b) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))));
  const xs = sortVals(xsSet), ys = sortVals(ysSet);
  if (!xs.length) {
    ctx.fillStyle = "#667";
    ctx.fillText("no finished trials yet", w / 2 - 50, h / 2);
    return 0;
  }
  const values = [...cells.values()];
  const lo = Math.min(...values), hi = Math.max(...values);
  const pad = { l: 60, r: 90, t: 10, b: 46 };
  const cw = (w - pad.l - pad.r) / xs.length, ch = (h - pad.t - pad.b) / ys.length;
  ys.forEach((y, j) => xs.forEach((x, i) => {
    const v = cells.get(`${x}|${y}`);
    ctx.fillStyle = v === undefined ? "#f0f0f0" : viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5);
    // lowest y at the bottom, as in the PNG heatmap
    ctx.fillRect(pad.l + i * cw, pad.t + (ys.length - 1 - j) * ch, Math.ceil(cw), Math.ceil(ch));
  }));
  ctx.fillStyle = "#333";
  const stepX = Math.ceil(xs.length / 20), stepY = Math.ceil(ys.length / 16);
  xs.forEach((x, i) => { if (i % stepX === 0) ctx.fillText(String(x), pad.l + i * cw + cw / 2 - 6, h - pad.b + 14); });
  ys.forEach((y, j) => { if (j % stepY === 0) ctx.fillText(String(y), 6, pad.t + (ys.length - 1 - j) * ch + ch / 2 + 4); });
  ctx.fillText(xName, (pad.l + w - pad.r) / 2, h - 8);
  if (yName) ctx.fillText(yName, 6, h - 8);
  for (let k = 0; k < 50; k++) {
    ctx.fillStyle = viridis(k / 49);
    ctx.fillRect(w - pad.r + 14, pad.t + (1 - (k + 1) / 50) * (h - pad.t - pad.b), 14, (h - pad.t - pad.b) / 50 + 1);
  }
  ctx.fillStyle = "#333";
  ctx.fillText(num(hi), w - pad.r + 32, pad.t + 10);
  ctx.fillText(num(lo), w - pad.r + 32, h - pad.b);
  ctx.fillText(objective, w - pad.r + 8, h - 8);
  return cells.size;
}

// ---- forms: agents and saved configs ------------------------------------------------------

let strategies = [];
let savedConfigs = [];

async function loadAgents() {
  strategies = await apiJson("/api/v1/strategy/strategies");
  for (const id of ["#s-agent", "#bt-agent", "#sw-agent"]) {
    const select = $(id);
    select.replaceChildren(...strategies.map((s) => el("option", { value: s.name }, s.name)));
    if (strategies.some((s) => s.name === "sma_cross")) select.value = "sma_cross";
  }
  await Promise.all([fillDefaults("#s-agent", "#s-params"), fillDefaults("#bt-agent", "#bt-params")]);
  try {
    savedConfigs = await apiJson("/api/v1/strategy/configurations");
  } catch (e) {
    savedConfigs = [];
  }
  $("#s-saved").replaceChildren(
    el("option", { value: "" }, "(none)"),
    ...savedConfigs.map((c) => el("option", { value: c.config_name }, `${c.config_name} (${c.agent})`)),
  );
}

async function fillDefaults(agentSel, paramsSel) {
  const name = $(agentSel).value;
  if (!name) return;
  const info = await apiJson(`/api/v1/strategy/strategy_parameters/${encodeURIComponent(name)}`);
  const defaults = Object.assign({}, info.defaults);
  if (name === "sma_cross") Object.assign(defaults, { fast: 10, slow: 30 });
  $(paramsSel).value = JSON.stringify(defaults);
}

// ---- sessions -------------------------------------------------------------------------------

let sessionRows = [];
const live = { id: null, abort: null, xs: [], ys: [], orders: new Map(), fills: [], events: 0, drawn: false };

async function refreshSessions() {
  try {
    sessionRows = (await apiJson("/api/dashboard/sessions")).sessions;
    $("#conn").textContent = "";
  } catch (e) {
    $("#conn").textContent = `cannot reach the API: ${e.message}`;
    return;
  }
  const body = $("#sessions-table tbody");
  body.replaceChildren(...sessionRows.map((s) => {
    const ended = ["stopped", "failed"].includes(s.status);
    const tr = row([
      s.name,
      el("td", { class: "mono" }, s.id),
      el("td", {}, el("span", { class: `badge ${s.status}` }, s.status)),
      s.bars,
      money(s.equity),
      el("td", { class: signClass(s.pnl) }, money(s.pnl)),
      el("td", { class: signClass(s.pnl) }, pct(s.pnl_pct)),
      el("td", {},
        el("button", { class: "link open", "data-id": s.id, type: "button", onclick: () => openSession(s.id) }, "open"),
        ended ? "" : el("button", { class: "link stop", "data-id": s.id, type: "button", onclick: () => stopSession(s.id) }, "stop")),
    ]);
    tr.dataset.id = s.id;
    if (s.id === live.id) tr.classList.add("selected");
    return tr;
  }));
  const current = sessionRows.find((s) => s.id === live.id);
  if (current) showRisk(current);
}

function showRisk(s) {
  $("#sp-name").textContent = `${s.name} (${s.id})`;
  const badge = $("#sp-status");
  badge.textContent = s.status;
  badge.className = `badge ${s.status}`;
  $("#sp-stop").hidden = ["stopped", "failed"].includes(s.status);
  $("#sp-resume").hidden = !s.halted;
  const items = [
    ["Status", s.halted ? el("span", { class: "halt" }, `HALTED: ${s.reason}`) : s.status + (s.reason ? ` (${s.reason})` : "")],
    ["Agents", s.agents.map((a) => `${a.name} ${JSON.stringify(a.params)}`).join("; ")],
    ["Equity / PnL", `${money(s.equity)} / ${money(s.pnl)} (${pct(s.pnl_pct)})`],
    ["Orders / fills", `${s.orders} / ${s.fills}`],
    ["Limits", Object.entries(s.limits).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["Kill switch", s.kill_switch ? Object.entries(s.kill_switch).map(([k, v]) => `${k}=${v}`).join(", ") : "off"],
  ];
  const dl = el("dl", { id: "risk-state" });
  for (const [k, v] of items) dl.append(el("dt", {}, k), el("dd", {}, v));
  $("#sp-risk").replaceChildren(el("h3", {}, "Risk state"), dl);
}

async function startSession(ev) {
  ev.preventDefault();
  $("#s-error").textContent = "";
  try {
    const saved = savedConfigs.find((c) => c.config_name === $("#s-saved").value);
    const agent = saved ? { name: saved.agent, params: saved.params } : { name: $("#s-agent").value, params: parseJson($("#s-params").value, "params") };
    const body = {
      name: $("#s-name").value || "web",
      agents: [agent],
      initial_cash: Number($("#s-cash").value),
      broker: { commission: { bps: 10 } },
      portfolio: { lot_size: Number($("#s-lot").value) },
      feed: { kind: "replay", data: dataSpec($("#s-data").value), speed: Number($("#s-speed").value) },
    };
    const symbol = $("#s-symbol").value.trim();
    if (symbol) body.symbols = [symbol];
    $("#s-start").disabled = true;
    const started = await apiJson("/api/trading/start-session", { method: "POST", json: body });
    await refreshSessions();
    openSession(started.session_id);
  } catch (e) {
    $("#s-error").textContent = e.message;
  } finally {
    $("#s-start").disabled = false;
  }
}

async function stopSession(id) {
  try {
    await apiJson("/api/trading/stop-session", { method: "POST", json: { session_id: id } });
  } catch (e) {
    $("#s-error").textContent = e.message;
  }
  refreshSessions();
}

// A session its kill switch halted trades again; its limits count from the equity now.
async function resumeSession(id) {
  try {
    await apiJson("/api/trading/resume-session", { method: "POST", json: { session_id: id } });
  } catch (e) {
    $("#s-error").textContent = e.message;
  }
  refreshSessions();
}

function openSession(id) {
  if (live.abort) live.abort.abort();
  Object.assign(live, { id, abort: new AbortController(), xs: [], ys: [], orders: new Map(), fills: [], events: 0 });
  $("#session-panel").hidden = false;
  $("#sp-stop").onclick = () => stopSession(id);
  $("#sp-resume").onclick = () => resumeSession(id);
  const s = sessionRows.find((r) => r.id === id);
  if (s) showRisk(s);
  renderLive();
  streamEvents(id, live.abort.signal).catch((e) => {
    if (e.name !== "AbortError") $("#sp-events").textContent += ` (stream error: ${e.message})`;
  });
}

// Server-sent events over fetch: EventSource cannot send the X-API-Key header.
async function streamEvents(id, signal) {
  let lastId = null;
  while (!signal.aborted) {
    const extra = lastId ? { "Last-Event-ID": lastId } : {};
    const resp = await api(`/api/trading/sessions/${id}/events`, { headers: extra, signal });
    if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      // Lines may end in \r\n; keep a trailing \r until its \n arrives.
      const cut = buf.endsWith("\r") ? buf.length - 1 : buf.length;
      buf = buf.slice(0, cut).replace(/\r\n?/g, "\n") + buf.slice(cut);
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const msg = { data: [] };
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "data") msg.data.push(val);
          else if (field === "id") msg.id = val;
          else if (field === "event") msg.event = val;
        }
        if (msg.id) lastId = msg.id;
        if (msg.data.length) onEvent(JSON.parse(msg.data.join("\n")));
      }
    }
    // The server ends the stream once the session has ended; otherwise reconnect.
    const s = sessionRows.find((r) => r.id === id);
    if (s && ["stopped", "failed"].includes(s.status)) {
      await refreshSessions();
      return;
    }
    await refreshSessions();
    const now = sessionRows.find((r) => r.id === id);
    if (now && ["stopped", "failed"].includes(now.status)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function onEvent(ev) {
  live.events += 1;
  if (ev.type === "equity") {
    live.xs.push(Date.parse(ev.ts));
    live.ys.push(ev.equity);
  } else if (ev.type === "order") {
    live.orders.set(ev.order.client_order_id, ev);
  } else if (ev.type === "fill") {
    live.fills.push(ev);
  } else if (ev.type === "status" || ev.type === "risk") {
    refreshSessions();
  }
  if (!live.drawn) {
    live.drawn = true;
    requestAnimationFrame(renderLive);
  }
}

function renderLive() {
  live.drawn = false;
  lineChart($("#sp-equity"), live.xs, live.ys, { fmt: money, title: "equity" });
  $("#sp-events").textContent = live.events;
  $("#sp-points").textContent = live.ys.length;
  $("#sp-last").textContent = live.ys.length ? money(live.ys[live.ys.length - 1]) : "-";
  const orders = [...live.orders.values()].slice(-200).reverse();
  $("#sp-orders tbody").replaceChildren(...orders.map((o) => row([
    shortTs(o.order.ts), o.order.client_order_id, o.order.symbol, o.order.side, num(o.order.quantity),
    o.order.type, o.status, num(o.filled_quantity), num(o.avg_fill_price), o.reason || "",
  ])));
  const fills = live.fills.slice(-200).reverse();
  $("#sp-fills tbody").replaceChildren(...fills.map((f) => row([
    shortTs(f.ts), f.client_order_id, f.symbol, f.side, num(f.quantity), num(f.price), num(f.commission),
  ])));
}

// ---- backtest and sweep jobs ----------------------------------------------------------------

let openJob = { id: null, timer: null };

async function refreshJobs() {
  let jobs;
  try {
    jobs = (await apiJson("/api/dashboard/jobs")).jobs;
  } catch (e) {
    return;
  }
  const openBtn = (j) => el("button", { class: "link open", "data-id": j.id, type: "button", onclick: () => openJobView(j.id, j.kind) }, "open");
  const badge = (j) => el("td", {}, el("span", { class: `badge ${j.status}` }, j.status));
  $("#bt-jobs tbody").replaceChildren(...jobs.filter((j) => j.kind === "run").map((j) =>
    row([j.name, j.id, badge(j), shortTs(j.created).slice(0, 19), el("td", {}, openBtn(j))])));
  $("#sw-jobs tbody").replaceChildren(...jobs.filter((j) => j.kind === "optimize").map((j) =>
    row([j.name, j.id, j.mode, badge(j), `${j.done}/${j.total}`, el("td", {}, openBtn(j))])));
}

async function submitBacktest(ev) {
  ev.preventDefault();
  $("#bt-error").textContent = "";
  try {
    const body = {
      name: $("#bt-name").value || "web-backtest",
      data: dataSpec($("#bt-data").value),
      agents: [{ name: $("#bt-agent").value, params: parseJson($("#bt-params").value, "params") }],
      initial_cash: Number($("#bt-cash").value),
      broker: { commission: { bps: 10 } },
      portfolio: { lot_size: Number($("#bt-lot").value) },
    };
    const job = await apiJson("/api/backtest/run", { method: "POST", json: body });
    await refreshJobs();
    openJobView(job.id, "run");
  } catch (e) {
    $("#bt-error").textContent = e.message;
  }
}

async function submitSweep(ev) {
  ev.preventDefault();
  $("#sw-error").textContent = "";
  try {
    const body = {
      name: $("#sw-name").value || "web-sweep",
      data: dataSpec($("#sw-data").value),
      agent: $("#sw-agent").value,
      params: parseJson($("#sw-params").value, "fixed params"),
      space: parseJson($("#sw-space").value, "space"),
      objective: $("#sw-objective").value,
      broker: { commission: { bps: 10 } },
      portfolio: { lot_size: Number($("#sw-lot").value) },
      top: 50,
    };
    const job = await apiJson("/api/backtest/optimize", { method: "POST", json: body });
    await refreshJobs();
    openJobView(job.id, "optimize");
  } catch (e) {
    $("#sw-error").textContent = e.message;
  }
}

function openJobView(id, kind) {
  clearTimeout(openJob.timer);
  openJob = { id, timer: null };
  showView(kind === "run" ? "backtests" : "sweeps");
  pollJob(id, kind);
}

async function pollJob(id, kind) {
  if (openJob.id !== id) return;
  let job;
  try {
    job = await apiJson(`/api/backtest/results/${id}`);
  } catch (e) {
    (kind === "run" ? $("#bt-error") : $("#sw-error")).textContent = e.message;
    return;
  }
  const finished = ["done", "failed", "cancelled"].includes(job.status);
  if (kind === "run") renderBacktest(job);
  else await renderSweep(job);
  if (!finished) openJob.timer = setTimeout(() => pollJob(id, kind), 700);
  else refreshJobs();
}

function setBadge(sel, status) {
  $(sel).textContent = status;
  $(sel).className = `badge ${status}`;
}

function metricsTable(table, metrics) {
  const rows = Object.entries(metrics || {}).filter(([, v]) => typeof v === "number" || v === null);
  table.replaceChildren(...rows.map(([k, v]) => el("tr", { "data-metric": k }, el("th", {}, k), el("td", {}, PCT_METRICS.has(k) ? pct(v) : num(v)))));
}

async function loadReport(id, frame) {
  const resp = await api(`/api/backtest/report/${id}`);
  if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
  const page = await resp.text();
  if (frame) frame.srcdoc = page;
  return page;
}

async function openReport(id) {
  const page = await loadReport(id, null);
  const url = URL.createObjectURL(new Blob([page], { type: "text/html" }));
  window.open(url, "_blank");
}

function renderBacktest(job) {
  $("#bt-panel").hidden = false;
  $("#bt-title").textContent = `${job.name} (${job.id})`;
  setBadge("#bt-status", job.status);
  $("#bt-report").onclick = () => openReport(job.id).catch((e) => ($("#bt-error").textContent = e.message));
  $("#bt-report").disabled = job.status !== "done";
  const res = job.results;
  if (!res) {
    metricsTable($("#bt-metrics"), job.error ? { error: null } : {});
    lineChart($("#bt-equity"), [], [], { title: job.error || `${job.status}...` });
    lineChart($("#bt-drawdown"), [], [], {});
    $("#bt-frame").srcdoc = "";
    return;
  }
  const xs = res.equity.map((p) => Date.parse(p.ts));
  const ys = res.equity.map((p) => p.equity);
  let peak = -Infinity;
  const dd = ys.map((v) => { peak = Math.max(peak, v); return v / peak - 1; });
  lineChart($("#bt-equity"), xs, ys, { fmt: money, title: "equity" });
  lineChart($("#bt-drawdown"), xs, dd, { color: "#c0262d", fill: 0, fmt: pct, title: "drawdown" });
  metricsTable($("#bt-metrics"), res.metrics);
  if ($("#bt-frame").dataset.job !== job.id) {
    $("#bt-frame").dataset.job = job.id;
    loadReport(job.id, $("#bt-frame")).catch((e) => ($("#bt-error").textContent = e.message));
  }
}

async function renderSweep(job) {
  $("#sw-panel").hidden = false;
  $("#sw-title").textContent = `${job.name} (${job.id})`;
  setBadge("#sw-status", job.status);
  $("#sw-report").onclick = () => openReport(job.id).catch((e) => ($("#sw-error").textContent = e.message));
  $("#sw-report").disabled = job.status !== "done";
  const p = job.progress;
  $("#sw-bar").style.width = `${p.total ? (100 * p.done) / p.total : 0}%`;
  const best = p.best ? ` · best so far: ${Object.entries(p.best.params).map(([k, v]) => `${k}=${v}`).join(", ")} ${p.best.objective} = ${num(p.best.value)}` : "";
  const win = p.windows ? ` · window ${p.window}/${p.windows}` : "";
  $("#sw-progress").textContent = `${p.done} / ${p.total} ${p.unit}${win}${best}${job.error ? ` · ${job.error}` : ""}`;
  const res = job.results;
  if (job.mode === "walk_forward") {
    $("#sw-heatmap").hidden = true;
    $("#sw-heat-title").hidden = true;
    if (res) fillTable($("#sw-top"), res.windows, ["index", "test_start", "test_end", "params", "is_objective", "oos_objective", "oos_trades"]);
    return;
  }
  $("#sw-heatmap").hidden = false;
  $("#sw-heat-title").hidden = false;
  const config = job.config;
  try {
    const trials = await apiJson(`/api/dashboard/trials/${job.id}`);
    const names = trials.names.filter((n) => trials.trials.some((t) => typeof t.params[n] === "number"));
    $("#sw-heat-title").textContent = `${trials.objective} by ${names[0] || "?"}${names[1] ? ` and ${names[1]}` : ""}`;
    const cells = heatmap($("#sw-heatmap"), trials.trials, names[0], names[1], trials.objective, trials.direction !== "minimize");
    $("#sw-heatmap").dataset.cells = String(cells);
  } catch (e) {
    $("#sw-error").textContent = e.message;
  }
  if (res) {
    const names = Object.keys(config.space);
    fillTable($("#sw-top"), res.top, ["rank", ...names, res.objective, "total_return", "max_drawdown", "trade_count"]);
  }
}

function fillTable(table, rows, columns) {
  const head = el("tr", {}, ...columns.map((c) => el("th", {}, c)));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows.map((r) => row(columns.map((c) => {
    const v = r[c];
    if (typeof v === "number") return PCT_METRICS.has(c) ? pct(v) : num(v);
    if (v && typeof v === "object") return JSON.stringify(v);
    return c.endsWith("_start") || c.endsWith("_end") ? shortTs(v).slice(0, 16) : v;
  })))));
}

// ---- views and start-up ---------------------------------------------------------------------

function showView(name) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === name);
  if (name !== "sessions") refreshJobs();
}

async function main() {
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showView(t.dataset.view));
  for (const b of document.querySelectorAll(".jobs-refresh")) b.addEventListener("click", refreshJobs);
  $("#forget-key").hidden = !apiKey;
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    apiKey = null;
    location.reload();
  });
  $("#start-form").addEventListener("submit", startSession);
  $("#bt-form").addEventListener("submit", submitBacktest);
  $("#sw-form").addEventListener("submit", submitSweep);
  $("#s-refresh").addEventListener("click", refreshSessions);
  $("#s-agent").addEventListener("change", () => fillDefaults("#s-agent", "#s-params"));
  $("#bt-agent").addEventListener("change", () => fillDefaults("#bt-agent", "#bt-params"));
  $("#s-saved").addEventListener("change", () => {
    const c = savedConfigs.find((x) => x.config_name === $("#s-saved").value);
    if (c) { $("#s-agent").value = c.agent; $("#s-params").value = JSON.stringify(c.params); }
  });
  await loadAgents();
  await refreshSessions();
  setInterval(refreshSessions, 2000);
  setInterval(() => { if ($("#view-sessions").hidden) refreshJobs(); }, 3000);
  document.body.dataset.ready = "1";
}

main().catch((e) => { $("#conn").textContent = `error: ${e.message}`; });
