//! The automated canary: a candidate version's share of a service's calls steps up (10 →
//! 25 → 50 → 100 %) while the [`judge`](crate::judge) passes each step's window, and drops
//! to 0 the moment a window fails. It lives in the tools, not the demo: it sets weights
//! through the registry's admin API and reads each version's requests from the collector
//! (`/api/v1/requests?version=`), so the services know nothing of it.
//!
//! Each step is judged once, at the end of its window (or later, when the candidate has not
//! served `min_requests` yet): judging the same growing window every second and stopping at
//! the first failure would give the A/A false-alarm rate once per look, not once per step.
//! The last step (100 %) is the promotion itself: with no baseline left there is nothing to
//! compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gauntlet_demo_system::registry::{RegistryClient, Weights};
use gauntlet_query_api::client::QueryClient;
use gauntlet_query_api::params::RequestsQuery;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::judge::{JudgeConfig, Judgement, Request, Verdict, judge};

/// A rollout: which service and versions, the steps, how long each is watched. In an
/// experiment file, everything but the names has the defaults below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    pub service: String,
    pub baseline: String,
    pub candidate: String,
    /// The candidate's share at each step, in percent, never falling, the last 100 (a step
    /// may repeat: `50,50,50,100` judges three windows at half the calls).
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    /// Each step is watched at least this long before it is judged (default 30s).
    #[serde(
        default = "default_window",
        deserialize_with = "crate::de_duration",
        serialize_with = "as_text"
    )]
    pub window: Duration,
    /// A step whose candidate served fewer requests than `min_requests` by then is
    /// inconclusive, and the rollout stops there, rolled back: nothing proved it good
    /// (default 5m).
    #[serde(
        default = "default_max_window",
        deserialize_with = "crate::de_duration",
        serialize_with = "as_text"
    )]
    pub max_window: Duration,
    /// The candidate's requests a step needs before it is judged (default 100: what the
    /// judge needs to catch 20 % failures in every window).
    #[serde(default = "default_min_requests")]
    pub min_requests: usize,
    /// Off (a control run): every step lasts `window` and the next follows, whatever the
    /// candidate does.
    #[serde(default = "default_judged")]
    pub judged: bool,
    #[serde(default)]
    pub judge: JudgeConfig,
}

pub const DEFAULT_STEPS: [u32; 4] = [10, 25, 50, 100];

fn default_steps() -> Vec<u32> {
    DEFAULT_STEPS.to_vec()
}
fn default_window() -> Duration {
    Duration::from_secs(30)
}
fn default_max_window() -> Duration {
    Duration::from_secs(300)
}
fn default_min_requests() -> usize {
    100
}
fn default_judged() -> bool {
    true
}

fn as_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl RolloutPlan {
    /// The plan's own sense: names given, versions apart, steps rising to 100, windows that
    /// fit.
    pub fn check(&self) -> Result<(), String> {
        if self.service.is_empty() || self.baseline.is_empty() || self.candidate.is_empty() {
            return Err("name the service, its baseline version and its candidate".into());
        }
        if self.baseline == self.candidate {
            return Err(format!(
                "the baseline and the candidate are both {:?}: a canary compares two versions",
                self.baseline
            ));
        }
        if self.steps.last() != Some(&100) {
            return Err(format!(
                "steps {:?} must end at 100 (the candidate takes every call)",
                self.steps
            ));
        }
        if self.steps.windows(2).any(|w| w[0] > w[1]) || self.steps.contains(&0) {
            return Err(format!(
                "steps {:?} must not fall, each above 0 percent",
                self.steps
            ));
        }
        if self.max_window < self.window {
            return Err(format!(
                "max_window ({}) is shorter than window ({})",
                humantime::format_duration(self.max_window),
                humantime::format_duration(self.window)
            ));
        }
        Ok(())
    }
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The candidate's share, percent.
    pub weight: u32,
    /// How long the step was watched.
    #[serde(deserialize_with = "crate::de_duration", serialize_with = "as_text")]
    pub watched: Duration,
    /// `None` for an unjudged step (a control run, or the final 100 %).
    pub judgement: Option<Judgement>,
}

/// Where the rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// The candidate takes every call.
    Promoted,
    /// The candidate takes none: a step failed, or stayed inconclusive.
    RolledBack { at: u32, reason: String },
    /// Stopped from outside (Ctrl-C): the weights were left as the last step set them.
    Interrupted { at: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub plan: RolloutPlan,
    pub steps: Vec<StepReport>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.plan;
        match &self.outcome {
            Outcome::Promoted => write!(f, "{} {} promoted to 100 %", p.service, p.candidate)?,
            Outcome::RolledBack { at, reason } => write!(
                f,
                "{} {} rolled back at {at} %: {reason}",
                p.service, p.candidate
            )?,
            Outcome::Interrupted { at } => {
                write!(f, "{} {} interrupted at {at} %", p.service, p.candidate)?
            }
        }
        for s in &self.steps {
            write!(f, "; {} % for {:.1}s", s.weight, s.watched.as_secs_f64())?;
            if let Some(j) = &s.judgement {
                write!(f, " {j}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("the registry refused the weights {weights}: {reason}")]
    Weights { weights: String, reason: String },
    #[error("cannot read {version}'s requests from the collector: {reason}")]
    Collector { version: String, reason: String },
}

/// What a rollout talks to.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub registry: RegistryClient,
    pub collector: QueryClient,
}

/// Rolls `plan.candidate` out step by step; `progress` hears of each step as it ends;
/// `stop` turning true ends it where it is.
pub async fn roll_out(
    plan: &RolloutPlan,
    to: &Endpoints,
    progress: &(dyn Fn(&StepReport) + Sync),
    mut stop: watch::Receiver<bool>,
) -> Result<Rollout, CanaryError> {
    let mut done = Rollout {
        plan: plan.clone(),
        steps: Vec::new(),
        outcome: Outcome::Promoted,
    };
    for &weight in &plan.steps {
        set_share(plan, &to.registry, weight).await?;
        let Some(step) = watch_step(plan, to, weight, &mut stop).await? else {
            done.outcome = Outcome::Interrupted { at: weight };
            return Ok(done);
        };
        progress(&step);
        let verdict = step.judgement.as_ref().map(|j| j.verdict);
        done.steps.push(step);
        match verdict {
            Some(Verdict::Fail) => {
                return roll_back(plan, to, done, weight, "the judge failed the step").await;
            }
            Some(Verdict::Inconclusive) => {
                let reason = format!(
                    "fewer than {} candidate requests within {}",
                    plan.min_requests,
                    humantime::format_duration(plan.max_window)
                );
                return roll_back(plan, to, done, weight, &reason).await;
            }
            Some(Verdict::Pass) | None => {}
        }
    }
    Ok(done)
}

async fn roll_back(
    plan: &RolloutPlan,
    to: &Endpoints,
    mut done: Rollout,
    at: u32,
    reason: &str,
) -> Result<Rollout, CanaryError> {
    set_share(plan, &to.registry, 0).await?;
    done.outcome = Outcome::RolledBack {
        at,
        reason: reason.to_string(),
    };
    Ok(done)
}

/// Gives the candidate `percent` of the calls and the baseline the rest.
async fn set_share(
    plan: &RolloutPlan,
    registry: &RegistryClient,
    percent: u32,
) -> Result<(), CanaryError> {
    let weights = Weights(
        [
            (plan.baseline.clone(), 100 - percent.min(100)),
            (plan.candidate.clone(), percent.min(100)),
        ]
        .into_iter()
        .collect(),
    );
    tracing::debug!(service = %plan.service, %weights, "canary step");
    registry
        .set_weights(&plan.service, &weights)
        .await
        .map(drop)
        .map_err(|e| CanaryError::Weights {
            weights: weights.to_string(),
            reason: e.to_string(),
        })
}

/// Watches one step until it can be judged (or, unjudged, for `window`); `None` when
/// stopped.
async fn watch_step(
    plan: &RolloutPlan,
    to: &Endpoints,
    weight: u32,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<StepReport>, CanaryError> {
    let began = tokio::time::Instant::now();
    let since = SystemTime::now();
    if weight >= 100 {
        // The promotion: nothing left to compare with, nothing to wait for.
        return Ok(Some(StepReport {
            weight,
            watched: Duration::ZERO,
            judgement: None,
        }));
    }
    let judged = plan.judged;
    let mut wait = plan.window;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
        let watched = began.elapsed();
        if !judged {
            return Ok(Some(StepReport {
                weight,
                watched,
                judgement: None,
            }));
        }
        let j = judge_since(plan, &to.collector, since).await?;
        let enough = j.candidate_requests >= plan.min_requests;
        if enough || watched >= plan.max_window {
            return Ok(Some(StepReport {
                weight,
                watched,
                judgement: Some(if enough {
                    j
                } else {
                    Judgement {
                        verdict: Verdict::Inconclusive,
                        ..j
                    }
                }),
            }));
        }
        // Not enough yet: look again soon, never past the longest window.
        wait = Duration::from_secs(1).min(plan.max_window.saturating_sub(watched));
    }
}

/// Both versions' requests since `since`, judged.
async fn judge_since(
    plan: &RolloutPlan,
    collector: &QueryClient,
    since: SystemTime,
) -> Result<Judgement, CanaryError> {
    let start_ns = since
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let baseline = requests(collector, plan, &plan.baseline, start_ns).await?;
    let candidate = requests(collector, plan, &plan.candidate, start_ns).await?;
    Ok(judge(&baseline, &candidate, &plan.judge))
}

async fn requests(
    collector: &QueryClient,
    plan: &RolloutPlan,
    version: &str,
    start_ns: i64,
) -> Result<Vec<Request>, CanaryError> {
    let served = collector
        .requests(&RequestsQuery {
            service: plan.service.clone(),
            version: Some(version.to_string()),
            start_ns,
            limit: Some(RequestsQuery::MAX_LIMIT),
            ..Default::default()
        })
        .await
        .map_err(|e| CanaryError::Collector {
            version: version.to_string(),
            reason: e.to_string(),
        })?;
    Ok(served
        .requests
        .iter()
        .map(|r| Request {
            latency_ms: r.duration_us as f64 / 1000.0,
            failed: r.error,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RolloutPlan {
        RolloutPlan {
            service: "inventory".into(),
            baseline: "v1".into(),
            candidate: "v2".into(),
            steps: vec![10, 25, 50, 100],
            window: Duration::from_secs(5),
            max_window: Duration::from_secs(20),
            min_requests: 20,
            judged: true,
            judge: JudgeConfig::default(),
        }
    }

    #[test]
    fn plans_that_make_no_sense_are_refused_with_the_reason() {
        assert_eq!(plan().check(), Ok(()));
        type Spoil = fn(&mut RolloutPlan);
        let cases: [(Spoil, &str); 5] = [
            (|p| p.candidate = "v1".into(), "both \"v1\""),
            (|p| p.steps = vec![10, 25, 50], "must end at 100"),
            (|p| p.steps = vec![50, 25, 100], "must not fall"),
            (|p| p.steps = vec![0, 100], "must not fall"),
            (
                |p| p.max_window = Duration::from_secs(1),
                "shorter than window",
            ),
        ];
        for (spoil, says) in cases {
            let mut p = plan();
            spoil(&mut p);
            let err = p.check().expect_err(says);
            assert!(err.contains(says), "{err}");
        }
    }
}
