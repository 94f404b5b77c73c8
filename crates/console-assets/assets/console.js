// Mynah consoles: the browser code every console page shares. An ES module, no build step, no
// dependency. Pages build their DOM with `el` (text is always text: nothing from the server is
// parsed as HTML), talk JSON with `api`, follow changes with `live`, and route on the URL's hash.

/** Builds an element: `el("button", {class: "x", onclick: f}, "text", child)`. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "value") node.value = v;
    else if (k === "checked") node.checked = !!v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** An error answer of the API: HTTP status, code, title and details (the platform's envelope,
 *  `{error: {code, message, error_data: {details}}}`, or the gateway's,
 *  `{error: {code, message, details}}`). */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    const details = (e.error_data && e.error_data.details) || e.details || e.message || `HTTP ${status}`;
    super(details);
    this.status = status;
    this.code = e.code;
    this.title = e.message;
    this.details = details;
    this.field = fieldOf(details);
  }
}

/** The field path an error's details name: "Param components[1].text …", "The parameter name is
 *  required.", "tier: …", "username \"x\" must …" (a form without such a field shows the error
 *  above itself). */
export function fieldOf(details) {
  if (!details) return null;
  const m = /\b(?:Param|parameter)\s+([A-Za-z_][\w.[\]]*)/.exec(details)
    || /^(?:invalid JSON body: )?([a-z_][\w.[\]]*)(?: =|:|\s)/.exec(details);
  return m ? m[1].replace(/\.$/, "") : null;
}

/** The CSRF token of the page, if it has one (`<meta name="csrf-token">`): sent with every
 *  request that changes something. */
function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : null;
}

/** A JSON request: `api("/_mynah/clock/advance", {method: "POST", body: {seconds: 60}})`.
 *  Resolves to the parsed answer; rejects with an ApiError. */
export async function api(path, opts = {}) {
  const method = opts.method || "GET";
  const headers = { Accept: "application/json" };
  let body;
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
  }
  if (method !== "GET" && method !== "HEAD") {
    const t = csrf();
    if (t) headers["X-CSRF-Token"] = t;
  }
  let url = path;
  if (opts.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const resp = await fetch(url, { method, headers, body, credentials: "same-origin" });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: { message: text } }; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** Follows a server-sent event stream: `live(url, {message: data => …})`; `state(s)` is told
 *  "connecting", "open" or "closed". The browser reconnects by itself. */
export function live(url, handlers, state = () => {}) {
  const source = new EventSource(url);
  state("connecting");
  source.onopen = () => state("open");
  source.onerror = () => state(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (ev) => {
      let data = null;
      try { data = JSON.parse(ev.data); } catch { data = ev.data; }
      try { fn(data); } catch (e) { console.error(e); }
    });
  }
  // A page left for another keeps no stream open (the browser's few connections per server
  // would run out when it is kept in the back-forward cache); a page brought back reloads.
  window.addEventListener("pagehide", () => { source.close(); state("closed"); });
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) location.reload(); });
  return source;
}

/** Hash routes: `route({"phone": render, …}, fallback)`; `#/phone/123` calls
 *  `render(["123"])` (a `?query` after the path is the view's to read). Links in `nav` get `aria-current="page"`. */
export function route(routes, fallback) {
  const go = () => {
    const parts = location.hash.replace(/^#\/?/, "").split("?")[0].split("/").map(decodeURIComponent);
    const name = parts[0] && routes[parts[0]] ? parts[0] : fallback;
    for (const a of $$("nav a")) {
      if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    routes[name](parts.slice(1));
  };
  window.addEventListener("hashchange", go);
  go();
}

/** A short message in the toast area (also read out by screen readers). */
export function toast(text, kind = "info") {
  const box = $("#toasts");
  if (!box) return;
  const t = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

/** Runs an action of a button: disabled while it runs, errors shown. */
export async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    toast(e.details || e.message || String(e), "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Shows an API error next to the field it names (`[data-path="components[1].text"]` inside
 *  `form`), or above the form when no field matches. */
export function showFieldErrors(form, error) {
  clearFieldErrors(form);
  const text = error.details || error.message || String(error);
  const code = error.code ? ` (${error.code})` : "";
  const field = fieldFor(form, error.field);
  if (field) {
    const id = `err-${Math.random().toString(36).slice(2)}`;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", id);
    const msg = el("div", { class: "field-error", id, role: "alert", "data-error-for": error.field }, text + code);
    field.insertAdjacentElement("afterend", msg);
    field.focus();
  } else {
    const box = form.querySelector(".form-error") || form.insertBefore(el("div", { class: "form-error", role: "alert" }), form.firstChild);
    box.textContent = text + code;
  }
}

/** The form's element for a field path, or for the nearest path above it that has one
 *  (`components[1].example.body_text` falls back to `components[1]`). */
function fieldFor(form, path) {
  let p = path;
  while (p) {
    const found = form.querySelector(`[data-path="${CSS.escape(p)}"]`);
    if (found) return found;
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut > 0 ? p.slice(0, cut) : "";
  }
  return null;
}

export function clearFieldErrors(form) {
  for (const e of $$(".field-error", form)) e.remove();
  for (const e of $$("[aria-invalid]", form)) { e.removeAttribute("aria-invalid"); e.removeAttribute("aria-describedby"); }
  const box = form.querySelector(".form-error");
  if (box) box.remove();
}

/** A table: columns are [heading, row => cell]; `opts.caption`, `opts.onRow(row, tr)`. */
export function table(columns, rows, opts = {}) {
  const head = el("tr", {}, columns.map(([h]) => el("th", { scope: "col" }, h)));
  const body = rows.map((r) => {
    const tr = el("tr", {}, columns.map(([, f]) => el("td", {}, f(r))));
    if (opts.onRow) opts.onRow(r, tr);
    return tr;
  });
  return el("div", { class: "table-wrap" },
    el("table", {}, opts.caption ? el("caption", {}, opts.caption) : null,
      el("thead", {}, head), el("tbody", {}, body)));
}

/** Pretty JSON in a <pre>. */
export function jsonView(value) {
  let text = value;
  if (typeof value === "string") {
    try { text = JSON.stringify(JSON.parse(value), null, 2); } catch { text = value; }
  } else {
    text = JSON.stringify(value, null, 2);
  }
  return el("pre", { class: "json", tabindex: "0" }, text);
}

const pad = (n) => String(n).padStart(2, "0");

/** "14:05" in UTC (the sandbox's clock is shown in UTC everywhere). */
export function hhmm(ms) {
  if (ms === undefined || ms === null) return "";
  const d = new Date(ms);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** "2026-01-01 14:05:09 UTC". */
export function dateTime(ms) {
  if (ms === undefined || ms === null) return "";
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** "2026-01-01". */
export function day(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** "90 s", "5 min", "3 h", "2 d". */
export function duration(ms) {
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 120) return `${s} s`;
  if (Math.abs(s) < 7200) return `${Math.round(s / 60)} min`;
  if (Math.abs(s) < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** Calls `fn` at most once per `ms` after the last call. */
export function debounce(fn, ms = 200) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
