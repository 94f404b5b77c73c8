//! Template pacing (spec §7.4): marketing templates — and utility templates within 7 days of a
//! utility template's pause on the account — that are new, just unpaused or not `GREEN` send their
//! first `threshold` messages normally; later sends are answered
//! `held_for_quality_assessment` and wait. Good feedback (or the control API) releases them; bad
//! feedback pauses the template and fails every held message with 132015; without a verdict they
//! go out when `max_hold_ms` has passed.

use super::{Effects, World};
use crate::clock::Millis;
use crate::config::PacingVerdict;
use crate::model::Step;
use crate::scheduler::Timer;
use crate::store::Kind;
use crate::templates::PacingRound;
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::template::Category;

/// What pacing decided for one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// Goes out now.
    Normal,
    /// Waits for the verdict.
    Held,
}

/// A verdict on a paced template's held messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The held messages go out.
    Release,
    /// The template pauses; the held messages fail with 132015.
    Drop,
}

impl World {
    /// Messages held for quality assessment now, over every template.
    pub fn held_count(&self) -> usize {
        self.templates
            .all()
            .filter_map(|t| t.pacing.as_ref())
            .map(|r| r.held.len())
            .sum()
    }

    /// Whether this send of a template goes out or is held. `force_hold` holds it regardless of
    /// the threshold (the held-for-quality magic number).
    pub(super) fn pace(
        &mut self,
        template_id: &str,
        wamid: &str,
        force_hold: bool,
        now: Millis,
        checks: &mut Vec<String>,
        fx: &mut Effects,
    ) -> Pace {
        let Some(cfg) = self.cfg.rules.pacing.clone() else {
            return Pace::Normal;
        };
        let Some(t) = self.templates.get(template_id) else {
            return Pace::Normal;
        };
        let eligible = match t.category() {
            Category::Marketing => true,
            Category::Utility => {
                self.utility_paused_since(&t.waba_id, now - cfg.utility_after_pause_ms)
            }
            Category::Authentication => false,
        };
        if !eligible {
            checks.push(format!(
                "pacing: a {} template is not paced",
                t.category().lower()
            ));
            return Pace::Normal;
        }
        if t.quality == "GREEN" && t.pacing.is_none() && !force_hold {
            checks.push("pacing: the template's quality is GREEN: not paced".into());
            return Pace::Normal;
        }
        let quality = t.quality.clone();
        let Some(t) = self.templates.get_mut(template_id) else {
            return Pace::Normal;
        };
        let round = t.pacing.get_or_insert_with(|| PacingRound {
            started_at: now,
            ..PacingRound::default()
        });
        let pace = if round.sent < cfg.threshold && round.held.is_empty() && !force_hold {
            round.sent += 1;
            checks.push(format!(
                "pacing: quality {quality}: message {} of the first {} goes out normally",
                round.sent, cfg.threshold
            ));
            Pace::Normal
        } else {
            round.held.push(wamid.to_string());
            let release_at = *round.release_at.get_or_insert(now + cfg.max_hold_ms);
            if round.held.len() == 1 {
                fx.timers
                    .push((release_at, Timer::PacingRelease(template_id.to_string())));
            }
            checks.push(format!(
                "pacing: quality {quality}: {} sent normally, this one held for quality assessment (verdict: {:?}; released at {release_at} at the latest)",
                round.sent, cfg.verdict
            ));
            Pace::Held
        };
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        pace
    }

    /// Whether a utility template of the account was paused at or after `since`.
    fn utility_paused_since(&self, waba_id: &str, since: Millis) -> bool {
        self.templates.of(waba_id).any(|t| {
            t.category() == Category::Utility && t.last_paused_at.is_some_and(|p| p >= since)
        })
    }

    /// Applies the configured verdict if it can be reached now (after a hold, or a new signal).
    pub(super) fn judge_pacing(&mut self, template_id: &str, now: Millis, fx: &mut Effects) {
        let Some(cfg) = self.cfg.rules.pacing.clone() else {
            return;
        };
        let red_at = self.cfg.rules.quality.red_at;
        let Some(t) = self.templates.get(template_id) else {
            return;
        };
        let Some(round) = &t.pacing else {
            return;
        };
        if round.held.is_empty() {
            return;
        }
        let verdict = match cfg.verdict {
            PacingVerdict::Release => Some(Verdict::Release),
            PacingVerdict::Drop => Some(Verdict::Drop),
            PacingVerdict::Wait => None,
            PacingVerdict::Signals => {
                let (n, share) = t.signals.share_since(round.started_at);
                (n >= cfg.min_signals.max(1)).then_some(if share >= red_at {
                    Verdict::Drop
                } else {
                    Verdict::Release
                })
            }
        };
        if let Some(v) = verdict {
            fx.extend(self.settle_pacing(template_id, v, "the users' reactions", now));
        }
    }

    /// Applies a verdict: releasing sets the template's quality `GREEN` and sends the held
    /// messages on; dropping pauses the template (until unpaused by hand) and fails them with
    /// 132015.
    pub(super) fn settle_pacing(
        &mut self,
        template_id: &str,
        verdict: Verdict,
        why: &str,
        now: Millis,
    ) -> Effects {
        let mut fx = self.fx();
        match verdict {
            Verdict::Release => {
                let quality = self.templates.get(template_id).map(|t| t.quality.clone());
                if quality.as_deref() != Some("GREEN")
                    && let Ok((_, more)) = self.set_template_quality(template_id, "GREEN", now)
                {
                    fx.extend(more);
                }
                self.release_held(template_id, why, now, &mut fx);
            }
            Verdict::Drop => {
                if let Ok((_, more)) = self.pause_for_pacing(template_id, now) {
                    fx.extend(more);
                }
                // Pausing drops the held messages; a template that was not active drops them here.
                self.drop_held(template_id, why, now, &mut fx);
            }
        }
        fx
    }

    /// The time limit for held messages passed without a verdict: they go out.
    pub fn on_pacing_release(&mut self, template_id: &str, now: Millis) -> Effects {
        let mut fx = self.fx();
        let due = self
            .templates
            .get(template_id)
            .and_then(|t| t.pacing.as_ref())
            .and_then(|r| r.release_at)
            .is_some_and(|at| at <= now);
        if due {
            self.release_held(
                template_id,
                "the time limit for held messages",
                now,
                &mut fx,
            );
        }
        fx
    }

    /// Forces a verdict (control API).
    pub fn force_pacing(
        &mut self,
        template_id: &str,
        verdict: Verdict,
        now: Millis,
    ) -> Result<Effects, ApiError> {
        if self.templates.get(template_id).is_none() {
            return Err(ApiError::with_details(
                ErrorCode::MynahNotFound,
                format!("no template {template_id}"),
            ));
        }
        Ok(self.settle_pacing(
            template_id,
            verdict,
            "a verdict forced through the control API",
            now,
        ))
    }

    /// Ends the round and sends the held messages on their normal lifecycle.
    fn release_held(&mut self, template_id: &str, why: &str, now: Millis, fx: &mut Effects) {
        let Some(round) = self.end_round(template_id, fx) else {
            return;
        };
        let latency = self.cfg.latency.sent;
        for wamid in round.held {
            let sent_in = self.draw(latency);
            let Some(m) = self.messages.get_mut(wamid.as_str()) else {
                continue;
            };
            if !m.held {
                continue;
            }
            m.held = false;
            m.next = Some((Step::Send, now + sent_in));
            m.log(
                now,
                "released",
                Some(format!("held messages released: {why}")),
            );
            fx.timers
                .push((now + sent_in, Timer::Message(wamid.clone())));
            let m = m.clone();
            fx.put(Kind::Message, &wamid, &m);
        }
        self.note_rng(fx);
    }

    /// Ends the round and fails the held messages with 132015 (not charged).
    pub(super) fn drop_held(
        &mut self,
        template_id: &str,
        why: &str,
        now: Millis,
        fx: &mut Effects,
    ) {
        let Some(round) = self.end_round(template_id, fx) else {
            return;
        };
        let err = ApiError::new(ErrorCode::TemplatePaused);
        for wamid in round.held {
            let Some(m) = self.messages.get_mut(wamid.as_str()) else {
                continue;
            };
            if !m.held {
                continue;
            }
            m.held = false;
            m.pricing = None;
            m.conversation = None;
            m.fate = Some((err.code.code(), err.details.as_ref().into()));
            m.next = Some((Step::Send, now));
            m.log(
                now,
                "dropped",
                Some(format!("held message dropped: {why}; fails with 132015")),
            );
            fx.timers.push((now, Timer::Message(wamid.clone())));
            let m = m.clone();
            fx.put(Kind::Message, &wamid, &m);
        }
    }

    fn end_round(&mut self, template_id: &str, fx: &mut Effects) -> Option<PacingRound> {
        let t = self.templates.get_mut(template_id)?;
        let round = t.pacing.take()?;
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        Some(round)
    }

    /// Pauses a template for bad pacing feedback: quality `RED`, status `PAUSED` until it is
    /// unpaused by hand (spec §7.5: pacing pauses do not end by themselves).
    fn pause_for_pacing(
        &mut self,
        template_id: &str,
        now: Millis,
    ) -> Result<(crate::templates::Template, Effects), ApiError> {
        self.apply_quality(template_id, "RED", false, now)
    }
}
