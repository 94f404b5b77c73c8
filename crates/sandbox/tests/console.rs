//! The console (`/_mynah/ui/`) end to end in a real headless Chromium, driven over WebDriver
//! (`chromedriver`): what an API call does shows up on the page live, and the page's buttons do
//! what they say. The sandbox runs on the manual clock; the tests wait for the page by polling
//! its DOM within a bounded time, never for timers. Screenshots go to `docs/screenshots/` with
//! `MYNAH_SCREENSHOTS=1` (see `browser::Browser::screenshot`).
//!
//! Run with `MYNAH_BROWSER_TESTS=1` to make a missing Chromium an error (CI does); see `browser`.

mod browser;
mod common;

use browser::Browser;
use common::*;
use mynah_sandbox::config::{Config, PacingConfig, PacingVerdict};
use serde_json::{Value, json};

const USER: &str = "4915112345678";

/// A sandbox with `cfg` and a browser showing its console at `hash`, its live feed open.
async fn open(cfg: Config, hash: &str, width: u32, height: u32) -> (Harness, Browser) {
    let h = Harness::start(cfg).await;
    let b = Browser::start(width, height).await;
    b.goto(&format!("{}/_mynah/ui/{hash}", h.base)).await;
    b.wait_for(
        "the live feed",
        "return document.body.dataset.live === 'open'",
        json!([]),
    )
    .await;
    (h, b)
}

/// The status the ticks of a message's bubble show.
async fn ticks_of(b: &Browser, wamid: &str) -> Value {
    b.eval(
        "const n = document.querySelector(`.bubble[data-id='${arguments[0]}'] .ticks`);
         return n ? [n.dataset.status, n.classList.contains('read'), getComputedStyle(n).color] : null",
        json!([wamid]),
    )
    .await
}

async fn wait_ticks(b: &Browser, wamid: &str, status: &str) -> Value {
    b.wait_for(
        &format!("{wamid} to show {status}"),
        "const n = document.querySelector(`.bubble[data-id='${arguments[0]}'] .ticks`);
         return n && n.dataset.status === arguments[1]",
        json!([wamid, status]),
    )
    .await;
    ticks_of(b, wamid).await
}

fn template(name: &str, to: &str, components: Value) -> Value {
    json!({ "messaging_product": "whatsapp", "to": to, "type": "template",
            "template": { "name": name, "language": { "code": "en_US" }, "components": components } })
}

async fn send(h: &Harness, body: Value) -> String {
    let (s, b) = h.send_360(body).await;
    assert_eq!(s, 200, "{b}");
    b["messages"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_message_appears_on_the_phone_and_its_ticks_turn_blue_live() {
    if !browser::enabled("a_sent_message_appears_on_the_phone_and_its_ticks_turn_blue_live") {
        return;
    }
    let (h, b) = open(config(""), &format!("#/phone/{USER}"), 1280, 900).await;
    b.find("#chat[data-ready]").await;
    // Sent through the API while the page is open: it appears without a reload, pending.
    let wamid = h
        .send_text(USER, "Your order 1234 has shipped — it arrives on Friday.")
        .await;
    let shown = wait_ticks(&b, &wamid, "pending").await;
    assert_eq!(shown[1], false, "{shown}");
    assert_eq!(
        b.text(&format!(".bubble[data-id='{wamid}'] .text")).await,
        "Your order 1234 has shipped — it arrives on Friday."
    );
    // The lifecycle on the manual clock: ✓, ✓✓ grey, ✓✓ blue.
    h.advance(0.25).await;
    let sent = wait_ticks(&b, &wamid, "sent").await;
    assert_eq!(sent[1], false, "{sent}");
    h.advance(1.0).await;
    let delivered = wait_ticks(&b, &wamid, "delivered").await;
    assert_eq!(delivered[1], false, "{delivered}");
    let grey = delivered[2].clone();
    h.advance(5.0).await;
    let read = wait_ticks(&b, &wamid, "read").await;
    assert_eq!(read[1], true, "{read}");
    assert_ne!(read[2], grey, "read ticks are another colour");
    assert_eq!(read[2], "rgb(10, 95, 180)", "read ticks are blue");
    let glyph = b.text(&format!(".bubble[data-id='{wamid}'] .ticks")).await;
    assert_eq!(glyph, "✓✓");
    // The user answers from the phone: the reply is theirs (right-hand side), and reaches the API.
    let input = b.find("#reply-text").await;
    input.type_text("Thanks, when will it arrive?").await;
    b.click("#composer button[type=submit]").await;
    b.wait_for(
        "the user's reply",
        "return [...document.querySelectorAll('.bubble.mine .text')].some(t => t.textContent === 'Thanks, when will it arrive?')",
        json!([]),
    )
    .await;
    let (_, list) = h
        .control_get(&format!("/messages?wa_id={USER}&direction=inbound"))
        .await;
    assert_eq!(
        list["messages"][0]["body"]["text"]["body"],
        "Thanks, when will it arrive?"
    );
    b.screenshot("phone.png").await;
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_reply_press_shows_up_as_an_inbound_webhook_in_the_inspector() {
    if !browser::enabled("a_quick_reply_press_shows_up_as_an_inbound_webhook_in_the_inspector") {
        return;
    }
    let rx = Receiver::start().await;
    let (h, b) = open(config(&rx.url), &format!("#/phone/{USER}"), 1280, 900).await;
    b.find("#chat[data-ready]").await;
    let wamid = send(&h, template("spring_sale", USER, json!([]))).await;
    h.advance(10.0).await;
    wait_ticks(&b, &wamid, "read").await;
    // A marketing template: the body, its quick-reply button; pressed as the user.
    b.click(&format!(
        ".bubble[data-id='{wamid}'] button[data-quick-reply='Stop promotions']"
    ))
    .await;
    // The press is an inbound `button` message in the conversation …
    b.wait_for(
        "the press in the chat",
        "return [...document.querySelectorAll('.bubble.mine')].some(t => t.textContent.includes('Stop promotions'))",
        json!([]),
    )
    .await;
    // … and a webhook to the receiver, listed in the inspector with its body.
    let got = h.wait("field=messages&message_type=button", 1).await;
    let seq = got[0]["seq"].as_u64().unwrap();
    b.click("a[href='#/webhooks']").await;
    let events = b.text(&format!("tr[data-seq='{seq}'] .events")).await;
    assert_eq!(events, "inbound button");
    b.click(&format!("button[data-seq='{seq}']")).await;
    let body = b.text("#attempt-detail pre.json").await;
    let parsed: Value = serde_json::from_str(&body).expect("the body is shown as JSON");
    let message = &parsed["entry"][0]["changes"][0]["value"]["messages"][0];
    assert_eq!(message["type"], "button");
    assert_eq!(message["button"]["text"], "Stop promotions");
    assert_eq!(message["context"]["id"], wamid.as_str());
    assert!(body.contains("\n  "), "formatted: {body}");
    let signature = b.text("#signature").await;
    assert_eq!(signature, got[0]["signature"].as_str().unwrap());
    assert!(
        rx.bodies()
            .iter()
            .any(|v| v.to_string().contains("Stop promotions"))
    );
    b.screenshot("webhooks.png").await;
    // Redeliver it: one more POST of the same body, listed live.
    let before = rx.received().len();
    b.click("#redeliver").await;
    b.wait_for(
        "the redelivery in the list",
        "return [...document.querySelectorAll('#attempts .badge')].some(x => x.textContent.includes('redelivery of #' + arguments[0]))",
        json!([seq]),
    )
    .await;
    assert_eq!(rx.received().len(), before + 1);
    assert_eq!(rx.received()[before].body, rx.received()[before - 1].body);
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_and_reactions_render_as_whatsapp_shows_them() {
    if !browser::enabled("templates_and_reactions_render_as_whatsapp_shows_them") {
        return;
    }
    let mut cfg = config("");
    let body = "Our winter collection is here.\nCoats from 49 €.\nScarves from 9 €.\nBoots from 59 €.\nHats from 12 €.\nGloves from 15 €.\nAll week in every shop, {{1}}.";
    let def = json!({
        "name": "winter_collection", "language": "en_US", "category": "MARKETING",
        "components": [
            { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": ["4::aW1hZ2UvanBlZw==:ARb"] } },
            { "type": "BODY", "text": body, "example": { "body_text": [["Ana"]] } },
            { "type": "FOOTER", "text": "Reply STOP to opt out" },
            { "type": "BUTTONS", "buttons": [
                { "type": "QUICK_REPLY", "text": "Show me" },
                { "type": "URL", "text": "Shop online", "url": "https://shop.example/{{1}}", "example": ["winter"] }
            ] }
        ]
    });
    cfg.templates.push(serde_json::from_value(def).unwrap());
    let (h, b) = open(cfg, &format!("#/phone/{USER}"), 1280, 900).await;
    b.find("#chat[data-ready]").await;
    let wamid = send(
        &h,
        template(
            "winter_collection",
            USER,
            json!([
                { "type": "header", "parameters": [ { "type": "image", "image": { "link": "https://shop.example/coat.jpg" } } ] },
                { "type": "body", "parameters": [ { "type": "text", "text": "Ana" } ] },
                { "type": "button", "sub_type": "url", "index": 1, "parameters": [ { "type": "text", "text": "winter" } ] }
            ]),
        ),
    )
    .await;
    let bubble = format!(".bubble[data-id='{wamid}']");
    assert_eq!(
        b.attribute(&format!("{bubble} .media"), "aria-label")
            .await
            .as_deref(),
        Some("image coat.jpg")
    );
    assert_eq!(
        b.text(&format!("{bubble} .footer")).await,
        "Reply STOP to opt out"
    );
    let buttons = b
        .eval(
            "return [...document.querySelectorAll(arguments[0] + ' .buttons > *')].map(x => x.textContent)",
            json!([bubble]),
        )
        .await;
    assert_eq!(buttons, json!(["↩ Show me", "🔗 Shop online"]));
    // Seven lines of marketing text: five shown, the rest behind "Read more".
    let more = format!("{bubble} button.more:not([hidden])");
    b.find(&more).await;
    let folded = b
        .eval(
            "const t = document.querySelector(arguments[0] + ' .text'); return [t.classList.contains('folded'), t.clientHeight < t.scrollHeight]",
            json!([bubble]),
        )
        .await;
    assert_eq!(folded, json!([true, true]));
    b.click(&more).await;
    let open_text = b
        .eval(
            "const t = document.querySelector(arguments[0] + ' .text'); return [t.classList.contains('folded'), t.textContent]",
            json!([bubble]),
        )
        .await;
    assert_eq!(open_text[0], false);
    assert!(
        open_text[1].as_str().unwrap().ends_with("every shop, Ana."),
        "{open_text}"
    );
    // The user reacts, the business reacts back: both emoji on their bubbles, live.
    h.advance(10.0).await;
    let (s, r) = h
        .control(
            reqwest::Method::POST,
            "/inbound",
            &json!({ "from": USER, "type": "reaction", "reaction": { "message_id": wamid, "emoji": "❤" } }),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    b.wait_for(
        "the user's reaction",
        "return document.querySelector(arguments[0] + ' .reactions')?.textContent === '❤'",
        json!([bubble]),
    )
    .await;
    let reply = h.send_text(USER, "Glad you like it").await;
    let (s, r) = h
        .send_360(
            json!({ "messaging_product": "whatsapp", "to": USER, "type": "reaction",
                          "reaction": { "message_id": reply, "emoji": "👍" } }),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    b.wait_for(
        "the business's reaction",
        "return document.querySelector(`.bubble[data-id='${arguments[0]}'] .reactions`)?.textContent === '👍'",
        json!([reply]),
    )
    .await;
    b.screenshot("template.png").await;
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advancing_the_clock_expires_an_otp_on_screen() {
    if !browser::enabled("advancing_the_clock_expires_an_otp_on_screen") {
        return;
    }
    let (h, b) = open(config(""), &format!("#/phone/{USER}"), 1280, 900).await;
    b.find("#chat[data-ready]").await;
    let code = json!([
        { "type": "body", "parameters": [ { "type": "text", "text": "482913" } ] },
        { "type": "button", "sub_type": "url", "index": 0, "parameters": [ { "type": "text", "text": "482913" } ] }
    ]);
    let wamid = send(&h, template("verification_code", USER, code)).await;
    let otp = format!(".bubble[data-id='{wamid}'] .otp");
    b.find(&format!("{otp}[data-otp='valid']")).await;
    let body = b.text(&format!(".bubble[data-id='{wamid}'] .text")).await;
    assert!(
        body.starts_with("482913 is your verification code."),
        "{body}"
    );
    let footer = b.text(&format!(".bubble[data-id='{wamid}'] .footer")).await;
    assert_eq!(footer, "This code expires in 10 minutes.");
    // Nine minutes on: still valid. Past ten: expired on screen, without a reload.
    h.advance(9.0 * 60.0).await;
    // Text and state read in one script: the page re-renders the code as its clock ticks, so an
    // element found first may be stale by the time its attribute is read.
    b.wait_for(
        "the clock in the page, the code still valid",
        "const e = document.querySelector(arguments[0]); \
         return !!e && e.textContent.includes('valid for 60 s') && e.dataset.otp === 'valid'",
        json!([otp]),
    )
    .await;
    h.advance(61.0).await;
    b.find(&format!("{otp}[data-otp='expired']")).await;
    assert!(b.text(&otp).await.contains("Code expired"));
    b.screenshot("otp.png").await;
    // The clock's own buttons move it too.
    b.click("a[href='#/number']").await;
    let (_, before) = h.control_get("/clock").await;
    let shown = b.text("#clock-now").await;
    b.click("button[data-advance='3600']").await;
    b.wait_for(
        "the clock to move an hour",
        "return document.querySelector('#clock-now')?.textContent !== arguments[0]",
        json!([shown]),
    )
    .await;
    let (_, after) = h.control_get("/clock").await;
    assert_eq!(
        after["now_ms"].as_i64().unwrap() - before["now_ms"].as_i64().unwrap(),
        3_600_000
    );
    b.quit().await;
    h.shutdown().await;
}

/// Rules off but pacing on: the first two messages of a new marketing template go out, the rest
/// are held until a verdict.
fn pacing() -> Config {
    let mut cfg = config("");
    cfg.rules.pacing = Some(PacingConfig {
        threshold: 2,
        verdict: PacingVerdict::Wait,
        ..PacingConfig::default()
    });
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pacing_verdict_button_releases_held_messages() {
    if !browser::enabled("a_pacing_verdict_button_releases_held_messages") {
        return;
    }
    let (h, b) = open(pacing(), "#/templates", 1280, 900).await;
    let (s, t) = h
        .post_360(
            "/v1/configs/templates",
            &json!({ "name": "winter_news", "language": "en_US", "category": "MARKETING",
                     "components": [ { "type": "body", "text": "Hello, this winter we have something new for you in every shop." } ] }),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    h.advance(61.0).await;
    let mut held = Vec::new();
    for i in 0..5 {
        let (s, r) = h
            .send_360(template(
                "winter_news",
                &format!("49151000000{i:02}"),
                json!([]),
            ))
            .await;
        assert_eq!(s, 200, "{r}");
        if r["messages"][0]["message_status"] == "held_for_quality_assessment" {
            held.push(r["messages"][0]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(held.len(), 3);
    // The round shows on the templates page, live, with its verdict buttons.
    let cell = b
        .wait_for(
            "the held count",
            "const t = document.querySelector(\"tr[data-template='winter_news'] .pacing\")?.textContent;
             return t && t.includes('3 held') ? t : null",
            json!([]),
        )
        .await;
    assert!(cell.as_str().unwrap().contains("2 sent"), "{cell}");
    b.screenshot("templates.png").await;
    b.click("tr[data-template='winter_news'] button[data-verdict='release']")
        .await;
    b.wait_for(
        "the round to end",
        "return !document.querySelector(\"tr[data-template='winter_news'] .pacing\")",
        json!([]),
    )
    .await;
    h.advance(10.0).await;
    for wamid in &held {
        let (_, m) = h.control_get(&format!("/messages/{wamid}")).await;
        assert_eq!(m["status"], "read", "{m}");
        assert!(m.get("held").is_none(), "{m}");
    }
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_form_shows_the_platforms_error_next_to_the_field() {
    if !browser::enabled("the_template_form_shows_the_platforms_error_next_to_the_field") {
        return;
    }
    let (h, b) = open(config(""), "#/templates", 1280, 900).await;
    b.find("#t-name").await.type_text("shipping_notice").await;
    b.find("#t-body")
        .await
        .type_text("Your parcel {{1 is on its way.")
        .await;
    b.click("#template-form button[type=submit]").await;
    let error = b.text("#t-body + .field-error").await;
    assert!(error.contains("not closed"), "{error}");
    assert!(error.contains("components[0].text"), "{error}");
    assert_eq!(
        b.find("#t-body")
            .await
            .attr("aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    b.screenshot("template-form.png").await;
    // Fixed, it is created PENDING and listed.
    let body = b.find("#t-body").await;
    body.clear().await;
    body.type_text("Your parcel {{1}} is on its way.").await;
    b.find("#t-examples").await.type_text("A-1234").await;
    b.click("#template-form button[type=submit]").await;
    b.find("tr[data-template='shipping_notice']").await;
    let (_, list) = h.control_get("/templates").await;
    let made = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["def"]["name"] == "shipping_notice")
        .expect("created");
    assert_eq!(made["status"], "PENDING");
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_timeline_and_explanation_are_shown() {
    if !browser::enabled("a_messages_timeline_and_explanation_are_shown") {
        return;
    }
    let mut cfg = config("");
    cfg.rules.customer_service_window = true;
    let (h, b) = open(cfg, "#/messages", 1280, 900).await;
    // A free-form message outside the window fails with 131047 at its sent step.
    let wamid = h.send_text(USER, "Hello?").await;
    h.advance(1.0).await;
    b.find("#f-error").await.type_text("131047").await;
    b.click("#message-filters button[type=submit]").await;
    b.click(&format!("button[data-open='{wamid}']")).await;
    b.wait_for(
        "the failed step",
        "return document.querySelector('#timeline')?.textContent.includes('failed')",
        json!([]),
    )
    .await;
    let text = b.text("#timeline").await;
    assert!(text.contains("accepted"), "{text}");
    assert!(text.contains("131047"), "{text}");
    let fate = b.text("#fate").await;
    assert!(fate.starts_with("failed: 131047"), "{fate}");
    let because = b.text("#because").await;
    assert!(because.contains("window"), "{because}");
    b.screenshot("messages.png").await;
    // The phone shows the failure with its code and title.
    b.goto(&format!("{}/_mynah/ui/#/phone/{USER}", h.base))
        .await;
    let error = b.text(&format!(".bubble[data-id='{wamid}'] .error")).await;
    assert!(error.contains("131047"), "{error}");
    assert!(error.contains("Re-engagement message"), "{error}");
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_sets_a_username_and_changes_number_from_the_phone() {
    if !browser::enabled("the_user_sets_a_username_and_changes_number_from_the_phone") {
        return;
    }
    let rx = Receiver::start().await;
    let (h, b) = open(config(&rx.url), &format!("#/phone/{USER}"), 1280, 900).await;
    let wamid = h.send_text(USER, "Welcome!").await;
    h.advance(10.0).await;
    wait_ticks(&b, &wamid, "read").await;
    b.click("#identity summary").await;
    // The platform's rule, next to the field.
    b.find("#username").await.type_text("a..b").await;
    b.click("#username-form button[type=submit]").await;
    let err = b.text("#username + .field-error").await;
    assert!(err.contains("two periods"), "{err}");
    let name = b.find("#username").await;
    name.clear().await;
    name.type_text("ana.s").await;
    b.click("#username-form button[type=submit]").await;
    b.wait_for(
        "the username on the phone",
        "return document.querySelector('#phone-user')?.textContent.includes('@ana.s')",
        json!([]),
    )
    .await;
    let (_, u) = h.control_get(&format!("/users/{USER}")).await;
    assert_eq!(u["username"], "ana.s", "{u}");
    // A new number: the phone follows the user there, and the business hears of it.
    if b.eval("return document.querySelector('#identity').open", json!([]))
        .await
        != true
    {
        b.click("#identity summary").await;
    }
    b.find("#new-number")
        .await
        .type_text("+49 151 98765432")
        .await;
    b.click("#number-form button[type=submit]").await;
    b.wait_for(
        "the new number's phone",
        "return location.hash === '#/phone/4915198765432/' + arguments[0]",
        json!([PNID]),
    )
    .await;
    let (_, moved) = h.control_get(&format!("/users/{USER}")).await;
    assert_eq!(moved["moved_to"], "4915198765432", "{moved}");
    h.wait("field=messages", 2).await;
    assert!(
        rx.bodies()
            .iter()
            .any(|v| v.to_string().contains("user_id_update")
                || v.to_string().contains("user_changed_user_id")),
        "the business hears of the change"
    );
    b.screenshot("identity.png").await;
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_fits_a_360_px_phone_and_works_by_keyboard() {
    if !browser::enabled("the_console_fits_a_360_px_phone_and_works_by_keyboard") {
        return;
    }
    let (h, b) = open(config(""), &format!("#/phone/{USER}"), 360, 740).await;
    let wamid = send(&h, template("spring_sale", USER, json!([]))).await;
    h.advance(10.0).await;
    wait_ticks(&b, &wamid, "read").await;
    for view in ["phone", "messages", "webhooks", "templates", "number"] {
        let hash = if view == "phone" {
            format!("#/phone/{USER}")
        } else {
            format!("#/{view}")
        };
        b.goto(&format!("{}/_mynah/ui/{hash}", h.base)).await;
        b.find("main h2").await;
        let overflow = b
            .eval(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                json!([]),
            )
            .await;
        assert_eq!(overflow, 0, "{view}: wider than 360 px");
        let bad = b.eval(browser::UNNAMED_CONTROLS, json!([])).await;
        assert_eq!(bad, json!([]), "{view}");
        let low = b.eval(browser::LOW_CONTRAST, json!([])).await;
        assert_eq!(low, json!([]), "{view}: text below AA contrast");
    }
    // By keyboard alone: the skip link first, then into the page; the reply goes out with Enter.
    b.goto(&format!("{}/_mynah/ui/#/phone/{USER}", h.base))
        .await;
    b.find("#chat[data-ready]").await;
    b.eval(
        "document.activeElement?.blur(); window.scrollTo(0, 0)",
        json!([]),
    )
    .await;
    b.keys("\u{E004}").await;
    assert_eq!(
        b.active().await.text().await,
        "Skip to content",
        "the first Tab"
    );
    let mut reached = false;
    for _ in 0..60 {
        b.keys("\u{E004}").await;
        if b.active().await.attr("id").await.as_deref() == Some("reply-text") {
            reached = true;
            break;
        }
    }
    assert!(reached, "the reply field is reachable by Tab");
    b.keys("STOP\u{E007}").await;
    b.wait_for(
        "the STOP",
        "return [...document.querySelectorAll('.bubble.mine .text')].some(t => t.textContent === 'STOP')",
        json!([]),
    )
    .await;
    b.screenshot("phone-360.png").await;
    b.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_pause_and_resume_from_the_inspector() {
    if !browser::enabled("receivers_pause_and_resume_from_the_inspector") {
        return;
    }
    let rx = Receiver::start().await;
    let mut cfg = config(&rx.url);
    cfg.rules.messaging_limit = mynah_sandbox::config::RulesConfig::default().messaging_limit;
    let (h, b) = open(cfg, "#/webhooks", 1280, 900).await;
    b.click(&format!("button[data-receiver='{}']", rx.url))
        .await;
    b.wait_for(
        "paused",
        "return document.querySelector(`button[data-receiver='${arguments[0]}']`)?.textContent === 'Resume'",
        json!([rx.url]),
    )
    .await;
    let wamid = send(&h, template("hello_world", USER, json!([]))).await;
    h.advance(10.0).await;
    assert!(
        rx.statuses().is_empty(),
        "nothing reaches a paused receiver"
    );
    let (_, r) = h.control_get("/webhooks/receivers").await;
    assert_eq!(r["receivers"][0]["paused"], true, "{r}");
    b.click(&format!("button[data-receiver='{}']", rx.url))
        .await;
    h.wait(&format!("wamid={wamid}&status=read"), 1).await;
    b.wait_for(
        "the read attempt listed",
        "return [...document.querySelectorAll('#attempts .events')].some(x => x.textContent === 'read')",
        json!([]),
    )
    .await;
    let statuses: Vec<String> = rx.statuses().into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, ["sent", "delivered", "read"]);
    // Faults: added, listed and deleted from the number page.
    b.click("a[href='#/number']").await;
    // The number: its rating, tier and the messaging limit's use over the rolling day.
    b.wait_for(
        "the limit's use",
        "return document.querySelector('#numbers')?.textContent.includes('1 of 250 unique users in the last 24 h')",
        json!([]),
    )
    .await;
    let tier = b.text("#numbers dd:nth-of-type(2)").await;
    assert_eq!(tier, "TIER_250");
    b.find("#fault-to").await.type_text(USER).await;
    b.find("#fault-probability").await.type_text("2").await;
    b.find("#fault-code").await.type_text("131026").await;
    b.click("#fault-form button[type=submit]").await;
    let err = b.text("#fault-probability + .field-error").await;
    assert!(err.contains("probability"), "{err}");
    let p = b.find("#fault-probability").await;
    p.clear().await;
    p.type_text("1").await;
    b.click("#fault-form button[type=submit]").await;
    b.click("button[data-delete-fault]").await;
    b.wait_for(
        "no rule left",
        "return !document.querySelector('button[data-delete-fault]')",
        json!([]),
    )
    .await;
    let (_, f) = h.control_get("/faults").await;
    assert_eq!(f["faults"], json!([]));
    b.screenshot("number.png").await;
    b.quit().await;
    h.shutdown().await;
}

/// The phone of a user with 10,000 messages opens with one page of them; the time it took in
/// the browser is printed (docs/benchmarks.md records it), not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_of_a_user_with_10000_messages_opens_one_page() {
    if !browser::enabled("the_phone_of_a_user_with_10000_messages_opens_one_page") {
        return;
    }
    let h = Harness::start(config("")).await;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (http, base) = (h.http.clone(), h.base.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..1_250 {
                let r = http
                    .post(format!("{base}/_mynah/inbound"))
                    .json(&json!({ "from": USER, "type": "text", "text": { "body": format!("message {worker}-{i}") } }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, page) = h
        .control_get(&format!("/messages?wa_id={USER}&limit=50"))
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 50);
    let b = Browser::start(1280, 900).await;
    let mut timings = Vec::new();
    for _ in 0..5 {
        b.goto(&format!("{}/_mynah/ui/#/phone/{USER}", h.base))
            .await;
        b.find("#chat[data-ready]").await;
        let ms = b
            .eval("return window.mynahTimings.phoneOpenMs", json!([]))
            .await;
        timings.push(ms.as_f64().unwrap());
        let shown = b
            .eval(
                "return document.querySelectorAll('#chat .bubble').length",
                json!([]),
            )
            .await;
        assert_eq!(shown, 50, "one page");
        b.goto("about:blank").await;
    }
    // Older pages on demand.
    b.goto(&format!("{}/_mynah/ui/#/phone/{USER}", h.base))
        .await;
    b.find("#chat[data-ready]").await;
    b.click("#older").await;
    b.wait_for(
        "the second page",
        "return document.querySelectorAll('#chat .bubble').length === 100",
        json!([]),
    )
    .await;
    timings.sort_by(f64::total_cmp);
    eprintln!(
        "phone view of a user with 10,000 messages: opened in {:.1} ms (median of 5; min {:.1}, max {:.1})",
        timings[2], timings[0], timings[4]
    );
    b.quit().await;
    h.shutdown().await;
}

/// The control API's own answer for the console's routes, without a browser.
#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let h = Harness::start(config("")).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(format!("{}/", h.base)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/_mynah/ui/");
    let r = http
        .get(format!("{}/_mynah/ui/", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let etag = r.headers()["etag"].clone();
    let page = r.text().await.unwrap();
    assert!(page.contains("assets/sandbox.js"));
    // Every asset the page and the modules name is served, and nothing names another origin.
    for asset in [
        "sandbox.js",
        "console.js",
        "chat.js",
        "console.css",
        "icon.svg",
    ] {
        let r = http
            .get(format!("{}/_mynah/ui/assets/{asset}", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        let body = r.text().await.unwrap();
        if asset != "icon.svg" {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{asset}"
            );
        }
    }
    // Revalidation.
    let r = http
        .get(format!("{}/_mynah/ui/", h.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = http
        .get(format!("{}/_mynah/ui/assets/nope.js", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], 4040, "{e}");
    let r = http
        .post(format!("{}/_mynah/ui/", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], 4000, "{e}");
    // A platform client at the root still gets the platform's answer.
    let r = http
        .get(format!("{}/", h.base))
        .header("D360-API-KEY", KEY)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 302);
    h.shutdown().await;
}
