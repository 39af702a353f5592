//! Carrying out an action: a toxic on an edge's proxies (or the one in front of an
//! instance), a proxy closed or opened, an instance killed, restarted, started, paused or
//! resumed through the supervisor, or crashed from outside it, a pause, version weights set, a candidate made worse
//! or well, an automated canary rollout.

use gauntlet_demo_system::topology::{Edge, InstanceId};

use crate::Pattern;
use crate::activity::Kind;
use crate::canary::{RolloutPlan, roll_out};
use crate::error::ActivityError;
use crate::run::{Ctx, stopped};
use crate::target::TargetError;

/// The automated canary against the demo: judged unless the demo runs without
/// `canary-analysis` (the control). Where it ended is the action's outcome in words; it
/// fails only when the registry or the collector could not be used.
async fn canary(ctx: &Ctx, plan: &RolloutPlan) -> Result<String, ActivityError> {
    let mut plan = plan.clone();
    plan.judged &= !ctx.demo.handle.disabled.contains(&Pattern::CanaryAnalysis);
    let to = ctx.demo.canary_endpoints()?;
    let rollout = roll_out(&plan, &to, &|_| {}, ctx.stop.clone())
        .await
        .map_err(|e| ActivityError::Canary(e.to_string()))?;
    Ok(format!(
        "{}{rollout}",
        if plan.judged {
            ""
        } else {
            "unjudged (the demo runs without canary-analysis): "
        }
    ))
}

/// Carries out an action; what was done, in words.
pub(crate) async fn act(ctx: &Ctx, kind: &Kind) -> Result<String, ActivityError> {
    let demo = &ctx.demo;
    let proxies = |edge: &Option<Edge>, i: &Option<InstanceId>| demo.proxies(edge.as_ref(), *i);
    match kind {
        Kind::AddToxic {
            edge,
            instance: i,
            broker,
            toxic,
        } => {
            let names = match broker {
                true => demo.broker_proxies()?,
                false => proxies(edge, i)?,
            };
            for p in &names {
                demo.add_toxic(p, toxic).await?;
            }
            let t = toxic
                .clone()
                .into_toxic()
                .map_err(|e| ActivityError::Toxic(e.error))?;
            Ok(format!(
                "{} toxic {:?} ({} {}) on {}",
                t.kind,
                t.name,
                t.stream.as_str(),
                serde_json::to_string(&t.attributes).unwrap_or_default(),
                names.join(", ")
            ))
        }
        Kind::RemoveToxic {
            edge,
            instance: i,
            broker,
            toxic,
        } => {
            let mut removed = Vec::new();
            let names = match broker {
                true => demo.broker_proxies()?,
                false => proxies(edge, i)?,
            };
            for p in names {
                if demo.remove_toxic(&p, toxic).await? {
                    removed.push(p);
                }
            }
            Ok(if removed.is_empty() {
                format!("{toxic:?} was already gone from every proxy it was on")
            } else {
                format!("removed {toxic:?} from {}", removed.join(", "))
            })
        }
        Kind::DisableProxy { edge, instance: i } | Kind::EnableProxy { edge, instance: i } => {
            let enabled = matches!(kind, Kind::EnableProxy { .. });
            let names = proxies(edge, i)?;
            for p in &names {
                demo.set_enabled(p, enabled).await?;
            }
            Ok(format!(
                "{} {}",
                if enabled { "enabled" } else { "disabled" },
                names.join(", ")
            ))
        }
        Kind::Kill { instance: i }
        | Kind::Wipe { instance: i }
        | Kind::Restart { instance: i }
        | Kind::Start { instance: i }
        | Kind::Pause { instance: i }
        | Kind::Resume { instance: i } => {
            let done = demo.supervise(*i, kind.label()).await?;
            Ok(format!("{}: {}", done.id, done.done))
        }
        Kind::PauseLeader { service } => {
            // Without election (a control run) nobody holds the lock: the first instance
            // stands for the one the others would rely on.
            let (target, which) = match demo.leader_of(*service).await {
                Ok(leader) => (leader, format!("the leader of {service}")),
                Err(TargetError::NoInstance(why)) => (
                    InstanceId {
                        service: *service,
                        ordinal: 1,
                    },
                    format!("no leader ({why}): the first instance"),
                ),
                Err(e) => return Err(e.into()),
            };
            let done = demo.supervise(target, "pause").await?;
            Ok(format!("{}: {} ({which})", done.id, done.done))
        }
        Kind::Crash { instance } => {
            let pid = demo.crash(*instance).await?;
            Ok(format!(
                "{instance}: SIGKILL to process {pid}, not through the supervisor"
            ))
        }
        Kind::Sleep { duration } => {
            tokio::select! {
                _ = tokio::time::sleep(*duration) => {}
                _ = stopped(ctx.stop.clone()) => {}
            }
            Ok(format!("waited {}", humantime::format_duration(*duration)))
        }
        Kind::SetWeights { service, weights } => {
            let set = demo.set_weights(*service, weights).await?;
            Ok(format!("{service} weights: {set}"))
        }
        Kind::CandidateFaults { instance, faults } => {
            let set = demo.set_candidate_faults(*instance, faults).await?;
            Ok(format!(
                "{instance}: {} ms added, {} % failed",
                set.latency_ms, set.error_percent
            ))
        }
        Kind::Canary(plan) => canary(ctx, plan).await,
        probe => Err(ActivityError::NotAnAction(probe.label())),
    }
}
