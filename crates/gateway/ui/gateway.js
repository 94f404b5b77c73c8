// The gateway console: a sign-in page, then five views over the app API (`/v1/`), which a
// console session may call in place of the gateway key (changes carry the session's CSRF
// token, which `api` sends from the page's <meta name="csrf-token">). Overview: queue depth,
// send rate against the limit, the platform's error codes over the last hour, webhook intake
// latency. Messages: search, a message's timeline. Contacts: identity, consents with their
// history, the window, a CSV consent import with progress. Templates: the cache. Campaigns:
// progress, pause, resume, cancel. The app event feed (`/v1/events`) keeps the views live.

import {
  el, fill, $, $$, api, live, route, toast, act, showFieldErrors, clearFieldErrors, table,
  jsonView, dateTime, duration, debounce,
} from "./console.js";

/** Rows of a CSV import sent per request (each request is one import of the app API). */
const IMPORT_CHUNK = 200;
/** Messages per page of the search. */
const PAGE = 50;
/** The kinds of the app event feed the views follow. */
const KINDS = [
  "enqueued", "suppressed", "refused", "parked", "unparked", "cancelled", "accepted", "held",
  "sending", "retry", "outcome_unknown", "correlated", "expired", "failed", "status.sent",
  "status.delivered", "status.read", "status.failed", "status.played", "message.received",
  "sequence_wait", "sequence_released", "pair_wait", "marketing_backoff", "window_fallback",
  "resend_by_phone", "template_paused", "other_attempt.status",
];
const STATES = [
  "queued", "sending", "accepted", "held", "sent", "delivered", "read", "failed", "expired",
  "unknown", "suppressed", "refused", "cancelled",
];

const state = { user: null, view: null };

/** An app API call; a session that ended sends the browser to the sign-in page. */
async function call(path, opts) {
  try {
    return await api(path, opts);
  } catch (e) {
    if (e.status === 401) location.assign("/console/sign-in");
    throw e;
  }
}

function heading(title, ...rest) {
  return el("div", { class: "row view-head" }, el("h2", { class: "grow", id: "view-title" }, title), rest);
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind || ""}`, "data-state": text }, text);
}

const GOOD = new Set(["delivered", "read", "running", "finished", "APPROVED", "opted_in", "ok"]);
const BAD = new Set(["failed", "expired", "refused", "unknown", "cancelled", "REJECTED", "DISABLED", "PAUSED", "opted_out", "degraded"]);
function stateBadge(s) {
  return badge(s || "", GOOD.has(s) ? "ok" : BAD.has(s) ? "bad" : "");
}

function field(label, input) {
  return el("label", {}, label, input);
}

function text(input) {
  const v = input.value.trim();
  return v === "" ? undefined : v;
}

function when(ms) {
  return ms ? el("time", { datetime: new Date(ms).toISOString() }, dateTime(ms)) : "";
}

function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return (Number(n) + 0).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** An object's fields as "key value, key value" (nested objects as JSON). */
function describe(detail) {
  if (detail === null || detail === undefined) return "";
  if (typeof detail !== "object") return String(detail);
  return Object.entries(detail).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// ---- Sign-in ----------------------------------------------------------------------------------

function signInPage() {
  const form = $("#sign-in");
  const key = $("#key");
  key.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("/console/sign-in", { method: "POST", body: { key: key.value } });
      location.assign("/console/");
    } catch (e) {
      showFieldErrors(form, { ...e, field: "key", details: e.details, message: e.message, code: e.code });
      key.select();
    } finally {
      button.disabled = false;
    }
  });
}

// ---- Overview ---------------------------------------------------------------------------------

const QUEUE_STATES = ["queued", "parked", "sending", "accepted", "held", "sent"];
const LANES = ["transactional", "bulk"];

function overviewView() {
  const view = $("#view");
  const body = el("div", { id: "overview", class: "cards" });
  fill(view, heading("Overview"), body);

  function queuePanel(o) {
    const n = (s, l) => o.queue.filter((q) => q.state === s && (!l || q.lane === l)).reduce((a, q) => a + q.count, 0);
    const rows = QUEUE_STATES.map((s) => ({ s }));
    return el("section", { class: "panel", id: "queue", "aria-labelledby": "queue-title" },
      el("h3", { id: "queue-title" }, "Queue depth"),
      table([
        ["State", (r) => r.s],
        ...LANES.map((l) => [l[0].toUpperCase() + l.slice(1), (r) => el("span", { "data-queue": `${r.s}/${l}` }, num(n(r.s, l)))]),
        ["All", (r) => el("strong", {}, num(n(r.s)))],
      ], rows, { caption: "Messages waiting before the platform's final word, by state and lane" }));
  }

  function ratePanel(o) {
    const r = o.rate;
    const points = r.per_minute.slice(-60).map((p) => ({ ...p, rate: p.seconds > 0 ? p.sends / p.seconds : 0 }));
    const most = Math.max(0.001, ...points.map((p) => p.rate));
    const bars = el("div", { class: "bars", role: "img", "aria-label": `Send rate by minute over the last hour, at most ${num(most, 1)} msg/s` });
    for (const p of points) {
      const bar = el("span", { title: `${num(p.rate, 1)} msg/s in the ${p.seconds} s to ${dateTime(p.at)}` });
      bar.style.height = `${Math.max(2, Math.round((p.rate / most) * 100))}%`;
      bars.append(bar);
    }
    return el("section", { class: "panel", id: "rate", "aria-labelledby": "rate-title" },
      el("h3", { id: "rate-title" }, "Send rate"),
      el("p", {}, el("strong", { id: "sends-per-second" }, `${num(r.sends_per_second, 1)} msg/s`),
        ` over the last ${Math.round(r.over_seconds) || 0} s, against a limit of ${num(r.limit, 1)} msg/s`,
        r.current_limit < r.limit ? ` (lowered to ${num(r.current_limit, 1)} msg/s after throttling)` : ""),
      el("meter", { min: "0", max: String(r.limit || 1), value: String(r.sends_per_second), "aria-label": "Send rate against the limit" }),
      points.length > 1
        ? [el("p", { class: "muted small" }, `By minute, last hour (highest ${num(most, 1)} msg/s)`), bars]
        : el("p", { class: "muted small" }, "The rate by minute fills in as the gateway runs."));
  }

  function errorsPanel(o) {
    const codes = o.errors.codes;
    return el("section", { class: "panel", id: "errors", "aria-labelledby": "errors-title" },
      el("h3", { id: "errors-title" }, "Upstream error codes, last hour"),
      codes.length ? table([
        ["Code", (c) => el("span", { class: "mono", "data-code": c.code }, c.code)],
        ["Title", (c) => c.title || ""],
        ["Outcome", (c) => c.outcome],
        ["Sends", (c) => num(c.count)],
      ], codes) : el("p", { class: "muted" }, `No error codes from the platform since ${dateTime(o.errors.since)}.`));
  }

  function latency(l) {
    if (!l.count) return "no webhooks";
    const ms = (v) => (v === null || v === undefined ? "–" : `${num(v, v < 10 ? 1 : 0)} ms`);
    return `${num(l.count)} webhooks · mean ${ms(l.mean_ms)} · p50 ≤ ${ms(l.p50_ms)} · p95 ≤ ${ms(l.p95_ms)}`;
  }

  function intakePanel(o) {
    return el("section", { class: "panel", id: "intake", "aria-labelledby": "intake-title" },
      el("h3", { id: "intake-title" }, "Webhook intake latency"),
      kv([["Last minute", latency(o.intake.minute)], ["Last hour", latency(o.intake.hour)],
        ["Received since start", num(o.intake.received)]]),
      el("h3", {}, "Platform"),
      kv([["Status", stateBadge(o.health.status)], ["Upstream", el("span", { class: "mono" }, o.health.upstream)],
        ["Reachable", o.health.reachable ? "yes" : "no"], ["Last error", o.health.last_error || ""]]));
  }

  async function render() {
    const o = await call("/v1/overview");
    fill(body, queuePanel(o), ratePanel(o), errorsPanel(o), intakePanel(o));
    body.dataset.ready = "1";
  }
  act(null, render);
  const timer = setInterval(() => act(null, render), 5000);
  const again = debounce(() => act(null, render), 500);
  return { on: () => again(), leave: () => clearInterval(timer) };
}

// ---- Messages ---------------------------------------------------------------------------------

function messagesView(args) {
  if (args[0]) return messageView(args[0]);
  const view = $("#view");
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  const id = el("input", { id: "q-id", autocomplete: "off", value: q.get("id") || "" });
  const to = el("input", { id: "q-to", inputmode: "tel", autocomplete: "off", value: q.get("to") || "" });
  const st = el("select", { id: "q-state" }, el("option", { value: "" }, "any"),
    STATES.map((s) => el("option", { value: s, selected: q.get("state") === s }, s)));
  const tpl = el("input", { id: "q-template", autocomplete: "off", value: q.get("template") || "" });
  const meta = el("input", { id: "q-metadata", autocomplete: "off", placeholder: "order_id:A-1", value: q.get("metadata") || "", "data-path": "metadata" });
  const lane = el("select", { id: "q-lane" }, el("option", { value: "" }, "any"),
    LANES.map((l) => el("option", { value: l, selected: q.get("lane") === l }, l)));
  const form = el("form", { class: "panel", id: "search", role: "search" },
    el("div", { class: "row" },
      field("Message id", id), field("Recipient", to), field("State", st), field("Template", tpl),
      field("Metadata key:value", meta), field("Lane", lane),
      el("button", { type: "submit" }, "Search")));
  const results = el("div", { id: "results" });
  fill(view, heading("Messages"), form, results);
  let next = null;
  let rows = [];

  function render() {
    fill(results, rows.length ? table([
      ["Id", (m) => el("a", { href: `#/messages/${encodeURIComponent(m.id)}`, class: "mono", "data-id": m.id }, m.id)],
      ["Recipient", (m) => m.to],
      ["State", (m) => stateBadge(m.state)],
      ["Template", (m) => (m.template ? m.template.name || m.template : "")],
      ["Lane", (m) => m.lane],
      ["Created", (m) => when(m.created_at)],
      ["Last error", (m) => (m.last_error ? `${m.last_error.code ?? ""} ${m.last_error.message}` : "")],
    ], rows, { caption: "Newest first" }) : el("p", { class: "muted" }, "No message matches."),
    next ? el("button", { type: "button", class: "secondary", id: "more", onclick: (e) => act(e.currentTarget, () => load(true)) }, "Older messages") : null);
    results.dataset.ready = "1";
  }

  async function load(more) {
    clearFieldErrors(form);
    const query = { order: "newest", limit: PAGE, to: text(to), state: st.value, template: text(tpl), metadata: text(meta), lane: lane.value };
    if (more) query.after = next;
    try {
      const page = await call("/v1/messages", { query });
      rows = more ? rows.concat(page.messages) : page.messages;
      next = page.next;
      render();
    } catch (e) {
      showFieldErrors(form, e);
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (text(id)) {
      location.hash = `#/messages/${encodeURIComponent(text(id))}`;
      return;
    }
    load(false);
  });
  load(false);
  const again = debounce(() => load(false), 700);
  return { on: () => { if (!next) again(); } };
}

function eventSummary(e) {
  const d = e.detail || {};
  const parts = [];
  if (d.error) parts.push(`${d.error.code ?? ""} ${d.error.title || d.error.message || ""}`.trim());
  if (d.reason) parts.push(String(d.reason));
  if (d.wamid) parts.push(d.wamid);
  if (d.attempt) parts.push(`attempt ${d.attempt}`);
  return parts.join(" · ");
}

function messageView(id) {
  const view = $("#view");
  const box = el("div", { id: "message", "data-id": id });
  fill(view, heading(`Message ${id}`, el("a", { href: "#/messages", class: "button secondary" }, "Back to the search")), box);

  async function render() {
    let m;
    try {
      m = await call(`/v1/messages/${encodeURIComponent(id)}`);
    } catch (e) {
      fill(box, el("p", { class: "form-error", role: "alert" }, e.details || String(e)));
      return;
    }
    const cancel = m.state === "queued"
      ? el("button", { type: "button", class: "danger", id: "cancel-message", onclick: (e) => act(e.currentTarget, async () => { await call(`/v1/messages/${encodeURIComponent(id)}/cancel`, { method: "POST" }); toast("Cancelled"); await render(); }) }, "Cancel this message")
      : null;
    fill(box,
      el("div", { class: "split wide-right" },
        el("section", { class: "panel", "aria-labelledby": "timeline-title" },
          el("h3", { id: "timeline-title" }, "Timeline"),
          el("ol", { class: "timeline", id: "timeline" }, (m.events || []).map((e) => el("li", { "data-type": e.type, "data-seq": e.seq },
            el("strong", {}, e.type), " ", stateBadge(e.state), " ", el("span", { class: "muted small" }, when(e.at)),
            eventSummary(e) ? el("div", { class: "small" }, eventSummary(e)) : null,
            e.detail && Object.keys(e.detail).length ? el("details", {}, el("summary", { class: "small" }, "Detail"), jsonView(e.detail)) : null)))),
        el("section", { class: "panel", "aria-labelledby": "message-title" },
          el("h3", { id: "message-title" }, "Message"),
          kv([
            ["State", stateBadge(m.state)], ["Recipient", m.to],
            ["Person", m.person ? el("a", { href: `#/contacts/${encodeURIComponent(m.to)}` }, m.person) : el("a", { href: `#/contacts/${encodeURIComponent(m.to)}` }, "contact")],
            ["Category", m.category], ["Template", m.template ? `${m.template.name || ""} ${m.template.language || ""}` : ""],
            ["Lane", m.lane], ["Attempts", String(m.attempts)], ["wamid", m.wamid ? el("span", { class: "mono" }, m.wamid) : ""],
            ["Reason", m.reason || ""], ["Parked", m.parked || ""],
            ["Last error", m.last_error ? `${m.last_error.code ?? ""} ${m.last_error.message}` : ""],
            ["Created", when(m.created_at)], ["Accepted", when(m.accepted_at)], ["Sent", when(m.sent_at)],
            ["Delivered", when(m.delivered_at)], ["Read", when(m.read_at)], ["Failed", when(m.failed_at)],
          ]),
          m.metadata ? [el("h3", {}, "Metadata"), jsonView(m.metadata)] : null,
          cancel)));
    box.dataset.state = m.state;
    box.dataset.ready = "1";
  }
  act(null, render);
  const again = debounce(() => act(null, render), 200);
  return { on: (e) => { if (e?.message_id === id) again(); } };
}

// ---- Contacts ---------------------------------------------------------------------------------

function contactsView(args) {
  const view = $("#view");
  const who = el("input", { id: "contact-id", autocomplete: "off", inputmode: "tel", placeholder: "4915112345678 or DE.1502…", value: args[0] || "", "data-path": "id" });
  const form = el("form", { class: "panel row", id: "find-contact", role: "search" },
    el("label", { class: "grow" }, "Phone number, BSUID or contact key", who),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = text(who);
    if (v) location.hash = `#/contacts/${encodeURIComponent(v)}`;
  });
  const contact = el("div", { id: "contact" });
  fill(view, heading("Contacts"), form, contact, importPanel());

  async function render() {
    const id = args[0];
    if (!id) {
      fill(contact);
      return;
    }
    let c = null;
    let consents = null;
    try {
      [c, consents] = await Promise.all([
        call(`/v1/contacts/${encodeURIComponent(id)}`).catch((e) => { if (e.status === 404) return null; throw e; }),
        call(`/v1/contacts/${encodeURIComponent(id)}/consents`),
      ]);
    } catch (e) {
      fill(contact, el("p", { class: "form-error", role: "alert" }, e.details || String(e)));
      return;
    }
    const consentTable = (list, caption) => table([
      ["Category", (x) => x.category], ["Status", (x) => stateBadge(x.status)], ["Source", (x) => x.source || ""],
      ["Given", (x) => when(x.at)], ["Recorded", (x) => when(x.recorded_at)], ["Evidence", (x) => x.evidence || ""],
    ], list, { caption });
    fill(contact,
      el("div", { class: "cards" },
        el("section", { class: "panel", "aria-labelledby": "identity-title" },
          el("h3", { id: "identity-title" }, "Identity"),
          c ? kv([["Contact key", el("span", { class: "mono" }, c.person)], ["Phone", c.wa_id || "withheld"],
            ["BSUID", c.user_id ? el("span", { class: "mono" }, c.user_id) : ""], ["Parent BSUID", c.parent_user_id || ""],
            ["Username", c.username || ""], ["Profile name", c.profile_name || ""]])
            : el("p", { class: "muted" }, `Nothing known of ${id} besides its consents.`),
          c ? [el("h3", {}, "Window"),
            el("p", { id: "window", "data-open": String(c.window.open) }, c.window.open
              ? `Open: free-form messages until ${dateTime(c.window.closes_at)}`
              : c.window.last_inbound_at ? `Closed since ${dateTime(c.window.closes_at)}` : "Closed: the contact has not written yet")] : null,
          c && c.identifiers?.length ? [el("h3", {}, "Ids"), table([["Id", (x) => el("span", { class: "mono" }, x.id)], ["Kind", (x) => x.kind]], c.identifiers)] : null,
          c && c.history?.length ? [el("h3", {}, "Identity history"), table([
            ["When", (h) => when(h.at)], ["What", (h) => h.kind],
            ["Detail", (h) => el("span", { class: "small" }, describe(h.detail))],
          ], c.history)] : null,
          el("p", {}, el("a", { href: `#/messages?to=${encodeURIComponent(c?.wa_id || id)}` }, "Messages to this contact"))),
        el("section", { class: "panel", "aria-labelledby": "consents-title", id: "consents" },
          el("h3", { id: "consents-title" }, "Consents"),
          consents.current.length ? consentTable(consents.current, "Now") : el("p", { class: "muted" }, "No consent recorded."),
          consents.history.length ? consentTable(consents.history, "History, newest last") : null)));
    contact.dataset.ready = "1";
  }
  act(null, render);
  return { on: debounce((e) => { if (e?.type === "message.received") act(null, render); }, 500) };
}

/** The CSV consent import: the file is sent in requests of IMPORT_CHUNK rows to the app API's
 *  import, each with the header, so the bar moves as the gateway records them and every refused
 *  row is listed with its line in the file. */
function importPanel() {
  const file = el("input", { type: "file", id: "import-file", accept: ".csv,text/csv" });
  const paste = el("textarea", { id: "import-text", placeholder: "wa_id,category,status,source\n4915112345678,marketing,opted_in,shop", "data-path": "csv" });
  const progress = el("progress", { id: "import-progress", max: "1", value: "0", hidden: true, "aria-label": "Import progress" });
  const status = el("p", { id: "import-status", role: "status" });
  const errors = el("div", { id: "import-errors" });
  const form = el("form", { class: "panel", id: "import", "aria-labelledby": "import-title" },
    el("h3", { id: "import-title" }, "Import consents (CSV)"),
    el("p", { class: "muted small" }, "A header naming wa_id, category and status (opted_in, opted_out), and optionally source, evidence and at (unix ms)."),
    el("div", { class: "row" }, field("CSV file", file)),
    field("…or paste it", paste),
    el("div", { class: "row" }, el("button", { type: "submit", id: "import-start" }, "Import"), progress),
    status, errors);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const button = $("#import-start");
    let csv = paste.value;
    if (file.files && file.files[0]) csv = await file.files[0].text();
    if (!csv.trim()) {
      showFieldErrors(form, { field: "csv", details: "choose a CSV file or paste one" });
      return;
    }
    button.disabled = true;
    try {
      await runImport(csv, progress, status, errors);
    } catch (e) {
      showFieldErrors(form, { details: e.details || String(e), code: e.code });
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function runImport(csv, progress, status, errors) {
  const lines = csv.replace(/^\uFEFF/, "").split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== "");
  const header = lines[headerAt];
  const rows = lines.slice(headerAt + 1);
  while (rows.length && rows[rows.length - 1].trim() === "") rows.pop();
  const total = rows.filter((l) => l.trim() !== "").length;
  const refused = [];
  let done = 0;
  let imported = 0;
  progress.hidden = false;
  progress.max = Math.max(1, total);
  progress.value = 0;
  fill(errors);
  const show = (final) => {
    progress.value = done;
    status.textContent = `${final ? "Done" : "Importing"}: ${num(done)} of ${num(total)} rows read, ${num(imported)} recorded, ${num(refused.length)} refused.`;
    status.dataset.done = final ? "1" : "";
    fill(errors, refused.length ? table([["Line", (r) => String(r.line)], ["Why", (r) => r.message]], refused, { caption: "Refused rows" }) : null);
  };
  show(false);
  for (let a = 0; a < rows.length; a += IMPORT_CHUNK) {
    const chunk = rows.slice(a, a + IMPORT_CHUNK);
    const body = [header, ...chunk].join("\n");
    const resp = await fetch("/v1/consents/import", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "text/csv", Accept: "application/json", "X-CSRF-Token": $('meta[name="csrf-token"]')?.content || "" },
      body,
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      if (resp.status === 401) location.assign("/console/sign-in");
      const e = data.error || {};
      throw Object.assign(new Error(e.details || e.message || `HTTP ${resp.status}`), { details: e.details || e.message, code: e.code });
    }
    imported += data.imported;
    // The request's line k is the file's line headerAt + 1 + a + (k - 1).
    for (const r of data.errors || []) refused.push({ line: headerAt + a + r.line, message: r.message });
    done += chunk.filter((l) => l.trim() !== "").length;
    show(false);
  }
  show(true);
}

// ---- Templates --------------------------------------------------------------------------------

function templatesView() {
  const view = $("#view");
  const box = el("div", { id: "templates" });
  const sync = el("button", { type: "button", class: "secondary", id: "sync-templates", onclick: (e) => act(e.currentTarget, async () => { render(await call("/v1/templates/sync", { method: "POST" })); toast("Template cache synced with the platform"); }) }, "Sync with the platform");
  fill(view, heading("Templates", sync), box);
  function render(data) {
    const list = data.templates || [];
    fill(box, list.length ? table([
      ["Name", (t) => el("strong", {}, t.name)], ["Language", (t) => t.language], ["Category", (t) => t.category],
      ["Status", (t) => stateBadge(t.status)], ["Id", (t) => el("span", { class: "mono" }, t.id || "")],
      ["Definition", (t) => el("details", {}, el("summary", {}, "Components"), jsonView(t.components))],
    ], list, { caption: "The template cache (what enqueue checks template messages against)" })
      : el("p", { class: "muted" }, "The cache is empty: sync it with the platform."));
    box.dataset.ready = "1";
  }
  act(null, async () => render(await call("/v1/templates")));
  return null;
}

// ---- Campaigns --------------------------------------------------------------------------------

const ACTIONS = {
  draft: ["start", "cancel"], scheduled: ["pause", "cancel"], running: ["pause", "cancel"], paused: ["resume", "cancel"],
};
const LABEL = { start: "Start", pause: "Pause", resume: "Resume", cancel: "Cancel" };

function campaignsView() {
  const view = $("#view");
  const box = el("div", { id: "campaigns" });
  fill(view, heading("Campaigns"), box);
  let confirming = null; // id whose cancel waits for confirmation

  async function control(button, id, action) {
    await act(button, async () => {
      const c = await call(`/v1/campaigns/${encodeURIComponent(id)}/${action}`, { method: "POST" });
      toast(`${c.name}: ${c.state}`);
      confirming = null;
      await render();
    });
  }

  function buttons(c) {
    if (confirming === c.id) {
      return el("div", { class: "button-row", role: "group", "aria-label": "Confirm cancel" },
        el("span", {}, "Cancel every unsent message?"),
        el("button", { type: "button", class: "danger", "data-action": "confirm-cancel", "data-campaign": c.id, onclick: (e) => control(e.currentTarget, c.id, "cancel") }, "Yes, cancel"),
        el("button", { type: "button", class: "secondary", onclick: () => { confirming = null; render(); } }, "Keep it"));
    }
    return el("div", { class: "button-row" }, (ACTIONS[c.state] || []).map((a) => el("button", {
      type: "button", class: a === "cancel" ? "danger" : "secondary", "data-action": a, "data-campaign": c.id,
      onclick: (e) => { if (a === "cancel") { confirming = c.id; render(); } else control(e.currentTarget, c.id, a); },
    }, LABEL[a])));
  }

  function card(c) {
    const k = c.counts;
    const handled = k.audience - k.pending;
    return el("article", { class: "panel campaign", "data-campaign": c.id, "data-state": c.state, "aria-labelledby": `c-${c.id}` },
      el("div", { class: "row" },
        el("h3", { class: "grow", id: `c-${c.id}` }, c.name, " ", stateBadge(c.state)),
        buttons(c)),
      el("progress", { max: String(Math.max(1, k.audience)), value: String(handled), "aria-label": `${c.name}: recipients handed over` }),
      el("p", { class: "small", "data-counts": "" },
        `${num(k.released)} of ${num(k.audience)} released · ${num(k.skipped)} skipped · ${num(k.queued)} queued · `
        + `${num(k.sent)} sent · ${num(k.delivered)} delivered · ${num(k.read)} read · ${num(k.failed)} failed`
        + (k.cancelled ? ` · ${num(k.cancelled)} cancelled` : "")),
      kv([["Template", `${c.template.name} (${c.template.language})`], ["Rate", `${num(c.rate, 2)} msg/s (${Math.round(c.rate_share * 100)} % of the number's)`],
        ["Started", when(c.started_at)], ["Finishes", c.eta ? `about ${dateTime(c.eta)}` : ""],
        ["Why", c.reason || ""], ["Cost", c.cost ? `${num(c.cost.spent, 2)} spent, ${num(c.cost.projected, 2)} projected` : ""]]));
  }

  async function render() {
    const list = (await call("/v1/campaigns")).campaigns || [];
    fill(box, list.length ? list.map(card) : el("p", { class: "muted" }, "No campaigns yet: create one with POST /v1/campaigns."));
    box.dataset.ready = "1";
  }
  act(null, render);
  const timer = setInterval(() => { if (!confirming && $$('[data-state="running"], [data-state="scheduled"]', box).length) act(null, render); }, 3000);
  const again = debounce(() => { if (!confirming) act(null, render); }, 700);
  return { on: () => again(), leave: () => clearInterval(timer) };
}

// ---- Start ------------------------------------------------------------------------------------

function show(render) {
  return (args) => {
    if (state.view?.leave) state.view.leave();
    state.view = render(args) || null;
  };
}

async function start() {
  if (document.body.dataset.page === "sign-in") {
    signInPage();
    return;
  }
  let s;
  try {
    s = await api("/console/session");
  } catch (e) {
    if (e.status === 401) location.assign("/console/sign-in");
    else fill($("#view"), el("p", { class: "form-error" }, `The gateway did not answer: ${e.details || e}`));
    return;
  }
  state.user = s.user;
  document.head.append(el("meta", { name: "csrf-token", content: s.csrf_token }));
  $("#user").textContent = s.user;
  $("#sign-out").addEventListener("click", (ev) => act(ev.currentTarget, async () => {
    await api("/console/sign-out", { method: "POST" });
    location.assign("/console/sign-in");
  }));
  const dot = $("#live-dot");
  const label = $("#live-state");
  const handlers = {};
  for (const k of KINDS) handlers[k] = (data) => state.view?.on?.(data);
  live(`/v1/events?after=${encodeURIComponent(s.last_event_seq)}`, handlers, (st) => {
    dot.dataset.state = st;
    label.textContent = st === "open" ? "live" : st;
    document.body.dataset.live = st;
  });
  route({
    overview: show(overviewView), messages: show(messagesView), contacts: show(contactsView),
    templates: show(templatesView), campaigns: show(campaignsView),
  }, "overview");
}

start();
