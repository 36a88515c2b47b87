// Helpers shared by every page: the API, formatting, statuses, dialogs.

export const API = "/api/v1";

export const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "NOT_RUN", "POSTPROCESSING_FAILED"]);

// How far along a status is; a live event never moves a node backwards (see applyEvent).
const RANK = {
  NEW_OBJECT: 0, STARTING: 1, PENDING_REUSE: 1, PENDING_REPLACEMENT: 1, PENDING_BACKEND: 1,
  RUNNING: 2, PENDING_POSTPROCESSING: 3, POSTPROCESSING: 3,
  COMPLETED: 4, FAILED: 4, CANCELLED: 4, NOT_RUN: 4, POSTPROCESSING_FAILED: 4,
};

/** True when a transition `old -> next` should replace the status `current` we show. */
export function moves(current, old, next) {
  return current === old || (RANK[next] ?? 0) > (RANK[current] ?? 0);
}

export const LEGEND = [
  ["NEW_OBJECT", "waiting"], ["RUNNING", "running"], ["COMPLETED", "completed"],
  ["FAILED", "failed"], ["CANCELLED", "cancelled"], ["NOT_RUN", "not run"],
];

/** A status in words, for counts: "3 waiting, 2 not run" (the legend's words). */
export function words(status) {
  return status === "NEW_OBJECT" ? "waiting" : status.toLowerCase().replace(/_/g, " ");
}

/** A status as a badge shows it: the legend's word in capitals ("WAITING", "NOT RUN"). */
export function label(status) {
  return words(status).toUpperCase();
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** GET (or another method) a JSON route; throws ApiError with the server's sentence. */
export async function api(path, options = {}) {
  const init = { ...options, headers: { accept: "application/json", ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers["content-type"] = "application/json";
  }
  const response = await fetch(API + path, init);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { detail: text }; }
  if (!response.ok) throw new ApiError(response.status, (body && body.detail) || response.statusText);
  return body;
}

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const pad = (n) => String(n).padStart(2, "0");
/** A UNIX time (seconds) as local `YYYY-MM-DD HH:MM:SS`, or an em dash. */
export function fmtTime(seconds) {
  if (seconds == null) return "—";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in seconds as `120 ms`, `4.2 s`, `3 min 4 s` or `2 h 5 min`. */
export function fmtDuration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.max(0, Math.round(seconds * 1000))} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function duration(start, end, running = false) {
  if (start == null) return null;
  if (end == null) return running ? Date.now() / 1000 - start : null;
  return end - start;
}

export function badge(status, extra = "") {
  const text = status === "NEW_OBJECT" && extra === "preview" ? "PREVIEW" : label(status);
  return `<span class="badge st-${esc(status)} ${esc(extra)}" title="${esc(status)}">${esc(text)}</span>`;
}

export function formatBytes(n) {
  if (n == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A modal yes/no question in a <dialog>; resolves true when confirmed. */
export function confirmDialog(message, { confirm = "OK", danger = false } = {}) {
  const dialog = document.createElement("dialog");
  dialog.setAttribute("aria-labelledby", "confirm-text");
  dialog.innerHTML = `<p id="confirm-text">${esc(message)}</p>
    <div class="actions">
      <button type="button" value="no">Keep it</button>
      <button type="button" value="yes" class="${danger ? "danger solid" : "primary"}">${esc(confirm)}</button>
    </div>`;
  document.body.append(dialog);
  return new Promise((resolve) => {
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    for (const button of dialog.querySelectorAll("button")) {
      button.addEventListener("click", () => done(button.value === "yes"));
    }
    dialog.showModal();
    dialog.querySelector('button[value="yes"]').focus();
  });
}

/** Say something briefly (also to screen readers, through the page's live region). */
export function notify(message) {
  let box = document.getElementById("notice");
  if (!box) {
    box = document.createElement("div");
    box.id = "notice";
    box.className = "notice";
    box.setAttribute("role", "status");
    document.body.append(box);
  }
  box.textContent = message;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.textContent = ""; }, 5000);
}

/** Call `fn` at most once per `ms`, always once more after the last call. */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  return (...args) => {
    const wait = last + ms - Date.now();
    clearTimeout(timer);
    if (wait <= 0) { last = Date.now(); fn(...args); return; }
    timer = setTimeout(() => { last = Date.now(); fn(...args); }, wait);
  };
}

export async function showVersion() {
  const el = document.getElementById("version");
  if (!el) return;
  try {
    const health = await api("/health");
    el.textContent = `covalent ${health.version}`;
  } catch { el.textContent = ""; }
}
