//! Version weights: the share of a service's calls each version of it gets. A canary
//! release gives a new version a small share and raises it; a blue-green switch gives one
//! version all of it at once, and gives it back. The registry keeps the weights (set at
//! start from `[canary]`, changed at run time through `PUT /admin/weights/{service}`);
//! each caller's discovery reads them with the instances and spreads its calls with
//! [`SmoothWeights`], so the services themselves know nothing of releases.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Version → percent of the calls. Empty: every instance alike, whatever its version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Weights(pub BTreeMap<String, u32>);

impl Weights {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The share of `version`, 0 if not listed.
    pub fn of(&self, version: &str) -> u32 {
        self.0.get(version).copied().unwrap_or(0)
    }

    /// Checks that the weights add up to 100 and that every version given calls is one
    /// that `running` names (a version at 0 % need not run: rolling a canary back to 0
    /// must work even after its instance is gone). `service` is for the message.
    pub fn check(&self, service: &str, running: &BTreeSet<String>) -> Result<(), String> {
        if self.0.is_empty() {
            return Err(format!(
                "give {service} at least one version's weight (or clear its weights to \
                 spread calls over every instance)"
            ));
        }
        let total: u64 = self.0.values().map(|w| u64::from(*w)).sum();
        if total != 100 {
            return Err(format!(
                "the weights of {service} add up to {total} %, not 100 % ({self})"
            ));
        }
        let unrun: Vec<&str> = self
            .0
            .iter()
            .filter(|(v, w)| **w > 0 && !running.contains(*v))
            .map(|(v, _)| v.as_str())
            .collect();
        if !unrun.is_empty() {
            let running: Vec<&str> = running.iter().map(String::as_str).collect();
            return Err(format!(
                "no instance of {service} runs version {} (running: {})",
                unrun.join(", "),
                if running.is_empty() {
                    "none".to_string()
                } else {
                    running.join(", ")
                }
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(v, w)| format!("{v} {w} %")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Smooth weighted round-robin (nginx's): deterministic, and spread out: with 90/10 the
/// candidate gets exactly 10 calls of every 100, one in every ten in a row, rather than
/// a random share that a short window would mismeasure.
#[derive(Debug, Default)]
pub struct SmoothWeights {
    current: HashMap<String, i64>,
}

impl SmoothWeights {
    /// The version for the next call, among `available` (the versions with a usable
    /// instance) given calls by `weights`; `None` when no such version has one.
    pub fn pick(&mut self, weights: &Weights, available: &BTreeSet<&str>) -> Option<String> {
        let candidates: Vec<(&str, i64)> = weights
            .0
            .iter()
            .filter(|(v, w)| **w > 0 && available.contains(v.as_str()))
            .map(|(v, w)| (v.as_str(), i64::from(*w)))
            .collect();
        let total: i64 = candidates.iter().map(|(_, w)| w).sum();
        let mut best: Option<(&str, i64)> = None;
        for (version, weight) in &candidates {
            let c = self.current.entry((*version).to_string()).or_insert(0);
            *c += weight;
            if best.is_none_or(|(_, b)| *c > b) {
                best = Some((version, *c));
            }
        }
        let (chosen, _) = best?;
        if let Some(c) = self.current.get_mut(chosen) {
            *c -= total;
        }
        Some(chosen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(pairs: &[(&str, u32)]) -> Weights {
        Weights(pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect())
    }

    fn running(versions: &[&str]) -> BTreeSet<String> {
        versions.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn weights_that_do_not_add_up_or_name_a_version_nobody_runs_are_refused() {
        let both = running(&["v1", "v2"]);
        assert!(
            weights(&[("v1", 90), ("v2", 10)])
                .check("inventory", &both)
                .is_ok()
        );
        let err = weights(&[("v1", 90), ("v2", 20)])
            .check("inventory", &both)
            .expect_err("110 %");
        assert!(err.contains("add up to 110 %, not 100 %"), "{err}");
        let err = weights(&[("v1", 50), ("v3", 50)])
            .check("inventory", &both)
            .expect_err("v3 runs nowhere");
        assert!(err.contains("runs version v3 (running: v1, v2)"), "{err}");
        let err = Weights::default()
            .check("inventory", &both)
            .expect_err("empty");
        assert!(err.contains("at least one version"), "{err}");
        // Rolling back to 0 % works when the candidate is already gone.
        assert!(
            weights(&[("v1", 100), ("v2", 0)])
                .check("inventory", &running(&["v1"]))
                .is_ok()
        );
    }

    fn picks(w: &Weights, available: &[&str], n: usize) -> BTreeMap<String, usize> {
        let available: BTreeSet<&str> = available.iter().copied().collect();
        let mut s = SmoothWeights::default();
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let v = s.pick(w, &available).expect("a version");
            *counts.entry(v).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn each_version_gets_exactly_its_share_spread_out() {
        let w = weights(&[("v1", 90), ("v2", 10)]);
        let counts = picks(&w, &["v1", "v2"], 100);
        assert_eq!(counts.get("v1"), Some(&90));
        assert_eq!(counts.get("v2"), Some(&10));
        // Spread out: every run of ten calls has the candidate once.
        let available: BTreeSet<&str> = ["v1", "v2"].into();
        let mut s = SmoothWeights::default();
        let seq: Vec<String> = (0..20)
            .map(|_| s.pick(&w, &available).expect("v"))
            .collect();
        for chunk in seq.chunks(10) {
            assert_eq!(chunk.iter().filter(|v| *v == "v2").count(), 1, "{seq:?}");
        }
    }

    #[test]
    fn a_version_without_a_usable_instance_or_weight_gets_nothing() {
        let w = weights(&[("v1", 90), ("v2", 10)]);
        assert_eq!(picks(&w, &["v1"], 50).get("v2"), None);
        let green = weights(&[("v1", 0), ("v2", 100)]);
        assert_eq!(picks(&green, &["v1", "v2"], 50).get("v1"), None);
        let mut s = SmoothWeights::default();
        assert_eq!(s.pick(&green, &["v1"].into()), None, "no usable v2");
    }
}
