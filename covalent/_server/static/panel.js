// The node panel: everything stored about one node, fetched when it is opened; a
// running node's stdout and stderr grow live (appendOutput, fed by the page's event
// stream).
import { api, badge, duration, esc, FINAL, fmtDuration, fmtTime, formatBytes } from "./common.js";

function pre(text, cls = "") {
  return text ? `<pre class="${cls}">${esc(text)}</pre>` : '<p class="muted">(empty)</p>';
}

const SHOWN_LIMIT = 256 * 1024; // characters of one stream the panel keeps on screen

function streamBlock(stream, text) {
  return `<pre class="stream" id="out-${stream}" aria-live="off"${text ? "" : " hidden"}>${esc(text)}</pre>`
    + `<p class="muted" id="out-${stream}-empty"${text ? " hidden" : ""}>(empty)</p>`;
}

/**
 * Append what a running node wrote to its panel: `item` is an output event
 * ({stream, offset, text}); `lengths` holds how far each stream is shown (from the
 * node's stdout_length/stderr_length, then from the events), so text shown already is
 * skipped. Keeps the end in view if it was; past SHOWN_LIMIT the oldest text goes.
 */
export function appendOutput(panel, lengths, item) {
  const done = lengths[item.stream] ?? 0;
  const end = item.offset + item.text.length;
  const pre = panel.querySelector(`#out-${item.stream}`);
  if (end <= done || !pre) return;
  lengths[item.stream] = end;
  const atEnd = pre.hidden || pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.hidden = false;
  panel.querySelector(`#out-${item.stream}-empty`).hidden = true;
  const text = pre.textContent + item.text.slice(Math.max(0, done - item.offset));
  pre.textContent = text.length > SHOWN_LIMIT
    ? `… earlier output not shown here (covalent logs has all of it) …\n${text.slice(-SHOWN_LIMIT / 2)}`
    : text;
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

function section(id, title, body) {
  return `<section aria-labelledby="${id}"><h3 id="${id}">${title}</h3>${body}</section>`;
}

function settingsTable(spec, metadata) {
  const rows = Object.entries((spec && spec.attributes) || {});
  const meta = Object.entries(metadata || {});
  if (!rows.length && !meta.length) return '<p class="muted">Defaults of the executor.</p>';
  const show = (v) => (v === "" ? '<span class="muted">(empty)</span>' : esc(typeof v === "string" ? v : JSON.stringify(v)));
  const line = ([k, v]) => `<tr><th scope="row">${esc(k)}</th><td class="mono">${show(v)}</td></tr>`;
  return `<table>${rows.map(line).join("")}${meta.map(line).join("")}</table>`;
}

function inputsTable(inputs) {
  if (!inputs.length) return '<p class="muted">No inputs.</p>';
  return `<table><thead><tr><th scope="col">Parameter</th><th scope="col">From</th><th scope="col">Value</th></tr></thead><tbody>${inputs.map((i) => `
    <tr><td class="mono">${esc(i.label)}</td>
    <td><button type="button" class="linkish" data-goto="${i.node_id}">${esc(i.name)}(${i.node_id})</button></td>
    <td class="mono">${i.wait ? '<span class="muted">(order only)</span>' : i.status === "COMPLETED" ? esc(i.output_repr ?? "") : `<span class="muted">${esc(i.status || "")}</span>`}</td></tr>`).join("")}</tbody></table>`;
}

function attemptsTable(node) {
  const rows = node.retried.map((a) => ({ ...a, n: a.attempt }));
  if (node.attempts > rows.length) {
    rows.push({ n: node.attempts, status: node.status, start_time: node.start_time, end_time: node.end_time, error: node.error });
  }
  if (!rows.length) return '<p class="muted">Not run yet.</p>';
  const body = rows.map((a) => `<tr><td class="num">${a.n}</td><td>${badge(a.status)}</td>
    <td class="time">${fmtTime(a.start_time)}</td><td class="num">${fmtDuration(duration(a.start_time, a.end_time))}</td>
    <td>${a.error && a !== rows[rows.length - 1] ? `<details><summary>error</summary><pre class="error">${esc(a.error)}</pre></details>` : ""}</td></tr>`).join("");
  return `<table><thead><tr><th scope="col" class="num">#</th><th scope="col">Status</th><th scope="col">Started</th><th scope="col" class="num">Took</th><th scope="col"><span class="visually-hidden">Error</span></th></tr></thead><tbody>${body}</tbody></table>`;
}

const NO_OUTPUT = {
  FAILED: "No output: it failed (the error is below).",
  POSTPROCESSING_FAILED: "No output: it failed (the error is below).",
  CANCELLED: "No output: it was cancelled.",
  NOT_RUN: "No output: it did not run, because a node it needs did not complete.",
  RUNNING: "No output yet: it is running.",
  NEW_OBJECT: "No output yet: it waits for its inputs.",
};

/** Fill `panel` with node `nodeId` of `dispatchId`; returns the node's detail. */
export async function renderPanel(panel, dispatchId, nodeId, { canCancel, nameOf }) {
  const node = await api(`/ui/dispatches/${encodeURIComponent(dispatchId)}/nodes/${nodeId}`);
  const running = node.status === "RUNNING";
  const cancellable = canCancel && !FINAL.has(node.status) && node.kind !== "parameter";
  const executor = node.executor_spec ? node.executor_spec.name : "—";
  const outputNote = node.output_size != null ? ` <span class="muted">(${formatBytes(node.output_size)} pickled)</span>` : "";
  const download = node.output_digest
    ? ` <a href="/api/v1/blobs/${esc(node.output_digest)}" download="${esc(node.name)}-${node.node_id}.pickle">download the pickled value</a>` : "";
  const parts = [
    `<div class="panel-head"><h2 id="panel-title" tabindex="-1">${esc(node.name)}(${node.node_id})</h2>
      <button type="button" class="icon" id="panel-close" aria-label="Close the node panel" title="Close (Esc)">✕</button></div>`,
    `<p>${badge(node.status)} <span class="muted">${esc(node.kind)}${node.is_result ? " · the lattice's result" : ""}</span></p>`,
    cancellable ? `<div class="actions"><button type="button" class="danger" id="cancel-node" data-id="${node.node_id}">Cancel this node</button></div>` : "",
    `<dl class="facts" style="margin-top:0.7rem">
      <dt>Executor</dt><dd class="mono">${esc(executor)}</dd>
      <dt>Started</dt><dd>${fmtTime(node.start_time)}</dd>
      <dt>Ended</dt><dd>${fmtTime(node.end_time)}</dd>
      <dt>Duration</dt><dd>${fmtDuration(duration(node.start_time, node.end_time, running))}</dd>
      <dt>Attempts</dt><dd>${node.attempts}</dd>
    </dl>`,
    node.kind === "parameter" ? "" : section("p-executor", "Executor settings", settingsTable(node.executor_spec, node.metadata)),
    section("p-inputs", "Inputs", inputsTable(node.inputs)),
    section("p-output", `Output${outputNote}`, node.status === "COMPLETED" ? `${pre(node.output_repr ?? "")}${download ? `<p>${download}</p>` : ""}` : `<p class="muted">${NO_OUTPUT[node.status] || "No output yet."}</p>`),
    node.error ? section("p-error", "Error", pre(node.error, "error")) : "",
    node.kind === "parameter" ? "" : section("p-stdout", "stdout", streamBlock("stdout", node.stdout)),
    node.kind === "parameter" ? "" : section("p-stderr", "stderr", streamBlock("stderr", node.stderr)),
    node.kind === "parameter" ? "" : section("p-attempts", "Attempts", attemptsTable(node)),
    node.kind === "electron" ? section("p-source", "Source", pre(node.source || "(source not available)")) : "",
    node.sub_dispatch_id ? section("p-sub", "Sublattice", `<p><a href="/dispatches/${encodeURIComponent(node.sub_dispatch_id)}">Open the sublattice's graph</a> <span class="mono muted">${esc(node.sub_dispatch_id)}</span></p>`) : "",
    node.consumers.length ? section("p-used", "Used by", `<p>${node.consumers.map((c) => `<button type="button" class="linkish" data-goto="${c}">${esc(nameOf(c))}(${c})</button>`).join(", ")}</p>`) : "",
  ];
  panel.innerHTML = parts.join("");
  return node;
}
