// The graph: a layered layout computed here, drawn as one SVG, with zoom and pan.
//
// Layout (Sugiyama, simplified): longest-path layering from the inputs down, sources
// pulled down next to their first consumer; a few barycenter sweeps to order each layer;
// x positions pulled towards the mean of the neighbours with a left and a right pass.
// Everything is linear or n log n per sweep, and the SVG is written in one innerHTML,
// so a graph of thousands of nodes draws in well under a second. Status changes only
// touch the class of the changed nodes, batched into one animation frame.
//
// Large graphs open readable: a wide fan-out (GROUP_MIN or more nodes of one name with
// the same consumers and the same non-parameter inputs) is drawn as one group node,
// "inc ×1000", coloured by its members' progress, that expands when clicked; "fit"
// never zooms out below READABLE (it shows the top of the graph instead; "all" fits it
// whole), and a minimap (shown while the graph does not fit in view) shows the whole
// graph with the part in view.

import { esc } from "./common.js";

const WIDTH = { electron: 176, parameter: 124, collection: 136, operation: 124 };
const HEIGHT = 40;
const LAYER_GAP = 80;
const GAP = 22;
export const GROUP_MIN = 12;
const READABLE = 0.45;

/** Positions for the nodes shown: `{x, y, w, h}` by node id, plus the bounds. */
export function layout(nodes, edges, showParams = true, hidden = null) {
  const n = nodes.length;
  const keep = nodes.map((node) => (showParams || node.kind !== "parameter") && !(hidden && hidden[node.node_id]));
  const shown = edges.filter((e) => keep[e[0]] && keep[e[1]]);
  const parents = Array.from({ length: n }, () => []);
  const children = Array.from({ length: n }, () => []);
  for (const [s, t] of shown) { children[s].push(t); parents[t].push(s); }
  const order = topological(n, keep, parents, children);
  const layer = new Int32Array(n);
  for (const v of order) for (const c of children[v]) layer[c] = Math.max(layer[c], layer[v] + 1);
  for (let i = order.length - 1; i >= 0; i--) {
    const v = order[i];
    if (!parents[v].length && children[v].length) {
      let first = Infinity;
      for (const c of children[v]) first = Math.min(first, layer[c]);
      layer[v] = first - 1;
    }
  }
  const layers = [];
  for (const v of order.slice().sort((a, b) => a - b)) (layers[layer[v]] ||= []).push(v);
  for (let i = 0; i < layers.length; i++) layers[i] ||= [];
  orderLayers(layers, parents, children, n);
  const pos = place(layers, parents, children, nodes, n);
  return { pos, layers, edges: shown, order };
}

function topological(n, keep, parents, children) {
  const waiting = parents.map((p) => p.length);
  const order = [];
  for (let v = 0; v < n; v++) if (keep[v] && !waiting[v]) order.push(v);
  for (let i = 0; i < order.length; i++) {
    for (const c of children[order[i]]) if (--waiting[c] === 0) order.push(c);
  }
  return order;
}

function orderLayers(layers, parents, children, n) {
  const index = new Float64Array(n);
  const number = () => layers.forEach((l) => l.forEach((v, i) => { index[v] = i; }));
  number();
  const sweeps = n > 5000 ? 2 : 4;
  const key = new Float64Array(n);
  const sortBy = (nodesOf, neighbours) => {
    for (const v of nodesOf) {
      const near = neighbours[v];
      let sum = 0;
      for (const u of near) sum += index[u];
      key[v] = near.length ? sum / near.length : index[v];
    }
    nodesOf.sort((a, b) => key[a] - key[b] || index[a] - index[b]);
    nodesOf.forEach((v, i) => { index[v] = i; });
  };
  for (let s = 0; s < sweeps; s++) {
    for (let l = 1; l < layers.length; l++) sortBy(layers[l], parents);
    for (let l = layers.length - 2; l >= 0; l--) sortBy(layers[l], children);
  }
}

function place(layers, parents, children, nodes, n) {
  const x = new Float64Array(n);
  const w = (v) => WIDTH[nodes[v].kind] || WIDTH.electron;
  for (const l of layers) {
    let at = 0;
    for (const v of l) { x[v] = at + w(v) / 2; at += w(v) + GAP; }
    const shift = at / 2;
    for (const v of l) x[v] -= shift;
  }
  const pull = (l, neighbours) => {
    const want = l.map((v) => {
      const near = neighbours[v];
      if (!near.length) return x[v];
      let sum = 0;
      for (const u of near) sum += x[u];
      return sum / near.length;
    });
    const left = new Float64Array(l.length);
    const right = new Float64Array(l.length);
    for (let i = 0; i < l.length; i++) {
      const min = i ? left[i - 1] + (w(l[i - 1]) + w(l[i])) / 2 + GAP : -Infinity;
      left[i] = Math.max(want[i], min);
    }
    for (let i = l.length - 1; i >= 0; i--) {
      const max = i < l.length - 1 ? right[i + 1] - (w(l[i + 1]) + w(l[i])) / 2 - GAP : Infinity;
      right[i] = Math.min(want[i], max);
    }
    l.forEach((v, i) => { x[v] = (left[i] + right[i]) / 2; });
  };
  for (let s = 0; s < 3; s++) {
    for (let l = 1; l < layers.length; l++) pull(layers[l], parents);
    for (let l = layers.length - 2; l >= 0; l--) pull(layers[l], children);
  }
  const pos = new Array(n);
  layers.forEach((l, depth) => {
    for (const v of l) pos[v] = { x: x[v], y: depth * (HEIGHT + LAYER_GAP), w: w(v), h: HEIGHT };
  });
  return pos;
}

/** Wide fan-outs to draw as one node: `{groups: [{key, members}], leader, hidden}`,
 * where `leader[v]` is the group drawn in member v's place and `hidden[v]` is true for
 * every other member (and for parameters that feed only hidden members). */
export function fanOuts(nodes, edges, showParams, expanded = new Set()) {
  const n = nodes.length;
  const parents = Array.from({ length: n }, () => []);
  const children = Array.from({ length: n }, () => []);
  for (const [s, t] of edges) { children[s].push(t); parents[t].push(s); }
  const byKey = new Map();
  for (const node of nodes) {
    const v = node.node_id;
    if (node.kind === "parameter") continue;
    const ins = parents[v].filter((u) => nodes[u].kind !== "parameter").sort((a, b) => a - b);
    const key = `${node.name}|${ins.join(",")}|${children[v].slice().sort((a, b) => a - b).join(",")}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(v);
  }
  const groups = [];
  const leader = new Int32Array(n).fill(-1);
  const hidden = new Array(n).fill(false);
  for (const [key, members] of byKey) {
    if (members.length < GROUP_MIN || expanded.has(key)) continue;
    const group = { key, members, index: groups.length };
    groups.push(group);
    for (const v of members) { leader[v] = group.index; hidden[v] = v !== members[0]; }
  }
  if (groups.length) {
    for (const node of nodes) {
      const v = node.node_id;
      if (node.kind === "parameter" && children[v].length && children[v].every((c) => hidden[c])) hidden[v] = true;
    }
  }
  return { groups, leader, hidden };
}

/** The status a group shows: running if any runs, failed if any failed, completed when
 * all completed, else the most common status. */
export function groupStatus(statuses) {
  const count = {};
  for (const s of statuses) count[s] = (count[s] || 0) + 1;
  if (count.RUNNING) return "RUNNING";
  if (count.FAILED) return "FAILED";
  if (count.COMPLETED === statuses.length) return "COMPLETED";
  return Object.entries(count).sort((a, b) => b[1] - a[1])[0][0];
}

/** What a node shows: a short title and a second line. */
export function nodeText(node) {
  if (node.kind === "parameter") {
    return { title: node.name.replace(/^:parameter:/, ""), sub: `parameter · #${node.node_id}` };
  }
  if (node.kind === "collection" || node.kind === "operation") {
    return { title: node.name.replace(/^:|:$/g, "").replace(/^electron_/, ""), sub: `${node.kind} · #${node.node_id}` };
  }
  return { title: node.name, sub: `#${node.node_id} · ${node.executor || ""}` };
}

function clip(text, width, px) {
  const room = Math.floor((width - 22) / px);
  return text.length > room ? `${text.slice(0, Math.max(1, room - 1))}…` : text;
}

export class GraphView {
  constructor(svg, { onSelect }) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.view = { k: 1, x: 0, y: 0 };
    this.nodes = [];
    this.selected = null;
    this.dirty = new Set();
    this.frame = 0;
    this.expanded = new Set();
    this.wireInput();
    // Until the user zooms or pans, the graph keeps fitting its box (panel opened, resize).
    new ResizeObserver(() => { if (!this.moved && this.pos) this.fit(); }).observe(svg);
  }

  /** Lay out and draw `nodes` (indexed by node id) and `edges` ([source, target, label]),
   * wide fan-outs as group nodes unless `grouping` is false. */
  draw(nodes, edges, showParams, grouping = true) {
    this.nodes = nodes;
    this.args = [edges, showParams, grouping];
    const fans = grouping ? fanOuts(nodes, edges, showParams, this.expanded) : { groups: [], leader: null, hidden: null };
    this.groups = fans.groups;
    this.leader = fans.leader;
    const { pos, edges: shown } = layout(nodes, edges, showParams, fans.hidden);
    this.pos = pos;
    const parts = [
      `<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#9aa5b4"/></marker></defs>`,
      `<g class="viewport">`,
      `<g class="edges">`,
    ];
    const labels = [];
    this.edgesOf = Array.from({ length: nodes.length }, () => []);
    shown.forEach(([s, t, label, wait], i) => {
      const a = pos[s];
      const b = pos[t];
      const x1 = a.x, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y - b.h / 2 - 2;
      const dy = Math.max(30, (y2 - y1) / 2);
      parts.push(`<path class="edge${wait ? " wait" : ""}" d="M${x1.toFixed(1)},${y1} C${x1.toFixed(1)},${y1 + dy} ${x2.toFixed(1)},${y2 - dy} ${x2.toFixed(1)},${y2}" marker-end="url(#arrow)"/>`);
      if (label) labels.push(`<text class="elabel" x="${((x1 + x2) / 2).toFixed(1)}" y="${((y1 + y2) / 2 + 4).toFixed(1)}">${esc(label)}</text>`);
      this.edgesOf[s].push(i);
      this.edgesOf[t].push(i);
    });
    parts.push(`</g><g class="elabels">`, ...labels, `</g><g class="nodes">`);
    for (const node of nodes) {
      const p = pos[node.node_id];
      if (!p) continue;
      const group = this.groupOf(node.node_id);
      const { title, sub } = group ? this.groupText(group) : nodeText(node);
      const left = -p.w / 2;
      const tip = group ? `${node.name} ×${group.members.length}: click to expand` : `${node.name}(${node.node_id})`;
      parts.push(
        `<g class="${this.nodeClass(node)}" data-id="${node.node_id}"${group ? ` data-group="${group.index}"` : ""} transform="translate(${p.x.toFixed(1)},${p.y})">`,
        `<title>${esc(tip)}</title>`,
        `<rect class="box" x="${left}" y="${-p.h / 2}" width="${p.w}" height="${p.h}" rx="8"/>`,
        `<rect class="tag" x="${left}" y="${-p.h / 2}" width="6" height="${p.h}" rx="3"/>`,
        `<text x="${left + 14}" y="-7">${esc(clip(title, p.w, 7.3))}</text>`,
        `<text class="sub" x="${left + 14}" y="10">${esc(clip(sub, p.w, 6.2))}</text>`,
        `</g>`,
      );
    }
    parts.push(`</g></g>`);
    this.svg.innerHTML = parts.join("");
    this.viewport = this.svg.querySelector(".viewport");
    this.edgeEls = this.svg.querySelectorAll("path.edge");
    this.nodeEls = [];
    for (const el of this.svg.querySelectorAll("g.node")) this.nodeEls[Number(el.dataset.id)] = el;
    if (this.selected != null) this.highlight(this.selected, true);
    this.fit();
  }

  /** The group drawn in node `id`'s place, if `id` leads one. */
  groupOf(id) {
    const g = this.leader ? this.leader[id] : -1;
    return g >= 0 && this.groups[g].members[0] === id ? this.groups[g] : null;
  }

  groupText(group) {
    const done = group.members.filter((v) => this.nodes[v].status === "COMPLETED").length;
    return { title: `${this.nodes[group.members[0]].name} ×${group.members.length}`, sub: `group · ${done}/${group.members.length} done` };
  }

  /** Draw group `index`'s members one by one (the graph is laid out again). */
  expand(index) {
    const group = this.groups[index];
    if (!group) return;
    this.expanded.add(group.key);
    this.draw(this.nodes, ...this.args);
  }

  /** Expand the group that hides node `id`, if any; whether the graph changed. */
  showNode(id) {
    if (this.pos && this.pos[id]) return false;
    const g = this.leader ? this.leader[id] : -1;
    if (g < 0) return false;
    this.expand(g);
    return true;
  }

  nodeClass(node) {
    const selected = node.node_id === this.selected ? " selected" : "";
    const group = this.groupOf(node.node_id);
    const status = group ? groupStatus(group.members.map((v) => this.nodes[v].status)) : node.status;
    return `node k-${node.kind}${group ? " group" : ""} st-${status}${selected}`;
  }

  /** Redraw a node's status at the next frame (many calls, one DOM pass). */
  update(nodeId) {
    const g = this.leader ? this.leader[nodeId] : -1;
    this.dirty.add(g >= 0 ? this.groups[g].members[0] : nodeId);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    for (const id of this.dirty) {
      const el = this.nodeEls && this.nodeEls[id];
      if (!el) continue;
      el.setAttribute("class", this.nodeClass(this.nodes[id]));
      const group = this.groupOf(id);
      if (group) el.querySelector("text.sub").textContent = this.groupText(group).sub;
    }
    this.dirty.clear();
    this.drawMinimap();
  }

  select(nodeId, reveal = false) {
    if (nodeId != null) this.showNode(nodeId);
    if (this.selected != null) this.highlight(this.selected, false);
    this.selected = nodeId;
    if (nodeId != null) {
      this.highlight(nodeId, true);
      if (reveal) this.reveal(nodeId);
    }
  }

  highlight(nodeId, on) {
    const el = this.nodeEls && this.nodeEls[nodeId];
    if (el) el.classList.toggle("selected", on);
    for (const i of (this.edgesOf && this.edgesOf[nodeId]) || []) this.edgeEls[i].classList.toggle("hl", on);
  }

  // zoom and pan

  apply() {
    const { k, x, y } = this.view;
    if (this.viewport) this.viewport.setAttribute("transform", `translate(${x.toFixed(1)},${y.toFixed(1)}) scale(${k.toFixed(4)})`);
    this.svg.classList.toggle("lod-1", k < 0.6 && k >= 0.32);
    this.svg.classList.toggle("lod-2", k < 0.32);
    this.drawMinimap();
  }

  size() {
    const r = this.svg.getBoundingClientRect();
    return { w: r.width || 800, h: r.height || 600 };
  }

  bounds() {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const p of this.pos || []) {
      if (!p) continue;
      x0 = Math.min(x0, p.x - p.w / 2); x1 = Math.max(x1, p.x + p.w / 2);
      y0 = Math.min(y0, p.y - p.h / 2); y1 = Math.max(y1, p.y + p.h / 2);
    }
    return x0 === Infinity ? { x0: 0, y0: 0, x1: 1, y1: 1 } : { x0, y0, x1, y1 };
  }

  /** Fit the graph in view, but no smaller than readable: a graph too large for that
   * shows its top, centred, at READABLE (`all` fits it whole however small). */
  fit(all = false) {
    this.moved = false;
    const { w, h } = this.size();
    const b = this.bounds();
    const pad = 40;
    const k = Math.min(1.2, (w - 2 * pad) / (b.x1 - b.x0), (h - 2 * pad - 30) / (b.y1 - b.y0));
    const kk = Math.max(all ? 0.02 : READABLE, Math.max(0.02, k));
    const y = kk > k ? pad + 30 - b.y0 * kk : h / 2 + 15 - ((b.y0 + b.y1) / 2) * kk;
    this.view = { k: kk, x: w / 2 - ((b.x0 + b.x1) / 2) * kk, y };
    this.readable = kk > k;
    this.apply();
  }

  // the minimap: every node as a dot, and the part of the graph in view

  attachMinimap(canvas) {
    this.minimap = canvas;
    const go = (e) => {
      const r = canvas.getBoundingClientRect();
      const m = this.mapScale;
      if (!m) return;
      const gx = (e.clientX - r.left - m.ox) / m.s;
      const gy = (e.clientY - r.top - m.oy) / m.s;
      const { w, h } = this.size();
      this.moved = true;
      this.view = { ...this.view, x: w / 2 - gx * this.view.k, y: h / 2 - gy * this.view.k };
      this.schedule();
    };
    let dragging = false;
    canvas.addEventListener("pointerdown", (e) => { dragging = true; canvas.setPointerCapture(e.pointerId); go(e); });
    canvas.addEventListener("pointermove", (e) => { if (dragging) go(e); });
    canvas.addEventListener("pointerup", () => { dragging = false; });
  }

  drawMinimap() {
    const canvas = this.minimap;
    if (!canvas || !this.pos) return;
    const cw = canvas.width, ch = canvas.height;
    const b = this.bounds();
    const s = Math.min((cw - 8) / (b.x1 - b.x0), (ch - 8) / (b.y1 - b.y0));
    const ox = (cw - (b.x1 - b.x0) * s) / 2 - b.x0 * s;
    const oy = (ch - (b.y1 - b.y0) * s) / 2 - b.y0 * s;
    this.mapScale = { s, ox, oy };
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, cw, ch);
    const colours = getComputedStyle(canvas);
    for (const node of this.nodes) {
      const p = this.pos[node.node_id];
      if (!p) continue;
      const status = this.nodeClass(node).match(/st-(\w+)/)[1];
      ctx.fillStyle = colours.getPropertyValue(`--mm-${status}`) || "#9aa5b4";
      ctx.fillRect(ox + (p.x - p.w / 2) * s, oy + (p.y - p.h / 2) * s, Math.max(1.5, p.w * s), Math.max(1.5, p.h * s));
    }
    const { w, h } = this.size();
    const { k, x, y } = this.view;
    // Only a graph that does not fit in view needs a map of where the view is.
    canvas.hidden = b.x0 * k + x >= 0 && b.x1 * k + x <= w && b.y0 * k + y >= 0 && b.y1 * k + y <= h;
    ctx.strokeStyle = "#1f5fbf";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(ox + (-x / k) * s, oy + (-y / k) * s, (w / k) * s, (h / k) * s);
  }

  zoomBy(factor, cx, cy) {
    this.moved = true;
    // Text is laid out again at every new scale, which is slow with thousands of labels:
    // hide it while the zoom changes, show it again once it rests.
    this.svg.classList.add("zooming");
    clearTimeout(this.zoomRest);
    this.zoomRest = setTimeout(() => this.svg.classList.remove("zooming"), 200);
    const { w, h } = this.size();
    const px = cx ?? w / 2;
    const py = cy ?? h / 2;
    const k = Math.min(4, Math.max(0.02, this.view.k * factor));
    const f = k / this.view.k;
    this.view = { k, x: px - (px - this.view.x) * f, y: py - (py - this.view.y) * f };
    this.schedule();
  }

  panBy(dx, dy) {
    this.moved = true;
    this.view.x += dx;
    this.view.y += dy;
    this.schedule();
  }

  reveal(nodeId) {
    const p = this.pos && this.pos[nodeId];
    if (!p) return;
    const { w, h } = this.size();
    const k = Math.max(this.view.k, 0.8);
    const sx = p.x * k + this.view.x;
    const sy = p.y * k + this.view.y;
    const outside = sx < 80 || sx > w - 80 || sy < 60 || sy > h - 60;
    if (k !== this.view.k || outside) {
      this.view = { k, x: w / 2 - p.x * k, y: h / 2 - p.y * k };
      this.moved = true;
    }
    this.schedule();
  }

  schedule() {
    if (this.zoomFrame) return;
    this.zoomFrame = requestAnimationFrame(() => { this.zoomFrame = 0; this.apply(); });
  }

  wireInput() {
    const svg = this.svg;
    let drag = null;
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, moved: false, id: e.pointerId };
    });
    svg.addEventListener("pointermove", (e) => {
      if (!drag || drag.id !== e.pointerId) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) { drag.moved = true; svg.setPointerCapture(e.pointerId); svg.classList.add("panning"); }
      drag.x = e.clientX;
      drag.y = e.clientY;
      this.panBy(dx, dy);
    });
    const end = (e) => {
      if (!drag || drag.id !== e.pointerId) return;
      const moved = drag.moved;
      drag = null;
      svg.classList.remove("panning");
      if (moved || e.type === "pointercancel") return;
      const node = e.target.closest && e.target.closest("g.node");
      if (node && node.dataset.group != null) this.expand(Number(node.dataset.group));
      else if (node) this.onSelect(Number(node.dataset.id));
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("keydown", (e) => {
      const step = 60;
      const keys = {
        "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25), "-": () => this.zoomBy(0.8),
        "0": () => this.fit(), ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
      };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
  }
}
