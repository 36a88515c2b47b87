// The dispatch list: filters, search and pages in the URL; live through server-sent events.
import {
  api, badge, confirmDialog, duration, esc, FINAL, fmtDuration, fmtTime, label, notify,
  showVersion, throttle, words,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const state = readUrl();
let total = 0;
const open = new Set(); // dispatches whose sublattice dispatches are shown

function readUrl() {
  const p = new URLSearchParams(location.search);
  return {
    q: p.get("q") || "",
    status: p.get("status") || "",
    size: Number(p.get("size")) || 50,
    page: Math.max(1, Number(p.get("page")) || 1),
  };
}

function writeUrl() {
  const p = new URLSearchParams();
  if (state.q) p.set("q", state.q);
  if (state.status) p.set("status", state.status);
  if (state.size !== 50) p.set("size", state.size);
  if (state.page > 1) p.set("page", state.page);
  const query = p.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

async function load() {
  const params = new URLSearchParams({ limit: state.size, offset: (state.page - 1) * state.size });
  if (state.q) params.set("q", state.q);
  if (state.status) params.set("status", state.status);
  let data;
  try {
    data = await api(`/ui/dispatches?${params}`);
  } catch (error) {
    $("rows").innerHTML = `<tr><td colspan="8" class="empty">Could not load dispatches: ${esc(error.message)}</td></tr>`;
    return;
  }
  total = data.total;
  const pages = Math.max(1, Math.ceil(total / state.size));
  if (state.page > pages && total > 0) {
    state.page = pages;
    writeUrl();
    return load();
  }
  renderStatusOptions(data.status_counts);
  renderRows(data.dispatches);
  renderPager(data.dispatches.length, pages);
}

function renderStatusOptions(counts) {
  const select = $("status");
  const all = Object.values(counts).reduce((a, b) => a + b, 0);
  const names = [...new Set([...Object.keys(counts), state.status].filter(Boolean))].sort();
  select.innerHTML = `<option value="">All statuses (${all.toLocaleString()})</option>` +
    names.map((s) => `<option value="${esc(s)}">${esc(label(s))} (${(counts[s] || 0).toLocaleString()})</option>`).join("");
  select.value = state.status;
}

function countsCell(counts) {
  const entries = Object.entries(counts);
  const sum = entries.reduce((a, [, n]) => a + n, 0);
  if (!sum) return '<span class="counts">—</span>';
  const order = ["COMPLETED", "RUNNING", "FAILED", "CANCELLED", "NOT_RUN", "NEW_OBJECT"];
  entries.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
  const text = entries.map(([s, n]) => `${n} ${words(s)}`).join(", ");
  const segs = entries.map(([s, n]) => `<span class="seg-${esc(s)}" style="width:${(100 * n) / sum}%"></span>`).join("");
  return `<span class="counts">${esc(text)}</span><div class="bar" role="img" aria-label="${esc(text)}">${segs}</div>`;
}

function renderRows(rows) {
  if (!rows.length) {
    const filtered = state.q || state.status;
    $("rows").innerHTML = `<tr><td colspan="8" class="empty">${filtered
      ? "No dispatch matches these filters."
      : "No dispatches yet: run <code>ct.dispatch(workflow)(...)</code> and it shows up here."}</td></tr>`;
    return;
  }
  $("rows").innerHTML = rows.map((d) => row(d, 0)).join("");
  for (const id of open) if (rows.some((d) => d.dispatch_id === id)) showChildren(id);
}

/** One dispatch's row; `depth` > 0 for a sublattice dispatch under its parent. */
function row(d, depth) {
  const preview = d.status === "NEW_OBJECT" && d.start_time == null;
  const running = !FINAL.has(d.status) && !preview;
  const href = `/dispatches/${encodeURIComponent(d.dispatch_id)}`;
  const canDelete = (FINAL.has(d.status) || preview) && !d.parent_dispatch_id;
  const toggle = d.children
    ? `<button type="button" class="linkish toggle" data-id="${esc(d.dispatch_id)}" aria-expanded="${open.has(d.dispatch_id)}"
        title="Show or hide its sublattice dispatches">${open.has(d.dispatch_id) ? "▾" : "▸"} ${d.children} sublattice${d.children === 1 ? "" : "s"}</button>` : "";
  const sub = d.parent_dispatch_id
    ? `<span class="sub-mark" title="A sublattice dispatch: node ${esc(d.parent_node_id)} of dispatch ${esc(d.parent_dispatch_id)}">↳ sublattice</span> ` : "";
  return `<tr data-id="${esc(d.dispatch_id)}" data-depth="${depth}" class="${depth ? "child" : ""}"${d.parent_dispatch_id ? ` data-parent="${esc(d.parent_dispatch_id)}"` : ""}>
      <td style="padding-left:${0.6 + depth * 1.4}rem"><a class="id-link" href="${href}" title="${esc(d.dispatch_id)}">${esc(d.dispatch_id.slice(0, 8))}</a></td>
      <td>${sub}<a href="${href}">${esc(d.lattice_name)}</a> ${toggle}</td>
      <td>${badge(d.status, preview ? "preview" : "")}</td>
      <td>${countsCell(d.node_counts)}</td>
      <td class="time">${fmtTime(d.start_time ?? d.created_at)}</td>
      <td class="time hide-narrow">${fmtTime(d.end_time)}</td>
      <td class="num">${fmtDuration(duration(d.start_time, d.end_time, running))}</td>
      <td><button type="button" class="danger delete" data-id="${esc(d.dispatch_id)}" data-preview="${preview}"
        ${canDelete ? "" : `disabled title="${d.parent_dispatch_id ? "Deleted with its parent dispatch" : "Cancel it first: only finished dispatches can be deleted"}"`}
        aria-label="Delete dispatch ${esc(d.dispatch_id)}">Delete</button></td>
    </tr>`;
}

/** Insert the sublattice dispatches of `id` under its row (they may have their own). */
async function showChildren(id) {
  const parentRow = $("rows").querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  if (!parentRow) return;
  let data;
  try {
    data = await api(`/ui/dispatches?${new URLSearchParams({ parent: id, limit: 500 })}`);
  } catch (error) {
    notify(`Could not load the sublattice dispatches: ${error.message}`);
    return;
  }
  hideChildren(id);
  const depth = Number(parentRow.dataset.depth) + 1;
  parentRow.insertAdjacentHTML("afterend", data.dispatches.slice().reverse().map((d) => row(d, depth)).join(""));
  for (const d of data.dispatches) if (open.has(d.dispatch_id)) showChildren(d.dispatch_id);
}

function hideChildren(id) {
  for (const child of $("rows").querySelectorAll(`tr[data-parent="${CSS.escape(id)}"]`)) {
    hideChildren(child.dataset.id);
    child.remove();
  }
}

function toggleChildren(button) {
  const id = button.dataset.id;
  if (open.has(id)) { open.delete(id); hideChildren(id); } else { open.add(id); showChildren(id); }
  const on = open.has(id);
  button.setAttribute("aria-expanded", String(on));
  button.textContent = button.textContent.replace(/^[▸▾]/, on ? "▾" : "▸");
}

function renderPager(shown, pages) {
  const first = total ? (state.page - 1) * state.size + 1 : 0;
  $("page-info").textContent = total
    ? `Showing ${first.toLocaleString()}–${(first + shown - 1).toLocaleString()} of ${total.toLocaleString()}`
    : "No dispatches";
  $("page-of").textContent = `Page ${state.page.toLocaleString()} of ${pages.toLocaleString()}`;
  $("first").disabled = $("prev").disabled = state.page <= 1;
  $("next").disabled = $("last").disabled = state.page >= pages;
}

function go(page) {
  state.page = page;
  writeUrl();
  load();
}

async function remove(id, preview) {
  const yes = await confirmDialog(`Delete dispatch ${id}? Its nodes, outputs and logs are removed from the store.`, { confirm: "Delete", danger: true });
  if (!yes) return;
  try {
    const path = preview ? `/ui/previews/${encodeURIComponent(id)}` : `/dispatches/${encodeURIComponent(id)}`;
    await api(path, { method: "DELETE" });
    notify(`Dispatch ${id.slice(0, 8)} deleted.`);
  } catch (error) {
    notify(`Could not delete: ${error.message}`);
  }
  load();
}

function wire() {
  $("search").value = state.q;
  $("size").value = String(state.size);
  const search = throttle(() => { state.q = $("search").value.trim(); go(1); }, 300);
  $("search").addEventListener("input", search);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); state.q = $("search").value.trim(); go(1); });
  $("status").addEventListener("change", () => { state.status = $("status").value; go(1); });
  $("size").addEventListener("change", () => { state.size = Number($("size").value); go(1); });
  $("first").addEventListener("click", () => go(1));
  $("prev").addEventListener("click", () => go(state.page - 1));
  $("next").addEventListener("click", () => go(state.page + 1));
  $("last").addEventListener("click", () => go(Math.max(1, Math.ceil(total / state.size))));
  $("rows").addEventListener("click", (e) => {
    const button = e.target.closest("button.delete");
    if (button) remove(button.dataset.id, button.dataset.preview === "true");
    const toggle = e.target.closest("button.toggle");
    if (toggle) toggleChildren(toggle);
  });
  // Any committed transition may change this page: reload it, at most once a second.
  const events = new EventSource(`/api/v1/events?summary=true`);
  const reload = throttle(load, 1000);
  events.addEventListener("dispatches", reload);
  events.addEventListener("lagged", reload);
  let connected = false; // after a reconnection (a server restart), catch up
  events.addEventListener("ready", () => { if (connected) reload(); connected = true; });
  addEventListener("pagehide", () => events.close());
}

wire();
load();
showVersion();
