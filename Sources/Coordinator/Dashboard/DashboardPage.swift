/// The dashboard's one page: HTML, CSS and script inline, no external assets (it works in an air-gapped network).
/// The script polls `/api/status` (the same document `feddistill status --json` prints) once a second and draws the
/// round's phase and progress, the node table, the global set, accuracy per round, per-class accuracy and the
/// confusion matrix of the latest finished round. Every value from the coordinator is written with `textContent`,
/// never as HTML: node ids and reasons are peers' strings.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FedDistill coordinator</title>
<style>
  :root { --fg: #1d2433; --muted: #6b7385; --line: #e3e6ee; --accent: #2f6fde; --ok: #1f8a4c; --bad: #c0392b; --warn: #b7791f; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7fb; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  header .muted { color: var(--muted); }
  main { display: grid; grid-template-columns: minmax(380px, 1fr) minmax(380px, 1fr); gap: 16px; padding: 16px 24px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 10px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  td.detail { white-space: normal; color: var(--muted); max-width: 320px; overflow-wrap: anywhere; }
  .phase { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; background: #e8eefc; color: var(--accent); }
  .phase.finished { background: #e3f4ea; color: var(--ok); }
  .phase.failed { background: #fbe5e2; color: var(--bad); }
  .phase.finalizing { background: #fdf1dc; color: var(--warn); }
  .bar { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; margin: 8px 0 4px; }
  .bar > div { height: 100%; background: var(--accent); width: 0; transition: width .4s; }
  .state-submitted { color: var(--ok); font-weight: 600; }
  .state-rejected, .state-declined { color: var(--bad); font-weight: 600; }
  .state-joined { color: var(--accent); }
  #grid { image-rendering: pixelated; max-width: 100%; border: 1px solid var(--line); }
  .empty { color: var(--muted); font-style: italic; }
  svg text { font-size: 11px; fill: var(--muted); }
  #confusion td { text-align: center; padding: 2px; min-width: 28px; font-variant-numeric: tabular-nums; border: 1px solid #fff; }
  #error { color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1>FedDistill coordinator</h1>
  <span>round <b id="round">–</b></span>
  <span id="phase" class="phase">loading</span>
  <span class="muted" id="counts"></span>
  <span id="error"></span>
</header>
<main>
  <section>
    <h2>Progress</h2>
    <div><b id="step">–</b> <span id="stepcount" class="muted"></span></div>
    <div class="bar"><div id="progressbar"></div></div>
    <div class="muted" id="eta"></div>
  </section>
  <section>
    <h2>Accuracy per round</h2>
    <svg id="accuracy" width="100%" height="160" viewBox="0 0 480 160" preserveAspectRatio="none"></svg>
    <div class="muted" id="accuracy-note"></div>
  </section>
  <section class="wide">
    <h2>Nodes</h2>
    <table id="nodes"><thead><tr><th>node</th><th>state</th><th>gate</th><th>bytes</th><th>last seen</th><th>detail</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Global set <span class="muted" id="grid-caption"></span></h2>
    <div id="grid-empty" class="empty">no finished round yet</div>
    <img id="grid" alt="global synthetic set, one row per class" hidden>
  </section>
  <section>
    <h2>Per-class accuracy (latest round)</h2>
    <svg id="perclass" width="100%" height="170" viewBox="0 0 480 170" preserveAspectRatio="none"></svg>
  </section>
  <section>
    <h2>Confusion matrix (latest round)</h2>
    <table id="confusion"><tbody></tbody></table>
  </section>
  <section class="wide">
    <h2>Round history</h2>
    <table id="history"><thead><tr><th>round</th><th>phase</th><th>accuracy</th><th>participants</th><th>gates</th><th>opened</th><th>ended</th><th>global set (SHA-256)</th><th>failure</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const PHASES = { ROUND_PHASE_OPEN: "open", ROUND_PHASE_FINALIZING: "finalizing", ROUND_PHASE_FINISHED: "finished", ROUND_PHASE_FAILED: "failed" };
const STATES = { NODE_STATE_REGISTERED: "registered", NODE_STATE_JOINED: "joined", NODE_STATE_SUBMITTED: "submitted",
                 NODE_STATE_REJECTED: "rejected", NODE_STATE_DECLINED: "declined" };
const SVG = "http://www.w3.org/2000/svg";
let shownGridRound = null;

function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function svgEl(tag, attrs) { const e = document.createElementNS(SVG, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }
function pct(x) { return (100 * (x || 0)).toFixed(2) + "%"; }
function when(t, now) { if (!t) return "–"; const s = Math.max(0, (now || Date.now() / 1000) - t);
  return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : new Date(t * 1000).toLocaleString(); }
function clock(t) { return t ? new Date(t * 1000).toLocaleString() : "–"; }
function duration(s) { if (s === undefined || s < 0) return "unknown"; s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0"); }

function drawProgress(st) {
  const p = st.progress || {};
  const step = p.step || "admitting";
  document.getElementById("step").textContent = step;
  const done = Number(p.done || 0), total = Number(p.total || 0);
  document.getElementById("stepcount").textContent = total ? done + " / " + total : "";
  document.getElementById("progressbar").style.width = total ? (100 * done / total).toFixed(1) + "%" : (step === "done" ? "100%" : "0");
  const eta = p.eta_seconds;
  let text = "elapsed " + duration(p.elapsed_seconds || 0);
  if (eta !== undefined && eta >= 0) text += " · ETA " + duration(eta);
  if (st.next_round_at_unix_seconds) text = "next round at " + clock(st.next_round_at_unix_seconds) + " (in " + duration(eta) + ")";
  document.getElementById("eta").textContent = text;
}

function drawNodes(st) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  for (const n of st.node_table || []) {
    const tr = el("tr"); tr.dataset.node = n.node_id;
    const state = STATES[n.state] || "registered";
    tr.append(el("td", n.node_id), el("td", state, "state-" + state), el("td", n.gate || "–"),
              el("td", n.envelope_bytes ? Number(n.envelope_bytes).toLocaleString() : "–"),
              el("td", when(n.last_seen_unix_seconds, st.now_unix_seconds)), el("td", n.detail || "", "detail"));
    body.append(tr);
  }
}

function drawHistory(st) {
  const body = document.querySelector("#history tbody");
  body.replaceChildren();
  for (const r of st.history || []) {
    const phase = PHASES[r.phase] || "open";
    const gates = Object.entries(r.gates || {}).map(([k, v]) => k + ": " + v).join(", ");
    const tr = el("tr"); tr.dataset.round = r.round_id;
    tr.append(el("td", r.round_id), el("td", phase), el("td", phase === "finished" ? pct(r.accuracy_mean) + " ± " + pct(r.accuracy_std) : "–"),
              el("td", (r.participants || []).join(", ") || "–"), el("td", gates || "–", "detail"), el("td", clock(r.opened_at_unix_seconds)),
              el("td", clock(r.ended_at_unix_seconds)), el("td", (r.global_set_sha256 || "–").slice(0, 16)), el("td", r.failure || "", "detail"));
    body.append(tr);
  }
}

function drawAccuracy(st) {
  const svg = document.getElementById("accuracy");
  svg.replaceChildren();
  const rounds = (st.history || []).filter(r => r.phase === "ROUND_PHASE_FINISHED").slice().reverse();
  document.getElementById("accuracy-note").textContent = rounds.length ? rounds.length + " finished round(s)" : "no finished round yet";
  if (!rounds.length) return;
  const W = 480, H = 160, L = 36, B = 20, T = 8;
  const lo = Math.max(0, Math.min(...rounds.map(r => r.accuracy_mean || 0)) - 0.05), hi = 1;
  const x = i => L + (rounds.length === 1 ? (W - L) / 2 : i * (W - L - 10) / (rounds.length - 1));
  const y = a => T + (H - T - B) * (1 - ((a || 0) - lo) / (hi - lo));
  for (const g of [lo, (lo + hi) / 2, hi]) {
    svg.append(svgEl("line", { x1: L, x2: W, y1: y(g), y2: y(g), stroke: "#e3e6ee" }));
    const t = svgEl("text", { x: 2, y: y(g) + 4 }); t.textContent = (100 * g).toFixed(0) + "%"; svg.append(t);
  }
  svg.append(svgEl("polyline", { points: rounds.map((r, i) => x(i) + "," + y(r.accuracy_mean)).join(" "), fill: "none", stroke: "#2f6fde", "stroke-width": 2 }));
  rounds.forEach((r, i) => {
    svg.append(svgEl("circle", { cx: x(i), cy: y(r.accuracy_mean), r: 3.5, fill: "#2f6fde" }));
    const t = svgEl("text", { x: x(i) - 4, y: H - 4 }); t.textContent = r.round_id; svg.append(t);
  });
}

function drawLatest(st) {
  const latest = (st.history || []).find(r => r.phase === "ROUND_PHASE_FINISHED");
  const svg = document.getElementById("perclass");
  svg.replaceChildren();
  const img = document.getElementById("grid");
  if (!latest) return;
  const per = latest.per_class_accuracy || [];
  const W = 480, H = 170, B = 18, bw = (W - 10) / Math.max(per.length, 1);
  per.forEach((a, c) => {
    const h = (H - B - 14) * (a || 0);
    svg.append(svgEl("rect", { x: 5 + c * bw + 2, y: H - B - h, width: bw - 4, height: h, fill: "#2f6fde" }));
    const v = svgEl("text", { x: 5 + c * bw + 2, y: H - B - h - 3 }); v.textContent = (100 * (a || 0)).toFixed(0); svg.append(v);
    const t = svgEl("text", { x: 5 + c * bw + bw / 2 - 3, y: H - 4 }); t.textContent = c; svg.append(t);
  });
  const n = st.class_count || 0, m = (st.confusion || []).map(Number);
  const body = document.querySelector("#confusion tbody");
  body.replaceChildren();
  if (n) {
    const head = el("tr"); head.append(el("th", "true \\ predicted"));
    for (let j = 0; j < n; j++) head.append(el("th", j));
    body.append(head);
    for (let i = 0; i < n; i++) {
      const row = m.slice(i * n, i * n + n), total = row.reduce((a, b) => a + b, 0) || 1;
      const tr = el("tr"); tr.append(el("th", i));
      row.forEach((v, j) => { const td = el("td", v); const f = v / total;
        td.style.background = i === j ? `rgba(31,138,76,${0.15 + 0.85 * f})` : `rgba(192,57,43,${Math.min(1, 3 * f)})`;
        if (f > 0.5) td.style.color = "#fff"; tr.append(td); });
      body.append(tr);
    }
  }
  if (shownGridRound !== latest.round_id) {
    shownGridRound = latest.round_id;
    img.onload = () => { img.hidden = false; img.dataset.loaded = "true"; document.getElementById("grid-empty").hidden = true; };
    img.dataset.loaded = "false";
    img.dataset.round = latest.round_id;
    img.src = "/api/global.png?round=" + latest.round_id;
    document.getElementById("grid-caption").textContent = "round " + latest.round_id + " · one row per class";
  }
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error("status " + response.status + ": " + (await response.text()));
    const st = await response.json();
    document.getElementById("error").textContent = "";
    document.getElementById("round").textContent = st.current_round_id || "–";
    const phase = PHASES[st.phase] || "unknown";
    const badge = document.getElementById("phase");
    badge.textContent = phase; badge.className = "phase " + phase;
    document.getElementById("counts").textContent = (st.nodes || 0) + " node(s) joined · " + (st.submissions || 0) + " submission(s) · "
      + (st.rounds || 0) + " round(s)" + (st.scheduled_rounds ? " of " + st.scheduled_rounds + " scheduled" : "");
    drawProgress(st); drawNodes(st); drawHistory(st); drawAccuracy(st); drawLatest(st);
    document.body.dataset.updated = String(Date.now());
  } catch (error) {
    document.getElementById("error").textContent = "cannot reach the coordinator: " + error.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""#
}
