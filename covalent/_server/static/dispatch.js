// The dispatch page: graph, node list, node panel and timeline, updated live.
//
// Live updates: the page loads the graph once, then (while the dispatch runs) opens an
// EventSource on /api/v1/events?dispatch_id=... . Each time the stream says `ready`
// (first connection, or a reconnection after a server restart) the page reloads the
// snapshot and applies the transitions that arrived meanwhile; a transition never moves
// a node backwards (see `moves`), so old events cannot undo a newer snapshot. When the
// dispatch ends the stream is closed. No timer polls the server. `output` events carry
// what running nodes write: the open node's panel appends them (see panelOutput).
import {
  api, badge, confirmDialog, duration, esc, FINAL, fmtDuration, fmtTime, label, LEGEND, moves,
  notify, showVersion, throttle, words,
} from "./common.js";
import { GraphView } from "./graph.js";
import { appendOutput, renderPanel } from "./panel.js";
import { renderTimeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const dispatchId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const url = `/ui/dispatches/${encodeURIComponent(dispatchId)}`;

let dispatch = null;
let nodes = [];
let edges = [];
let events = null;
let buffer = null;
let openNode = null;
// The open panel's live output: `lengths` of its streams as shown, or null while the
// panel loads, when events for it wait in `pending`.
const panelOutput = { lengths: null, pending: [] };
let visible = [];
let active = -1;
const listItems = [];
const changed = new Set();
let frame = 0;

const graph = new GraphView($("graph"), { onSelect: (id) => openPanel(id) });
graph.attachMinimap($("minimap"));

function showParams() {
  return $("show-params").checked;
}

// loading and live updates

async function start() {
  let data;
  try {
    data = await api(`${url}/graph`);
  } catch (error) {
    $("load-error").hidden = false;
    $("load-error").textContent = error.status === 404
      ? `No dispatch ${dispatchId} on this server.` : `Could not load the dispatch: ${error.message}`;
    $("graph-status").textContent = "";
    return;
  }
  snapshot(data);
  if (!dispatch.finished && !dispatch.preview) connect();
}

function connect() {
  events = new EventSource(`/api/v1/events?dispatch_id=${encodeURIComponent(dispatchId)}`);
  const resync = async () => {
    buffer = buffer || [];
    try {
      snapshot(await api(`${url}/graph`));
    } finally {
      const pending = buffer;
      buffer = null;
      apply(pending);
    }
  };
  events.addEventListener("ready", resync);
  events.addEventListener("lagged", resync);
  events.addEventListener("transitions", (e) => {
    const batch = JSON.parse(e.data);
    if (buffer) buffer.push(...batch);
    else apply(batch);
  });
  events.addEventListener("output", (e) => {
    for (const item of JSON.parse(e.data)) {
      if (item.node_id !== openNode) continue;
      if (panelOutput.lengths) appendOutput($("panel"), panelOutput.lengths, item);
      else if (panelOutput.pending.length < 10000) panelOutput.pending.push(item);
    }
  });
  events.addEventListener("error", () => liveStatus());
  addEventListener("pagehide", () => events && events.close());
}

/** Take a full snapshot from the server: draw the graph the first time, else update. */
function snapshot(data) {
  const first = !nodes.length || nodes.length !== data.nodes.length;
  dispatch = data.dispatch;
  if (first) {
    nodes = data.nodes;
    edges = data.edges;
    drawGraph();
  } else {
    for (const fresh of data.nodes) {
      const node = nodes[fresh.node_id];
      if (node.status !== fresh.status || node.end_time !== fresh.end_time || node.start_time !== fresh.start_time) {
        Object.assign(node, fresh);
        changed.add(fresh.node_id);
      }
    }
  }
  renderHead();
  schedule();
}

function apply(batch) {
  for (const ev of batch) {
    if (ev.node_id === -1) {
      if (!moves(dispatch.status, ev.old, ev.new)) continue;
      dispatch.status = ev.new;
      if (ev.new === "RUNNING" && dispatch.start_time == null) dispatch.start_time = ev.at;
      if (FINAL.has(ev.new)) { dispatch.end_time = ev.at; dispatch.finished = true; }
      continue;
    }
    const node = nodes[ev.node_id];
    if (!node || !moves(node.status, ev.old, ev.new)) continue;
    node.status = ev.new;
    if (ev.new === "RUNNING") { node.start_time = ev.at; node.end_time = null; }
    if (FINAL.has(ev.new)) { node.end_time = ev.at; if (node.start_time == null) node.start_time = ev.at; }
    if (ev.new === "NEW_OBJECT") { node.start_time = null; node.end_time = null; }
    changed.add(ev.node_id);
  }
  renderHead();
  schedule();
  if (dispatch.finished && events) {
    events.close();
    events = null;
    api(`${url}/graph`).then(snapshot, () => {}); // exact times and the error, once
  }
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(flush);
}

const refreshTimeline = throttle(() => {
  if (!$("view-timeline").hidden) {
    renderTimeline($("timeline"), nodes, { selected: openNode, start: dispatch.start_time });
  }
}, 500);
const refreshPanel = throttle(() => openNode != null && openPanel(openNode, { keepFocus: true }), 400);

function flush() {
  frame = 0;
  for (const id of changed) {
    graph.update(id);
    const item = listItems[id];
    if (item) {
      const b = item.lastElementChild;
      b.className = `badge st-${nodes[id].status}`;
      b.textContent = label(nodes[id].status);
    }
  }
  const panelStale = openNode != null && changed.has(openNode);
  changed.clear();
  renderCounts();
  refreshTimeline();
  if (panelStale) refreshPanel();
}

// header

function renderHead() {
  const d = dispatch;
  const running = !d.finished && !d.preview;
  document.title = `${d.lattice_name} · ${d.preview ? "preview" : d.status} · covalent`;
  $("lattice-name").textContent = d.lattice_name;
  $("dispatch-status").innerHTML = badge(d.status, d.preview ? "preview" : "");
  const args = (d.inputs.args_repr || []).concat(Object.entries(d.inputs.kwargs_repr || {}).map(([k, v]) => `${k}=${v}`));
  $("dispatch-facts").innerHTML = `
    <dt>Dispatch id</dt><dd class="mono">${esc(d.dispatch_id)}</dd>${d.parent_dispatch_id ? `
    <dt>Sublattice of</dt><dd><a href="/dispatches/${encodeURIComponent(d.parent_dispatch_id)}">node ${esc(d.parent_node_id)} of dispatch ${esc(d.parent_dispatch_id.slice(0, 8))}</a></dd>` : ""}
    <dt>Inputs</dt><dd class="mono">${esc(`(${args.join(", ")})`)}</dd>
    <dt>Started</dt><dd>${fmtTime(d.start_time)}</dd>
    <dt>Ended</dt><dd>${fmtTime(d.end_time)}</dd>
    <dt>Duration</dt><dd>${fmtDuration(duration(d.start_time, d.end_time, running))}</dd>`;
  $("cancel-dispatch").hidden = !running;
  $("rerun-dispatch").hidden = running || !!d.preview;
  $("retry-failed").hidden = running || !!d.preview || !["FAILED", "CANCELLED"].includes(d.status);
  $("preview-banner").hidden = !d.preview;
  $("dispatch-error").hidden = !d.error;
  $("dispatch-error-text").textContent = d.error || "";
  liveStatus();
}

function liveStatus() {
  const d = dispatch;
  const work = nodes.filter((n) => n.kind !== "parameter").length; // electrons, as everywhere
  let text = `${work.toLocaleString()} nodes`;
  if (d.preview) text += " · preview";
  else if (d.finished) text += " · finished";
  else if (events && events.readyState === EventSource.OPEN) text += " · live";
  else if (events) text += " · reconnecting…";
  $("graph-status").textContent = text;
}

function renderCounts() {
  const counts = {};
  for (const n of nodes) if (n.kind !== "parameter") counts[n.status] = (counts[n.status] || 0) + 1;
  $("node-counts").textContent = `(${Object.entries(counts).map(([s, n]) => `${n} ${words(s)}`).join(", ")})`;
}

// graph and node list

function drawGraph() {
  const t = performance.now();
  graph.draw(nodes, edges, showParams());
  graph.drawMs = performance.now() - t;
  renderList();
  renderCounts();
  liveStatus();
}

function renderList() {
  const query = $("node-filter").value.trim().toLowerCase();
  const params = showParams();
  visible = [];
  const html = [];
  listItems.length = 0;
  for (const n of nodes) {
    if (!params && n.kind === "parameter") continue;
    const name = `${n.name}(${n.node_id})`;
    if (query && !name.toLowerCase().includes(query)) continue;
    visible.push(n.node_id);
    html.push(`<li role="option" id="opt-${n.node_id}" data-id="${n.node_id}" aria-selected="${n.node_id === openNode}"><span class="name">${esc(name)}</span><span class="badge st-${esc(n.status)}">${esc(label(n.status))}</span></li>`);
  }
  const list = $("node-list");
  list.innerHTML = html.join("") || '<li class="muted" role="presentation">No node matches.</li>';
  for (const el of list.querySelectorAll("[role=option]")) listItems[Number(el.dataset.id)] = el;
  active = Math.max(0, visible.indexOf(openNode));
  markActive(false);
}

function markActive(scroll = true) {
  const list = $("node-list");
  for (const el of list.querySelectorAll(".active")) el.classList.remove("active");
  const id = visible[active];
  if (id == null) { list.removeAttribute("aria-activedescendant"); return; }
  const el = listItems[id];
  el.classList.add("active");
  list.setAttribute("aria-activedescendant", el.id);
  if (scroll) el.scrollIntoView({ block: "nearest" });
}

function wireList() {
  const list = $("node-list");
  list.addEventListener("keydown", (e) => {
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10, Home: -Infinity, End: Infinity };
    if (e.key in moves) {
      e.preventDefault();
      active = Math.min(visible.length - 1, Math.max(0, active + moves[e.key]));
      markActive();
      graph.select(visible[active], true);
    } else if ((e.key === "Enter" || e.key === " ") && visible[active] != null) {
      e.preventDefault();
      openPanel(visible[active], { reveal: true });
    }
  });
  list.addEventListener("click", (e) => {
    const item = e.target.closest("[role=option]");
    if (!item) return;
    active = visible.indexOf(Number(item.dataset.id));
    markActive(false);
    openPanel(Number(item.dataset.id), { keepFocus: true, reveal: true });
  });
  $("node-filter").addEventListener("input", throttle(renderList, 150));
  $("show-params").addEventListener("change", drawGraph);
  $("zoom-in").addEventListener("click", () => graph.zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => graph.zoomBy(0.8));
  $("zoom-fit").addEventListener("click", () => graph.fit());
  $("zoom-all").addEventListener("click", () => graph.fit(true));
  $("graph").setAttribute("tabindex", "0");
  $("legend").innerHTML = LEGEND.map(([s, text]) => `<span><i class="seg-${s}"></i>${text}</span>`).join("");
}

// node panel

async function openPanel(nodeId, { keepFocus = false, reveal = false } = {}) {
  const reopening = openNode === nodeId;
  openNode = nodeId;
  const panel = $("panel");
  panel.hidden = false;
  $("workspace").classList.add("with-panel");
  graph.select(nodeId, reveal && !reopening);
  for (const el of $("node-list").querySelectorAll('[aria-selected="true"]')) el.setAttribute("aria-selected", "false");
  if (listItems[nodeId]) listItems[nodeId].setAttribute("aria-selected", "true");
  if (!reopening) panel.innerHTML = '<p class="muted">Loading…</p>';
  if (!reopening) panelOutput.pending = [];
  panelOutput.lengths = null;
  let node;
  try {
    node = await renderPanel(panel, dispatchId, nodeId, {
      canCancel: !dispatch.finished && !dispatch.preview,
      nameOf: (id) => (nodes[id] ? nodes[id].name : "node"),
    });
  } catch (error) {
    panel.innerHTML = `<p role="alert">Could not load node ${nodeId}: ${esc(error.message)}</p>`;
    return;
  }
  if (openNode !== nodeId) return;
  panelOutput.lengths = { stdout: node.stdout_length, stderr: node.stderr_length };
  for (const item of panelOutput.pending.splice(0)) appendOutput(panel, panelOutput.lengths, item);
  $("panel-close").addEventListener("click", closePanel);
  const cancel = $("cancel-node");
  if (cancel) cancel.addEventListener("click", () => cancelNodes([nodeId], `node ${node.name}(${nodeId})`));
  for (const link of panel.querySelectorAll("[data-goto]")) {
    link.addEventListener("click", () => openPanel(Number(link.dataset.goto), { reveal: true }));
  }
  if (!keepFocus) $("panel-title").focus();
  if (!$("view-timeline").hidden) refreshTimeline();
}

function closePanel() {
  openNode = null;
  panelOutput.lengths = null;
  panelOutput.pending = [];
  $("panel").hidden = true;
  $("workspace").classList.remove("with-panel");
  graph.select(null);
  for (const el of $("node-list").querySelectorAll('[aria-selected="true"]')) el.setAttribute("aria-selected", "false");
  $("node-list").focus();
}

// actions

async function cancelNodes(taskIds, what) {
  const yes = await confirmDialog(`Cancel ${what}? Running work is stopped; nodes that depend on it do not run.`, { confirm: "Cancel it", danger: true });
  if (!yes) return;
  try {
    await api(`/dispatches/${encodeURIComponent(dispatchId)}/cancel`, { method: "POST", json: { task_ids: taskIds } });
    notify(`Cancellation of ${what} requested.`);
  } catch (error) {
    notify(`Could not cancel: ${error.message}`);
  }
}

async function rerun(reuse) {
  const question = reuse
    ? "Run the nodes that did not complete again? Completed nodes keep their outputs; it becomes a new dispatch."
    : "Run this dispatch again with the same inputs? Every node runs again; it becomes a new dispatch.";
  const yes = await confirmDialog(question, { confirm: reuse ? "Retry failed" : "Re-run" });
  if (!yes) return;
  try {
    const answer = await api(`/dispatches/${encodeURIComponent(dispatchId)}/redispatch`, { method: "POST", json: { reuse_previous_results: reuse } });
    location.assign(`/dispatches/${encodeURIComponent(answer.dispatch_id)}`);
  } catch (error) {
    notify(`Could not ${reuse ? "retry" : "re-run"}: ${error.message}`);
  }
}

// tabs

function wireTabs() {
  const tabs = [$("tab-graph"), $("tab-timeline")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
    if (tab.id === "tab-timeline") refreshTimeline();
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") select(tabs[(tabs.indexOf(tab) + 1) % 2]);
    });
  }
  $("timeline").addEventListener("click", (e) => {
    const row = e.target.closest("[data-id]");
    if (row) openPanel(Number(row.dataset.id), { keepFocus: true });
  });
  addEventListener("resize", throttle(refreshTimeline, 300));
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && openNode != null && !document.querySelector("dialog[open]")) closePanel();
});
$("cancel-dispatch").addEventListener("click", () => cancelNodes(null, "this dispatch"));
$("rerun-dispatch").addEventListener("click", () => rerun(false));
$("retry-failed").addEventListener("click", () => rerun(true));
wireList();
wireTabs();
start();
showVersion();
window.covalentGraph = graph; // for tests and the curious: timings and the layout
