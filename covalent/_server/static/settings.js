// The settings page: the server's configuration, secrets masked. Keys that take effect
// without a restart (the server lists them in `live`) can be changed here; every other
// key says how to change it and that it needs `covalent restart`.
import { api, esc, notify, showVersion } from "./common.js";

const LEVELS = ["debug", "info", "warning", "error", "critical"];

function value(v) {
  if (v === "" || v == null) return '<span class="muted">(not set)</span>';
  return esc(typeof v === "string" ? v : JSON.stringify(v));
}

function flatten(tree, prefix = "") {
  const rows = [];
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) rows.push(...flatten(v, key));
    else rows.push([key, v]);
  }
  return rows;
}

function editor(key, v) {
  const id = `edit-${key.replace(/\W+/g, "-")}`;
  const input = typeof v === "boolean"
    ? `<input type="checkbox" id="${id}" ${v ? "checked" : ""}>`
    : key === "sdk.log_level"
      ? `<select id="${id}">${LEVELS.map((l) => `<option ${l === v ? "selected" : ""}>${l}</option>`).join("")}</select>`
      : `<input id="${id}" value="${esc(v)}">`;
  return `<span class="live-edit"><label class="visually-hidden" for="${id}">${esc(key)}</label>${input}
    <button type="button" class="save" data-key="${esc(key)}" data-input="${id}">Save</button>
    <span class="muted">no restart needed</span></span>`;
}

function table(title, rows, live = new Set(), section = "") {
  const id = `sec-${title.replace(/\W+/g, "-")}`;
  const cell = (k, v) => {
    const full = section ? `${section}.${k}` : k;
    return live.has(full) ? editor(full, v) : value(v);
  };
  const body = rows.length
    ? rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${cell(k, v)}</td></tr>`).join("")
    : '<tr><td colspan="2" class="muted">(empty)</td></tr>';
  const note = section && section !== "sdk"
    ? `<caption class="note">Needs a restart: <code>covalent config set ${esc(section)}.KEY VALUE</code>, then <code>covalent restart</code>.</caption>`
    : `<caption class="visually-hidden">${esc(title)}</caption>`;
  return `<section class="card config-section" aria-labelledby="${id}"><div class="table-wrap"><table>
    ${note}
    <thead><tr><th scope="col" id="${id}" colspan="2">${esc(title)}</th></tr></thead><tbody>${body}</tbody></table></div></section>`;
}

async function save(button) {
  const input = document.getElementById(button.dataset.input);
  const v = input.type === "checkbox" ? input.checked : input.value;
  try {
    await api("/ui/config", { method: "PUT", json: { key: button.dataset.key, value: v } });
    notify(`Saved ${button.dataset.key} = ${v}; in effect now.`);
  } catch (error) {
    notify(`Could not save ${button.dataset.key}: ${error.message}`);
  }
}

async function load() {
  const box = document.getElementById("config");
  try {
    const c = await api("/ui/config");
    const live = new Set(c.live || []);
    const server = [["version", c.version], ["process id", c.pid], ["database", c.database], ["config file", c.config_file]];
    const sections = Object.entries(c.config).map(([name, tree]) =>
      table(`[${name}]`, typeof tree === "object" && tree ? flatten(tree) : [[name, tree]], live, name));
    box.innerHTML = table("Server", server) + table("Server settings", flatten(c.settings)) + sections.join("");
    for (const button of box.querySelectorAll("button.save")) button.addEventListener("click", () => save(button));
  } catch (error) {
    box.innerHTML = `<p role="alert">Could not load the configuration: ${esc(error.message)}</p>`;
  }
}

load();
showVersion();
