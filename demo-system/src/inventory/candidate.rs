//! Inventory's next version (`inventory-v2`, version `v2`): the same routes on the same
//! database, which `[canary.candidate]` (at start) or `PUT /admin/candidate` (while it
//! runs) can make slower or failing, so a canary release of a bad version can be watched
//! being caught. The faults sit inside the service's span, so the collector sees them as
//! the version's own latency and errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::server::{Inventory, own_routes};
use crate::platform::http::{ApiError, Body, body, service_router};
use crate::platform::outbox::feed_router;

/// How much worse the next version is than the current one; nothing by default.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateFaults {
    /// Added before every answer to a caller, in milliseconds.
    pub latency_ms: u64,
    /// Percent of callers' requests answered 503 instead, spread evenly (with 20, exactly
    /// one request in five).
    pub error_percent: u32,
}

impl CandidateFaults {
    pub fn check(&self) -> Result<(), String> {
        if self.error_percent > 100 {
            return Err(format!(
                "candidate.error_percent ({}) is a percentage: 0 to 100",
                self.error_percent
            ));
        }
        Ok(())
    }

    /// Whether the `n`-th request (0-based) fails: the running count of failures steps up
    /// by one exactly `error_percent` times in every hundred requests.
    fn fails(&self, n: u64) -> bool {
        let pct = u64::from(self.error_percent);
        (n + 1) * pct / 100 != n * pct / 100
    }
}

/// The faults in force, changed at run time by `PUT /admin/candidate`.
type Faults = Arc<RwLock<CandidateFaults>>;

fn current(faults: &Faults) -> CandidateFaults {
    *faults.read().unwrap_or_else(|e| e.into_inner())
}

/// The next version's router: inventory's, with `faults` on callers' routes (its feed,
/// health checks and `/admin/candidate` are left alone, so it stays listed, its events
/// flow and it can be made well again).
pub fn candidate_app(inventory: Inventory, faults: CandidateFaults) -> Router {
    let outbox = inventory.outbox().clone();
    let faults: Faults = Arc::new(RwLock::new(faults));
    let seen = Arc::new(AtomicU64::new(0));
    let in_force = faults.clone();
    let worse = axum::middleware::from_fn(move |req: Request, next: Next| {
        let (faults, seen) = (current(&in_force), seen.clone());
        async move { with_faults(faults, &seen, req, next).await }
    });
    let admin = Router::new()
        .route("/admin/candidate", get(show).put(change))
        .with_state(faults);
    let routes = own_routes(inventory)
        .route_layer(worse)
        .merge(admin)
        .merge(feed_router(outbox.clone()));
    service_router(routes, outbox.db().clone(), Vec::new())
}

async fn show(State(faults): State<Faults>) -> Json<CandidateFaults> {
    Json(current(&faults))
}

/// Replaces the faults in force (all of them: `{}` makes the version well again).
async fn change(
    State(faults): State<Faults>,
    asked: Body<CandidateFaults>,
) -> Result<Json<CandidateFaults>, ApiError> {
    let asked = body(asked)?;
    asked.check().map_err(ApiError::bad_request)?;
    *faults.write().unwrap_or_else(|e| e.into_inner()) = asked;
    tracing::info!(
        latency_ms = asked.latency_ms,
        error_percent = asked.error_percent,
        "candidate faults changed"
    );
    Ok(Json(asked))
}

async fn with_faults(
    faults: CandidateFaults,
    seen: &AtomicU64,
    req: Request,
    next: Next,
) -> Response {
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.fails(seen.fetch_add(1, Ordering::Relaxed)) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "inventory v2 failed this request on purpose ([canary.candidate] error_percent)",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_exactly_the_share_asked_for_and_spread_evenly() {
        let f = |error_percent| CandidateFaults {
            latency_ms: 0,
            error_percent,
        };
        for pct in [0, 1, 10, 20, 33, 100] {
            let failed = (0..1000).filter(|n| f(pct).fails(*n)).count();
            assert_eq!(failed, pct as usize * 10, "{pct} %");
        }
        let every_fifth: Vec<u64> = (0..20).filter(|n| f(20).fails(*n)).collect();
        assert_eq!(every_fifth, [4, 9, 14, 19]);
        assert!(f(101).check().is_err());
    }
}
