//! Shadow deployment: the gateway mirrors a share of its product-list reads to inventory's
//! candidate version (`inventory-shadow`) and compares the answers, never using them.
//!
//! Diffy's method: each mirrored read is also asked of a second primary, so the differences
//! between two primaries (stock moving while orders are placed) are the noise, and a field
//! is reported only when the candidate differs from the primary clearly more often than the
//! primaries differ from each other. Ignore rules drop fields nobody wants compared.
//!
//! Isolation (`--disable shadow-isolation` turns it off): the comparison runs after the
//! client has its answer, in a task of its own, with its own few connections (a mirror that
//! finds them all busy is skipped, not queued), so a slow, failing or garbled shadow never
//! changes what the client gets or when. Mirrored calls carry `X-Gauntlet-Mirror: 1`,
//! which their server spans record (`shadow.mirror = true`); the comparison is a `shadow
//! compare` span with the fields that differed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::inventory::{InventoryClient, Product};
use crate::platform::lock;

/// The header that marks a mirrored request.
pub const MIRROR_HEADER: &str = "x-gauntlet-mirror";

/// `[gateway.shadow]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowSettings {
    /// Share of product-list reads mirrored (0.0-1.0).
    pub share: f64,
    /// Compare after answering, in a task with its own connections; `false` (`--disable
    /// shadow-isolation`): the client's answer waits for the comparison.
    pub isolation: bool,
    /// Mirrored comparisons in flight at most; more are skipped.
    pub max_in_flight: usize,
    /// How long the candidate and the second primary may take.
    pub timeout_ms: u64,
    /// Field paths never compared, `*` for any array index: `/*/stock`.
    pub ignore: Vec<String>,
    /// A field is reported when the candidate differs on it this much more often (0.0-1.0)
    /// than the two primaries do...
    pub noise_margin: f64,
    /// ...over at least this many comparisons.
    pub min_comparisons: u64,
}

impl Default for ShadowSettings {
    fn default() -> Self {
        Self {
            share: 1.0,
            isolation: true,
            max_in_flight: 4,
            timeout_ms: 5_000,
            ignore: Vec::new(),
            noise_margin: 0.2,
            min_comparisons: 5,
        }
    }
}

impl ShadowSettings {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.share) || !(0.0..=1.0).contains(&self.noise_margin) {
            return Err("[gateway.shadow] share and noise_margin are shares: 0.0 to 1.0".into());
        }
        if let Some(bad) = self.ignore.iter().find(|p| !p.starts_with('/')) {
            return Err(format!(
                "[gateway.shadow] ignore: {bad:?} is not a field path (e.g. \"/*/stock\")"
            ));
        }
        Ok(())
    }
}

/// One field's comparisons so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FieldDiff {
    /// The field's path, `*` for any array index: `/*/price_cents`.
    pub field: String,
    /// Comparisons in which the candidate's answer differed from the primary's here.
    pub candidate: u64,
    /// Comparisons in which the second primary's answer differed from the first's here.
    pub noise: u64,
    /// Differs clearly more often than the noise: a real difference of the candidate.
    pub reported: bool,
}

/// `GET /admin/shadow`: what mirroring has found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShadowReport {
    /// Reads mirrored and compared.
    pub compared: u64,
    /// Reads that would have been mirrored, skipped because every mirror slot was busy.
    pub skipped: u64,
    /// Mirrors whose candidate failed or timed out (nothing to compare).
    pub candidate_failures: u64,
    /// Mirrors whose second primary failed (nothing to tell noise by).
    pub secondary_failures: u64,
    /// Every field that differed at least once, by path.
    pub fields: Vec<FieldDiff>,
    /// The reported fields' paths.
    pub differences: Vec<String>,
}

/// The gateway's mirror: the candidate, a second primary, and what they have shown.
#[derive(Debug)]
pub struct Mirror {
    settings: ShadowSettings,
    /// The candidate (through its own connections).
    candidate: InventoryClient,
    /// Inventory again, for the noise: a client of its own, so its calls are not counted
    /// as the gateway's calls to inventory.
    secondary: InventoryClient,
    slots: std::sync::Arc<Semaphore>,
    reads: AtomicU64,
    stats: Mutex<Stats>,
    /// The comparisons in flight, joined when the gateway stops.
    tasks: TaskTracker,
}

#[derive(Debug, Default)]
struct Stats {
    compared: u64,
    skipped: u64,
    candidate_failures: u64,
    secondary_failures: u64,
    /// field → (candidate differed, primaries differed)
    fields: BTreeMap<String, (u64, u64)>,
}

impl Mirror {
    pub fn new(
        settings: ShadowSettings,
        candidate: InventoryClient,
        secondary: InventoryClient,
    ) -> Self {
        let mark =
            |c: InventoryClient| InventoryClient::new(c.http().with_header(MIRROR_HEADER, "1"));
        Self {
            slots: std::sync::Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            candidate: mark(candidate),
            secondary: mark(secondary),
            reads: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
            tasks: TaskTracker::new(),
        }
    }

    /// Waits for the comparisons in flight (each bounded by the timeout).
    pub async fn finish(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Whether this read is one of the mirrored share (every n-th, spread evenly).
    fn sampled(&self) -> bool {
        let n = self.reads.fetch_add(1, Ordering::Relaxed) as f64;
        let share = self.settings.share;
        ((n + 1.0) * share).floor() > (n * share).floor()
    }

    /// Mirrors one read the client has been answered `primary` to. Isolated: returns at
    /// once, the comparison runs in a task of its own; else it runs here.
    pub async fn mirror(self: &std::sync::Arc<Self>, primary: &[Product]) {
        if !self.sampled() {
            return;
        }
        let span = tracing::info_span!(
            "shadow compare",
            otel.name = "shadow compare",
            otel.kind = "internal",
            shadow.mirror = true,
        );
        let primary = serde_json::to_value(primary).unwrap_or(Value::Null);
        if !self.settings.isolation {
            self.compare(primary).instrument(span).await;
            return;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            lock(&self.stats).skipped += 1;
            return;
        };
        let me = self.clone();
        self.tasks.spawn(
            async move {
                me.compare(primary).await;
                drop(permit);
            }
            .instrument(span),
        );
    }

    async fn compare(&self, primary: Value) {
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let (candidate, secondary) = tokio::join!(
            tokio::time::timeout(timeout, self.candidate.products()),
            tokio::time::timeout(timeout, self.secondary.products()),
        );
        let span = tracing::Span::current();
        let Ok(Ok(candidate)) = candidate else {
            lock(&self.stats).candidate_failures += 1;
            tracing::warn!("the shadow did not answer a mirrored read");
            return;
        };
        let Ok(Ok(secondary)) = secondary else {
            lock(&self.stats).secondary_failures += 1;
            return;
        };
        let as_json = |v: &[Product]| serde_json::to_value(v).unwrap_or(Value::Null);
        let ignored = |f: &String| self.settings.ignore.contains(f);
        let mut against_candidate = differing_fields(&primary, &as_json(&candidate));
        let mut noise = differing_fields(&primary, &as_json(&secondary));
        against_candidate.retain(|f| !ignored(f));
        noise.retain(|f| !ignored(f));
        let beyond_noise: Vec<&str> = against_candidate
            .difference(&noise)
            .map(String::as_str)
            .collect();
        span.set_attribute("shadow.differences", beyond_noise.join(","));
        span.set_attribute(
            "shadow.noise",
            noise.iter().cloned().collect::<Vec<_>>().join(","),
        );
        let mut stats = lock(&self.stats);
        stats.compared += 1;
        for f in &against_candidate {
            stats.fields.entry(f.clone()).or_default().0 += 1;
        }
        for f in &noise {
            stats.fields.entry(f.clone()).or_default().1 += 1;
        }
    }

    pub fn report(&self) -> ShadowReport {
        let stats = lock(&self.stats);
        let s = &self.settings;
        let n = stats.compared.max(1) as f64;
        let fields: Vec<FieldDiff> = stats
            .fields
            .iter()
            .map(|(field, &(candidate, noise))| FieldDiff {
                field: field.clone(),
                candidate,
                noise,
                reported: stats.compared >= s.min_comparisons
                    && candidate as f64 / n > noise as f64 / n + s.noise_margin,
            })
            .collect();
        ShadowReport {
            compared: stats.compared,
            skipped: stats.skipped,
            candidate_failures: stats.candidate_failures,
            secondary_failures: stats.secondary_failures,
            differences: fields
                .iter()
                .filter(|f| f.reported)
                .map(|f| f.field.clone())
                .collect(),
            fields,
        }
    }
}

/// The paths at which two JSON documents differ, array indices written `*`: a field
/// missing on one side differs, as does any change of value or type.
pub fn differing_fields(a: &Value, b: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    walk(a, b, String::new(), &mut out);
    out
}

fn walk(a: &Value, b: &Value, path: String, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let child = format!("{path}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => walk(l, r, child, out),
                    _ => {
                        out.insert(child);
                    }
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            let child = format!("{path}/*");
            if x.len() != y.len() {
                out.insert(path.clone());
            }
            for (l, r) in x.iter().zip(y) {
                walk(l, r, child.clone(), out);
            }
        }
        (l, r) if l != r => {
            out.insert(if path.is_empty() { "/".into() } else { path });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_are_named_by_field_with_any_index() {
        let a = json!([{"sku": "A", "price_cents": 100, "stock": 5}, {"sku": "B", "price_cents": 200, "stock": 1}]);
        let b = json!([{"sku": "A", "price_cents": 101, "stock": 5}, {"sku": "B", "price_cents": 201, "stock": 0, "new": true}]);
        let found: Vec<String> = differing_fields(&a, &b).into_iter().collect();
        assert_eq!(found, ["/*/new", "/*/price_cents", "/*/stock"]);
        assert!(differing_fields(&a, &a).is_empty());
        // A shorter list differs at the list itself.
        assert_eq!(
            differing_fields(&json!({"l": [1, 2]}), &json!({"l": [1]})),
            BTreeSet::from(["/l".to_string()])
        );
        assert_eq!(
            differing_fields(&json!(1), &json!("1")),
            BTreeSet::from(["/".to_string()])
        );
    }

    /// Diffy's rule: stock differs between the candidate and the primary as often as
    /// between two primaries (orders move it): noise, not reported. Prices differ only
    /// for the candidate: reported.
    #[test]
    fn only_differences_beyond_the_noise_are_reported() {
        let settings = ShadowSettings::default();
        let stats = Stats {
            compared: 10,
            fields: BTreeMap::from([
                ("/*/price_cents".to_string(), (10, 0)),
                ("/*/stock".to_string(), (4, 4)),
                ("/*/name".to_string(), (2, 0)),
            ]),
            ..Stats::default()
        };
        let mirror = Mirror {
            slots: std::sync::Arc::new(Semaphore::new(1)),
            settings,
            candidate: unused_client(),
            secondary: unused_client(),
            reads: AtomicU64::new(0),
            stats: Mutex::new(stats),
            tasks: TaskTracker::new(),
        };
        let report = mirror.report();
        // 20 % of comparisons is not clearly more than no noise at the 0.2 margin.
        assert_eq!(report.differences, ["/*/price_cents"]);
        let stock = report.fields.iter().find(|f| f.field == "/*/stock");
        assert_eq!(
            stock.map(|f| (f.candidate, f.noise, f.reported)),
            Some((4, 4, false))
        );
    }

    #[test]
    fn the_share_mirrors_every_nth_read_and_bad_settings_are_refused() {
        let mirror = |share: f64| Mirror {
            slots: std::sync::Arc::new(Semaphore::new(1)),
            settings: ShadowSettings {
                share,
                ..ShadowSettings::default()
            },
            candidate: unused_client(),
            secondary: unused_client(),
            reads: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
            tasks: TaskTracker::new(),
        };
        for (share, of_100) in [(1.0, 100), (0.25, 25), (0.0, 0), (0.1, 10)] {
            let m = mirror(share);
            assert_eq!((0..100).filter(|_| m.sampled()).count(), of_100, "{share}");
        }
        for bad in [
            ShadowSettings {
                share: 1.5,
                ..ShadowSettings::default()
            },
            ShadowSettings {
                ignore: vec!["stock".into()],
                ..ShadowSettings::default()
            },
        ] {
            assert!(bad.check().is_err());
        }
    }

    fn unused_client() -> InventoryClient {
        let config = crate::platform::resilience::ResilienceConfig::default();
        InventoryClient::new(
            crate::platform::client::HttpClient::at("inventory", "http://127.0.0.1:9", &config)
                .expect("client"),
        )
    }
}
