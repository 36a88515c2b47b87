// The settings page: the server's configuration, read-only, secrets masked.
import { api, esc, showVersion } from "./common.js";

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

function table(title, rows) {
  const id = `sec-${title.replace(/\W+/g, "-")}`;
  const body = rows.length
    ? rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${value(v)}</td></tr>`).join("")
    : '<tr><td colspan="2" class="muted">(empty)</td></tr>';
  return `<section class="card config-section" aria-labelledby="${id}"><div class="table-wrap"><table>
    <caption class="visually-hidden">${esc(title)}</caption>
    <thead><tr><th scope="col" id="${id}" colspan="2">${esc(title)}</th></tr></thead><tbody>${body}</tbody></table></div></section>`;
}

async function load() {
  const box = document.getElementById("config");
  try {
    const c = await api("/ui/config");
    const server = [["version", c.version], ["process id", c.pid], ["database", c.database], ["config file", c.config_file]];
    const sections = Object.entries(c.config).map(([name, tree]) =>
      table(`[${name}]`, typeof tree === "object" && tree ? flatten(tree) : [[name, tree]]));
    box.innerHTML = table("Server", server) + table("Server settings", flatten(c.settings)) + sections.join("");
  } catch (error) {
    box.innerHTML = `<p role="alert">Could not load the configuration: ${esc(error.message)}</p>`;
  }
}

load();
showVersion();
