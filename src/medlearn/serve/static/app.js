// medlearn's web page: plain JS, no library, nothing fetched from another host.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "medlearn-api-key";
let models = [];
let signal = null; // {fs, samples} of the current ECG input (pasted JSON or a parsed WFDB record)
let socket = null;
let replayTimer = null;

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = sessionStorage.getItem(KEY);
  if (key) h["X-API-Key"] = key;
  return h;
}

function status(text, isError) {
  const el = $("status");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error || JSON.stringify(body)}`;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

function current() {
  return models.find((m) => m.name === $("model").value);
}

async function loadModels() {
  const response = await fetch("/models", { headers: headers() });
  if (!response.ok) {
    models = [];
    $("model").innerHTML = "";
    status(`${await errorOf(response)} — enter an API key above`, true);
    return;
  }
  models = await response.json();
  $("model").innerHTML = models
    .map((m) => `<option value="${escapeHtml(m.name)}">${escapeHtml(m.name)} (${escapeHtml(m.task)})</option>`)
    .join("");
  status(models.length ? "" : "no model this key may use", !models.length);
  showModel();
}

function metricText(metrics) {
  const values = (metrics && metrics.metrics) || {};
  return Object.entries(values)
    .filter(([, v]) => v !== null && typeof v === "object" ? "value" in v : typeof v === "number")
    .slice(0, 4)
    .map(([k, v]) => {
      if (typeof v === "number") return `${k} ${v.toFixed(3)}`;
      const ci = v.ci ? ` [${Number(v.ci[0]).toFixed(3)}, ${Number(v.ci[1]).toFixed(3)}]` : "";
      return `${k} ${Number(v.value).toFixed(3)}${ci}`;
    })
    .join(" · ");
}

async function showModel() {
  const m = current();
  if (!m) return;
  $("model-info").textContent =
    `version ${m.version} · ${m.kind} · classes ${(m.class_names || []).join(", ") || "—"}` +
    (metricText(m.metrics) ? ` · test ${metricText(m.metrics)}` : "");
  $("explain-box").hidden = !m.explains;
  $("explain").checked = false;
  $("options").innerHTML = (m.predict_options || [])
    .map((o) => `<label>${escapeHtml(o.name)} <input data-option="${escapeHtml(o.name)}" ` +
      `title="${escapeHtml(o.description)}" placeholder="${escapeHtml(o.description)}"></label>`)
    .join("");
  const response = await fetch(`/models/${encodeURIComponent(m.name)}/card`, { headers: headers() });
  $("card-section").hidden = !response.ok;
  if (response.ok) $("card").innerHTML = renderMarkdown(await response.text());
}

// -- a minimal Markdown renderer: everything is escaped first; only headings, lists, tables, code,
// emphasis and http(s) links are produced
function inline(text) {
  let s = escapeHtml(text);
  s = s.replace(/`([^`]+)`/g, "<code>$1</code>");
  s = s.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  s = s.replace(/(^|[\s(])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  s = s.replace(/(^|[\s(])_([^_\s][^_]*)_/g, "$1<em>$2</em>");
  s = s.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"]+)\)/g, '<a href="$2" rel="noopener noreferrer">$1</a>');
  return s;
}

function renderMarkdown(md) {
  const lines = md.replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^```/.test(line)) {
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
      i++;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = Math.min(6, heading[1].length + 2);
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i++;
      continue;
    }
    if (/^\s*\|/.test(line)) {
      const rows = [];
      for (; i < lines.length && /^\s*\|/.test(lines[i]); i++) rows.push(lines[i]);
      const cells = (row) => row.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
      const body = rows.filter((r) => !/^\s*\|?\s*:?-{2,}/.test(r));
      out.push("<table>" + body.map((r, n) => {
        const tag = n === 0 && rows.length > 1 && /-{2,}/.test(rows[1]) ? "th" : "td";
        return "<tr>" + cells(r).map((c) => `<${tag}>${inline(c)}</${tag}>`).join("") + "</tr>";
      }).join("") + "</table>");
      continue;
    }
    if (/^\s*([-*+]|\d+\.)\s+/.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const items = [];
      for (; i < lines.length && /^\s*([-*+]|\d+\.)\s+/.test(lines[i]); i++) {
        items.push(`<li>${inline(lines[i].replace(/^\s*([-*+]|\d+\.)\s+/, ""))}</li>`);
      }
      out.push(ordered ? `<ol>${items.join("")}</ol>` : `<ul>${items.join("")}</ul>`);
      continue;
    }
    if (!line.trim()) { i++; continue; }
    const para = [];
    for (; i < lines.length && lines[i].trim() && !/^(#|```|\s*\||\s*([-*+]|\d+\.)\s)/.test(lines[i]); i++) para.push(lines[i]);
    out.push(`<p>${inline(para.join(" "))}</p>`);
  }
  return out.join("\n");
}

// -- WFDB records read in the browser (format 16 and 212, with the header's byte offset), for the strip
async function readWfdb(files) {
  const header = files.find((f) => /\.hea$/i.test(f.name));
  if (!header) return null;
  const lines = (await header.text()).split(/\r?\n/).filter((l) => l.trim() && !l.startsWith("#"));
  const record = lines[0].trim().split(/\s+/);
  const nSig = parseInt(record[1], 10);
  const fs = parseFloat((record[2] || "250").split("/")[0]);
  const spec = lines[1].trim().split(/\s+/);
  const [fmtText, offsetText] = spec[1].split("+");
  const fmt = parseInt(fmtText, 10);
  const offset = parseInt(offsetText || "0", 10);
  const gain = parseFloat((spec[2] || "200").split(/[(/]/)[0]) || 200;
  const baseline = /\((-?\d+)\)/.test(spec[2] || "") ? parseInt(/\((-?\d+)\)/.exec(spec[2])[1], 10) : parseInt(spec[4] || "0", 10);
  const data = files.find((f) => f.name === spec[0]);
  if (!data || (fmt !== 16 && fmt !== 212)) return null;
  const bytes = new Uint8Array(await data.arrayBuffer()).subarray(offset);
  const samples = [];
  if (fmt === 16) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let k = 0; k + 1 < bytes.length; k += 2 * nSig) samples.push((view.getInt16(k, true) - baseline) / gain);
  } else {
    const all = [];
    for (let k = 0; k + 2 < bytes.length; k += 3) {
      let a = bytes[k] | ((bytes[k + 1] & 0x0f) << 8);
      let b = bytes[k + 2] | ((bytes[k + 1] & 0xf0) << 4);
      if (a > 2047) a -= 4096;
      if (b > 2047) b -= 4096;
      all.push(a, b);
    }
    for (let k = 0; k < all.length; k += nSig) samples.push((all[k] - baseline) / gain);
  }
  return { fs, samples };
}

function drawStrip(canvas, samples, fs, title, seconds) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  const shown = samples.slice(-Math.round(seconds * fs));
  ctx.strokeStyle = "#f3c4c4";
  ctx.lineWidth = 1;
  for (let s = 0; s <= seconds; s++) {
    const x = (s / seconds) * w;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
  }
  const finite = shown.filter((v) => Number.isFinite(v));
  const lo = finite.length ? Math.min(...finite.slice(0, 20000)) : -1;
  const hi = finite.length ? Math.max(...finite.slice(0, 20000)) : 1;
  const span = hi - lo || 1;
  ctx.strokeStyle = "#1d3557";
  ctx.lineWidth = 1.2;
  ctx.beginPath();
  let pen = false;
  shown.forEach((v, n) => {
    const x = (n / (seconds * fs)) * w;
    if (!Number.isFinite(v)) { pen = false; return; }
    const y = h - 20 - ((v - lo) / span) * (h - 40);
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  });
  ctx.stroke();
  ctx.fillStyle = "#1d2430";
  ctx.font = "14px sans-serif";
  ctx.fillText(title, 8, 16);
  ctx.fillStyle = "#5b6573";
  ctx.font = "11px sans-serif";
  ctx.fillText(`${seconds} s · ${fs} Hz · 1 s grid`, w - 150, h - 6);
}

// -- prediction
function bars(probabilities, label) {
  return Object.entries(probabilities)
    .map(([name, p]) => {
      const pct = Math.max(0, Math.min(100, 100 * Number(p)));
      return `<div class="bar${name === label ? " top" : ""}"><span>${escapeHtml(name)}</span>` +
        `<span class="track"><span class="fill" data-w="${pct.toFixed(1)}"></span></span>` +
        `<span>${Number(p).toFixed(3)}</span></div>`;
    })
    .join("");
}

// the page's CSP allows no inline style attribute: bar widths are set through the DOM
function sizeBars() {
  document.querySelectorAll(".fill[data-w]").forEach((el) => { el.style.width = `${el.dataset.w}%`; });
}

function renderRecord(r) {
  const parts = [`<div class="record">`];
  if (r.label !== undefined) parts.push(`<div class="label">${escapeHtml(r.label)}</div>`);
  if (r.value !== undefined) {
    const interval = Array.isArray(r.interval) ? ` (interval ${r.interval.map(Number).map((x) => x.toFixed(2)).join(" – ")})` : "";
    parts.push(`<div class="label">${escapeHtml(Number(r.value).toFixed(3))}${escapeHtml(interval)}</div>`);
  }
  if (r.probabilities && typeof r.probabilities === "object") parts.push(bars(r.probabilities, r.label));
  else if (r.probability !== undefined) parts.push(bars({ [`P(${r.label ?? "positive"})`]: r.probability }, null));
  if (r.threshold !== undefined && r.threshold !== null) parts.push(`<div class="muted">operating point ${escapeHtml(r.threshold)}</div>`);
  for (const flag of ["refused", "out_of_scope"]) {
    if (r[flag]) parts.push(`<div class="refused">${flag.replace("_", " ")}: ${escapeHtml(typeof r[flag] === "string" ? r[flag] : JSON.stringify(r[flag]))}</div>`);
  }
  if (r.skipped) parts.push(`<div class="refused">skipped: ${escapeHtml(JSON.stringify(r.skipped))}</div>`);
  for (const w of r.warnings || []) parts.push(`<div class="warn">⚠ ${escapeHtml(typeof w === "string" ? w : JSON.stringify(w))}</div>`);
  parts.push(`<div class="muted">${escapeHtml(r.input ?? "")} · ${escapeHtml(r.model ?? "")} ${escapeHtml(r.model_version ?? "")}</div></div>`);
  return parts.join("");
}

async function currentSignal() {
  const text = $("paste").value.trim();
  if (text) {
    try {
      const body = JSON.parse(text);
      if (body && Array.isArray(body.samples) && body.fs) return { fs: Number(body.fs), samples: body.samples.map(Number) };
    } catch (e) { /* not samples */ }
    return null;
  }
  return readWfdb(Array.from($("files").files));
}

async function predict() {
  const m = current();
  if (!m) return;
  status("predicting…");
  const query = $("explain").checked ? "?explain=true" : "";
  const options = Array.from(document.querySelectorAll("[data-option]")).filter((el) => el.value.trim());
  const text = $("paste").value.trim();
  let init;
  if (text) {
    let body;
    try { body = JSON.parse(text); } catch (e) { status(`the pasted text is not JSON (${e.message})`, true); return; }
    if (body && !Array.isArray(body) && body.resourceType === undefined) options.forEach((el) => { body[el.dataset.option] = el.value.trim(); });
    const type = body && body.resourceType ? "application/fhir+json" : "application/json";
    init = { method: "POST", headers: headers({ "Content-Type": type }), body: JSON.stringify(body) };
  } else {
    const form = new FormData();
    const files = Array.from($("files").files);
    if (!files.length) { status("choose a file or paste JSON", true); return; }
    files.forEach((f) => form.append("files", f, f.name));
    options.forEach((el) => form.append(el.dataset.option, el.value.trim()));
    init = { method: "POST", headers: headers(), body: form };
  }
  const response = await fetch(`/predict/${encodeURIComponent(m.name)}${query}`, init);
  if (!response.ok) { status(await errorOf(response), true); return; }
  const records = await response.json();
  status(`${records.length} prediction(s)`);
  $("result").hidden = false;
  $("records").innerHTML = records.map(renderRecord).join("");
  sizeBars();
  $("raw").textContent = JSON.stringify(records, (k, v) => (k === "explanation_png" ? "(base64 PNG)" : v), 2);
  const pictures = $("pictures");
  pictures.innerHTML = "";
  records.filter((r) => r.explanation_png).forEach((r) => {
    const img = document.createElement("img");
    img.alt = `Grad-CAM: ${r.explanation || ""}`;
    img.src = `data:image/png;base64,${r.explanation_png}`;
    pictures.appendChild(img);
  });
  signal = await currentSignal();
  const strip = $("strip");
  strip.hidden = !signal;
  if (signal && records.length) {
    const seconds = Math.min(20, Math.ceil(signal.samples.length / signal.fs));
    drawStrip(strip, signal.samples.slice(0, seconds * signal.fs), signal.fs, `${records[0].label ?? ""} · first ${seconds} s of ${escapeHtml(records[0].input ?? "")}`, seconds);
  }
}

// -- live ECG over the WebSocket
function stopLive() {
  if (replayTimer) clearInterval(replayTimer);
  replayTimer = null;
  if (socket) socket.close();
  socket = null;
  $("stop").disabled = true;
  $("live").disabled = false;
}

async function live() {
  signal = await currentSignal();
  if (!signal) { status("the live view replays an ECG: upload a WFDB record (.hea + .dat/.mat) or paste {fs, samples}", true); return; }
  const m = current();
  const path = m && m.streams ? `/stream/${encodeURIComponent(m.name)}` : "/stream";
  const key = sessionStorage.getItem(KEY);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${location.host}${path}${key ? `?key=${encodeURIComponent(key)}` : ""}`);
  const ws = socket;
  const speed = Number($("speed").value);
  const fs = signal.fs, chunk = Math.max(1, Math.round(fs / 4));
  const received = [];
  let sent = 0;
  $("live-view").hidden = false;
  $("alarms").innerHTML = "";
  $("live-probs").innerHTML = "";
  $("live").disabled = true;
  $("stop").disabled = false;
  status(`live: ${path} at ${speed}×`);
  ws.onopen = () => {
    replayTimer = setInterval(() => {
      if (sent >= signal.samples.length) { clearInterval(replayTimer); replayTimer = null; return; }
      const part = signal.samples.slice(sent, sent + chunk);
      ws.send(JSON.stringify(sent === 0 ? { fs, samples: part } : { samples: part }));
      sent += part.length;
      received.push(...part);
      $("t").textContent = (sent / fs).toFixed(1);
      drawStrip($("live-strip"), received, fs, `live · ${m && m.streams ? m.name : "rate and asystole only"}`, 10);
    }, 250 / speed);
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.error) { status(msg.error, true); return; }
    if (msg.type === "vitals") {
      $("hr").textContent = msg.heart_rate_bpm === null ? "—" : Math.round(msg.heart_rate_bpm);
      if (msg.heart_rate_bpm !== null) $("hr").dataset.last = Math.round(msg.heart_rate_bpm);
      $("rhythm").textContent = msg.rhythm || "—";
      $("quality").textContent = msg.quality === null ? "—" : msg.quality.toFixed(2);
      if (msg.probabilities) { $("live-probs").innerHTML = bars(msg.probabilities, msg.rhythm); sizeBars(); }
    } else if (msg.type === "alarm") {
      const li = document.createElement("li");
      li.className = `${msg.severity} ${msg.state}`;
      li.dataset.alarm = msg.alarm;
      li.textContent = `${msg.state === "on" ? "ALARM" : "cleared"} ${msg.alarm} (${msg.severity}) at ${msg.record_time_s.toFixed(1)} s` +
        (msg.value === null ? "" : ` · value ${msg.value}`);
      $("alarms").prepend(li);
    }
  };
  ws.onclose = (event) => {
    if (event.code >= 4000) status(`stream closed: ${event.code} ${event.reason}`, true);
    if (socket === ws) stopLive();
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY) || "";
  $("save-key").addEventListener("click", () => {
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    loadModels();
  });
  $("model").addEventListener("change", showModel);
  $("predict").addEventListener("click", () => predict().catch((e) => status(String(e), true)));
  $("live").addEventListener("click", () => live().catch((e) => status(String(e), true)));
  $("stop").addEventListener("click", stopLive);
  loadModels().catch((e) => status(String(e), true));
});
