// The dispatch list: filters, search and pages in the URL; live through server-sent events.
import {
  api, badge, confirmDialog, duration, esc, FINAL, fmtDuration, fmtTime, notify, showVersion,
  throttle, words,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const state = readUrl();
let total = 0;

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
    names.map((s) => `<option value="${esc(s)}">${esc(s)} (${(counts[s] || 0).toLocaleString()})</option>`).join("");
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
  $("rows").innerHTML = rows.map((d) => {
    const preview = d.status === "NEW_OBJECT" && d.start_time == null;
    const running = !FINAL.has(d.status) && !preview;
    const href = `/dispatches/${encodeURIComponent(d.dispatch_id)}`;
    const canDelete = FINAL.has(d.status) || preview;
    return `<tr data-id="${esc(d.dispatch_id)}">
      <td><a class="id-link" href="${href}" title="${esc(d.dispatch_id)}">${esc(d.dispatch_id.slice(0, 8))}</a></td>
      <td><a href="${href}">${esc(d.lattice_name)}</a></td>
      <td>${badge(d.status, preview ? "preview" : "")}</td>
      <td>${countsCell(d.node_counts)}</td>
      <td class="time">${fmtTime(d.start_time ?? d.created_at)}</td>
      <td class="time hide-narrow">${fmtTime(d.end_time)}</td>
      <td class="num">${fmtDuration(duration(d.start_time, d.end_time, running))}</td>
      <td><button type="button" class="danger delete" data-id="${esc(d.dispatch_id)}" data-preview="${preview}"
        ${canDelete ? "" : "disabled title=\"Cancel it first: only finished dispatches can be deleted\""}
        aria-label="Delete dispatch ${esc(d.dispatch_id)}">Delete</button></td>
    </tr>`;
  }).join("");
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
