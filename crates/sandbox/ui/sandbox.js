// The sandbox console: five views over the control API (`/_mynah/`), following its live feed
// (`/_mynah/events`). Phone: a virtual user's WhatsApp. Messages: the filterable list, each
// message's timeline and explanation. Webhooks: every delivery attempt, receivers paused and
// resumed. Templates: status, quality, pacing verdicts, create and edit. Number & clock: quality,
// tier, the messaging limit's use, the manual clock, fault rules.

import {
  el, fill, $, $$, api, live, route, toast, act, showFieldErrors, clearFieldErrors, table,
  jsonView, hhmm, dateTime, day, duration, debounce,
} from "./console.js";
import { bubble, ticks } from "./chat.js";

const API = "/_mynah";
/** Messages per page of the phone and of the messages table. */
const PAGE = 50;
/** Users listed beside the phone at most (the filter finds the others). */
const USER_LIST = 200;

const state = {
  clock: "manual",
  now: 0,
  numbers: [],
  templates: new Map(), // id → template
  errors: new Map(), // code → title
  users: [],
  view: null, // the view showing: { on(kind, data) }
};

// ---- Shared look-ups --------------------------------------------------------------------------

async function loadNumbers() {
  state.numbers = (await api(`${API}/numbers`)).numbers || [];
}

async function loadTemplates() {
  const list = (await api(`${API}/templates`)).templates || [];
  state.templates = new Map(list.map((t) => [t.id, t]));
}

async function loadErrors() {
  const list = (await api(`${API}/errors`)).errors || [];
  state.errors = new Map(list.map((e) => [e.code, e.title]));
}

async function loadUsers() {
  state.users = (await api(`${API}/users`)).users || [];
}

function numberLabel(pnid) {
  const n = state.numbers.find((x) => x.phone_number_id === pnid);
  return n ? `+${n.display_phone_number}` : pnid;
}

function templateName(id) {
  const t = state.templates.get(id);
  return t ? t.def.name : id || "";
}

/** The failure of a message: `{code, title, details}` from its timeline, or null. */
function failure(m) {
  if (m.timeline?.some((e) => e.event === "dropped")) {
    return { code: null, title: "dropped", details: "undelivered when its time-to-live ended" };
  }
  if (m.status !== "failed") return null;
  const entry = [...(m.timeline || [])].reverse().find((e) => e.event === "failed");
  const text = entry?.detail || (m.fate ? `${m.fate[0]} ${m.fate[1]}` : "");
  const space = text.indexOf(" ");
  const code = Number(space > 0 ? text.slice(0, space) : text);
  const details = space > 0 ? text.slice(space + 1) : "";
  return { code: Number.isFinite(code) ? code : null, title: state.errors.get(code) || "", details };
}

/** What a message's ticks show. */
function shownStatus(m) {
  if (m.timeline?.some((e) => e.event === "dropped")) return "expired";
  if (m.direction === "inbound") return m.status === "read" ? "read" : "delivered";
  if (m.held) return "held";
  return m.status || "pending";
}

function setNow(ms) {
  state.now = ms;
  const t = $("#now");
  if (t) {
    t.textContent = dateTime(ms);
    t.dateTime = new Date(ms).toISOString();
  }
  for (const o of $$("[data-otp-expires]")) updateOtp(o);
}

function updateOtp(node) {
  const expires = Number(node.dataset.otpExpires);
  const left = expires - state.now;
  const expired = left <= 0;
  node.dataset.otp = expired ? "expired" : "valid";
  node.textContent = expired ? `Code expired at ${hhmm(expires)}` : `Code valid for ${duration(left)} (until ${hhmm(expires)})`;
  const b = node.closest(".bubble");
  if (b) for (const copy of $$("[data-copy-code]", b)) copy.classList.toggle("expired", expired);
}

/** Reads a number input; empty is undefined. */
function num(input) {
  const v = input.value.trim();
  return v === "" ? undefined : Number(v);
}

function text(input) {
  const v = input.value.trim();
  return v === "" ? undefined : v;
}

function heading(title, ...rest) {
  return el("div", { class: "row view-head" }, el("h2", { class: "grow", id: "view-title" }, title), rest);
}

function numberSelect(id, value, any) {
  return el("select", { id },
    any ? el("option", { value: "" }, "any number") : null,
    state.numbers.map((n) => el("option", { value: n.phone_number_id, selected: n.phone_number_id === value }, `+${n.display_phone_number} (${n.phone_number_id})`)));
}

// ---- Phone ------------------------------------------------------------------------------------

function phoneView(args) {
  const view = $("#view");
  const waId = args[0] || "";
  let pnid = args[1] || state.numbers[0]?.phone_number_id || "";
  const opened = performance.now();
  const chat = el("div", { class: "chat", id: "chat", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const nodes = new Map(); // message id → bubble element
  const byId = new Map(); // message id → message
  const reactions = new Map(); // message id → {business: emoji, user: emoji}
  let order = []; // ids, oldest first
  let older = null; // cursor of the page before the oldest shown
  let user = state.users.find((u) => u.wa_id === waId) || null;

  const list = el("ul", { class: "list", id: "users", "aria-label": "Virtual users" });
  const search = el("input", { type: "search", id: "user-search", placeholder: "Filter users", "aria-label": "Filter users" });
  const openForm = el("form", { class: "row", id: "open-user" },
    el("label", { class: "grow" }, "Open a number", el("input", { id: "open-wa-id", inputmode: "tel", placeholder: "4915112345678", autocomplete: "off" })),
    el("button", { type: "submit", class: "secondary" }, "Open"));
  openForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("#open-wa-id").value.replace(/[^0-9]/g, "");
    if (v) location.hash = `#/phone/${v}`;
  });

  function renderUsers() {
    const q = search.value.trim().toLowerCase();
    const matching = state.users.filter((u) => !q || u.wa_id.includes(q) || (u.name || "").toLowerCase().includes(q)
      || (u.username || "").toLowerCase().includes(q));
    // A sandbox under load has thousands of users: the list shows the first ones, the filter finds the rest.
    const shown = matching.slice(0, USER_LIST);
    fill(list, shown.map((u) => el("li", {}, el("button", {
      type: "button", "aria-current": u.wa_id === waId ? "true" : undefined, "data-wa-id": u.wa_id,
      onclick: () => { location.hash = `#/phone/${u.wa_id}`; },
    }, el("strong", {}, u.name || u.wa_id), el("br"), el("small", {}, `+${u.wa_id}${u.username ? ` · @${u.username}` : ""}`),
    u.moved_to ? el("span", { class: "badge small" }, ` now +${u.moved_to}`) : null,
    u.behaviour?.blocks_business ? el("span", { class: "badge bad small" }, " blocked") : null))));
    if (matching.length > shown.length) list.append(el("li", { class: "muted small" }, `${matching.length - shown.length} more: filter to find them.`));
    if (!shown.length) list.append(el("li", { class: "muted small" }, state.users.length ? "No user matches." : "No users yet: send a message to a number, or open one."));
  }
  search.addEventListener("input", renderUsers);

  const aside = el("aside", { class: "panel", "aria-labelledby": "users-title" },
    el("h2", { id: "users-title" }, "Users"), search, list, openForm);

  if (!waId) {
    fill(view, el("div", { class: "split" }, aside,
      el("section", { class: "panel" }, el("h2", {}, "Phone"), el("p", { class: "muted" }, "Pick a user to see their phone: the conversation with the business as WhatsApp shows it, live."))));
    renderUsers();
    return { on(kind) { if (kind === "user") loadUsers().then(renderUsers); } };
  }

  const number = () => state.numbers.find((n) => n.phone_number_id === pnid);
  const who = el("div", { class: "who" });
  const head = el("div", { class: "phone-head" }, el("span", { class: "avatar", "aria-hidden": "true" }, "B"), who);
  const status = el("p", { class: "small muted", id: "phone-user" });
  const buttons = el("div", { class: "acts", role: "toolbar", "aria-label": "Act as the user" });
  const input = el("input", { id: "reply-text", autocomplete: "off", placeholder: "Message", "aria-label": "Reply as the user" });
  const composer = el("form", { class: "composer", id: "composer" }, input, el("button", { type: "submit" }, "Send"));
  composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    act(composer.querySelector("button"), async () => {
      await inbound({ type: "text", text: { body } });
      input.value = "";
    });
  });

  function renderHead() {
    const n = number();
    fill(who, el("strong", {}, n?.verified_name || "Business"),
      el("small", {}, n ? `+${n.display_phone_number}` : pnid));
    if (state.numbers.length > 1) {
      const sel = numberSelect("phone-number", pnid, false);
      sel.setAttribute("aria-label", "Business number");
      sel.addEventListener("change", () => { location.hash = `#/phone/${waId}/${sel.value}`; });
      head.append(sel);
    }
    const blocked = !!user?.behaviour?.blocks_business;
    fill(status, `The phone of ${user?.name || "a user"} (+${waId}${user?.username ? `, @${user.username}` : ""})`,
      user?.moved_to ? el("span", {}, " — the user changed number: ", el("a", { href: `#/phone/${user.moved_to}/${pnid}` }, `+${user.moved_to}`)) : null, blocked ? el("span", { class: "badge bad" }, " has blocked the business") : null,
      user?.behaviour?.marketing_opt_out ? el("span", { class: "badge warn" }, " stopped marketing") : null);
    fill(buttons,
      el("button", { type: "button", id: "act-stop", onclick: (e) => act(e.currentTarget, () => inbound({ type: "text", text: { body: "STOP" } })) }, "Send STOP"),
      el("button", { type: "button", id: "act-block", class: "secondary", onclick: (e) => act(e.currentTarget, () => setBehaviour({ blocks_business: !blocked })) }, blocked ? "Unblock" : "Block"),
      el("button", { type: "button", id: "act-report", class: "danger", onclick: (e) => act(e.currentTarget, report) }, "Report"));
    // The forms stay as they are (open, half typed) while the user changes live.
    $("summary", identityEl).textContent = user?.username ? `Username @${user.username}, number` : "Username, number";
    $("#username-remove", identityEl).hidden = !user?.username;
  }

  /** The user's username and phone number, changed as the user would in WhatsApp's settings. */
  function identity() {
    const name = el("input", { id: "username", autocomplete: "off", value: user?.username || "", "data-path": "username", placeholder: "ana.s" });
    const nameForm = el("form", { class: "row", id: "username-form" },
      el("label", { class: "grow" }, "Username", name),
      el("button", { type: "submit", class: "secondary" }, "Save"),
      el("button", { type: "button", class: "danger", id: "username-remove", onclick: (e) => act(e.currentTarget, () => setUsername(null, nameForm)) }, "Remove"));
    nameForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      act(nameForm.querySelector("button[type=submit]"), () => setUsername(name.value.trim() || null, nameForm));
    });
    const phone = el("input", { id: "new-number", inputmode: "tel", autocomplete: "off", "data-path": "new_wa_id", placeholder: "4915198765432" });
    const numberForm = el("form", { class: "row", id: "number-form" },
      el("label", { class: "grow" }, "New phone number", phone),
      el("button", { type: "submit", class: "secondary" }, "Change number"));
    numberForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      act(numberForm.querySelector("button[type=submit]"), () => changeNumber(phone.value.replace(/[^0-9]/g, ""), numberForm));
    });
    return el("details", { class: "identity", id: "identity" }, el("summary", {}), nameForm, numberForm);
  }

  async function inbound(body) {
    await api(`${API}/inbound`, { method: "POST", body: { from: waId, phone_number_id: pnid, ...body } });
  }

  async function setBehaviour(patch) {
    user = await api(`${API}/users/${encodeURIComponent(waId)}`, { method: "PUT", body: patch });
    renderHead();
  }

  async function report() {
    const r = await api(`${API}/users/${encodeURIComponent(waId)}/report`, { method: "POST", body: { phone_number_id: pnid } });
    user = r.user;
    renderHead();
    toast(r.reported_message ? `Reported; the template of ${r.reported_message} gets the signal` : "Reported the business");
  }

  async function setUsername(name, form) {
    clearFieldErrors(form);
    const path = `${API}/users/${encodeURIComponent(waId)}/username`;
    try {
      user = name === null ? await api(path, { method: "DELETE" }) : await api(path, { method: "PUT", body: { username: name } });
    } catch (e) {
      showFieldErrors(form, e);
      return;
    }
    toast(name ? `Username set to @${name}` : "Username removed");
    renderHead();
  }

  async function changeNumber(digits, form) {
    clearFieldErrors(form);
    try {
      await api(`${API}/users/${encodeURIComponent(waId)}/number`, { method: "POST", body: { new_wa_id: digits } });
    } catch (e) {
      showFieldErrors(form, e);
      return;
    }
    toast(`The user's number is now +${digits}`);
    await loadUsers();
    location.hash = `#/phone/${digits}/${pnid}`;
  }

  /** Quick-reply buttons: a template's (a `button` message) or an interactive message's. */
  function pressFor(m) {
    if (m.direction !== "outbound") return undefined;
    if (m.type === "template") {
      return (i, b) => {
        const param = (m.body.template?.components || []).find((c) => (c.type || "").toLowerCase() === "button" && Number(c.index) === i);
        const payload = param?.parameters?.[0]?.payload ?? b.text;
        return act(null, () => inbound({ type: "button", button: { text: b.text, payload }, context: { from: number()?.display_phone_number, id: m.id } }));
      };
    }
    if (m.type === "interactive") {
      return (i, reply) => act(null, () => inbound({
        type: "interactive",
        interactive: { type: "button_reply", button_reply: { id: reply?.id ?? String(i), title: reply?.title ?? "" } },
        context: { from: number()?.display_phone_number, id: m.id },
      }));
    }
    return undefined;
  }

  function reactionOf(m) {
    if (m.type !== "reaction") return null;
    const target = m.direction === "outbound" ? m.reaction_to || m.body?.reaction?.message_id : m.body?.reaction?.message_id;
    return target ? { target, emoji: m.body?.reaction?.emoji || "" } : null;
  }

  function quotedText(m) {
    const id = m.direction === "inbound" ? m.body?.context?.id : m.body?.context?.message_id;
    if (!id) return null;
    const q = byId.get(id);
    if (!q) return "↩ an earlier message";
    const t = q.body?.text?.body || q.body?.template?.name || q.body?.button?.text || q.type;
    return `↩ ${String(t).slice(0, 80)}`;
  }

  function render(m) {
    const def = m.template_id ? state.templates.get(m.template_id)?.def : null;
    const r = reactions.get(m.id);
    const node = bubble({
      id: m.id, domId: `m-${m.id.replace(/[^A-Za-z0-9_-]/g, "")}`, mine: m.direction === "inbound", type: m.type, body: m.body,
      status: shownStatus(m), at: m.created_at, error: failure(m), def, quoted: quotedText(m),
      reactions: r ? [r.business, r.user].filter(Boolean) : [], onButton: pressFor(m),
      note: m.direction === "outbound" && m.reaction ? `user: ${m.reaction}` : null,
    });
    node.dataset.direction = m.direction;
    const footer = def?.components?.find((c) => (c.type || "").toUpperCase() === "FOOTER");
    if (footer?.code_expiration_minutes) {
      const o = el("div", { class: "otp", "data-otp-expires": m.created_at + footer.code_expiration_minutes * 60000, role: "status" });
      node.insertBefore(o, node.querySelector(".buttons") || node.querySelector(".meta"));
      updateOtp(o);
    }
    return node;
  }

  function dayMark(ms) {
    return el("div", { class: "day", "data-day": day(ms) }, day(ms));
  }

  function renderAll() {
    const keepBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
    const before = chat.scrollHeight - chat.scrollTop;
    nodes.clear();
    const items = [];
    if (older) {
      items.push(el("button", { type: "button", class: "older secondary", id: "older", onclick: (e) => act(e.currentTarget, loadOlder) }, "Load older messages"));
    }
    let lastDay = null;
    for (const id of order) {
      const m = byId.get(id);
      if (!m || m.type === "reaction") continue;
      const d = day(m.created_at);
      if (d !== lastDay) { items.push(dayMark(m.created_at)); lastDay = d; }
      const b = render(m);
      nodes.set(id, b);
      items.push(b);
    }
    if (!items.length) items.push(el("p", { class: "muted small empty" }, "No messages yet."));
    fill(chat, items);
    if (keepBottom || !chat.dataset.loaded) chat.scrollTop = chat.scrollHeight;
    else chat.scrollTop = chat.scrollHeight - before;
    chat.dataset.loaded = "true";
  }

  function take(m) {
    const first = !byId.has(m.id);
    byId.set(m.id, m);
    const r = reactionOf(m);
    if (r) {
      const entry = reactions.get(r.target) || {};
      entry[m.direction === "outbound" ? "business" : "user"] = r.emoji;
      reactions.set(r.target, entry);
    }
    return { first, reaction: r };
  }

  async function page(before) {
    return api(`${API}/messages`, { query: { wa_id: waId, phone_number_id: pnid, limit: PAGE, before } });
  }

  async function loadOlder() {
    const p = await page(older);
    for (const m of p.messages) take(m);
    order = p.messages.map((m) => m.id).concat(order);
    older = p.next || null;
    renderAll();
  }

  /** A message changed or arrived (live feed). */
  async function refresh(id) {
    let m;
    try { m = await api(`${API}/messages/${encodeURIComponent(id)}`); } catch { return; }
    const { first, reaction } = take(m);
    if (first) order.push(m.id);
    const target = reaction ? reaction.target : m.id;
    const old = nodes.get(target);
    if (old && byId.has(target)) {
      const fresh = render(byId.get(target));
      old.replaceWith(fresh);
      nodes.set(target, fresh);
      if (fresh.classList.contains("has-reaction") || !first) return;
    }
    if (first && !reaction) {
      const near = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
      const empty = $(".empty", chat);
      if (empty) empty.remove();
      const lastDay = $$(".day", chat).pop()?.dataset.day;
      if (lastDay !== day(m.created_at)) chat.append(dayMark(m.created_at));
      const b = render(m);
      nodes.set(m.id, b);
      chat.append(b);
      if (near || m.direction === "inbound") chat.scrollTop = chat.scrollHeight;
    }
  }

  const identityEl = identity();
  const phone = el("section", { class: "phone", "aria-label": "Phone" }, head, chat, buttons, identityEl, composer);
  fill(view, el("div", { class: "split phone-first" }, aside, el("div", {}, status, phone)));
  renderUsers();
  renderHead();
  (async () => {
    try {
      const p = await page();
      for (const m of p.messages) take(m);
      order = p.messages.map((m) => m.id);
      older = p.next || null;
      renderAll();
      chat.dataset.ready = "true";
      window.mynahTimings = { ...(window.mynahTimings || {}), phoneOpenMs: performance.now() - opened };
    } catch (e) {
      fill(chat, el("p", { class: "form-error" }, e.details || String(e)));
    }
  })();

  // Live updates for this user, in arrival order.
  let chain = Promise.resolve();
  return {
    on(kind, data) {
      if (kind === "message" && data.wa_id === waId && data.phone_number_id === pnid) {
        chain = chain.then(() => refresh(data.id));
      } else if (kind === "user") {
        loadUsers().then(() => {
          renderUsers();
          if (data.wa_id === waId) { user = state.users.find((u) => u.wa_id === waId) || user; renderHead(); }
        });
      } else if (kind === "template") {
        loadTemplates().then(renderAll);
      }
    },
  };
}

// ---- Messages ---------------------------------------------------------------------------------

const STATES = ["sent", "delivered", "read", "played", "failed"];
const TYPES = ["text", "template", "image", "video", "audio", "document", "sticker", "location", "contacts", "interactive", "reaction", "button", "order"];

function messagesView(args) {
  const view = $("#view");
  const f = {
    number: numberSelect("f-number", "", true),
    user: el("input", { id: "f-user", inputmode: "tel", autocomplete: "off" }),
    direction: el("select", { id: "f-direction" }, el("option", { value: "" }, "both"), el("option", { value: "outbound" }, "outbound"), el("option", { value: "inbound" }, "inbound")),
    status: el("select", { id: "f-status" }, el("option", { value: "" }, "any"), STATES.map((s) => el("option", { value: s }, s))),
    type: el("select", { id: "f-type" }, el("option", { value: "" }, "any"), TYPES.map((t) => el("option", { value: t }, t))),
    template: el("select", { id: "f-template" }, el("option", { value: "" }, "any"),
      [...new Set([...state.templates.values()].map((t) => t.def.name))].sort().map((n) => el("option", { value: n }, n))),
    error: el("input", { id: "f-error", inputmode: "numeric", autocomplete: "off", size: 8 }),
  };
  const form = el("form", { class: "row panel", id: "message-filters", "aria-label": "Filters" },
    el("label", {}, "Number", f.number), el("label", {}, "User", f.user), el("label", {}, "Direction", f.direction),
    el("label", {}, "State", f.status), el("label", {}, "Type", f.type), el("label", {}, "Template", f.template),
    el("label", {}, "Error code", f.error), el("button", { type: "submit" }, "Filter"),
    el("button", { type: "reset", class: "secondary" }, "Clear"));
  const results = el("div", { id: "message-list" });
  const detail = el("section", { class: "panel", id: "message-detail", "aria-live": "polite" }, el("p", { class: "muted" }, "Pick a message to see its timeline and why it went as it did."));
  let rows = [];
  let next = null;
  let selected = args[0] || null;

  const query = (before) => ({
    phone_number_id: f.number.value, wa_id: f.user.value.replace(/[^0-9]/g, ""), direction: f.direction.value,
    status: f.status.value, type: f.type.value, template: f.template.value, error_code: f.error.value.trim(),
    limit: PAGE, before,
  });

  function renderRows() {
    const t = table([
      ["Time", (m) => el("button", { type: "button", class: "link", "data-open": m.id, onclick: () => open(m.id) }, dateTime(m.created_at).slice(5, 19))],
      ["Number", (m) => numberLabel(m.phone_number_id)],
      ["User", (m) => `+${m.wa_id}`],
      ["Dir.", (m) => (m.direction === "outbound" ? "→ out" : "← in")],
      ["Type", (m) => m.type],
      ["Template", (m) => (m.template_id ? templateName(m.template_id) : "")],
      ["State", (m) => el("span", { class: "state" }, shownStatus(m))],
      ["Error", (m) => { const e = failure(m); return e?.code ? el("span", { class: "badge bad", title: e.title }, String(e.code)) : ""; }],
    ], rows, {
      caption: `${rows.length} message${rows.length === 1 ? "" : "s"}, newest first`,
      onRow: (m, tr) => { tr.dataset.id = m.id; if (m.id === selected) tr.classList.add("selected"); },
    });
    fill(results, t, next ? el("button", { type: "button", class: "secondary", id: "more-messages", onclick: (e) => act(e.currentTarget, more) }, "Older messages") : null);
  }

  async function load() {
    clearFieldErrors(form);
    try {
      const p = await api(`${API}/messages`, { query: query() });
      rows = p.messages.reverse();
      next = p.next || null;
      renderRows();
    } catch (e) {
      showFieldErrors(form, e);
    }
  }

  async function more() {
    const p = await api(`${API}/messages`, { query: query(next) });
    rows = rows.concat(p.messages.reverse());
    next = p.next || null;
    renderRows();
  }

  async function open(id) {
    selected = id;
    for (const tr of $$("tr[data-id]", results)) tr.classList.toggle("selected", tr.dataset.id === id);
    try {
      const [m, x] = await Promise.all([api(`${API}/messages/${encodeURIComponent(id)}`), api(`${API}/messages/${encodeURIComponent(id)}/explain`)]);
      const e = failure(m);
      fill(detail,
        el("h3", {}, "Message"),
        el("dl", { class: "kv" },
          el("dt", {}, "wamid"), el("dd", { class: "mono" }, m.id),
          el("dt", {}, "user"), el("dd", {}, el("a", { href: `#/phone/${m.wa_id}/${m.phone_number_id}` }, `+${m.wa_id}`)),
          el("dt", {}, "number"), el("dd", {}, numberLabel(m.phone_number_id)),
          el("dt", {}, "type"), el("dd", {}, m.template_id ? `${m.type} · ${templateName(m.template_id)} (${m.category || ""})` : m.type),
          el("dt", {}, "state"), el("dd", {}, shownStatus(m)),
          e ? [el("dt", {}, "error"), el("dd", { class: "field-error" }, `${e.code ?? ""} ${e.title} ${e.details}`.trim())] : null,
          m.pricing ? [el("dt", {}, "pricing"), el("dd", {}, `${m.pricing.pricing_model} · ${m.pricing.category} · ${m.pricing.billable ? "billable" : "free"}`)] : null),
        el("h3", {}, "Explain"),
        el("p", { id: "fate" }, x.fate),
        x.because?.length ? el("ul", { id: "because" }, x.because.map((b) => el("li", {}, b))) : el("p", { class: "muted small" }, "No rule met it."),
        el("h3", {}, "Timeline"),
        el("ol", { class: "timeline", id: "timeline" }, (m.timeline || []).map((t) => el("li", {},
          el("time", { class: "mono small" }, dateTime(t.at)), " ", el("strong", {}, t.event), t.detail ? el("div", { class: "small" }, t.detail) : null))),
        el("h3", {}, "Body"),
        jsonView(m.body));
    } catch (err) {
      fill(detail, el("p", { class: "form-error" }, err.details || String(err)));
    }
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  form.addEventListener("reset", () => setTimeout(load, 0));
  fill(view, heading("Messages"), form, el("div", { class: "split wide-right" }, results, detail));
  load();
  if (selected) open(selected);
  const reload = debounce(() => { if (!next || rows.length <= PAGE) load(); }, 300);
  return {
    on(kind, data) {
      if (kind === "message") {
        reload();
        if (data.id === selected) open(selected);
      }
    },
  };
}

// ---- Webhooks ---------------------------------------------------------------------------------

function webhooksView() {
  const view = $("#view");
  const receivers = el("div", { id: "receivers" });
  const list = el("div", { id: "attempts" });
  const detail = el("section", { class: "panel", id: "attempt-detail", "aria-live": "polite" }, el("p", { class: "muted" }, "Pick an attempt to see its body and signature."));
  const onlyFailed = el("input", { type: "checkbox", id: "only-failed" });
  const wamid = el("input", { id: "attempt-wamid", autocomplete: "off", placeholder: "wamid" });
  const filters = el("form", { class: "row", id: "attempt-filters" },
    el("label", { class: "inline" }, onlyFailed, "failed only"), el("label", {}, "Message", wamid),
    el("button", { type: "submit", class: "secondary" }, "Filter"));
  let rows = [];
  let selected = null;

  async function loadReceivers() {
    const r = (await api(`${API}/webhooks/receivers`)).receivers || [];
    fill(receivers, r.length ? table([
      ["Receiver", (x) => el("span", { class: "mono" }, x.url)],
      ["For", (x) => (x.subscriber !== undefined ? `subscriber ${x.subscriber}` : x.phone_number_ids.map(numberLabel).join(", "))],
      ["State", (x) => (x.paused ? el("span", { class: "badge warn" }, "paused") : x.failing_since ? el("span", { class: "badge bad" }, `failing since ${hhmm(x.failing_since)}`) : el("span", { class: "badge ok" }, "receiving"))],
      ["Waiting", (x) => `${x.queued} queued · ${x.in_flight} in flight · ${x.retrying} retrying`],
      ["", (x) => el("button", {
        type: "button", class: x.paused ? "" : "secondary", "data-receiver": x.url,
        onclick: (e) => act(e.currentTarget, async () => {
          await api(`${API}/webhooks/receivers/${x.paused ? "resume" : "pause"}`, { method: "POST", body: { url: x.url } });
          await loadReceivers();
        }),
      }, x.paused ? "Resume" : "Pause")],
    ], r, { caption: "Receivers" }) : el("p", { class: "muted" }, "No receiver: give a number a webhook URL (POST /v1/configs/webhook, --webhook-url)."));
  }

  const eventText = (a) => (a.events || []).map((e) => e.status || (e.message_type ? `inbound ${e.message_type}` : e.field)).join(", ");

  function renderRows() {
    fill(list, table([
      ["#", (a) => el("button", { type: "button", class: "link", "data-seq": a.seq, onclick: () => open(a.seq) }, String(a.seq))],
      ["Time", (a) => dateTime(a.at).slice(11, 19)],
      ["Receiver", (a) => el("span", { class: "mono small" }, a.url || "(none)")],
      ["Events", (a) => el("span", { class: "events" }, eventText(a))],
      ["Answer", (a) => (a.status ? String(a.status) : a.error || "—")],
      ["Latency", (a) => `${Number(a.latency_ms).toFixed(1)} ms`],
      ["Outcome", (a) => el("span", { class: `badge ${a.outcome === "delivered" ? "ok" : a.outcome === "retrying" ? "warn" : "bad"}` }, a.redelivery_of ? `${a.outcome} (redelivery of #${a.redelivery_of})` : a.outcome)],
      ["Next retry", (a) => (a.next_retry_at ? `${dateTime(a.next_retry_at).slice(11, 19)} (in ${duration(a.next_retry_at - state.now)})` : "")],
    ], rows, {
      caption: `${rows.length} latest attempts, newest first`,
      onRow: (a, tr) => { tr.dataset.seq = a.seq; if (a.seq === selected) tr.classList.add("selected"); },
    }));
  }

  const query = () => ({ limit: 100, delivered: onlyFailed.checked ? "false" : undefined, wamid: text(wamid) });

  async function load() {
    rows = ((await api(`${API}/webhooks/attempts`, { query: query() })).attempts || []).reverse();
    renderRows();
  }

  async function open(seq) {
    selected = seq;
    for (const tr of $$("tr[data-seq]", list)) tr.classList.toggle("selected", Number(tr.dataset.seq) === seq);
    const found = ((await api(`${API}/webhooks/attempts`, { query: { after_seq: seq - 1, before_seq: seq + 1, limit: 1, delivered: undefined } })).attempts || [])[0];
    if (!found) { fill(detail, el("p", { class: "muted" }, `Attempt ${seq} is no longer kept.`)); return; }
    fill(detail,
      el("div", { class: "row" }, el("h3", { class: "grow" }, `Attempt #${found.seq}`),
        el("button", { type: "button", id: "redeliver", onclick: (e) => act(e.currentTarget, async () => {
          const a = await api(`${API}/webhooks/attempts/${found.seq}/redeliver`, { method: "POST" });
          toast(`Redelivered as #${a.seq}: ${a.status ?? a.error ?? a.outcome}`);
        }) }, "Redeliver")),
      el("dl", { class: "kv" },
        el("dt", {}, "URL"), el("dd", { class: "mono" }, found.url || "(none)"),
        el("dt", {}, "delivery"), el("dd", {}, `${found.delivery_id}, attempt ${found.attempt}`),
        el("dt", {}, "sent at"), el("dd", {}, dateTime(found.at)),
        el("dt", {}, "answer"), el("dd", {}, found.status ? `HTTP ${found.status}` : found.error || "—"),
        el("dt", {}, "latency"), el("dd", {}, `${Number(found.latency_ms).toFixed(2)} ms (wall clock)`),
        el("dt", {}, "outcome"), el("dd", {}, found.outcome),
        found.next_retry_at ? [el("dt", {}, "next retry"), el("dd", {}, dateTime(found.next_retry_at))] : null,
        el("dt", {}, "X-Hub-Signature-256"), el("dd", { class: "mono small", id: "signature" }, found.signature)),
      el("h3", {}, "Body"),
      jsonView(found.body));
  }

  filters.addEventListener("submit", (ev) => { ev.preventDefault(); act(null, load); });
  fill(view, heading("Webhooks"), el("section", { class: "panel" }, receivers),
    el("section", { class: "panel" }, filters), el("div", { class: "split wide-right" }, list, detail));
  act(null, loadReceivers);
  act(null, load);
  const refreshReceivers = debounce(() => act(null, loadReceivers), 300);
  return {
    on(kind, data) {
      if (kind === "attempt") {
        const q = query();
        if (q.delivered === "false" && data.outcome === "delivered") return;
        if (q.wamid && !(data.events || []).some((e) => e.wamid === q.wamid)) return;
        rows.unshift(data);
        if (rows.length > 200) rows.length = 200;
        renderRows();
        refreshReceivers();
      } else if (kind === "receivers" || kind === "number") {
        refreshReceivers();
      }
    },
  };
}

// ---- Templates --------------------------------------------------------------------------------

function templatesView() {
  const view = $("#view");
  const list = el("div", { id: "templates" });
  const editor = el("section", { class: "panel", id: "template-editor" });

  function pacingCell(t) {
    const p = t.pacing;
    if (!p) return "";
    const parts = [`${p.sent} sent, ${p.held.length} held`];
    if (p.release_at) parts.push(`out at ${hhmm(p.release_at)} without a verdict`);
    return el("div", { class: "pacing" }, parts.join(" · "),
      el("div", { class: "button-row" },
        el("button", { type: "button", "data-verdict": "release", "data-template": t.def.name, onclick: (e) => act(e.currentTarget, () => verdict(t, "release")) }, "Release"),
        el("button", { type: "button", class: "danger", "data-verdict": "drop", "data-template": t.def.name, onclick: (e) => act(e.currentTarget, () => verdict(t, "drop")) }, "Drop")));
  }

  async function verdict(t, v) {
    await api(`${API}/templates/${t.id}/pacing`, { method: "POST", body: { verdict: v } });
    toast(v === "release" ? `Released the held messages of ${t.def.name}` : `Dropped the held messages of ${t.def.name}`);
    await render();
  }

  async function render() {
    await loadTemplates();
    const all = [...state.templates.values()].sort((a, b) => a.def.name.localeCompare(b.def.name));
    fill(list, table([
      ["Name", (t) => el("strong", {}, t.def.name)],
      ["Language", (t) => t.def.language],
      ["Category", (t) => t.def.category.toLowerCase()],
      ["Status", (t) => el("span", { class: `badge ${t.status === "APPROVED" ? "ok" : t.status === "PENDING" ? "warn" : "bad"}` }, t.status)],
      ["Quality", (t) => el("span", { class: `badge q-${t.quality}` }, t.quality)],
      ["Pacing", pacingCell],
      ["", (t) => el("button", { type: "button", class: "secondary", "data-edit": t.def.name, onclick: () => form(t) }, "Edit")],
    ], all, { caption: `${all.length} templates`, onRow: (t, tr) => { tr.dataset.template = t.def.name; } }));
  }

  /** The create form, or the edit form of `t`. */
  function form(t) {
    const def = t?.def;
    const comp = (type) => def?.components?.find((c) => c.type === type);
    const f = {
      name: el("input", { id: "t-name", value: def?.name || "", readonly: !!t, autocomplete: "off", "data-path": "name" }),
      language: el("input", { id: "t-language", value: def?.language || "en_US", readonly: !!t, "data-path": "language" }),
      category: el("select", { id: "t-category", "data-path": "category" }, ["UTILITY", "MARKETING", "AUTHENTICATION"].map((c) => el("option", { value: c, selected: def?.category === c }, c.toLowerCase()))),
      header: el("input", { id: "t-header", value: comp("HEADER")?.text || "", autocomplete: "off" }),
      body: el("textarea", { id: "t-body", rows: 4 }, comp("BODY")?.text || ""),
      examples: el("input", { id: "t-examples", autocomplete: "off", placeholder: "Ana, 42", value: (comp("BODY")?.example?.body_text?.[0] || []).join(", ") }),
      footer: el("input", { id: "t-footer", value: comp("FOOTER")?.text || "", autocomplete: "off" }),
      buttons: el("input", { id: "t-buttons", autocomplete: "off", placeholder: "Yes, No", value: (comp("BUTTONS")?.buttons || []).filter((b) => b.type === "QUICK_REPLY").map((b) => b.text).join(", ") }),
      expiry: el("input", { id: "t-expiry", inputmode: "numeric", value: comp("FOOTER")?.code_expiration_minutes ?? "10" }),
      security: el("input", { type: "checkbox", id: "t-security", checked: comp("BODY")?.add_security_recommendation ?? true }),
    };
    const labelled = (text, input, hint) => el("div", { class: "field" }, el("label", {}, text, input), hint ? el("small", { class: "muted" }, hint) : null);
    const free = el("div", { class: "free-form" },
      labelled("Header (text, optional)", f.header),
      labelled("Body", f.body, "Variables as {{1}}, {{2}} …"),
      labelled("Examples of the variables (comma-separated)", f.examples),
      labelled("Footer (optional)", f.footer),
      labelled("Quick-reply buttons (comma-separated, optional)", f.buttons));
    const auth = el("div", { class: "auth-form" },
      el("label", { class: "inline" }, f.security, "Add the security recommendation"),
      labelled("Code expires in (minutes)", f.expiry));
    const showCategory = () => { const a = f.category.value === "AUTHENTICATION"; free.hidden = a; auth.hidden = !a; };
    f.category.addEventListener("change", showCategory);
    const formEl = el("form", { id: "template-form", novalidate: true },
      el("h3", {}, t ? `Edit ${def.name} (${def.language})` : "New template"),
      el("div", { class: "row" }, labelled("Name", f.name), labelled("Language", f.language), labelled("Category", f.category)),
      free, auth,
      el("div", { class: "row" }, el("button", { type: "submit" }, t ? "Save" : "Create"),
        t ? el("button", { type: "button", class: "secondary", onclick: () => form(null) }, "New template instead") : null));
    showCategory();

    /** The components the form gives, each input marked with its path for errors. */
    function components() {
      const out = [];
      const mark = (input, path) => input.setAttribute("data-path", path);
      if (f.category.value === "AUTHENTICATION") {
        mark(f.security, `components[${out.length}]`);
        out.push({ type: "BODY", add_security_recommendation: f.security.checked });
        mark(f.expiry, `components[${out.length}].code_expiration_minutes`);
        out.push({ type: "FOOTER", code_expiration_minutes: num(f.expiry) });
        out.push({ type: "BUTTONS", buttons: [{ type: "OTP", otp_type: "COPY_CODE", text: "Copy code" }] });
        return out;
      }
      if (text(f.header)) {
        mark(f.header, `components[${out.length}].text`);
        const h = { type: "HEADER", format: "TEXT", text: f.header.value.trim() };
        out.push(h);
      }
      mark(f.body, `components[${out.length}].text`);
      mark(f.examples, `components[${out.length}].example`);
      const body = { type: "BODY", text: f.body.value };
      const ex = f.examples.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (ex.length) body.example = { body_text: [ex] };
      out.push(body);
      if (text(f.footer)) {
        mark(f.footer, `components[${out.length}].text`);
        out.push({ type: "FOOTER", text: f.footer.value.trim() });
      }
      const buttons = f.buttons.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (buttons.length) {
        mark(f.buttons, `components[${out.length}]`);
        out.push({ type: "BUTTONS", buttons: buttons.map((b) => ({ type: "QUICK_REPLY", text: b })) });
      }
      return out;
    }

    formEl.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearFieldErrors(formEl);
      const submit = formEl.querySelector('button[type="submit"]');
      act(submit, async () => {
        try {
          if (t) {
            await api(`${API}/templates/${t.id}`, { method: "POST", body: { category: f.category.value === def.category ? undefined : f.category.value, components: components() } });
            toast(`Saved ${def.name}`);
          } else {
            const made = await api(`${API}/templates`, { method: "POST", body: { name: f.name.value.trim(), language: f.language.value.trim(), category: f.category.value, components: components() } });
            toast(`Created ${made.def.name}: ${made.status}`);
            form(null);
          }
          await render();
        } catch (e) {
          if (!(e instanceof Error) || e.status === undefined) throw e;
          showFieldErrors(formEl, e);
        }
      });
    });
    fill(editor, formEl);
    if (t) f.body.focus();
  }

  fill(view, heading("Templates"), el("section", { class: "panel" }, list), editor);
  form(null);
  act(null, render);
  const again = debounce(() => act(null, render), 300);
  return { on(kind) { if (kind === "template") again(); } };
}

// ---- Number & clock ---------------------------------------------------------------------------

function numberView() {
  const view = $("#view");
  const clock = el("section", { class: "panel", id: "clock", "aria-labelledby": "clock-title" });
  const numbers = el("section", { class: "panel", id: "numbers", "aria-labelledby": "numbers-title" });
  const faults = el("section", { class: "panel", id: "faults", "aria-labelledby": "faults-title" });

  function renderClock() {
    const manual = state.clock === "manual";
    const advance = (seconds) => act(null, async () => {
      const c = await api(`${API}/clock/advance`, { method: "POST", body: { seconds } });
      setNow(c.now_ms);
      renderClock();
    });
    const amount = el("input", { id: "advance-amount", inputmode: "decimal", size: 6, value: "10", "data-path": "seconds" });
    const unit = el("select", { id: "advance-unit", "aria-label": "Unit" }, [["1", "seconds"], ["60", "minutes"], ["3600", "hours"], ["86400", "days"]].map(([v, l]) => el("option", { value: v, selected: l === "minutes" }, l)));
    const custom = el("form", { class: "row", id: "advance-form" }, el("label", {}, "Advance by", amount), el("label", {}, "Unit", unit), el("button", { type: "submit", disabled: !manual }, "Advance"));
    custom.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearFieldErrors(custom);
      const s = Number(amount.value) * Number(unit.value);
      if (!Number.isFinite(s) || s <= 0) { showFieldErrors(custom, { details: "give a positive number", field: "seconds" }); return; }
      advance(s);
    });
    fill(clock, el("h2", { id: "clock-title" }, "Clock"),
      el("p", {}, el("strong", { id: "clock-now" }, dateTime(state.now)), " ", el("span", { class: "badge" }, `${state.clock} clock`)),
      manual ? null : el("p", { class: "muted" }, "The sandbox runs on the system clock; start it with --clock manual to move time."),
      el("div", { class: "row", role: "group", "aria-label": "Advance the clock" },
        [["+1 min", 60], ["+1 h", 3600], ["+1 d", 86400], ["+30 d", 30 * 86400]].map(([l, s]) => el("button", { type: "button", disabled: !manual, "data-advance": s, onclick: () => advance(s) }, l))),
      custom);
  }

  async function renderNumbers() {
    await loadNumbers();
    const details = await Promise.all(state.numbers.map((n) => api(`${API}/numbers/${n.phone_number_id}`)));
    fill(numbers, el("h2", { id: "numbers-title" }, "Numbers"), details.map((n) => {
      const lim = n.messaging_limit;
      const unlimited = lim && lim.unique_users >= 4294967295;
      const share = lim && !unlimited ? Math.min(1, lim.used / lim.unique_users) : 0;
      const h = n.health || {};
      return el("div", { class: "number", "data-number": n.phone_number_id },
        el("h3", {}, `${n.verified_name} · +${n.display_phone_number}`, el("span", { class: "muted small" }, ` (${n.phone_number_id})`)),
        el("dl", { class: "kv" },
          el("dt", {}, "quality rating"), el("dd", {}, el("span", { class: `badge q-${h.rating}`, id: `rating-${n.phone_number_id}` }, h.rating)),
          el("dt", {}, "tier"), el("dd", {}, lim ? lim.tier : "messaging limit off"),
          el("dt", {}, "limit use"), el("dd", {}, lim ? [
            el("div", { class: "meter", role: "meter", "aria-valuemin": "0", "aria-valuemax": String(lim.unique_users), "aria-valuenow": String(lim.used), "aria-label": "Unique users in the rolling window" }, el("span", { style: undefined, dataset: { share: String(share) } })),
            el("span", { class: "small" }, `${lim.used} of ${unlimited ? "unlimited" : lim.unique_users} unique users in the last ${duration(lim.window_ms)}`)] : "—"),
          h.flagged_at ? [el("dt", {}, "flagged"), el("dd", {}, dateTime(h.flagged_at))] : null,
          h.review_at ? [el("dt", {}, "tier review"), el("dd", {}, dateTime(h.review_at))] : null,
          el("dt", {}, "quality signals"), el("dd", {}, `${(h.signals || []).length} in the window`),
          el("dt", {}, "webhook"), el("dd", { class: "mono small" }, n.webhook?.url || "(none)")));
    }));
    // Meter widths set through the CSS object model (the page's policy allows no inline styles).
    for (const bar of $$(".meter > span", numbers)) bar.style.width = `${Math.round(Number(bar.dataset.share) * 100)}%`;
  }

  function describe(obj) {
    return Object.entries(obj || {}).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}=${v}`).join(", ") || "everything";
  }

  async function renderFaults() {
    const rules = (await api(`${API}/faults`)).faults || [];
    const f = {
      to: el("input", { id: "fault-to", inputmode: "tel", "data-path": "match.to", autocomplete: "off" }),
      template: el("input", { id: "fault-template", "data-path": "match.template", autocomplete: "off" }),
      type: el("select", { id: "fault-type", "data-path": "match.type" }, el("option", { value: "" }, "any"), TYPES.map((t) => el("option", { value: t }, t))),
      probability: el("input", { id: "fault-probability", inputmode: "decimal", "data-path": "match.probability", size: 5 }),
      code: el("input", { id: "fault-code", inputmode: "numeric", "data-path": "action.code", size: 8 }),
      asyncCode: el("input", { id: "fault-async-code", inputmode: "numeric", "data-path": "action.async_code", size: 8 }),
      latency: el("input", { id: "fault-latency", inputmode: "numeric", "data-path": "action.latency_ms", size: 7 }),
      times: el("input", { id: "fault-times", inputmode: "numeric", "data-path": "times", size: 5 }),
    };
    const form = el("form", { id: "fault-form", novalidate: true },
      el("fieldset", {}, el("legend", {}, "Match"), el("div", { class: "row" },
        el("label", {}, "Recipient", f.to), el("label", {}, "Template", f.template), el("label", {}, "Type", f.type), el("label", {}, "Probability", f.probability))),
      el("fieldset", {}, el("legend", {}, "Action"), el("div", { class: "row" },
        el("label", {}, "Refuse with code", f.code), el("label", {}, "Fail later with code", f.asyncCode), el("label", {}, "Latency (ms)", f.latency), el("label", {}, "Times", f.times))),
      el("button", { type: "submit" }, "Add fault rule"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearFieldErrors(form);
      const body = {
        match: { to: text(f.to), template: text(f.template), type: f.type.value || undefined, probability: num(f.probability) },
        action: { code: num(f.code), async_code: num(f.asyncCode), latency_ms: num(f.latency) },
        times: num(f.times),
      };
      act(form.querySelector("button"), async () => {
        try {
          await api(`${API}/faults`, { method: "POST", body });
          await renderFaults();
        } catch (e) {
          showFieldErrors(form, e);
        }
      });
    });
    fill(faults, el("h2", { id: "faults-title" }, "Fault rules"),
      rules.length ? table([
        ["Id", (r) => el("span", { class: "mono" }, r.id)],
        ["Matches", (r) => describe(r.match)],
        ["Does", (r) => describe(r.action)],
        ["Fired", (r) => `${r.fired} of ${r.seen} seen${r.times ? `, at most ${r.times}` : ""}`],
        ["", (r) => el("button", { type: "button", class: "danger", "data-delete-fault": r.id, onclick: (e) => act(e.currentTarget, async () => { await api(`${API}/faults/${encodeURIComponent(r.id)}`, { method: "DELETE" }); await renderFaults(); }) }, "Delete")],
      ], rules) : el("p", { class: "muted" }, "No fault rules: every send goes by the platform's rules."),
      rules.length ? el("button", { type: "button", class: "danger", id: "delete-faults", onclick: (e) => act(e.currentTarget, async () => { await api(`${API}/faults`, { method: "DELETE" }); await renderFaults(); }) }, "Delete all") : null,
      el("h3", {}, "Add a rule"), form);
  }

  fill(view, heading("Number & clock"), clock, numbers, faults);
  renderClock();
  act(null, renderNumbers);
  act(null, renderFaults);
  const again = debounce(() => act(null, renderNumbers), 300);
  return {
    on(kind) {
      if (kind === "clock") { renderClock(); again(); }
      else if (kind === "number" || kind === "message") again();
      else if (kind === "faults") act(null, renderFaults);
    },
  };
}

// ---- Start ------------------------------------------------------------------------------------

function show(render) {
  return (args) => {
    state.view = render(args) || null;
  };
}

async function start() {
  try {
    const c = await api(`${API}/clock`);
    state.clock = c.mode;
    setNow(c.now_ms);
    await Promise.all([loadNumbers(), loadTemplates(), loadErrors(), loadUsers()]);
  } catch (e) {
    fill($("#view"), el("p", { class: "form-error" }, `The control API did not answer: ${e.details || e}`));
    return;
  }
  let connected = false;
  const dot = $("#live-dot");
  const label = $("#live-state");
  const forward = (kind) => (data) => {
    if (kind === "clock" && data?.now_ms) setNow(data.now_ms);
    if (kind === "reset") {
      Promise.all([loadNumbers(), loadTemplates(), loadUsers()]).then(() => { setNow(data.now_ms); window.dispatchEvent(new HashChangeEvent("hashchange")); });
      return;
    }
    if (state.view?.on) state.view.on(kind, data);
  };
  live(`${API}/events`, {
    hello: (d) => {
      state.clock = d.clock;
      setNow(d.now_ms);
      // Back after the stream was lost: what changed meanwhile was missed, so the view reloads.
      if (connected) window.dispatchEvent(new HashChangeEvent("hashchange"));
      connected = true;
    },
    message: forward("message"), attempt: forward("attempt"), template: forward("template"), user: forward("user"),
    number: forward("number"), clock: forward("clock"), faults: forward("faults"), rules: forward("rules"),
    receivers: forward("receivers"), reset: forward("reset"),
    resync: () => window.dispatchEvent(new HashChangeEvent("hashchange")),
  }, (s) => { dot.dataset.state = s; label.textContent = s === "open" ? "live" : s; document.body.dataset.live = s; });
  route({
    phone: show(phoneView), messages: show(messagesView), webhooks: show(webhooksView),
    templates: show(templatesView), number: show(numberView),
  }, "phone");
}

start();
