// The graph: a layered layout computed here, drawn as one SVG, with zoom and pan.
//
// Layout (Sugiyama, simplified): longest-path layering from the inputs down, sources
// pulled down next to their first consumer; a few barycenter sweeps to order each layer;
// x positions pulled towards the mean of the neighbours with a left and a right pass.
// Everything is linear or n log n per sweep, and the SVG is written in one innerHTML,
// so a graph of thousands of nodes draws in well under a second. Status changes only
// touch the class of the changed nodes, batched into one animation frame.

import { esc } from "./common.js";

const WIDTH = { electron: 176, parameter: 124, collection: 136, operation: 124 };
const HEIGHT = 40;
const LAYER_GAP = 80;
const GAP = 22;

/** Positions for the nodes shown: `{x, y, w, h}` by node id, plus the bounds. */
export function layout(nodes, edges, showParams = true) {
  const n = nodes.length;
  const keep = nodes.map((node) => showParams || node.kind !== "parameter");
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
    this.wireInput();
    // Until the user zooms or pans, the graph keeps fitting its box (panel opened, resize).
    new ResizeObserver(() => { if (!this.moved && this.pos) this.fit(); }).observe(svg);
  }

  /** Lay out and draw `nodes` (indexed by node id) and `edges` ([source, target, label]). */
  draw(nodes, edges, showParams) {
    this.nodes = nodes;
    const { pos, edges: shown } = layout(nodes, edges, showParams);
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
      const { title, sub } = nodeText(node);
      const left = -p.w / 2;
      parts.push(
        `<g class="${this.nodeClass(node)}" data-id="${node.node_id}" transform="translate(${p.x.toFixed(1)},${p.y})">`,
        `<title>${esc(node.name)}(${node.node_id})</title>`,
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

  nodeClass(node) {
    const selected = node.node_id === this.selected ? " selected" : "";
    return `node k-${node.kind} st-${node.status}${selected}`;
  }

  /** Redraw a node's status at the next frame (many calls, one DOM pass). */
  update(nodeId) {
    this.dirty.add(nodeId);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    for (const id of this.dirty) {
      const el = this.nodeEls && this.nodeEls[id];
      if (el) el.setAttribute("class", this.nodeClass(this.nodes[id]));
    }
    this.dirty.clear();
  }

  select(nodeId, reveal = false) {
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

  fit() {
    this.moved = false;
    const { w, h } = this.size();
    const b = this.bounds();
    const pad = 40;
    const k = Math.min(1.2, (w - 2 * pad) / (b.x1 - b.x0), (h - 2 * pad - 30) / (b.y1 - b.y0));
    const kk = Math.max(0.02, k);
    this.view = { k: kk, x: w / 2 - ((b.x0 + b.x1) / 2) * kk, y: h / 2 + 15 - ((b.y0 + b.y1) / 2) * kk };
    this.apply();
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
      if (node) this.onSelect(Number(node.dataset.id));
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
