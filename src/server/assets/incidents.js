// gema dashboard: the incidents panel. An incident is a brand's spike, trending terms and
// negative comments as one story; the newest version of each arrives on /api/feed/incidents.
// Every value from the API is put in the page with textContent, never as HTML.
"use strict";

(() => {
  const list = document.querySelector("#incidents");
  if (!list) return;
  const nodes = new Map(); // id -> { li, status }
  const RANK = { critical: 0, high: 1, medium: 2, low: 3 };

  function node(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) if (c != null) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  async function call(path, options) {
    const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function link(url, text) {
    if (!/^https?:\/\//i.test(url || "")) return node("span", null, text);
    const a = node("a", null, text);
    a.href = url;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    return a;
  }

  // The status a person set wins over the router's open; the router resolving it wins over all.
  function statusOf(inc, known) {
    if (inc.status === "resolved") return "resolved";
    return known && known !== "open" ? known : inc.status;
  }

  function render(inc, status) {
    const li = node("li", "incident sev-" + inc.severity + " status-" + status);
    li.dataset.id = inc.id;
    li.dataset.severity = inc.severity;
    const head = node("div", "incident-head",
      node("span", "badge sev-" + inc.severity, inc.severity.toUpperCase()),
      node("span", "incident-status", status),
      node("span", "incident-movement", inc.movement));
    const btn = node("button", "incident-ack", status === "open" ? "Acknowledge" : status);
    btn.disabled = status !== "open";
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        await call("/api/incidents/" + encodeURIComponent(inc.id) + "/acknowledge", { method: "POST" });
        nodes.get(inc.id).status = "acknowledged";
        upsert(inc);
      } catch (e) {
        btn.disabled = false;
        btn.title = e.message;
      }
    });
    head.append(btn);
    li.append(head, node("p", "incident-summary", inc.summary));
    if ((inc.driving_terms || []).length) {
      const terms = node("p", "incident-terms", "driving it: ");
      for (const t of inc.driving_terms) terms.append(node("span", "term", t), " ");
      li.append(terms);
    }
    const samples = node("ul", "incident-samples");
    for (const s of (inc.samples || []).slice(0, 3)) {
      samples.append(node("li", "incident-sample",
        link(s.url, "@" + s.author_handle), " (" + s.author_followers + " followers): ",
        node("span", "sample-text", s.text)));
    }
    li.append(samples);
    // The single alerts stay reachable under their incident, fetched when opened.
    const details = node("details", "incident-alerts", node("summary", null, inc.alert_count + " alerts"));
    const alerts = node("ul");
    details.append(alerts);
    details.addEventListener("toggle", async () => {
      if (!details.open || alerts.childElementCount) return;
      try {
        const full = await call("/api/incidents/" + encodeURIComponent(inc.id));
        for (const a of full.alerts || []) {
          alerts.append(node("li", "sev-" + a.severity, "[" + a.severity + "] " + a.title + " — " + a.why));
        }
      } catch (e) {
        alerts.append(node("li", null, "cannot load: " + e.message));
      }
    });
    li.append(details);
    return li;
  }

  function place(li) {
    const sev = RANK[li.dataset.severity] ?? 9;
    for (const other of list.children) {
      if ((RANK[other.dataset.severity] ?? 9) > sev) {
        list.insertBefore(li, other);
        return;
      }
    }
    list.append(li);
  }

  function upsert(inc) {
    const known = nodes.get(inc.id);
    const status = statusOf(inc, known && known.status);
    const li = render(inc, status);
    if (known && known.li) known.li.remove();
    nodes.set(inc.id, { li, status, inc });
    place(li);
  }

  call("/api/incidents?since=24h")
    .then((page) => {
      // The stored status (a person's acknowledgement included) is what the list says.
      for (const inc of page.items.slice().reverse()) upsert(inc);
    })
    .catch(() => {});
  const es = new EventSource("/api/feed/incidents");
  es.addEventListener("incident", (ev) => {
    try {
      upsert(JSON.parse(ev.data));
    } catch (_) {
      // A malformed event is skipped; the next version replaces it.
    }
  });
})();
