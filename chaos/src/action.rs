//! Carrying out an action: a toxic on an edge's proxies (or the one in front of an
//! instance), a proxy closed or opened, an instance killed, restarted, started, paused or
//! resumed through the supervisor, a pause.

use gauntlet_demo_system::topology::{Edge, InstanceId};

use crate::activity::Kind;
use crate::error::ActivityError;
use crate::run::{Ctx, stopped};

/// Carries out an action; what was done, in words.
pub(crate) async fn act(ctx: &Ctx, kind: &Kind) -> Result<String, ActivityError> {
    let demo = &ctx.demo;
    let proxies = |edge: &Option<Edge>, i: &Option<InstanceId>| demo.proxies(edge.as_ref(), *i);
    match kind {
        Kind::AddToxic {
            edge,
            instance: i,
            toxic,
        } => {
            let names = proxies(edge, i)?;
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
            toxic,
        } => {
            let mut removed = Vec::new();
            for p in proxies(edge, i)? {
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
        | Kind::Restart { instance: i }
        | Kind::Start { instance: i }
        | Kind::Pause { instance: i }
        | Kind::Resume { instance: i } => {
            let done = demo.supervise(*i, kind.label()).await?;
            Ok(format!("{}: {}", done.id, done.done))
        }
        Kind::Sleep { duration } => {
            tokio::select! {
                _ = tokio::time::sleep(*duration) => {}
                _ = stopped(ctx.stop.clone()) => {}
            }
            Ok(format!("waited {}", humantime::format_duration(*duration)))
        }
        probe => Err(ActivityError::NotAnAction(probe.label())),
    }
}
