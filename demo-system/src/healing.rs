//! Self-healing, as Kubernetes' restart policy and liveness probe do it: the supervisor
//! starts an instance again when it exits on its own (a crash, or a kill from outside the
//! supervisor) or fails its liveness check `liveness_failures` times in a row, after a
//! backoff that doubles with each crash in a row and starts over once an instance has
//! stayed up for `backoff_reset_ms`. What the supervisor's API does is an operator's
//! decision and is left alone: a killed instance stays down, a paused one is not checked.
//! The settings and the backoff live here; the watching is the supervisor's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HealingConfig {
    /// false (`--disable self-healing`): a crashed instance stays down until an operator
    /// starts it.
    pub self_healing: bool,
    /// How often each running instance's exit and liveness are checked.
    pub liveness_interval_ms: u64,
    /// How long one liveness check may take.
    pub liveness_timeout_ms: u64,
    /// Failed liveness checks in a row before the instance is killed and started again.
    pub liveness_failures: u32,
    /// The wait before the first restart of a crash run; doubled for each crash in a row.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// An instance up this long has its crash run forgotten.
    pub backoff_reset_ms: u64,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            self_healing: true,
            liveness_interval_ms: 1000,
            liveness_timeout_ms: 1000,
            liveness_failures: 3,
            backoff_initial_ms: 250,
            backoff_max_ms: 30_000,
            backoff_reset_ms: 60_000,
        }
    }
}

impl HealingConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.liveness_interval_ms == 0 || self.liveness_timeout_ms == 0 {
            return Err("liveness_interval_ms and liveness_timeout_ms must be above 0".into());
        }
        if self.liveness_failures == 0 {
            return Err("liveness_failures must be at least 1".into());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err(format!(
                "backoff_initial_ms ({}) must be above 0 and at most backoff_max_ms ({})",
                self.backoff_initial_ms, self.backoff_max_ms
            ));
        }
        Ok(())
    }

    /// The wait before restarting after the `crashes`-th crash in a row (1-based).
    pub fn backoff(&self, crashes: u32) -> Duration {
        let doubled = self
            .backoff_initial_ms
            .saturating_mul(1u64 << crashes.saturating_sub(1).min(20));
        Duration::from_millis(doubled.min(self.backoff_max_ms))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.liveness_interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.liveness_timeout_ms)
    }

    pub fn reset_after(&self) -> Duration {
        Duration::from_millis(self.backoff_reset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let c = HealingConfig::default();
        let waits: Vec<u64> = (1..=9).map(|n| c.backoff(n).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]
        );
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let bad = [
            HealingConfig {
                liveness_failures: 0,
                ..Default::default()
            },
            HealingConfig {
                backoff_max_ms: 10,
                ..Default::default()
            },
            HealingConfig {
                liveness_interval_ms: 0,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.check().is_err(), "{c:?}");
        }
        assert_eq!(HealingConfig::default().check(), Ok(()));
    }
}
