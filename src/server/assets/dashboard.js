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

// Every time is shown in the server's display zone ([display] time_zone, from /api/display),
// with its date: "11-27 03:30". The zone is named once, in the header and the table heads.
let zone = "UTC";
let zoneAbbr = "UTC";
let fmtParts = null;

function setZone(name) {
  try {
    fmtParts = new Intl.DateTimeFormat("en-GB", { timeZone: name, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    zone = name;
  } catch (e) {
    fmtParts = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    zone = "UTC";
  }
}
setZone("UTC");

function fmtTime(t) {
  const d = t instanceof Date ? t : new Date(typeof t === "number" ? t * 1000 : t);
  const p = {};
  for (const x of fmtParts.formatToParts(d)) p[x.type] = x.value;
  return p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
}

// Alerts state their windows in UTC when raised ("03:48–03:49 UTC"); shown beside a local time,
// they are moved to the display zone so a line holds one clock (as the CLI does).
function localizeClocks(text, reference) {
  if (zone === "UTC" || !text) return text;
  const ref = new Date(reference);
  return text.replace(/\b(?:(\d{4}-\d{2}-\d{2}) )?(\d{2}):(\d{2})(?:–(\d{2}):(\d{2}))? UTC\b/g,
    (all, date, h1, m1, h2, m2) => {
      const at = (day, h, m) => {
        const t = new Date(day + "T" + h + ":" + m + ":00Z");
        if (!date && t > ref) t.setUTCDate(t.getUTCDate() - 1);
        return t;
      };
      const day = date || ref.toISOString().slice(0, 10);
      const start = at(day, h1, m1);
      if (isNaN(start)) return all;
      const hm = (t) => fmtTime(t).slice(6);
      let out = (date ? fmtTime(start) : hm(start));
      if (h2) {
        let end = new Date(start.toISOString().slice(0, 10) + "T" + h2 + ":" + m2 + ":00Z");
        if (end < start) end.setUTCDate(end.getUTCDate() + 1);
        out += "–" + hm(end);
      }
      return out + " " + zoneAbbr;
    });
}

function empty(cols, text) {
  return el("tr", {}, el("td", { colspan: String(cols), class: "empty" }, text));
}

function pct(x) { return Math.round(x * 100) + "%"; }

function num(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return Math.round(n / 1e3) + "k";
  return String(n);
}

// ---- live alerts ----
const alertNodes = new Map();

function renderAlert(a, status) {
  const s = (a.samples && a.samples[0]) || null;
  const li = el("li", { class: "sev-" + a.severity, "data-id": a.id });
  li.append(el("div", {}, el("span", { class: "sev" }, a.severity), el("strong", {}, a.title)));
  li.append(el("div", { class: "meta" },
    a.kind.replace("_", " "), " · ", el("time", { datetime: a.detected_at }, fmtTime(a.detected_at)),
    a.count > 1 ? " · " + a.count + " mentions" : ""));
  // Why it fired: for a negative comment, the words that made the mention negative first.
  li.append(el("div", { class: "why" }, localizeClocks(a.why, a.detected_at)));
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
  const placeholder = $("#alerts li.empty");
  if (placeholder) placeholder.remove();
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
    refreshSoon();
  });
}

// ---- rising now ----
// A rising term's line: distinct authors per step over the whole window, counted from the stored
// mentions, so it goes on after the burst; the burst's step is marked with a dot.
function sparkline(values, title, burst) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const t = document.createElementNS(ns, "title");
  t.textContent = title;
  svg.append(t);
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 118 / (values.length - 1) : 0;
  const xy = (v, i) => [1 + i * step, 23 - (v / max) * 21];
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", values.map((v, i) => xy(v, i).map((n) => n.toFixed(1)).join(",")).join(" "));
  svg.append(line);
  if (burst != null && burst < values.length) {
    const [x, y] = xy(values[burst], burst);
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x.toFixed(1));
    dot.setAttribute("cy", y.toFixed(1));
    dot.setAttribute("r", "2");
    svg.append(dot);
  }
  return svg;
}

// A tracked query's volume terms read as the query (as `gema trends` shows them).
function termLabel(term) {
  if (term.startsWith("qneg:")) return term.slice(5) + " (negative mentions)";
  if (term.startsWith("q:")) return term.slice(2) + " (mentions)";
  return term;
}

async function loadRising() {
  const tbody = $("#rising tbody");
  try {
    const r = await api("/api/trends/rising?since=1h&limit=15");
    tbody.replaceChildren(...r.items.map((t) => {
      const s = t.sparkline || [];
      const mins = Math.round((t.sparkline_step_secs || 60) / 60);
      const title = "authors per " + mins + " min from " + fmtTime(t.sparkline_since) + " to "
        + fmtTime(t.sparkline_until) + ": " + s.join(", ") + "; burst at " + fmtTime(t.bucket_start);
      return el("tr", {}, el("td", {}, termLabel(t.term)), el("td", {}, t.score.toFixed(1)),
        el("td", {}, t.authors), el("td", {}, sparkline(s, title, t.burst_index),
          el("span", { class: "meta" }, " burst " + fmtTime(t.bucket_start))));
    }));
    if (!r.items.length) tbody.replaceChildren(empty(4, "Nothing is bursting in the last hour."));
  } catch (e) {
    tbody.replaceChildren(empty(4, "error: " + e.message));
  }
}

// ---- headline cards ----
let headline = [];

function change(x, kind, worseWhenUp) {
  if (x == null) return el("span", { class: "change" }, "(new)");
  const up = x > 0;
  const cls = x === 0 ? "" : (up === worseWhenUp ? "worse" : "better");
  const text = kind === "pts" ? (up ? "+" : "") + Math.round(x * 100) + " pts"
    : (up ? "+" : "") + Math.round(x * 100) + "%";
  return el("span", { class: "change " + cls, title: "against the 24 h before" }, text);
}

async function loadHeadline() {
  const box = $("#headline");
  try {
    const r = await api("/api/headline?since=24h");
    headline = r.items;
    if (!r.items.length) {
      box.replaceChildren(el("p", { class: "empty" }, "No tracked queries: add [[tracked]] queries to gema.toml."));
      return;
    }
    box.replaceChildren(...r.items.map((h) => el("div", { class: "card", "data-query": h.query },
      el("h3", {}, h.query),
      el("dl", {},
        el("dt", {}, "mentions"), el("dd", {}, el("span", { class: "num mentions" }, num(h.mentions)), change(h.mentions_change, "%", true)),
        el("dt", {}, "negative"), el("dd", {}, el("span", { class: "num negative" }, h.negative_share == null ? "–" : pct(h.negative_share)),
          change(h.negative_share_change, "pts", true)),
        el("dt", {}, "reach"), el("dd", {}, el("span", { class: "num reach", title: "followers of the distinct authors" }, num(h.reach)),
          change(h.reach_change, "%", true))))));
  } catch (e) {
    box.replaceChildren(el("p", {}, "error: " + e.message));
  }
}

// The query in most trouble: the largest rise of its negative share, then most negatives.
function troubledQuery() {
  const scored = headline.filter((h) => h.mentions > 0);
  if (!scored.length) return headline.length ? headline[0].query : null;
  scored.sort((a, b) => ((b.negative_share_change ?? b.negative_share ?? 0) - (a.negative_share_change ?? a.negative_share ?? 0))
    || (b.negative - a.negative));
  return scored[0].query;
}

// ---- top authors ----
async function loadAuthors() {
  const tbody = $("#authors tbody");
  try {
    const r = await api("/api/authors/top?since=24h&limit=10");
    tbody.replaceChildren(...r.items.map((a) => el("tr", {},
      el("td", {}, "@" + a.handle, el("span", { class: "meta" }, " " + a.platform)),
      el("td", {}, num(a.followers)), el("td", {}, String(a.mentions)),
      el("td", { class: a.negative ? "neg" : "" }, String(a.negative)))));
    if (!r.items.length) tbody.replaceChildren(empty(4, "No mentions in the last 24 hours."));
  } catch (e) {
    tbody.replaceChildren(empty(4, "error: " + e.message));
  }
}

// ---- sentiment over time and share of voice ----
let chart = null;
const BUCKET = { "6h": "15m", "24h": "1h", "7d": "6h" };

// The smallest range that holds the query's mentions of the last 7 days.
async function fittingRange(q) {
  const r = await api("/api/timeline?query=" + encodeURIComponent(q) + "&since=7d&bucket=1h");
  const first = r.items.find((b) => b.total > 0);
  if (!first) return "24h";
  const age = (Date.now() - Date.parse(first.bucket_start)) / 3600e3;
  return age <= 5 ? "6h" : age <= 23 ? "24h" : "7d";
}

async function loadTimeline() {
  const q = $("#timeline-query").value;
  const box = $("#timeline-chart");
  const note = $("#timeline-note");
  if (!q) { box.replaceChildren(el("p", { class: "empty" }, "No tracked queries configured.")); return; }
  let range = $("#timeline-range").value;
  try {
    if (range === "auto") range = await fittingRange(q);
    const bucket = BUCKET[range];
    const r = await api("/api/timeline?query=" + encodeURIComponent(q) + "&since=" + range + "&bucket=" + bucket);
    const total = r.items.reduce((n, b) => n + b.total, 0);
    note.textContent = (total ? total + " mention" + (total > 1 ? "s" : "") : "No mentions") + " of " + q + " in the last " + range +
      ", " + bucket + " buckets; net sentiment is left out where a bucket has nothing scored.";
    if (chart) { chart.destroy(); chart = null; }
    if (!total) {
      box.replaceChildren(el("p", { class: "empty" }, "No mentions of " + q + " in the last " + range + "."));
      return;
    }
    const xs = r.items.map((b) => Date.parse(b.bucket_start) / 1000);
    // Counts of an empty bucket are a true 0; its net sentiment is unknown: null, a gap.
    const data = [xs, r.items.map((b) => b.negative), r.items.map((b) => b.neutral),
      r.items.map((b) => b.positive), r.items.map((b) => b.net_sentiment)];
    box.replaceChildren();
    const count = (u, v) => v == null ? "–" : String(v);
    chart = new uPlot({
      width: Math.max(260, box.clientWidth || 440), height: 240,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), zone),
      series: [{ label: "bucket (" + zoneAbbr + ")", value: (u, v) => v == null ? "–" : fmtTime(v) },
        { label: "negative", stroke: "#b00", value: count }, { label: "neutral", stroke: "#888", value: count },
        { label: "positive", stroke: "#070", value: count },
        { label: "net", stroke: "#36c", scale: "net", spanGaps: false, value: (u, v) => v == null ? "–" : v.toFixed(2) }],
      axes: [{ label: "time (" + zone + ")", values: (u, splits) => splits.map((v) => fmtTime(v)), space: 90 },
        { label: "mentions per " + bucket },
        { label: "net sentiment", scale: "net", side: 1, grid: { show: false } }],
      scales: { net: { range: [-1, 1] } },
      // The legend shows the latest bucket whenever the pointer is not over the chart.
      hooks: { setCursor: [(u) => { if (u.cursor.idx == null) setTimeout(() => u.setLegend({ idx: xs.length - 1 }), 0); }],
        ready: [(u) => setTimeout(() => u.setLegend({ idx: xs.length - 1 }), 0)] },
    }, data, box);
  } catch (e) {
    box.replaceChildren(el("p", {}, "error: " + e.message));
  }
}

async function loadSov() {
  try {
    const sov = await api("/api/share-of-voice?since=24h");
    $("#sov").replaceChildren(...sov.items.map((v) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.round(v.share * 200) + "px";
      return el("li", {}, bar, v.query + " " + Math.round(v.share * 100) + "% (" + v.mentions + ", net " + v.net_sentiment.toFixed(2) + ")");
    }));
    if (!sov.items.length) $("#sov").replaceChildren(el("li", { class: "empty" }, "No mentions of tracked queries in the last 24 hours."));
  } catch (e) {
    $("#sov").replaceChildren(el("li", {}, "error: " + e.message));
  }
}

async function loadQueries() {
  const sel = $("#timeline-query");
  try {
    const qs = await api("/api/queries");
    const names = qs.items.map((q) => q.name);
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    const wanted = urlState.get("chart");
    sel.value = wanted && names.includes(wanted) ? wanted : (troubledQuery() || names[0] || "");
    const range = urlState.get("range");
    if (range && BUCKET[range]) $("#timeline-range").value = range;
  } catch (e) {
    $("#timeline-note").textContent = "error: " + e.message;
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

// The search filters and the chart's query and range live in the address, so a bookmarked or
// shared URL opens the same view.
const urlState = new URLSearchParams(location.search);
const SEARCH_KEYS = ["q", "sentiment", "lang", "min_confidence", "platform", "since"];

function restoreSearch() {
  const form = $("#search");
  for (const k of SEARCH_KEYS) {
    const v = urlState.get(k);
    if (v != null && form.elements[k]) form.elements[k].value = v;
  }
}

function saveUrl() {
  const p = new URLSearchParams();
  const form = new FormData($("#search"));
  for (const k of SEARCH_KEYS) {
    const v = form.get(k);
    if (v && !(k === "since" && v === "24h")) p.set(k, v);
  }
  const q = $("#timeline-query").value;
  if (q) p.set("chart", q);
  const range = $("#timeline-range").value;
  if (range !== "auto") p.set("range", range);
  const qs = p.toString();
  history.replaceState(null, "", qs ? "?" + qs : location.pathname);
}

let newMentions = 0;

function mentionRow(m) {
  const url = safeUrl(m.url);
  const text = url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, m.text) : m.text;
  return el("tr", {},
    el("td", { class: "time" }, el("time", { datetime: m.created_at }, fmtTime(m.created_at))),
    el("td", { class: "platform" }, m.platform),
    el("td", { class: "author" }, "@" + m.author_handle),
    sentimentCell(m),
    el("td", {}, text));
}

async function search(offset) {
  const form = new FormData($("#search"));
  const params = new URLSearchParams();
  for (const [k, v] of form) if (v) params.set(k, v);
  params.set("limit", "50");
  if (offset) params.set("offset", offset);
  const tbody = $("#mentions tbody");
  if (!offset) {
    newMentions = 0;
    $("#mentions-new").hidden = true;
  }
  try {
    const r = await api("/api/mentions?" + params);
    const rows = r.items.map(mentionRow);
    if (offset) tbody.append(...rows);
    else if (rows.length) tbody.replaceChildren(...rows);
    else tbody.replaceChildren(empty(5, "No mentions match these filters in this window."));
    nextOffset = r.next_offset;
    $("#more").hidden = nextOffset == null;
  } catch (e) {
    tbody.replaceChildren(empty(5, "error: " + e.message));
  }
}

// ---- live updates ----
// The mention feed carries new negative mentions of tracked queries; the alert feed, alerts.
// Either one refreshes the aggregate panels (at most every 10 s); the mention list is not
// reshuffled under the reader: a banner says how many are new and shows them on a tap.
let refreshTimer = null;

function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    loadHeadline();
    loadSov();
    loadAuthors();
    loadRising();
    loadTimeline();
  }, 10000);
}

function connectMentionFeed() {
  const es = new EventSource("/api/feed/mentions");
  es.addEventListener("mention", () => {
    newMentions++;
    const b = $("#mentions-new");
    b.textContent = newMentions + " new negative mention" + (newMentions > 1 ? "s" : "") + " — show";
    b.hidden = false;
    refreshSoon();
  });
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
$("#search").addEventListener("submit", (ev) => { ev.preventDefault(); saveUrl(); search(0); });
$("#more").addEventListener("click", () => search(nextOffset));
$("#mentions-new").addEventListener("click", () => search(0));
$("#timeline-query").addEventListener("change", () => { saveUrl(); loadTimeline(); });
$("#timeline-range").addEventListener("change", () => { saveUrl(); loadTimeline(); });
window.addEventListener("resize", () => {
  const box = $("#timeline-chart");
  if (chart && box.clientWidth) chart.setSize({ width: Math.max(260, box.clientWidth), height: 240 });
});

async function start() {
  try {
    const d = await api("/api/display");
    setZone(d.time_zone);
    zoneAbbr = d.abbreviation;
  } catch (e) { /* times stay in UTC, and say so */ }
  $("#zone").textContent = "times in " + zone + " (" + zoneAbbr + ")";
  $("#mentions .col-time").textContent = "time (" + zoneAbbr + ")";
  restoreSearch();
  connectFeed();
  connectMentionFeed();
  setTimeout(loadAlertStatuses, 1500);
  loadRising();
  loadAuthors();
  loadSov();
  search(0);
  loadSources();
  await loadHeadline();
  await loadQueries();
  // Positive and neutral mentions have no feed: the aggregates also refresh every minute.
  setInterval(refreshSoon, 60000);
  setInterval(loadSources, 30000);
}

start();
