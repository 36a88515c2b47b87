// The logs page: the tail of the server's log file; refreshed on request.
import { api, esc, formatBytes, showVersion, throttle } from "./common.js";

const $ = (id) => document.getElementById(id);
let lines = [];

function level(line) {
  const m = / (DEBUG|INFO|WARNING|ERROR|CRITICAL) /.exec(line);
  return m ? m[1] : "";
}

function render() {
  const words = $("log-filter").value.toLowerCase();
  const shown = words ? lines.filter((l) => l.toLowerCase().includes(words)) : lines;
  const box = $("log");
  box.innerHTML = shown.map((l) => {
    const lv = level(l);
    return lv === "ERROR" || lv === "WARNING" || lv === "CRITICAL" ? `<span class="lv-${lv}">${esc(l)}</span>` : esc(l);
  }).join("\n");
  box.scrollTop = box.scrollHeight;
  return shown.length;
}

async function load() {
  try {
    const data = await api(`/ui/logs?lines=${$("lines").value}`);
    lines = data.lines;
    const count = render();
    $("log-info").textContent = data.exists
      ? `${data.path} (${formatBytes(data.size)}): ${count.toLocaleString()} lines shown`
      : `${data.path} does not exist yet (a server started in the foreground logs to its terminal).`;
  } catch (error) {
    $("log-info").textContent = `Could not load the log: ${error.message}`;
  }
}

$("refresh").addEventListener("click", load);
$("lines").addEventListener("change", load);
$("wrap").addEventListener("change", () => $("log").classList.toggle("wrap", $("wrap").checked));
$("log-filter").addEventListener("input", throttle(() => {
  const n = render();
  $("log-info").textContent = `${n.toLocaleString()} of ${lines.length.toLocaleString()} lines shown`;
}, 150));
$("log-form").addEventListener("submit", (e) => e.preventDefault());
load();
showVersion();
