// demur dashboard: vanilla JS, no dependencies. State comes from JSON
// snapshots; Server-Sent Events bring only what changed, and every redraw
// waits for the next animation frame, so a burst of updates for a thousand
// agents costs one paint.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const COLORS = { idle: "#9ecae1", working: "#3182bd", refused: "#e6550d", paused: "#fdae6b", retired: "#bbb" };
  const MAX_ROWS = 300; // refusal rows kept in the DOM

  const st = {
    job: null, summary: null, agents: [], byId: new Map(), refusals: [], bySeq: new Map(),
    selected: null, series: [], cell: 16, cols: 1, dirty: { grid: true, curve: true, timeline: true, rows: [] },
  };
  // Exposed for tests and for measuring: the last grid paint and update handling.
  window.demurStats = { drawMs: 0, maxDrawMs: 0, updates: 0, agents: 0 };

  function text(el, s) { el.textContent = s; return el; }
  function node(tag, s, cls) { const e = document.createElement(tag); if (s !== undefined) e.textContent = s; if (cls) e.className = cls; return e; }
  const NS = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs) { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(url + ": " + r.status);
    return r.json();
  }

  async function loadJobs() {
    const jobs = await getJSON("/api/jobs");
    const sel = $("job");
    const have = new Set([...sel.options].map((o) => o.value));
    for (const j of jobs) if (!have.has(j.id)) sel.add(new Option(j.id, j.id));
    if (!st.job && jobs.length) {
      const running = jobs.filter((j) => j.status === "running");
      st.job = (running.length ? running[running.length - 1] : jobs[jobs.length - 1]).id;
    }
    if (st.job) sel.value = st.job;
  }

  async function loadJob() {
    if (!st.job) return;
    const s = await getJSON("/api/jobs/" + encodeURIComponent(st.job));
    st.summary = s.job; st.agents = s.agents; st.byId = new Map(s.agents.map((a, i) => [a.id, i]));
    st.refusals = s.refusals; st.bySeq = new Map(s.refusals.map((r, i) => [r.seq, i]));
    $("refusals").replaceChildren();
    st.dirty.rows = s.refusals.slice(-MAX_ROWS);
    st.dirty.grid = st.dirty.timeline = true;
    if (st.selected) await loadSeries(st.selected);
    showSummary(); schedule();
  }

  async function loadSeries(agent) {
    st.selected = agent;
    st.series = await getJSON("/api/jobs/" + encodeURIComponent(st.job) + "/agents/" + encodeURIComponent(agent) + "/series");
    st.dirty.curve = true; schedule();
  }

  function onUpdate(u) {
    window.demurStats.updates++;
    if (!st.job) { st.job = u.job.id; loadJobs().then(loadJob); return; }
    if ($("job").querySelector('option[value="' + CSS.escape(u.job.id) + '"]') === null) $("job").add(new Option(u.job.id, u.job.id));
    if (u.job.id !== st.job) return;
    st.summary = u.job;
    for (const a of u.agents || []) {
      const i = st.byId.get(a.id);
      if (i === undefined) { st.byId.set(a.id, st.agents.length); st.agents.push(a); } else st.agents[i] = a;
      if (a.id === st.selected && a.last) {
        const p = st.series[st.series.length - 1];
        if (!p || p.t !== a.last.t || p.h !== a.last.h) { st.series.push(a.last); st.dirty.curve = true; }
      }
    }
    for (const r of u.refusals || []) {
      const i = st.bySeq.get(r.seq);
      if (i !== undefined) { st.refusals[i] = r; const li = document.querySelector('li[data-seq="' + r.seq + '"]'); if (li) fillRow(li, r); continue; }
      st.bySeq.set(r.seq, st.refusals.length); st.refusals.push(r); st.dirty.rows.push(r);
    }
    st.dirty.grid = st.dirty.timeline = true;
    showSummary(); schedule();
  }

  let pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(paint); } }
  function paint() {
    pending = false;
    if (st.dirty.grid) { const t0 = performance.now(); drawGrid(); const ms = performance.now() - t0;
      window.demurStats.drawMs = ms; window.demurStats.maxDrawMs = Math.max(window.demurStats.maxDrawMs, ms); window.demurStats.agents = st.agents.length; st.dirty.grid = false; }
    if (st.dirty.rows.length) { drawRows(st.dirty.rows); st.dirty.rows = []; }
    if (st.dirty.timeline) { drawTimeline(); st.dirty.timeline = false; }
    if (st.dirty.curve) { drawCurve(); st.dirty.curve = false; }
  }

  function showSummary() {
    const j = st.summary; if (!j) return;
    const rate = j.turns ? (100 * j.refusals / j.turns).toFixed(1) : "0.0";
    text($("summary"), `${j.status} · ${j.task_type} · sections ${j.sections_done}/${j.sections_total} · turns ${j.turns} · refusals ${j.refusals} (${rate}%) · overrides ${j.overrides}`);
    text($("agent-count"), st.agents.length + " agents");
    text($("refusal-count"), st.refusals.length + "");
    const dec = Object.entries(j.decisions || {}).sort().map(([k, v]) => `${k} ${v}`).join(" · ");
    text($("sla"), `refusal rate ${rate}% of ${j.turns} turns\ndecisions: ${dec || "none"}\n` + (st.sla || "no SLA objectives configured"));
  }

  // The grid is one canvas: a thousand agents are a thousand fillRects, far
  // cheaper than a thousand DOM nodes restyled per update.
  function drawGrid() {
    const cv = $("grid"), n = st.agents.length || 1;
    const w = cv.clientWidth || 600;
    const cell = Math.max(6, Math.min(28, Math.floor(Math.sqrt((w * 240) / n))));
    const cols = Math.max(1, Math.floor(w / cell)), rows = Math.ceil(n / cols);
    st.cell = cell; st.cols = cols; window.demurStats.cell = cell; window.demurStats.cols = cols;
    const dpr = window.devicePixelRatio || 1;
    if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(rows * cell * dpr)) {
      cv.width = Math.round(w * dpr); cv.height = Math.round(rows * cell * dpr); cv.style.height = rows * cell + "px";
    }
    const g = cv.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, rows * cell);
    const pad = cell > 8 ? 1 : 0;
    for (let i = 0; i < st.agents.length; i++) {
      const a = st.agents[i], x = (i % cols) * cell, y = Math.floor(i / cols) * cell;
      g.fillStyle = COLORS[a.state] || "#ccc";
      g.fillRect(x + pad, y + pad, cell - 2 * pad, cell - 2 * pad);
      if (a.hazard > 0) { g.fillStyle = "#000"; g.fillRect(x + pad, y + cell - pad - 2, (cell - 2 * pad) * Math.min(1, a.hazard), 2); }
      if (a.id === st.selected) { g.strokeStyle = "#000"; g.lineWidth = 2; g.strokeRect(x + 1, y + 1, cell - 2, cell - 2); }
    }
    const sel = st.selected !== null ? st.agents[st.byId.get(st.selected)] : null;
    if (sel) text($("agent-info"), `${sel.id} · ${sel.model} · ${sel.state}${sel.task ? " on " + sel.task : ""} · ${sel.words} words · ${sel.tokens} tokens · ${sel.turns} turns · ${sel.refusals} refusals · hazard ${sel.hazard.toFixed(3)}`);
  }

  function fillRow(li, r) {
    const t = new Date(r.time).toLocaleTimeString();
    text(li, `${t} ${r.agent} (${r.model}) ${r.task}#${r.attempt} ${r.kind} [${(r.reasons || []).join(",") || "-"}] ${r.source}${r.action ? " → " + r.action : ""}`);
  }
  function drawRows(rs) {
    const ol = $("refusals"), frag = document.createDocumentFragment();
    for (let i = rs.length - 1; i >= 0; i--) {
      const li = node("li"); li.dataset.seq = rs[i].seq; li.dataset.task = rs[i].task; li.dataset.agent = rs[i].agent; fillRow(li, rs[i]); frag.appendChild(li);
    }
    ol.insertBefore(frag, ol.firstChild);
    while (ol.children.length > MAX_ROWS) ol.removeChild(ol.lastChild);
  }

  function drawTimeline() {
    const svg = $("timeline"); svg.replaceChildren();
    const j = st.summary; if (!j || !st.refusals.length) return;
    const t0 = new Date(j.started).getTime(), t1 = Math.max(j.ended && j.ended[0] !== "0" ? new Date(j.ended).getTime() : Date.now(), t0 + 1000);
    svg.appendChild(svgEl("line", { x1: 10, y1: 50, x2: 590, y2: 50, stroke: "#999" }));
    const models = [...new Set(st.agents.map((a) => a.model))].sort();
    for (const r of st.refusals) {
      const x = 10 + 580 * (new Date(r.time).getTime() - t0) / (t1 - t0);
      const y = 8 + (models.indexOf(r.model) + 1) * 36 / (models.length + 1);
      const c = svgEl("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: r.kind === "partial" ? "#fdae6b" : "#e6550d" });
      c.appendChild(svgEl("title", {})).textContent = `${r.agent} ${r.task} ${r.kind}`;
      svg.appendChild(c);
    }
    svg.appendChild(svgEl("text", { x: 10, y: 59, "font-size": 8, fill: "#777" })).textContent = new Date(t0).toLocaleTimeString();
  }

  function drawCurve() {
    const svg = $("curve"); svg.replaceChildren();
    text($("curve-agent"), st.selected || "");
    const pts = st.series; if (!pts.length) return;
    const X0 = 40, X1 = 590, Y0 = 200, Y1 = 10;
    const tmax = Math.max(1, ...pts.map((p) => p.t));
    const sx = (t) => (X0 + (X1 - X0) * t / tmax).toFixed(1), sy = (v) => (Y0 - (Y0 - Y1) * Math.max(0, Math.min(1, v))).toFixed(1);
    svg.appendChild(svgEl("line", { x1: X0, y1: Y0, x2: X1, y2: Y0, stroke: "#999" }));
    svg.appendChild(svgEl("line", { x1: X0, y1: Y0, x2: X0, y2: Y1, stroke: "#999" }));
    svg.appendChild(svgEl("text", { x: X1, y: 215, "font-size": 9, "text-anchor": "end", fill: "#555" })).textContent = tmax + " tokens";
    svg.appendChild(svgEl("text", { x: 4, y: 14, "font-size": 9, fill: "#555" })).textContent = "1.0";
    for (const [key, color] of [["h", "#e6550d"], ["r", "#3182bd"]]) {
      svg.appendChild(svgEl("polyline", { fill: "none", stroke: color, "stroke-width": 1.5, points: pts.map((p) => sx(p.t) + "," + sy(p[key])).join(" ") }));
    }
    for (const p of pts) if (p.x) svg.appendChild(svgEl("circle", { cx: sx(p.t), cy: sy(p.h), r: 3.5, fill: "#a00" }));
  }

  async function showTrace(task) {
    text($("trace-task"), task);
    const el = $("trace");
    try {
      const s = await getJSON("/api/jobs/" + encodeURIComponent(st.job) + "/trace?task=" + encodeURIComponent(task));
      el.replaceChildren(renderStory(s));
    } catch (e) { el.replaceChildren(node("span", String(e), "err")); }
  }
  // Built from text nodes only: outputs are model text and must never become markup.
  function renderStory(s) {
    const f = document.createDocumentFragment();
    f.appendChild(node("div", `section ${s.task} — ${s.outcome}`));
    for (const a of s.attempts || []) {
      f.appendChild(node("div", `\n${a.task} attempt ${a.attempt} · ${a.agent}`));
      if (a.assign && (a.assign.refresh_context || a.assign.frame)) f.appendChild(node("div", "  assigned" + (a.assign.refresh_context ? " with fresh context" : "") + (a.assign.frame ? " reframed: " + a.assign.frame.slice(0, 120) : "")));
      if (a.turn) f.appendChild(node("div", `  turn: ${a.turn.words} words, ${a.turn.usage.completion_tokens} tokens${a.turn.finish_reason ? ", finish " + a.turn.finish_reason : ""}${a.turn.injected ? ", injected " + a.turn.injected : ""}`));
      const v = a.verdict;
      if (v) {
        f.appendChild(node("div", `  verdict: ${v.kind} [${(v.reasons || []).join(",")}] conf ${v.confidence.toFixed(2)} from ${v.source} · hazard ${(v.signals.hazard || 0).toFixed(3)}`));
        for (const e of v.evidence || []) f.appendChild(node("div", `    evidence ${e.rule}: "${(a.output || "").slice(e.start, e.end).slice(0, 160)}"`));
      }
      const d = a.decision;
      if (d) {
        f.appendChild(node("div", `  decision: ${d.action} by rule ${d.rule}${d.target ? " → " + d.target : ""}${d.retire ? " (retire agent)" : ""}`));
        for (const p of d.path || []) f.appendChild(node("div", `    ${p.matched ? "✓" : "·"} ${p.rule}: ${p.why}`, p.matched ? "ok" : ""));
      }
      if (a.retired) f.appendChild(node("div", `  agent retired: ${a.retired.reason}`));
    }
    for (const o of s.overrides || []) f.appendChild(node("div", `override by ${o.actor}: ${JSON.stringify(o.payload).slice(0, 200)}`));
    return f;
  }

  function nonce() { const b = new Uint8Array(16); crypto.getRandomValues(b); return [...b].map((x) => x.toString(16).padStart(2, "0")).join(""); }
  async function submitOverride(ev) {
    ev.preventDefault();
    const out = $("ov-result"); out.className = "info"; text(out, "sending…");
    const body = { job: st.job, action: $("ov-action").value, agent: $("ov-agent").value.trim() || undefined,
      task: $("ov-task").value.trim() || undefined, reason: $("ov-reason").value, nonce: nonce(),
      expires: new Date(Date.now() + 5 * 60 * 1000).toISOString() };
    try {
      const r = await fetch("/api/overrides", { method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + $("token").value.trim() }, body: JSON.stringify(body) });
      const j = await r.json().catch(() => ({}));
      if (r.ok) { out.className = "info ok"; text(out, `${r.status}: override ${j.id} ${j.status} (${(j.approvals || []).length}/${j.needed} approvals)`); }
      else { out.className = "info err"; text(out, `refused ${r.status}${r.status === 401 ? " (token not recognised)" : r.status === 403 ? " (role not allowed)" : ""}: ${j.error || r.statusText}`); }
    } catch (e) { out.className = "info err"; text(out, "error: " + e); }
  }

  $("grid").addEventListener("click", (ev) => {
    const rect = ev.target.getBoundingClientRect();
    const i = Math.floor((ev.clientY - rect.top) / st.cell) * st.cols + Math.floor((ev.clientX - rect.left) / st.cell);
    const a = st.agents[i]; if (!a) return;
    $("ov-agent").value = a.id; st.dirty.grid = true; loadSeries(a.id);
  });
  $("refusals").addEventListener("click", (ev) => {
    const li = ev.target.closest("li"); if (!li) return;
    $("ov-task").value = li.dataset.task; showTrace(li.dataset.task);
    if (li.dataset.agent) loadSeries(li.dataset.agent);
  });
  $("job").addEventListener("change", () => { st.job = $("job").value; st.selected = null; st.series = []; st.dirty.curve = true; loadJob(); });
  $("override-form").addEventListener("submit", submitOverride);
  window.addEventListener("resize", () => { st.dirty.grid = true; schedule(); });

  function connect() {
    const es = new EventSource("/api/events");
    es.addEventListener("hello", () => { $("conn").className = "conn ok"; text($("conn"), "live"); loadJobs().then(loadJob).catch(() => {}); });
    es.addEventListener("update", (e) => onUpdate(JSON.parse(e.data)));
    es.onerror = () => { $("conn").className = "conn bad"; text($("conn"), "reconnecting…"); };
  }
  // /api/sla exists when the server was given an SLA file (serve --sla).
  function loadSLA() {
    fetch("/api/sla", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)).then((ss) => {
      if (!ss) return;
      st.sla = ss.map((s) => `${s.objective.name} (${s.objective.sli}${s.objective.model ? ", " + s.objective.model : ""}): ` +
        `${s.bad}/${s.total} bad, ${(100 * s.rate).toFixed(2)}% of max ${(100 * s.objective.max).toFixed(2)}%, ` +
        `budget left ${(100 * s.budget_remaining).toFixed(0)}%` +
        ((s.firing || []).length ? " — FIRING " + s.firing.map((f) => `${f.severity} ${f.long}/${f.short} burn ${f.short_burn.toFixed(1)}`).join(", ") : "")).join("\n") || "no SLA objectives";
      showSummary();
    }).catch(() => {});
  }
  loadSLA(); setInterval(loadSLA, 15000);
  connect();
})();
