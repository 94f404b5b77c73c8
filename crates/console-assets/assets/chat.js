// WhatsApp as a phone shows it: bubbles built from the platform's own message bodies — what a
// business sends (`POST /messages`) and what a user sends (the webhook's `messages[]`) — and a
// template's definition (the platform's listing shape). Shared by the consoles: the sandbox shows
// its virtual users' phones with it, the gateway its conversations.

import { el, hhmm } from "./console.js";

/** Lines of a marketing template's body shown before "Read more" (as WhatsApp folds them). */
export const FOLD_LINES = 5;

/** Ticks for a status: ✓ sent, ✓✓ delivered, ✓✓ in blue read, ! failed, 🕓 pending. */
export function ticks(status) {
  const labels = {
    sent: ["✓", "sent"], delivered: ["✓✓", "delivered"], read: ["✓✓", "read"], played: ["✓✓", "played"],
    failed: ["!", "failed"], expired: ["!", "expired"], held: ["🕓", "held for quality assessment"],
    pending: ["🕓", "pending"],
  };
  const [glyph, label] = labels[status] || labels.pending;
  const cls = status === "read" || status === "played" ? "read" : status === "failed" || status === "expired" ? "failed" : status === "sent" || status === "delivered" ? "" : "pending";
  return el("span", { class: `ticks ${cls}`.trim(), "data-status": status || "pending", title: label, role: "img", "aria-label": label }, glyph);
}

/** Substitutes `{{1}}` / `{{name}}` in `text` with the send's parameters. */
export function substitute(text, params, named) {
  if (!text) return "";
  const values = (params || []).map(paramText);
  return text.replace(/\{\{\s*([^}]+?)\s*\}\}/g, (all, key) => {
    if (named) {
      const p = (params || []).find((x) => x.parameter_name === key);
      return p ? paramText(p) : all;
    }
    const n = Number(key);
    return Number.isInteger(n) && values[n - 1] !== undefined ? values[n - 1] : all;
  });
}

function paramText(p) {
  if (!p) return "";
  switch (p.type) {
    case "text": return p.text ?? "";
    case "currency": return p.currency?.fallback_value ?? `${(p.currency?.amount_1000 ?? 0) / 1000} ${p.currency?.code ?? ""}`;
    case "date_time": return p.date_time?.fallback_value ?? "";
    case "payload": return p.payload ?? "";
    default: return p.text ?? p[p.type]?.link ?? p.type ?? "";
  }
}

/** The parameters a template send gives one component (`header`, `body`, or a button by index). */
function sendParams(send, type, index) {
  for (const c of send?.components || []) {
    const t = (c.type || "").toLowerCase();
    if (t !== type) continue;
    if (type === "button" && Number(c.index) !== index) continue;
    return c.parameters || [];
  }
  return [];
}

const MEDIA_ICON = { image: "🖼", video: "🎬", document: "📄", audio: "🎵", sticker: "🏷", location: "📍" };

function mediaBox(kind, obj) {
  const name = obj?.filename || obj?.link?.split("/").pop() || obj?.id || "";
  return el("div", { class: "media", role: "img", "aria-label": `${kind} ${name}`.trim() },
    el("span", {}, `${MEDIA_ICON[kind] || "📎"} ${kind}`), name ? el("br") : null, name ? el("small", {}, name) : null);
}

/** A text that folds after FOLD_LINES lines behind "Read more" when `fold`. */
function foldable(text, fold) {
  const t = el("div", { class: "text" }, text);
  if (!fold) return t;
  t.classList.add("folded");
  const more = el("button", { class: "more", type: "button", "aria-expanded": "false" }, "Read more");
  more.addEventListener("click", () => { t.classList.remove("folded"); more.remove(); });
  // Shown only when the text is longer than the fold (measured once the bubble is on screen).
  more.hidden = true;
  requestAnimationFrame(() => { if (t.scrollHeight > t.clientHeight + 1) more.hidden = false; else t.classList.remove("folded"); });
  return [t, more];
}

/** The pieces of a template bubble: `send` is the message's `template` object, `def` the
 *  template's definition (`components` as the platform lists them). `onButton(i, button)` is
 *  called when a quick-reply button is pressed (absent: the buttons are shown, inert). */
export function templateParts(send, def, onButton) {
  const parts = [];
  if (!def) {
    parts.push(el("div", { class: "tag" }, `template ${send?.name || ""} (${send?.language?.code || ""})`));
    parts.push(el("div", { class: "text muted" }, "(definition not found)"));
    return parts;
  }
  const named = (def.parameter_format || "").toUpperCase() === "NAMED";
  const category = (def.category || "").toUpperCase();
  const comps = def.components || [];
  const find = (t) => comps.find((c) => (c.type || "").toUpperCase() === t);
  const kind = category.charAt(0) + category.slice(1).toLowerCase();
  parts.push(el("div", { class: "tag" }, `${kind} template · ${def.name}`));
  const header = find("HEADER");
  if (header) {
    const format = (header.format || "TEXT").toUpperCase();
    if (format === "TEXT") parts.push(el("div", { class: "head" }, substitute(header.text, sendParams(send, "header"), named)));
    else if (format === "LOCATION") parts.push(mediaBox("location", {}));
    else {
      const kind = format.toLowerCase();
      const p = sendParams(send, "header")[0];
      parts.push(mediaBox(kind, p ? p[kind] : null));
    }
  }
  const body = find("BODY");
  if (category === "AUTHENTICATION") {
    const code = sendParams(send, "body")[0];
    let text = `${code ? paramText(code) : "{{1}}"} is your verification code.`;
    if (body?.add_security_recommendation) text += " For your security, do not share this code.";
    parts.push(el("div", { class: "text" }, text));
  } else if (body) {
    parts.push(foldable(substitute(body.text, sendParams(send, "body"), named), category === "MARKETING"));
  }
  const footer = find("FOOTER");
  if (footer?.code_expiration_minutes) parts.push(el("div", { class: "footer" }, `This code expires in ${footer.code_expiration_minutes} minutes.`));
  else if (footer?.text) parts.push(el("div", { class: "footer" }, footer.text));
  const buttons = find("BUTTONS")?.buttons || [];
  if (buttons.length) {
    parts.push(el("div", { class: "buttons" }, buttons.map((b, i) => {
      const type = (b.type || "").toUpperCase();
      if (type === "QUICK_REPLY") {
        return el("button", {
          type: "button", disabled: !onButton, "data-quick-reply": b.text,
          onclick: onButton ? () => onButton(i, b) : undefined,
        }, `↩ ${b.text}`);
      }
      if (type === "OTP" || type === "COPY_CODE") {
        return el("span", { class: "btn", "data-copy-code": "" }, b.text || "Copy code");
      }
      const icon = type === "URL" ? "🔗" : type === "PHONE_NUMBER" ? "📞" : "•";
      return el("span", { class: "btn", title: b.url || b.phone_number || "" }, `${icon} ${b.text}`);
    })));
  }
  return parts;
}

/** The pieces of any other message body (outbound or inbound). `onButton(i, reply)` presses an
 *  interactive reply button. */
export function bodyParts(type, body, onButton) {
  const o = body?.[type] || {};
  switch (type) {
    case "text": return [el("div", { class: "text" }, o.body ?? "")];
    case "image": case "video": case "document": case "sticker": case "audio":
      return [mediaBox(type, o), o.caption ? el("div", { class: "text" }, o.caption) : null];
    case "location": return [mediaBox("location", o), el("div", { class: "text" }, [o.name, o.address, `${o.latitude}, ${o.longitude}`].filter(Boolean).join("\n"))];
    case "contacts": return [el("div", { class: "text" }, `👤 ${(body.contacts || []).map((c) => c.name?.formatted_name || "contact").join(", ")}`)];
    case "button": return [el("div", { class: "text" }, body.button?.text ?? "")];
    case "reaction": return [el("div", { class: "text muted" }, `reacted ${body.reaction?.emoji || "(removed)"}`)];
    case "interactive": return interactiveParts(body.interactive || {}, onButton);
    default: return [el("div", { class: "text muted" }, `(${type} message)`)];
  }
}

function interactiveParts(i, onButton) {
  const type = i.type;
  if (type === "button_reply" || type === "list_reply") {
    const r = i[type] || {};
    return [el("div", { class: "text" }, r.title ?? r.id ?? "")];
  }
  const parts = [];
  if (i.header?.type === "text") parts.push(el("div", { class: "head" }, i.header.text));
  else if (i.header?.type) parts.push(mediaBox(i.header.type, i.header[i.header.type]));
  if (i.body?.text) parts.push(el("div", { class: "text" }, i.body.text));
  if (i.footer?.text) parts.push(el("div", { class: "footer" }, i.footer.text));
  const buttons = i.action?.buttons || [];
  if (type === "button" && buttons.length) {
    parts.push(el("div", { class: "buttons" }, buttons.map((b, n) => el("button", {
      type: "button", disabled: !onButton, "data-quick-reply": b.reply?.title,
      onclick: onButton ? () => onButton(n, b.reply) : undefined,
    }, `↩ ${b.reply?.title ?? ""}`))));
  } else if (type === "list") {
    parts.push(el("div", { class: "buttons" }, el("span", { class: "btn" }, `☰ ${i.action?.button || "Menu"}`)));
  } else if (i.action?.name || type) {
    parts.push(el("div", { class: "tag" }, `interactive ${type}`));
  }
  return parts;
}

/** One bubble. `m`: `{id, mine, type, body, status, at, error: {code, title, details},
 *  template: send, def, reactions: [emoji], quoted: text, onButton}`. */
export function bubble(m) {
  const parts = m.type === "template"
    ? templateParts(m.body?.template, m.def, m.onButton)
    : bodyParts(m.type, m.body, m.onButton);
  const failed = m.status === "failed" || m.status === "expired";
  const b = el("div", {
    class: `bubble${m.mine ? " mine" : ""}${failed ? " failed" : ""}${m.reactions?.length ? " has-reaction" : ""}`,
    id: m.domId, "data-id": m.id, "data-status": m.status || "", role: "article", tabindex: "-1",
    "aria-label": `${m.mine ? "sent" : "received"} ${m.type} message${m.status ? `, ${m.status}` : ""}`,
  },
  m.quoted ? el("div", { class: "quoted" }, m.quoted) : null,
  parts,
  failed && m.error ? el("div", { class: "error", role: "note" },
    m.status === "expired" ? `⌛ expired: ${m.error.details || ""}` : `⚠ ${m.error.code ?? ""} ${m.error.title || ""}`.trim(),
    m.error.details && m.status !== "expired" ? el("div", { class: "small" }, m.error.details) : null) : null,
  el("div", { class: "meta" }, m.note ? el("span", {}, m.note) : null, el("time", {}, hhmm(m.at)), m.showTicks === false ? null : ticks(m.status)),
  m.reactions?.length ? el("span", { class: "reactions", "aria-label": `reactions ${m.reactions.join(" ")}` }, m.reactions.join("")) : null);
  return b;
}
