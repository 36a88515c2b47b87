// The timeline: a Gantt chart of when each node ran, one band of rows per executor.
import { esc, fmtDuration, fmtTime } from "./common.js";

const ROW = 22;
const HEAD = 30;
const GROUP = 26;

function niceStep(span, ticks) {
  const raw = span / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function tickLabel(t) {
  if (t === 0) return "0";
  if (t < 1) return `${Math.round(t * 1000)} ms`;
  if (t < 120) return `${+t.toFixed(2)} s`;
  if (t < 7200) return `${+(t / 60).toFixed(1)} min`;
  return `${+(t / 3600).toFixed(1)} h`;
}

/** Draw the timeline of `nodes` into `box`; `selected` is highlighted. */
export function renderTimeline(box, nodes, { selected = null, start = null } = {}) {
  const now = Date.now() / 1000;
  const ran = nodes.filter((n) => n.kind !== "parameter" && n.start_time != null);
  if (!ran.length) {
    box.innerHTML = '<p class="empty">No node has started yet.</p>';
    return;
  }
  const groups = new Map();
  for (const n of ran.sort((a, b) => a.start_time - b.start_time || a.node_id - b.node_id)) {
    const key = n.executor || "(none)";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(n);
  }
  let t0 = start ?? Infinity;
  for (const n of ran) t0 = Math.min(t0, n.start_time);
  let t1 = t0;
  for (const n of ran) t1 = Math.max(t1, n.end_time ?? now);
  const span = Math.max(t1 - t0, 0.001);
  const width = Math.max(520, box.clientWidth - 4);
  const label = width < 700 ? 130 : 220;
  const plot = width - label - 24;
  const sx = (t) => label + ((t - t0) / span) * plot;
  const height = HEAD + groups.size * GROUP + ran.length * ROW + 10;
  const step = niceStep(span, Math.max(2, Math.floor(plot / 110)));
  const out = [`<svg class="timeline" width="${width}" height="${height}" role="img" aria-label="Timeline: ${ran.length} nodes on ${groups.size} executor(s), from ${esc(fmtTime(t0))} over ${esc(fmtDuration(span))}">`];
  out.push('<g class="axis">');
  for (let t = 0; t <= span + 1e-9; t += step) {
    const x = sx(t0 + t).toFixed(1);
    out.push(`<line class="grid" x1="${x}" x2="${x}" y1="${HEAD - 6}" y2="${height}"/><text x="${x}" y="${HEAD / 2 - 2}">${tickLabel(t)}</text>`);
  }
  out.push("</g>");
  let y = HEAD;
  for (const [executor, rows] of groups) {
    out.push(`<rect class="group-bg" x="0" y="${y}" width="${width}" height="${GROUP - 4}"/><text class="group-label" x="8" y="${y + (GROUP - 4) / 2}">executor: ${esc(executor)} (${rows.length})</text>`);
    y += GROUP;
    for (const n of rows) {
      const end = n.end_time ?? now;
      const x = sx(n.start_time);
      const w = Math.max(3, sx(end) - x);
      const name = `${n.name}(${n.node_id})`;
      const shown = name.length > label / 7 ? `${name.slice(0, Math.floor(label / 7) - 1)}…` : name;
      const tip = `${name} on ${executor}: ${n.status}, ${fmtTime(n.start_time)} → ${n.end_time ? fmtTime(n.end_time) : "running"} (${fmtDuration(end - n.start_time)})`;
      out.push(`<g class="row" data-id="${n.node_id}"><rect class="rowbg" x="0" y="${y}" width="${width}" height="${ROW}"/>` +
        `<text x="12" y="${y + ROW / 2}">${esc(shown)}</text>` +
        `<rect class="span st-${esc(n.status)}${n.node_id === selected ? " selected" : ""}" x="${x.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${ROW - 8}"><title>${esc(tip)}</title></rect></g>`);
      y += ROW;
    }
  }
  out.push("</svg>");
  box.innerHTML = out.join("");
}
