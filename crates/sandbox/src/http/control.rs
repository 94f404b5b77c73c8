//! Mynah's control API under `/_mynah/`: reset, the clock, messages and their timelines,
//! simulated inbound messages, user behaviours, numbers, webhook attempts and a long-poll wait.
//! JSON in, JSON out; errors use the Graph envelope with Mynah's own codes.

use super::{error_response, is_json, json, read_body};
use crate::clock::Millis;
use crate::engine::{BehaviourPatch, InboundRequest};
use crate::model::{Dialect, Direction, Message, Number, WebhookTarget};
use crate::sandbox::{ResetOptions, Sandbox};
use crate::templates::TemplateStatus;
use crate::webhooks::AttemptFilter;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use mynah_wire::error::{ApiError, ERROR_TABLE, ErrorCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Handles one control request.
pub async fn handle(sb: Arc<Sandbox>, req: Request) -> Response {
    if let Err(e) = same_origin(&req) {
        return error_response(Dialect::Cloud, &e, &sb.trace_id());
    }
    match dispatch(&sb, req).await {
        Ok(resp) => resp,
        Err(e) => error_response(Dialect::Cloud, &e, &sb.trace_id()),
    }
}

/// A browser's change from another site is refused: a page elsewhere must not reset the
/// sandbox or move its clock through the browser of someone who has it open. Clients that are
/// not browsers send no `Origin`; the console's own requests come from the sandbox's origin.
fn same_origin(req: &Request) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = req.headers();
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .map(|v| v.as_bytes());
    let host = headers.get(axum::http::header::HOST).map(|v| v.as_bytes());
    let foreign = match origin {
        None => false,
        Some(o) => {
            let o = o
                .strip_prefix(b"http://")
                .or_else(|| o.strip_prefix(b"https://"))
                .unwrap_or(o);
            Some(o) != host
        }
    };
    if cross_site || foreign {
        return Err(bad(
            "a cross-site request: the control API takes changes from its own console or from \
             clients that send no Origin",
        )
        .with_http(403));
    }
    Ok(())
}

fn bad(details: impl Into<String>) -> ApiError {
    ApiError::with_details(ErrorCode::MynahBadRequest, details.into())
}

fn not_found(details: impl Into<String>) -> ApiError {
    ApiError::with_details(ErrorCode::MynahNotFound, details.into())
}

async fn body<T: DeserializeOwned>(sb: &Sandbox, req: Request) -> Result<T, ApiError> {
    if !is_json(req.headers()) {
        return Err(bad("send JSON with Content-Type: application/json").with_http(415));
    }
    let bytes = read_body(req.into_body(), sb.config.limits.max_body_bytes)
        .await
        .map_err(|e| bad(e).with_http(413))?;
    super::check_utf8(&bytes).map_err(bad)?;
    parse(&bytes)
}

/// Parses a JSON body; an error names the field it is about (`pair_rate.every_ms: invalid
/// value: integer …`).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| invalid(&e))?;
    de.end()
        .map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// The error of a body that did not parse, naming the field when there is one.
fn invalid<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    if path.is_empty() || path == "." {
        bad(format!("invalid JSON body: {}", e.inner()))
    } else {
        bad(format!("invalid JSON body: {path}: {}", e.inner()))
    }
}

/// A value out of range, naming the field: 400.
fn out_of_range(e: String) -> ApiError {
    bad(e)
}

fn query<T: DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    match req.uri().query() {
        None => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| bad(format!("invalid query: {e}"))),
    }
}

async fn dispatch(sb: &Arc<Sandbox>, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(1).collect();
    let method = req.method().clone();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["health"]) | (Method::GET, []) => {
            let ((awake, asleep), (hot, cold)) = {
                let world = sb.world();
                (world.user_counts(), world.message_counts())
            };
            Ok(json(&serde_json::json!({
            "status": "ok",
            "users": { "awake": awake, "asleep": asleep },
            "messages": { "memory": hot, "journal": cold },
            "clock": if sb.clock.is_manual() { "manual" } else { "system" },
            "now": sb.clock.now(),
            "pending_webhooks": sb.hub.pending(),
            "webhook_lag_ms": sb.webhook_lag_ms(),
            "max_webhook_lag_ms": sb.config.limits.max_webhook_lag_ms,
            })))
        }
        (Method::POST, ["reset"]) => {
            // No body, an empty one, or `{"keep_clock": true}`.
            let bytes = read_body(req.into_body(), sb.config.limits.max_body_bytes)
                .await
                .map_err(|e| bad(e).with_http(413))?;
            super::check_utf8(&bytes).map_err(bad)?;
            let opts: ResetOptions = if bytes.iter().all(u8::is_ascii_whitespace) {
                ResetOptions::default()
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    bad(format!(
                        "invalid reset body: {e}; give {{\"keep_clock\": true}} or nothing"
                    ))
                })?
            };
            let epoch = sb.reset(opts).await?;
            Ok(json(&serde_json::json!({
                "reset": true,
                "epoch": epoch,
                "now_ms": sb.clock.now(),
            })))
        }
        (Method::GET, ["clock"]) => Ok(clock(sb)),
        (Method::POST, ["clock", "advance"]) => {
            let a: Advance = body(sb, req).await?;
            if a.ms.is_none() && a.seconds.is_none() {
                return Err(bad("give {\"seconds\": N} or {\"ms\": N}"));
            }
            let ms = match a.ms {
                Some(ms) => crate::bounds::duration("ms", ms).map_err(out_of_range)?,
                None => 0,
            };
            let from_seconds = match a.seconds {
                Some(s) => crate::bounds::seconds_to_ms("seconds", s).map_err(out_of_range)?,
                None => 0,
            };
            let total = ms.saturating_add(from_seconds);
            crate::bounds::duration("ms + seconds", total).map_err(out_of_range)?;
            sb.advance(total).await?;
            Ok(clock(sb))
        }
        (Method::GET, ["events"]) => Ok(events(sb)),
        (Method::GET, ["messages"]) => {
            let q: MessageQuery = query(&req)?;
            let before = match q.before.as_deref() {
                None | Some("") => None,
                Some(b) => Some(b.parse::<u64>().map_err(|_| {
                    bad(format!(
                        "before = {b:?} is not a cursor: give the `next` of the previous page"
                    ))
                })?),
            };
            let limit = q.limit.unwrap_or(100).min(10_000);
            // Ids of the templates with the name asked for.
            let template_ids: Option<Vec<String>> = q.template.as_ref().map(|name| {
                sb.world()
                    .templates
                    .all()
                    .filter(|t| t.def.name == *name || t.id == *name)
                    .map(|t| t.id.clone())
                    .collect()
            });
            let keep = |m: &Message| {
                q.matches(m)
                    && template_ids.as_ref().is_none_or(|ids| {
                        m.template_id
                            .as_deref()
                            .is_some_and(|id| ids.iter().any(|t| t == id))
                    })
                    && q.error_code.is_none_or(|c| error_code(m) == Some(c))
            };
            let mut page = sb.page(q.wa_id.as_deref(), before, limit, keep).await?;
            let next = (page.len() == limit)
                .then(|| page.last().map(|(pos, _)| pos.to_string()))
                .flatten();
            page.reverse();
            let messages: Vec<Message> = page.into_iter().map(|(_, m)| m).collect();
            Ok(json(&Page { messages, next }))
        }
        (Method::GET, ["messages", id, "explain"]) => {
            let m = sb
                .message(id)
                .await?
                .ok_or_else(|| not_found(format!("no message {id}")))?;
            Ok(json(&explain(&m)))
        }
        (Method::GET, ["messages", id]) => {
            let m = sb
                .message(id)
                .await?
                .ok_or_else(|| not_found(format!("no message {id}")))?;
            Ok(json(&m))
        }
        (Method::POST, ["inbound"]) => {
            let r: InboundRequest = body(sb, req).await?;
            let now = sb.clock.now();
            let (id, fx) = sb.world().inbound(r, now)?;
            sb.apply_durable(fx).await?;
            let world = sb.world();
            let m = world
                .messages
                .get(id.as_str())
                .ok_or_else(|| not_found("message vanished"))?;
            Ok(json(m))
        }
        (Method::GET, ["users"]) => {
            let world = sb.world();
            let mut users = world.all_users();
            users.sort_by(|a, b| a.wa_id.cmp(&b.wa_id));
            let views: Vec<_> = users.iter().map(|u| user_view(&world, u)).collect();
            Ok(json(&Listing::users(views)))
        }
        (Method::GET, ["users", id]) => {
            let world = sb.world();
            let wa_id = world.user_key(None, id)?;
            let u = world
                .user(&wa_id)
                .ok_or_else(|| not_found(format!("no user {id}")))?;
            Ok(json(&user_view(&world, &u)))
        }
        (Method::PUT | Method::PATCH | Method::POST, ["users", id]) => {
            let wa_id = sb.world().user_key(None, id)?;
            let patch: BehaviourPatch = body(sb, req).await?;
            patch.validate().map_err(out_of_range)?;
            let now = sb.clock.now();
            let (user, fx) = sb.world().set_behaviour(&wa_id, patch, now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&user_view(&sb.world(), &user)))
        }
        (Method::PUT | Method::POST | Method::DELETE, ["users", id, "username"]) => {
            let wa_id = sb.world().user_key(None, id)?;
            let username = if method == Method::DELETE {
                None
            } else {
                let b: SetUsername = body(sb, req).await?;
                b.username
            };
            let now = sb.clock.now();
            let (user, fx) = sb.world().set_username(&wa_id, username.as_deref(), now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&user_view(&sb.world(), &user)))
        }
        (Method::POST, ["users", id, "number"]) => {
            let wa_id = sb.world().user_key(None, id)?;
            let b: NewPhone = body(sb, req).await?;
            let now = sb.clock.now();
            let (user, fx) = sb.world().change_number(&wa_id, &b.new_wa_id, now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&user_view(&sb.world(), &user)))
        }
        (Method::GET, ["portfolios"]) => {
            let world = sb.world();
            Ok(json(
                &serde_json::json!({ "portfolios": world.portfolios_view() }),
            ))
        }
        (Method::GET, ["numbers"]) => {
            let world = sb.world();
            let numbers: Vec<_> = world.numbers.values().collect();
            Ok(json(&Listing::numbers(numbers)))
        }
        (Method::POST, ["numbers"]) => {
            let n: NewNumber = body(sb, req).await?;
            let headers = n.webhook_headers.clone().unwrap_or_default();
            let check = match &n.webhook_url {
                Some(url) => crate::webhooks::check_target("webhook_url", url, &headers),
                None => crate::webhooks::check_target(
                    "webhook_url (webhooks.default_url)",
                    &sb.config.webhooks.default_url,
                    &headers,
                ),
            }
            .map_err(bad)?;
            let waba_id = n.waba_id.unwrap_or_else(|| {
                sb.world()
                    .first_number()
                    .map(|f| f.waba_id.clone())
                    .unwrap_or_default()
            });
            // A number's portfolio is its account's; a new account's is the one named, or the
            // default.
            let account_portfolio = sb
                .world()
                .numbers
                .values()
                .find(|x| x.waba_id == waba_id)
                .map(|x| x.portfolio.clone());
            let portfolio = match (account_portfolio, n.portfolio) {
                (Some(have), Some(asked)) if have != asked => {
                    return Err(bad(format!(
                        "portfolio {asked:?}: the account {waba_id} belongs to the portfolio {have:?}"
                    )));
                }
                (Some(have), _) => have,
                (None, Some(asked)) if !asked.trim().is_empty() => asked,
                (None, _) => crate::config::DEFAULT_PORTFOLIO.to_string(),
            };
            let number = Number {
                phone_number_id: n.phone_number_id,
                display_phone_number: n.display_phone_number,
                verified_name: n.verified_name.unwrap_or_else(|| "Mynah Sandbox".into()),
                waba_id,
                portfolio,
                api_key: n.api_key,
                token: n.token.unwrap_or_else(|| sb.config.token.clone()),
                webhook: WebhookTarget {
                    url: n
                        .webhook_url
                        .unwrap_or_else(|| sb.config.webhooks.default_url.clone()),
                    headers: n.webhook_headers.unwrap_or_default(),
                },
                health: Default::default(),
            };
            let fx = sb.world().add_number(number.clone())?;
            sb.hub
                .set_target(&number.phone_number_id, number.webhook.clone());
            sb.apply_durable(fx).await?;
            let mut answer = serde_json::to_value(&number)
                .map_err(|e| ApiError::with_details(ErrorCode::MynahInternal, e.to_string()))?;
            if let (crate::webhooks::TargetCheck::NoTls(why), Some(obj)) =
                (&check, answer.as_object_mut())
            {
                obj.insert("warnings".into(), serde_json::json!([why]));
            }
            let resp = super::json_status(StatusCode::CREATED, &answer);
            Ok(super::platform::warn_target(
                resp,
                &number.phone_number_id,
                &check,
            ))
        }
        (Method::POST, ["users", wa_id, "report"]) => {
            let wa_id = wa_id.to_string();
            let r: Report = optional_body(sb, req).await?;
            let now = sb.clock.now();
            let (user, reported, fx) =
                sb.world()
                    .report(&wa_id, r.phone_number_id.as_deref(), now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&serde_json::json!({
                "user": user,
                "reported_message": reported,
            })))
        }
        (Method::POST, ["webhooks", "attempts", seq, "redeliver"]) => {
            let seq: u64 = seq
                .parse()
                .map_err(|_| bad(format!("{seq:?} is not an attempt's seq")))?;
            let attempt = sb.hub.redeliver(seq).await.map_err(|e| {
                if e.starts_with("no attempt") {
                    not_found(e)
                } else {
                    bad(e)
                }
            })?;
            Ok(json(&attempt))
        }
        (Method::GET, ["webhooks", "receivers"]) => Ok(json(&serde_json::json!({
            "receivers": sb.hub.receivers(),
        }))),
        (Method::POST, ["webhooks", "receivers", action @ ("pause" | "resume")]) => {
            let pause = *action == "pause";
            let r: ReceiverUrl = body(sb, req).await?;
            if !sb.hub.set_paused(&r.url, pause) && pause {
                return Err(not_found(format!(
                    "no receiver has the URL {:?}; GET /_mynah/webhooks/receivers lists them",
                    r.url
                )));
            }
            Ok(json(&serde_json::json!({
                "receivers": sb.hub.receivers(),
            })))
        }
        (Method::GET, ["webhooks", "attempts"]) => {
            let q: WaitQuery = query(&req)?;
            let attempts = sb
                .hub
                .attempts(&q.filter(None), q.limit.unwrap_or(100).min(10_000));
            Ok(json(&Listing::attempts(attempts)))
        }
        (Method::GET, ["webhooks", "wait"]) => {
            let q: WaitQuery = query(&req)?;
            let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(5_000).min(120_000));
            // Waiting means waiting for a delivery the receiver accepted, unless told otherwise.
            let filter = q.filter(Some(true));
            match sb
                .hub
                .wait_for(&filter, q.count.unwrap_or(1), timeout)
                .await
            {
                Some(found) => Ok(json(&Listing::attempts(found))),
                None => Err(ApiError::with_details(
                    ErrorCode::MynahTimeout,
                    format!(
                        "no {} matching webhook attempt(s) within {} ms",
                        q.count.unwrap_or(1),
                        timeout.as_millis()
                    ),
                )),
            }
        }
        (Method::GET, ["templates"]) => {
            let world = sb.world();
            let all: Vec<_> = world.templates.all().collect();
            Ok(json(&Listing::templates(all)))
        }
        (Method::POST, ["templates"]) => {
            let q: WabaQuery = query(&req)?;
            let bytes = platform_json(sb, req).await?;
            let waba = match q.waba_id {
                Some(w) if sb.world().accounts.contains_key(&w) => w,
                Some(w) => return Err(not_found(format!("no account {w}"))),
                None => sb
                    .world()
                    .first_number()
                    .map(|n| n.waba_id.clone())
                    .ok_or_else(|| not_found("no account"))?,
            };
            let now = sb.clock.now();
            let (t, fx) = sb.world().create_template(&waba, &bytes, now)?;
            sb.apply_durable(fx).await?;
            Ok(super::json_status(StatusCode::CREATED, &t))
        }
        (Method::GET, ["templates", id]) => {
            let world = sb.world();
            let t = world
                .templates
                .get(id)
                .ok_or_else(|| not_found(format!("no template {id}")))?;
            Ok(json(t))
        }
        (Method::POST, ["templates", id]) => {
            let id = id.to_string();
            let bytes = platform_json(sb, req).await?;
            let edit: crate::engine::TemplateEdit = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::invalid_param(format!("Invalid body: {e}")))?;
            let now = sb.clock.now();
            let (t, fx) = sb.world().edit_template(&id, edit, now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&t))
        }
        (Method::POST, ["templates", id, "quality"]) => {
            let id = id.to_string();
            let q: Quality = body(sb, req).await?;
            let now = sb.clock.now();
            let (t, fx) = sb.world().set_template_quality(&id, &q.score, now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&t))
        }
        (Method::POST, ["templates", id, "pacing"]) => {
            let id = id.to_string();
            let v: PacingDecision = body(sb, req).await?;
            let now = sb.clock.now();
            let fx = sb.world().force_pacing(&id, v.verdict, now)?;
            sb.apply_durable(fx).await?;
            let world = sb.world();
            let t = world
                .templates
                .get(&id)
                .ok_or_else(|| not_found(format!("no template {id}")))?;
            Ok(json(t))
        }
        (Method::GET, ["numbers", pnid]) => {
            let now = sb.clock.now();
            let world = sb.world();
            let n = world
                .numbers
                .get(*pnid)
                .ok_or_else(|| not_found(format!("no phone number {pnid}")))?;
            let limit = world.limit_use(pnid, now).map(|(used, users, window_ms)| {
                serde_json::json!({
                    "tier": crate::engine::tier_name(users),
                    "unique_users": users,
                    "used": used,
                    "window_ms": window_ms,
                })
            });
            let mut answer = serde_json::to_value(n)
                .map_err(|e| ApiError::with_details(ErrorCode::MynahInternal, e.to_string()))?;
            if let Some(obj) = answer.as_object_mut() {
                obj.insert("messaging_limit".into(), limit.unwrap_or_default());
            }
            Ok(json(&answer))
        }
        (Method::POST, ["numbers", pnid, "quality"]) => {
            let pnid = pnid.to_string();
            let q: NumberQuality = body(sb, req).await?;
            let tier = match &q.tier {
                None => None,
                Some(serde_json::Value::Number(n)) => Some(
                    n.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(format!("tier = {n} is out of range: a tier is a whole number of users from 1 to {} or a name (TIER_250, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED)", u32::MAX)))?,
                ),
                Some(serde_json::Value::String(s)) => Some(
                    crate::engine::parse_tier(s)
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad(format!("tier = {s:?} is not a tier (TIER_250, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED, or a number of users from 1)")))?,
                ),
                Some(other) => return Err(bad(format!("tier = {other} is not a tier"))),
            };
            let now = sb.clock.now();
            let (n, fx) = sb
                .world()
                .set_number_health(&pnid, q.rating.as_deref(), tier, now)?;
            sb.apply_durable(fx).await?;
            Ok(json(&n))
        }
        (Method::POST, ["templates", id, action @ ("status" | "verdict")]) => {
            let (id, action) = (id.to_string(), *action);
            let d: Decision = body(sb, req).await?;
            let status = TemplateStatus::parse(&d.status)
                .ok_or_else(|| bad(format!("{:?} is not a template status", d.status)))?;
            let now = sb.clock.now();
            let fx = if action == "status" {
                sb.world()
                    .force_template_status(&id, status, d.reason, now)?
                    .1
            } else {
                sb.world().set_template_verdict(&id, status, d.reason)?
            };
            sb.apply_durable(fx).await?;
            let world = sb.world();
            let t = world
                .templates
                .get(&id)
                .ok_or_else(|| not_found(format!("no template {id}")))?;
            Ok(json(t))
        }
        (Method::GET, ["rules"]) => Ok(json(sb.world().rules())),
        (Method::PUT | Method::PATCH, ["rules"]) => {
            let patch: serde_json::Map<String, serde_json::Value> = body(sb, req).await?;
            let mut current = serde_json::to_value(sb.world().rules())
                .map_err(|e| ApiError::with_details(ErrorCode::MynahInternal, e.to_string()))?;
            if let Some(obj) = current.as_object_mut() {
                obj.extend(patch);
            }
            let rules: crate::config::RulesConfig = serde_path_to_error::deserialize(current)
                .map_err(|e| {
                    let path = e.path().to_string();
                    bad(format!("invalid rules: {path}: {}", e.inner()))
                })?;
            rules.validate("").map_err(out_of_range)?;
            sb.set_rules(rules.clone());
            sb.feed.publish("rules", &serde_json::json!({}));
            Ok(json(&rules))
        }
        (Method::GET, ["faults"]) => {
            let faults = sb.faults.lock().unwrap_or_else(|e| e.into_inner());
            Ok(json(&Listing::faults(faults.list())))
        }
        (Method::POST, ["faults"]) => {
            let rule: crate::faults::FaultRule = body(sb, req).await?;
            let added = sb
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(rule)
                .map_err(bad)?;
            sb.feed.publish("faults", &serde_json::json!({}));
            Ok(super::json_status(StatusCode::CREATED, &added))
        }
        (Method::DELETE, ["faults"]) => {
            sb.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
            sb.feed.publish("faults", &serde_json::json!({}));
            Ok(json(&serde_json::json!({ "deleted": true })))
        }
        (Method::DELETE, ["faults", id]) => {
            if sb
                .faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id)
            {
                sb.feed.publish("faults", &serde_json::json!({}));
                Ok(json(&serde_json::json!({ "deleted": true })))
            } else {
                Err(not_found(format!("no fault rule {id}")))
            }
        }
        (Method::GET, ["magic"]) => Ok(json(&Listing::magic(crate::magic::MAGIC))),
        (Method::GET, ["errors"]) => Ok(json(&Listing::errors(ERROR_TABLE))),
        _ => Err(not_found(format!(
            "unknown control route {} {path}; see the README's control API table",
            method.as_str()
        ))),
    }
}

/// The live feed as server-sent events: `hello` first (the clock), then each change as it
/// happens (`message`, `attempt`, `template`, `user`, `number`, `clock`, `faults`, `rules`,
/// `receivers`, `reset`), `resync` when the listener fell behind; a comment every 15 s keeps
/// the connection open. The stream ends when the server shuts down.
fn events(sb: &Arc<Sandbox>) -> Response {
    use crate::feed::Next;
    use axum::response::IntoResponse;
    use axum::response::sse::{Event, KeepAlive, Sse};
    let sub = sb.feed.subscribe();
    let hello = serde_json::json!({
        "clock": if sb.clock.is_manual() { "manual" } else { "system" },
        "now_ms": sb.clock.now(),
    })
    .to_string();
    let stream = futures_util::stream::unfold((sub, Some(hello)), |(mut sub, hello)| async move {
        if let Some(h) = hello {
            let first = Event::default().event("hello").data(h);
            return Some((Ok::<_, std::convert::Infallible>(first), (sub, None)));
        }
        let event = match sub.next().await {
            Next::Item(i) => Event::default().event(i.kind).data(&*i.data),
            Next::Lagged(n) => Event::default()
                .event("resync")
                .data(serde_json::json!({ "missed": n }).to_string()),
            Next::Closed => return None,
        };
        Some((Ok(event), (sub, None)))
    });
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// The error code a message failed with, if it failed.
fn error_code(m: &Message) -> Option<u32> {
    if m.status != Some(mynah_wire::webhook::StatusKind::Failed) {
        return None;
    }
    m.timeline
        .iter()
        .rev()
        .find(|e| e.event == "failed")
        .and_then(|e| e.detail.as_deref())
        .and_then(|d| d.split(' ').next())
        .and_then(|c| c.parse().ok())
        .or(m.fate.as_ref().map(|(c, _)| *c))
}

/// A JSON body's bytes, unparsed, for the routes that answer as the platform does (template
/// creation and edits): its errors carry the platform's code 100, as the rest of their checks.
async fn platform_json(sb: &Sandbox, req: Request) -> Result<bytes::Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(ApiError::invalid_param(
            "The request body must be JSON: send the header Content-Type: application/json.",
        )
        .with_http(415));
    }
    let bytes = read_body(req.into_body(), sb.config.limits.max_body_bytes)
        .await
        .map_err(|e| ApiError::invalid_param(e).with_http(413))?;
    super::check_utf8(&bytes).map_err(ApiError::invalid_param)?;
    Ok(bytes)
}

/// A JSON body that may be left out (then every field takes its default); one that is there
/// must say it is JSON.
async fn optional_body<T: DeserializeOwned + Default>(
    sb: &Sandbox,
    req: Request,
) -> Result<T, ApiError> {
    let json = is_json(req.headers());
    let bytes = read_body(req.into_body(), sb.config.limits.max_body_bytes)
        .await
        .map_err(|e| bad(e).with_http(413))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !json {
        return Err(bad("send JSON with Content-Type: application/json").with_http(415));
    }
    super::check_utf8(&bytes).map_err(bad)?;
    parse(&bytes)
}

/// One page of `GET /_mynah/messages`: oldest first; `next` is the `before` of the page before
/// it, when there may be one.
#[derive(serde::Serialize)]
struct Page {
    messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Body of `POST /_mynah/users/{wa_id}/report`.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Report {
    phone_number_id: Option<String>,
}

/// Body of `POST /_mynah/webhooks/receivers/pause` and `/resume`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverUrl {
    url: String,
}

/// Query of `POST /_mynah/templates`.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct WabaQuery {
    waba_id: Option<String>,
}

/// Why a message ended (or stands) as it does: the rules it met, with their figures, and its
/// fate in one sentence.
fn explain(m: &Message) -> serde_json::Value {
    let dropped = m.timeline.iter().any(|e| e.event == "dropped");
    let failure = m
        .timeline
        .iter()
        .rev()
        .find(|e| e.event == "failed")
        .and_then(|e| e.detail.as_deref().map(str::to_string));
    let fate = match (m.status, &m.next) {
        _ if dropped => {
            "dropped: undelivered when its time-to-live ended (no webhook on the Cloud API)"
                .to_string()
        }
        (Some(mynah_wire::webhook::StatusKind::Failed), _) => {
            format!(
                "failed: {}",
                failure.unwrap_or_else(|| "see the timeline".to_string())
            )
        }
        (_, Some((step, at))) => format!(
            "{}; next: {step:?} at {at}",
            m.status
                .map(|s| format!("{} so far", s.as_str()))
                .unwrap_or_else(|| "accepted".to_string())
        ),
        (Some(s), None) => format!("{} (final)", s.as_str()),
        (None, None) => "received".to_string(),
    };
    let because: Vec<&str> = m
        .timeline
        .iter()
        .filter(|e| {
            matches!(
                e.event.as_str(),
                "rule_check"
                    | "rule"
                    | "time_to_live"
                    | "delivery_postponed"
                    | "read_receipt_suppressed"
            )
        })
        .filter_map(|e| e.detail.as_deref())
        .collect();
    serde_json::json!({
        "id": m.id,
        "direction": m.direction,
        "type": m.kind,
        "fate": fate,
        "because": because,
        "pricing": m.pricing,
        "timeline": m.timeline,
    })
}

fn clock(sb: &Sandbox) -> Response {
    json(&serde_json::json!({
        "mode": if sb.clock.is_manual() { "manual" } else { "system" },
        "now_ms": sb.clock.now(),
        "now": crate::clock::unix_seconds_string(sb.clock.now()),
        "pending_timers": sb.sched.len(),
    }))
}

/// A template's new quality score.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Quality {
    score: String,
}

/// A template decision: the status and, for a rejection, the reason.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: Option<f64>,
    ms: Option<Millis>,
}

/// Filters of `GET /_mynah/messages` (an unknown one is refused, not ignored).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct MessageQuery {
    phone_number_id: Option<String>,
    wa_id: Option<String>,
    direction: Option<Direction>,
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Template name (or id).
    template: Option<String>,
    /// The error code it failed with.
    error_code: Option<u32>,
    limit: Option<usize>,
    /// Paging cursor: the `next` of the previous page.
    before: Option<String>,
}

impl MessageQuery {
    fn matches(&self, m: &Message) -> bool {
        self.phone_number_id
            .as_ref()
            .is_none_or(|p| *p == m.phone_number_id)
            && self.wa_id.as_ref().is_none_or(|w| *w == m.wa_id)
            && self.direction.is_none_or(|d| d == m.direction)
            && self
                .kind
                .as_ref()
                .is_none_or(|k| k.as_str() == m.kind.as_str())
            && self
                .status
                .as_ref()
                .is_none_or(|s| m.status.map(|x| x.as_str()) == Some(s.as_str()))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WaitQuery {
    phone_number_id: Option<String>,
    wamid: Option<String>,
    status: Option<String>,
    field: Option<String>,
    wa_id: Option<String>,
    message_type: Option<String>,
    delivered: Option<bool>,
    after_seq: Option<u64>,
    before_seq: Option<u64>,
    url: Option<String>,
    count: Option<usize>,
    timeout_ms: Option<u64>,
    limit: Option<usize>,
}

impl WaitQuery {
    fn filter(&self, default_delivered: Option<bool>) -> AttemptFilter {
        AttemptFilter {
            phone_number_id: self.phone_number_id.clone(),
            wamid: self.wamid.clone(),
            status: self.status.clone(),
            field: self.field.clone(),
            wa_id: self.wa_id.clone(),
            message_type: self.message_type.clone(),
            delivered: self.delivered.or(default_delivered),
            after_seq: self.after_seq,
            before_seq: self.before_seq,
            url: self.url.clone(),
        }
    }
}

/// Body of `POST /_mynah/templates/{id}/pacing`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PacingDecision {
    verdict: crate::engine::Verdict,
}

/// Body of `POST /_mynah/numbers/{id}/quality`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberQuality {
    #[serde(default)]
    rating: Option<String>,
    #[serde(default)]
    tier: Option<serde_json::Value>,
}

/// Body of `POST /_mynah/numbers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNumber {
    phone_number_id: String,
    display_phone_number: String,
    api_key: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    waba_id: Option<String>,
    #[serde(default)]
    verified_name: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    webhook_headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    portfolio: Option<String>,
}

/// Body of `PUT /_mynah/users/{id}/username`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetUsername {
    username: Option<String>,
}

/// Body of `POST /_mynah/users/{id}/number`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPhone {
    new_wa_id: String,
}

/// A user as the control API shows them: the stored user, plus their business-scoped user id
/// in each portfolio (and the parent ids of enrolled portfolios).
#[derive(serde::Serialize)]
struct UserView<'a> {
    #[serde(flatten)]
    user: &'a crate::model::User,
    user_ids: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    parent_user_ids: std::collections::BTreeMap<String, String>,
}

fn user_view<'a>(world: &crate::engine::World, user: &'a crate::model::User) -> UserView<'a> {
    let (user_ids, parent_user_ids) = world.user_ids_view(&user.wa_id);
    UserView {
        user,
        user_ids,
        parent_user_ids,
    }
}

/// A list answer, `{"<name>": [...]}`, serialised straight from the items (raw message bodies keep
/// their bytes and key order).
#[derive(serde::Serialize)]
#[allow(non_camel_case_types)]
enum Listing<T> {
    faults(T),
    magic(T),
    templates(T),
    users(T),
    numbers(T),
    attempts(T),
    errors(T),
}
