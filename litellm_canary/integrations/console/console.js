// litellm-canary web console: plain JavaScript, no build step, no dependencies.
// The token lives in this tab's sessionStorage and goes out only as an Authorization header on the
// page's own requests to its own origin (never in a URL, no cookies). Every text from the server is
// set with textContent, never parsed as HTML.
"use strict";
(() => {
  const base = document.body.dataset.base || "";
  const KEY = "litellm-canary-token";
  const REFRESH_MS = 2000;
  const CHART_S = 300; // the charts' last minutes
  const RATE_S = 10; // request rate: the last 10 complete seconds
  const SIDES = ["stable", "canary"];
  let token = sessionStorage.getItem(KEY);
  let timer = null;
  let generation = 0; // the latest refresh; an older one still in flight neither renders nor reschedules
  let openIncident = null;
  let pictureAwaited = null;
  let incidentKey = "";
  const cards = new Map();
  const $ = (id) => document.getElementById(id);

  class Unauthorized extends Error {}

  function el(tag, attrs = {}, ...children) {
    const node = tag.startsWith("svg:")
      ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
      : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "class") node.setAttribute("class", value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path, { method = "GET", json, raw = false } = {}) {
    const headers = { Authorization: `Bearer ${token}` };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(base + path, {
      method, headers, body, credentials: "omit", cache: "no-store", redirect: "error",
    });
    if (response.status === 401) throw new Unauthorized("the token was not accepted");
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
      throw new Error(`${method} ${path}: ${response.status} ${message}`);
    }
    return raw ? response : response.json();
  }

  // -- formatting -----------------------------------------------------------------------------

  const dash = "–";
  const pct = (x) => (x === null || x === undefined ? dash : `${(100 * x).toFixed(x < 0.01 && x > 0 ? 2 : 1)} %`);
  const ms = (x) => (x === null || x === undefined ? dash : `${Math.round(x)} ms`);
  const num = (x, digits = 2) => (x === null || x === undefined ? dash : String(Number(x.toFixed(digits))));
  function duration(s) {
    if (s === null || s === undefined) return dash;
    s = Math.max(0, Math.round(s));
    if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
    if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    if (s >= 60) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${s}s`;
  }
  const when = (iso) => (iso ? `${iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC")}` : dash);
  const ago = (iso) => (iso ? `${duration((Date.now() - Date.parse(iso)) / 1000)} ago` : "");
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const last = (xs, n) => xs.slice(Math.max(0, xs.length - n));

  // -- login ----------------------------------------------------------------------------------

  function showLogin(message) {
    generation += 1;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    token = null;
    sessionStorage.removeItem(KEY);
    for (const card of cards.values()) card.root.remove();
    cards.clear();
    $("globals").replaceChildren();
    $("incident-list").tBodies[0].replaceChildren();
    $("incident").hidden = true;
    openIncident = null;
    pictureAwaited = null;
    incidentKey = "";
    $("console").hidden = true;
    $("signout").hidden = true;
    $("refreshed").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  async function signIn(candidate) {
    token = candidate;
    try {
      const status = await api("/canary/status");
      sessionStorage.setItem(KEY, token);
      $("login").hidden = true;
      $("login-error").textContent = "";
      $("console").hidden = false;
      $("signout").hidden = false;
      await refresh(status);
    } catch (error) {
      showLogin(error instanceof Unauthorized ? "That token was not accepted." : String(error.message || error));
    }
  }

  // -- refresh --------------------------------------------------------------------------------

  async function refresh(status) {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const mine = ++generation;
    try {
      status = status || (await api("/canary/status"));
      const groups = Object.keys(status.groups).sort();
      const series = await Promise.all(
        groups.map((g) => api(`/canary/series?model_group=${encodeURIComponent(g)}&seconds=${CHART_S}`)),
      );
      if (mine !== generation || token === null) return;
      renderGlobals(status);
      groups.forEach((g, i) => renderRollout(g, status.groups[g], series[i]));
      await refreshIncidents();
      await awaitPicture();
      $("console-error").textContent = "";
      $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (mine !== generation || token === null) return;
      if (error instanceof Unauthorized) return showLogin("The token is no longer accepted.");
      $("console-error").textContent = `Refresh failed: ${error.message || error}`;
    }
    if (mine === generation && token !== null) timer = setTimeout(() => refresh(), REFRESH_MS);
  }

  function renderGlobals(status) {
    const source = status.flag_source || {};
    const errors = Object.entries(status.flag_errors || {});
    const broadcast = status.broadcast;
    const facts = [
      ["flag provider", `${source.provider_status || dash}${source.last_error ? ` (last error: ${source.last_error})` : ""}`],
      ["flag errors", errors.length ? errors.map(([k, v]) => `${k}: ${v}`).join(", ") : "none"],
      ["decision errors", String(status.decision_errors || 0)],
      ["broadcast", broadcast ? compact(broadcast) : "not configured"],
    ];
    $("globals").replaceChildren(el("h2", { text: "Gateway" }), factList(facts, "globals"));
  }

  function compact(value) {
    if (value === null || value === undefined) return dash;
    if (typeof value !== "object") return String(value);
    return Object.entries(value)
      .filter(([, v]) => v !== null && typeof v !== "object")
      .map(([k, v]) => `${k}: ${typeof v === "number" ? num(v, 3) : v}`)
      .join(", ") || JSON.stringify(value);
  }

  function factList(facts, testid) {
    return el("dl", { class: "facts", "data-testid": testid },
      facts.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { "data-fact": name, text: value })]));
  }

  // -- one rollout ----------------------------------------------------------------------------

  function card(group) {
    let c = cards.get(group);
    if (c) return c;
    const badge = el("span", { class: "badge", "data-testid": "state" });
    const stateLine = el("p", { class: "state-line", "data-testid": "state-line" });
    const live = el("div");
    const charts = el("div", { class: "charts" });
    const message = el("p", { class: "muted", role: "status", "data-testid": "action-result" });
    const reason = el("textarea", { rows: 2, "aria-label": "Reason", "data-testid": "rollback-reason" });
    const confirmError = el("p", { class: "error", role: "alert" });
    const confirm = el("div", { class: "confirm", hidden: true, "data-testid": "rollback-confirm" },
      el("strong", { text: `Roll back ${group} to stable now?` }),
      el("p", { class: "muted", text: "Every new request goes to stable; requests already on the canary finish there." }),
      el("label", { text: "Reason (required)" }), reason, confirmError,
      el("button", { type: "button", class: "danger", text: "Confirm rollback", onclick: () => doRollback(group) }),
      " ",
      el("button", { type: "button", text: "Cancel", onclick: () => { confirm.hidden = true; } }));
    const rollbackButton = el("button", {
      type: "button", class: "danger", text: "Roll back",
      onclick: () => { confirm.hidden = false; confirmError.textContent = ""; reason.focus(); },
    });
    const percent = el("input", { type: "number", min: 0, max: 100, step: "any", "aria-label": "Canary percent after re-arm", "data-testid": "rearm-percent" });
    const rearm = el("div", { hidden: true },
      el("label", { text: "Canary percentage after re-arm (optional; empty keeps the flag as it is)" }), percent, " ",
      el("button", { type: "button", text: "Re-arm", onclick: () => doRearm(group) }));
    const root = el("section", { class: "rollout", id: `rollout-${group}`, "data-group": group },
      el("h2", {}, `${group} `, badge), stateLine, live, charts,
      el("div", { class: "actions" }, rollbackButton, confirm, rearm, message));
    $("rollouts").append(root);
    c = { root, badge, stateLine, live, charts, message, reason, confirm, confirmError, rollbackButton, percent, rearm };
    cards.set(group, c);
    return c;
  }

  function renderRollout(group, g, series) {
    const c = card(group);
    const rolledBack = g.state === "rolled_back";
    c.badge.className = `badge ${g.state}`;
    c.badge.textContent = rolledBack ? "rolled back" : g.state;
    c.stateLine.textContent = stateLine(g);
    c.rollbackButton.hidden = rolledBack;
    if (rolledBack) c.confirm.hidden = true;
    c.rearm.hidden = !rolledBack;
    c.live.replaceChildren(sidesTable(g, series), triggersTable(g), factList(rolloutFacts(g, series), "facts"));
    c.charts.replaceChildren(
      chart("error rate (per second)", series, "error_rate", pct, threshold(g, "error_rate") ?? threshold(g, "fast_fail")),
      chart("p99 TTFT (per second)", series, "ttft_p99_ms", ms, threshold(g, "ttft_p99")),
    );
  }

  function stateLine(g) {
    const r = g.last_rollback;
    if (g.state !== "rolled_back") return `armed: the flag decides each request${r ? ` (last rollback ${when(r.decided_at)})` : ""}`;
    if (!r) return "rolled back (recorded in the flag store before this process started)";
    const cause = r.cause || {};
    const by = cause.rule ? `trigger ${cause.rule}` : cause.alertname ? `alert ${cause.alertname}` : r.origin ? `replica ${r.origin}` : "an operator";
    return `rolled back since ${when(r.decided_at)} (${ago(r.decided_at)}), ${r.kind}, by ${by}: ${r.reason}`;
  }

  function sideStats(series, side) {
    const s = series[side];
    const requests = last(s.requests, RATE_S);
    const minute = { req: sum(last(s.requests, 60)), fail: sum(last(s.failures, 60)) };
    const ttfts = last(s.ttft_p99_ms, 60).filter((x) => x !== null);
    return {
      rate: sum(requests) / RATE_S,
      error: minute.req ? minute.fail / minute.req : null,
      ttft: ttfts.length ? Math.max(...ttfts) : null,
    };
  }

  function sidesTable(g, series) {
    const stats = Object.fromEntries(SIDES.map((side) => [side, sideStats(series, side)]));
    const row = (label, metric, value) => el("tr", {}, el("th", { text: label }),
      SIDES.map((side) => el("td", { class: side, "data-metric": metric, "data-side": side, text: value(side) })));
    return el("table", { "data-testid": "sides" },
      el("thead", {}, el("tr", {}, el("th", {}), SIDES.map((side) => el("th", { class: side, text: side })))),
      el("tbody", {},
        row(`requests/s (last ${RATE_S} s)`, "rate", (s) => num(stats[s].rate)),
        row("error rate (last min)", "error_rate", (s) => pct(stats[s].error)),
        row("max per-second p99 TTFT (last min)", "ttft", (s) => ms(stats[s].ttft)),
        row("attempts in flight", "in_flight", (s) => String((g.in_flight || {})[s] ?? dash)),
        row("pins", "pins", (s) => String((g.pins || {})[s] ?? dash))));
  }

  const RULE_META = new Set(["rule", "state", "summary", "threshold", "window_s", "min_samples", "breaching_since"]);

  function triggersTable(g) {
    const t = g.triggers || { rules: [] };
    const rows = (t.rules || []).map((rule) => {
      const state = rule.state === "breaching" && rule.breaching_since !== null && t.at
        ? `breaching for ${duration(t.at - rule.breaching_since)}` : rule.state;
      const observed = Object.entries(rule).filter(([k, v]) => !RULE_META.has(k) && v !== null && typeof v !== "object")
        .map(([k, v]) => `${k.replace(/_/g, " ")} ${k.includes("rate") ? pct(v) : k.endsWith("_ms") ? ms(v) : typeof v === "number" ? num(v, 3) : v}`).join("; ");
      const limit = rule.threshold === null ? "baseline" : rule.rule.includes("ttft") ? ms(rule.threshold) : rule.rule === "eval_score" ? num(rule.threshold, 3) : pct(rule.threshold);
      return el("tr", { "data-rule": rule.rule },
        el("td", { text: rule.rule }), el("td", { class: `st-${rule.state}`, text: state }),
        el("td", { text: `${limit}${rule.window_s ? ` over ${duration(rule.window_s)}` : ""}` }),
        el("td", { text: observed || dash }), el("td", { class: "muted", text: rule.summary || "" }));
    });
    return el("table", { "data-testid": "triggers" },
      el("thead", {}, el("tr", {}, ["trigger", "state", "threshold", "observed", "why"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "muted", text: "no automatic triggers" }))));
  }

  function threshold(g, name) {
    const rule = ((g.triggers || {}).rules || []).find((r) => r.rule === name);
    return rule && typeof rule.threshold === "number" ? rule.threshold : null;
  }

  function rolloutFacts(g, series) {
    const flag = g.flag_store || {};
    const w = g.window;
    const kw = g.keep_warm;
    const r = g.last_rollback;
    const canaryShare = (() => {
      const c = sum(last(series.canary.requests, 60));
      const all = c + sum(last(series.stable.requests, 60));
      return all ? `${pct(c / all)} of requests in the last minute` : "no requests in the last minute";
    })();
    const facts = [
      ["flag", `'${g.flag_key}' serves ${flag.serves ?? "(the store cannot say)"}; last answer ${g.last_flag_value ?? dash}; to the canary: ${canaryShare}`],
      ["flag store", `${flag.kind || "none"}${flag.write_pending ? ", write pending" : ""}${flag.last_error ? `, error: ${flag.last_error}` : ""}`],
      ["flag read", g.flag_read ? `breaker ${g.flag_read.state}, last read ${num(g.flag_read.last_read_ms, 3)} ms` : dash],
      ["canary window", w ? (w.promoted_at ? `promoted ${when(w.promoted_at)}` : `${w.ended ? "ended" : `${duration(w.remaining_s)} left`}; ${w.ready_to_promote ? "ready to promote" : "not ready to promote"}`) : "none"],
      ["stable health (keep-warm)", kw ? `stable share ${pct(kw.stable_share)} (floor ${pct(kw.floor)}); ${kw.stable_unhealthy && kw.stable_unhealthy.length ? `unhealthy: ${kw.stable_unhealthy.join(", ")}` : "healthy"}${kw.probing ? "; probing" : ""}` : "not configured"],
      ["last verification", r && r.verification ? `${r.verification.verdict} (${when(r.decided_at)})` : r ? "none" : "no rollback yet"],
    ];
    if (r && r.incident_id) facts.push(["incident", r.incident_id]);
    if (g.conversation_drain_remaining_s > 0) facts.push(["conversation drain", `${duration(g.conversation_drain_remaining_s)} left`]);
    if (g.drill) facts.push(["last drill", g.drill.last_at ? `${when(g.drill.last_at)}: ${g.drill.result}` : `never${g.drill.drill_overdue ? " (overdue)" : ""}`]);
    return facts;
  }

  // -- charts: inline SVG ----------------------------------------------------------------------

  function chart(title, series, metric, format, limit) {
    const W = 360, H = 90, PAD = 4, MIN_S = 60;
    // from the first second with traffic (at least the last minute) to now: a young rollout's lines
    // are not squeezed into the right edge of five empty minutes
    const busy = series.t.findIndex((_, i) => SIDES.some((s) => series[s].requests[i] > 0));
    const from = Math.min(busy < 0 ? series.t.length : busy, Math.max(0, series.t.length - MIN_S));
    const data = Object.fromEntries(SIDES.map((s) => [s, series[s][metric].slice(from)]));
    const n = series.t.length - from;
    const values = SIDES.flatMap((s) => data[s]).filter((v) => v !== null);
    const floor = metric === "error_rate" ? 0.05 : 100;
    const peak = Math.max(floor, ...values);
    // a threshold far above what is observed would flatten the lines: then it is only named
    const drawLimit = limit !== null && limit !== undefined && limit <= 3 * peak;
    const top = 1.15 * Math.max(peak, drawLimit ? limit : 0);
    const x = (i) => PAD + ((W - 2 * PAD) * i) / Math.max(1, n - 1);
    const y = (v) => H - PAD - ((H - 2 * PAD) * v) / top;
    const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    if (drawLimit) {
      svg.append(el("svg:line", { class: "threshold", x1: PAD, x2: W - PAD, y1: y(limit), y2: y(limit) }));
    }
    for (const side of SIDES) {
      let points = [];
      const flush = () => {
        if (points.length === 1) points.push(points[0]); // a lone second still shows as a dot
        if (points.length) svg.append(el("svg:polyline", { class: side, points: points.join(" ") }));
        points = [];
      };
      data[side].forEach((v, i) => {
        if (v === null) flush();
        else points.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      });
      flush();
    }
    const span = n >= 120 ? `-${Math.round(n / 60)} min` : `-${n} s`;
    svg.append(el("svg:text", { x: PAD + 2, y: 11, text: format(top) }), el("svg:text", { x: W - 26, y: H - 6, text: "now" }),
      el("svg:text", { x: PAD + 2, y: H - 6, text: span }));
    const note = limit === null || limit === undefined ? "" : drawLimit ? ` (dashed: threshold ${format(limit)})` : ` (threshold ${format(limit)}, above the chart)`;
    return el("figure", { class: "chart" }, el("figcaption", {}, `${title} `,
      el("span", { class: "legend" }, el("span", { class: "canary", text: "canary" }), " / ", el("span", { class: "stable", text: "stable" }), note)), svg);
  }

  // -- actions --------------------------------------------------------------------------------

  async function doRollback(group) {
    const c = card(group);
    const reason = c.reason.value.trim();
    if (!reason) {
      c.confirmError.textContent = "A reason is required.";
      return;
    }
    try {
      const record = await api("/canary/rollback", { method: "POST", json: { model_group: group, reason } });
      c.confirm.hidden = true;
      c.reason.value = "";
      c.message.textContent = `Rolled back at ${when(record.decided_at)}; latched in ${num(record.latch_us, 0)} µs.`;
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin("The token is no longer accepted.");
      c.confirmError.textContent = String(error.message || error);
      return;
    }
    refresh();
  }

  async function doRearm(group) {
    const c = card(group);
    const raw = c.percent.value.trim();
    const percent = raw === "" ? null : Number(raw);
    if (percent !== null && !(percent >= 0 && percent <= 100)) {
      c.message.textContent = "The canary percentage must be a number within 0..100.";
      return;
    }
    try {
      const result = await api("/canary/rearm", { method: "POST", json: { model_group: group } });
      let text = result.rearmed ? "Re-armed: the flag decides again" : "It was not rolled back";
      if (percent !== null) {
        await api("/canary/percent", { method: "POST", json: { model_group: group, percent } });
        text += `; the flag now serves ${percent} % of users the canary`;
      }
      c.message.textContent = `${text}.`;
      c.percent.value = "";
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin("The token is no longer accepted.");
      c.message.textContent = String(error.message || error);
      return;
    }
    refresh();
  }

  // -- incidents ------------------------------------------------------------------------------

  async function refreshIncidents() {
    let list;
    try {
      list = (await api("/canary/incidents")).incidents;
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      $("incidents-note").textContent = String(error.message || error);
      return;
    }
    const key = JSON.stringify(list.map((i) => [i.id, i.annotated]));
    $("incidents-note").textContent = list.length ? "" : "No incidents yet.";
    if (key === incidentKey) return;
    incidentKey = key;
    $("incident-list").tBodies[0].replaceChildren(...list.map((i) => el("tr", { "data-incident-id": i.id, onclick: () => showIncident(i.id) },
      el("td", {}, el("button", { type: "button", text: i.id })), el("td", { text: i.model_group }), el("td", { text: i.kind }),
      el("td", { text: i.rule || dash }), el("td", { text: i.annotated ? "annotated" : "open" }), el("td", { text: i.summary || "" }))));
  }

  async function showIncident(id) {
    openIncident = id;
    try {
      const data = await api(`/canary/incidents/${encodeURIComponent(id)}`);
      $("incident").hidden = false;
      $("incident").dataset.incidentId = id;
      $("incident-title").textContent = `Incident ${id} (${data.incident.model_group}, ${data.incident.kind})`;
      $("incident-markdown").textContent = data.markdown;
      $("annotate-cause").value = data.incident.actual_cause || "";
      $("annotate-change").value = data.incident.what_would_change || "";
      $("annotate-result").textContent = "";
      const img = $("incident-picture");
      if (img.src) URL.revokeObjectURL(img.src);
      img.removeAttribute("src");
      img.hidden = true;
      pictureAwaited = !data.picture && !data.incident.picture_note ? id : null;
      $("incident-picture-note").textContent = data.incident.picture_note || (data.picture ? "" : "No timeline picture yet (drawn once the rollback is verified).");
      if (data.picture) await loadPicture(id);
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin("The token is no longer accepted.");
      $("incident-picture-note").textContent = String(error.message || error);
    }
  }

  async function loadPicture(id) {
    const blob = await (await api(`/canary/incidents/${encodeURIComponent(id)}/picture`, { raw: true })).blob();
    if (openIncident !== id) return;
    const img = $("incident-picture");
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
    $("incident-picture-note").textContent = "";
  }

  // the open incident's picture arrives after its verification: look for it on each refresh
  async function awaitPicture() {
    const id = pictureAwaited;
    if (!id || id !== openIncident) return;
    const data = await api(`/canary/incidents/${encodeURIComponent(id)}`);
    if (data.picture && pictureAwaited === id && openIncident === id) {
      pictureAwaited = null;
      await loadPicture(id);
    }
  }

  async function annotate(event) {
    event.preventDefault();
    const id = openIncident;
    const cause = $("annotate-cause").value.trim();
    const change = $("annotate-change").value.trim();
    if (!id) return;
    if (!cause || !change) {
      $("annotate-result").textContent = "Both the actual cause and what would change are required.";
      return;
    }
    try {
      await api(`/canary/incidents/${encodeURIComponent(id)}/annotate`, { method: "POST", json: { cause, change } });
      await showIncident(id);
      $("annotate-result").textContent = "Annotation saved.";
      incidentKey = "";
      await refreshIncidents();
    } catch (error) {
      if (error instanceof Unauthorized) return showLogin("The token is no longer accepted.");
      $("annotate-result").textContent = String(error.message || error);
    }
  }

  // -- start ----------------------------------------------------------------------------------

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    if (value) signIn(value);
  });
  $("signout").addEventListener("click", () => showLogin("Signed out."));
  $("annotate-form").addEventListener("submit", annotate);
  if (token) signIn(token);
  else showLogin("");
})();
