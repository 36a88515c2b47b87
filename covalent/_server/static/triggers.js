// The triggers page: every trigger the server keeps, with a stop button for active ones.
// The rows come from GET /api/v1/triggers; Stop posts the trigger's dispatch to
// /api/v1/triggers/stop (which stops every trigger of that dispatch), after asking.
import { api, confirmDialog, esc, fmtTime, notify, showVersion } from "./common.js";

const $ = (id) => document.getElementById(id);

function firesOn(spec) {
  if (spec.kind === "time") return `every ${spec.time_gap} s`;
  if (spec.kind === "dir") return `${(spec.event_names || []).join(", ")} in ${spec.dir_path}`;
  const { kind, ...rest } = spec;
  return `${kind}: ${JSON.stringify(rest)}`;
}

function state(t) {
  if (!t.active) return `stopped ${fmtTime(t.stopped_at)}`;
  if (t.problem) return `not armed: ${t.problem}`;
  return t.armed ? "armed" : "active";
}

async function load() {
  const params = $("show-stopped").checked ? "" : "?active=true";
  let rows;
  try {
    rows = (await api(`/triggers${params}`)).triggers;
  } catch (error) {
    $("rows").innerHTML = `<tr><td colspan="7" class="empty">Could not load the triggers: ${esc(error.message)}</td></tr>`;
    return;
  }
  if (!rows.length) {
    $("rows").innerHTML = `<tr><td colspan="7" class="empty">${$("show-stopped").checked ? "No triggers." : "No active triggers."}</td></tr>`;
    return;
  }
  $("rows").innerHTML = rows.map((t) => {
    const href = `/dispatches/${encodeURIComponent(t.dispatch_id)}`;
    const last = t.last_dispatch_id
      ? `<a href="/dispatches/${encodeURIComponent(t.last_dispatch_id)}">${fmtTime(t.last_fired_at)}</a>` : "—";
    return `<tr data-trigger="${t.trigger_id}">
      <td class="num">${t.trigger_id}</td>
      <td><a class="id-link" href="${href}" title="${esc(t.dispatch_id)}">${esc(t.dispatch_id.slice(0, 8))}</a></td>
      <td class="mono">${esc(firesOn(t.spec))}</td>
      <td>${esc(state(t))}</td>
      <td class="num">${t.fired || 0}</td>
      <td class="time">${last}</td>
      <td>${t.active ? `<button type="button" class="danger stop" data-id="${esc(t.dispatch_id)}"
        aria-label="Stop the triggers of dispatch ${esc(t.dispatch_id)}">Stop</button>` : ""}</td>
    </tr>`;
  }).join("");
}

async function stop(dispatchId) {
  const yes = await confirmDialog(`Stop every trigger of dispatch ${dispatchId}? It is dispatched again by none of them afterwards.`, { confirm: "Stop", danger: true });
  if (!yes) return;
  try {
    const answer = await api("/triggers/stop", { method: "POST", json: { dispatch_ids: [dispatchId] } });
    notify(`Stopped ${answer.stopped.length} trigger${answer.stopped.length === 1 ? "" : "s"} of dispatch ${dispatchId.slice(0, 8)}.`);
  } catch (error) {
    notify(`Could not stop: ${error.message}`);
  }
  load();
}

$("rows").addEventListener("click", (e) => {
  const button = e.target.closest("button.stop");
  if (button) stop(button.dataset.id);
});
$("show-stopped").addEventListener("change", load);
load();
showVersion();
