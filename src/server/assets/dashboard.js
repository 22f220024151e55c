// gema dashboard. Authenticated by the HttpOnly `gema_token` cookie the server set when the page
// was opened as /?token=...; every value from the API is put in the page with textContent, never
// as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c != null) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(body.error || r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

function safeUrl(u) {
  return /^https?:\/\//i.test(u || "") ? u : null;
}

function fmtTime(t) {
  return new Date(t).toISOString().slice(5, 16).replace("T", " ");
}

// ---- live alerts ----
const alertNodes = new Map();

function renderAlert(a, status) {
  const s = (a.samples && a.samples[0]) || null;
  const li = el("li", { class: "sev-" + a.severity, "data-id": a.id });
  li.append(el("div", {}, el("span", { class: "sev" }, a.severity), el("strong", {}, a.title)));
  li.append(el("div", { class: "meta" },
    a.kind.replace("_", " "), " · ", fmtTime(a.detected_at),
    a.count > 1 ? " · " + a.count + " mentions" : ""));
  // Why it fired: for a negative comment, the words that made the mention negative first.
  li.append(el("div", { class: "why" }, a.why));
  if (s) {
    li.append(el("div", { class: "meta" }, "@" + s.author_handle + " (" + s.author_followers + " followers)"));
    li.append(el("div", { class: "text" }, s.text));
    const url = safeUrl(s.url);
    if (url) li.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, "open"));
  }
  const btn = el("button", { class: "ack" }, status === "acknowledged" ? "acknowledged" : "Acknowledge");
  if (status === "acknowledged" || status === "resolved") {
    btn.disabled = true;
    li.classList.add("acknowledged");
  }
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    // The feed reads Kafka, so an alert can show up here a moment before the sink has stored
    // it in ClickHouse: a 404 is retried for a few seconds.
    for (let attempt = 0; ; attempt++) {
      try {
        await api("/api/alerts/" + encodeURIComponent(a.id) + "/acknowledge", { method: "POST" });
        btn.textContent = "acknowledged";
        li.classList.add("acknowledged");
        return;
      } catch (e) {
        if (e.status === 404 && attempt < 15) {
          btn.textContent = "saving…";
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        btn.disabled = false;
        btn.textContent = "Acknowledge (" + e.message + ")";
        return;
      }
    }
  });
  li.append(" ", btn);
  return li;
}

function showAlert(a, status) {
  const node = renderAlert(a, status);
  const old = alertNodes.get(a.id);
  if (old) old.replaceWith(node);
  else $("#alerts").prepend(node);
  alertNodes.set(a.id, node);
  while ($("#alerts").children.length > 200) {
    const last = $("#alerts").lastElementChild;
    alertNodes.delete(last.dataset.id);
    last.remove();
  }
}

async function loadAlertStatuses() {
  // Acknowledged state comes from the alert history; the feed carries only what was raised.
  try {
    const r = await api("/api/alerts?since=24h&limit=200");
    for (const a of r.items.slice().reverse()) {
      if (alertNodes.has(a.id) && a.status !== "new") {
        const node = alertNodes.get(a.id);
        node.classList.add("acknowledged");
        const b = node.querySelector("button.ack");
        if (b) { b.disabled = true; b.textContent = a.status; }
      }
    }
  } catch (e) { /* the feed still works */ }
}

function connectFeed() {
  // EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed.
  const es = new EventSource("/api/feed");
  es.addEventListener("open", () => {
    $("#feed-status").textContent = "live";
    $("#feed-status").className = "status live";
  });
  es.addEventListener("error", () => {
    $("#feed-status").textContent = "reconnecting…";
    $("#feed-status").className = "status down";
  });
  es.addEventListener("alert", (ev) => {
    try { showAlert(JSON.parse(ev.data), "new"); } catch (e) { /* ignore malformed */ }
  });
}

// ---- rising now ----
function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  const pts = values.map((v, i) => (i * step).toFixed(1) + "," + (23 - (v / max) * 22).toFixed(1));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  return svg;
}

async function loadRising() {
  const tbody = $("#rising tbody");
  try {
    const r = await api("/api/trends/rising?since=1h&limit=15");
    tbody.replaceChildren(...r.items.map((t) =>
      el("tr", {}, el("td", {}, t.term), el("td", {}, t.score.toFixed(1)),
        el("td", {}, t.authors), el("td", {}, sparkline(t.sparkline || [])))));
    if (!r.items.length) tbody.replaceChildren(el("tr", {}, el("td", { colspan: "4" }, "nothing rising")));
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "4" }, "error: " + e.message)));
  }
}

// ---- sentiment over time and share of voice ----
let chart = null;

async function loadTimeline() {
  const q = $("#timeline-query").value;
  const box = $("#timeline-chart");
  if (!q) { box.textContent = "no tracked queries configured"; return; }
  const range = $("#timeline-range").value;
  const bucket = range === "7d" ? "6h" : range === "24h" ? "1h" : "15m";
  try {
    const r = await api("/api/timeline?query=" + encodeURIComponent(q) + "&since=" + range + "&bucket=" + bucket);
    const xs = r.items.map((b) => Date.parse(b.bucket_start) / 1000);
    const data = [xs, r.items.map((b) => b.negative), r.items.map((b) => b.neutral),
      r.items.map((b) => b.positive), r.items.map((b) => b.net_sentiment)];
    if (chart) chart.destroy();
    box.replaceChildren();
    chart = new uPlot({
      width: Math.max(300, box.clientWidth || 440), height: 220,
      series: [{}, { label: "negative", stroke: "#b00" }, { label: "neutral", stroke: "#888" },
        { label: "positive", stroke: "#070" }, { label: "net", stroke: "#36c", scale: "net" }],
      axes: [{}, {}, { scale: "net", side: 1, grid: { show: false } }],
      scales: { net: { range: [-1, 1] } },
    }, data, box);
  } catch (e) {
    box.textContent = "error: " + e.message;
  }
}

async function loadQueries() {
  const sel = $("#timeline-query");
  try {
    const [qs, sov] = await Promise.all([api("/api/queries"), api("/api/share-of-voice?since=24h")]);
    const names = new Set(qs.items.map((q) => q.name));
    for (const v of sov.items) names.add(v.query);
    sel.replaceChildren(...[...names].map((n) => el("option", { value: n }, n)));
    $("#sov").replaceChildren(...sov.items.map((v) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.round(v.share * 200) + "px";
      return el("li", {}, bar, v.query + " " + Math.round(v.share * 100) + "% (" + v.mentions + ", net " + v.net_sentiment.toFixed(2) + ")");
    }));
  } catch (e) {
    $("#sov").replaceChildren(el("li", {}, "error: " + e.message));
  }
  loadTimeline();
}

// ---- mention search ----
let nextOffset = null;

// The sentiment cell: gema's verdict, a person's correction when there is one, and a control to
// correct it (POST /api/mentions/{key}/sentiment; stored with who and when, used by
// `gema train --corrections`).
function sentimentCell(m) {
  const shown = m.corrected_label || m.sentiment;
  const td = el("td", { class: shown === "negative" ? "neg" : shown === "positive" ? "pos" : "" });
  const verdict = el("span", {}, m.sentiment + " " + m.sentiment_score.toFixed(2) +
    " (conf " + m.sentiment_confidence.toFixed(2) + ")");
  const note = el("span", { class: "corrected" },
    m.corrected_label ? " corrected: " + m.corrected_label + " by " + m.corrected_by : "");
  const pick = el("select", { class: "correct", "aria-label": "correct the sentiment" },
    el("option", { value: "" }, "correct…"),
    el("option", { value: "negative" }, "negative"),
    el("option", { value: "neutral" }, "neutral"),
    el("option", { value: "positive" }, "positive"));
  pick.addEventListener("change", async () => {
    const label = pick.value;
    if (!label) return;
    pick.disabled = true;
    try {
      const c = await api("/api/mentions/" + encodeURIComponent(m.key) + "/sentiment", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ label, by: "dashboard" }),
      });
      note.textContent = " corrected: " + c.label + " by " + c.corrected_by;
      td.className = c.label === "negative" ? "neg" : c.label === "positive" ? "pos" : "";
    } catch (e) {
      note.textContent = " correction failed: " + e.message;
    } finally {
      pick.disabled = false;
      pick.value = "";
    }
  });
  td.append(verdict, note, " ", pick);
  return td;
}

async function search(offset) {
  const form = new FormData($("#search"));
  const params = new URLSearchParams();
  for (const [k, v] of form) if (v) params.set(k, v);
  params.set("limit", "50");
  if (offset) params.set("offset", offset);
  const tbody = $("#mentions tbody");
  try {
    const r = await api("/api/mentions?" + params);
    const rows = r.items.map((m) => {
      const url = safeUrl(m.url);
      const text = url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, m.text) : m.text;
      return el("tr", {}, el("td", {}, fmtTime(m.created_at)), el("td", {}, m.platform),
        el("td", {}, "@" + m.author_handle),
        sentimentCell(m),
        el("td", {}, text));
    });
    if (offset) tbody.append(...rows);
    else if (rows.length) tbody.replaceChildren(...rows);
    else tbody.replaceChildren(el("tr", {}, el("td", { colspan: "5" }, "no mentions")));
    nextOffset = r.next_offset;
    $("#more").hidden = nextOffset == null;
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "5" }, "error: " + e.message)));
  }
}

// ---- try a post ----
async function tryPost(ev) {
  ev.preventDefault();
  const text = new FormData($("#try")).get("text").trim();
  const out = $("#try-result");
  if (!text) return;
  try {
    const r = await api("/api/classify", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ texts: [text], explain: true }),
    });
    const v = r.items[0];
    const cls = v.label === "negative" ? "neg" : v.label === "positive" ? "pos" : "";
    const head = el("p", {}, el("strong", { class: cls }, v.label),
      " score " + v.score.toFixed(2) + ", confidence " + v.confidence.toFixed(2) +
      ", language " + v.lang + " (" + r.model + ")");
    const words = (v.words || []).slice(0, 8).map((w) =>
      el("li", { class: w.effect < 0 ? "neg" : "pos" }, w.word + " " + (w.effect > 0 ? "+" : "") + w.effect.toFixed(2)));
    const why = words.length
      ? [el("p", { class: "meta" }, "Each word left out in turn: how far the score moves without it."), el("ul", { id: "try-words" }, ...words)]
      : [el("p", { class: "meta" }, v.label === "unscored" ? "Not English or Indonesian: never a guess." : "No single word moves the score.")];
    out.replaceChildren(head, ...why);
  } catch (e) {
    out.replaceChildren(el("p", {}, "error: " + e.message));
  }
}

// ---- connectors ----
function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 120) return s + "s ago";
  if (s < 7200) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

async function loadSources() {
  const panel = $("#sources-panel");
  const tbody = $("#sources tbody");
  try {
    const r = await api("/api/sources");
    panel.hidden = !r.items.length;
    tbody.replaceChildren(...r.items.map((s) => {
      const h = s.health || {};
      const state = !s.health ? "never run" : h.state === "stopped" ? "stopped" : !s.running ? "not running" : h.state;
      const bad = state === "failing" || state === "stopped";
      return el("tr", {}, el("td", {}, s.name), el("td", {}, s.kind),
        el("td", { class: bad ? "neg" : state === "ok" ? "pos" : "" }, state),
        el("td", {}, ago(h.last_ok)), el("td", {}, String(h.sent || 0)), el("td", {}, String(h.errors || 0)),
        el("td", { class: "meta" }, h.last_error || ""));
    }));
  } catch (e) {
    panel.hidden = false;
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "7" }, "error: " + e.message)));
  }
}

$("#try").addEventListener("submit", tryPost);
$("#search").addEventListener("submit", (ev) => { ev.preventDefault(); search(0); });
$("#more").addEventListener("click", () => search(nextOffset));
$("#timeline-query").addEventListener("change", loadTimeline);
$("#timeline-range").addEventListener("change", loadTimeline);

connectFeed();
setTimeout(loadAlertStatuses, 1500);
loadRising();
loadQueries();
search(0);
loadSources();
setInterval(loadRising, 60000);
setInterval(loadSources, 30000);
setInterval(loadTimeline, 60000);
