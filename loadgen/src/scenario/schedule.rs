//! How iterations are started over time: k6's executors (closed-model VUs, open-model
//! arrival rates, and their ramps), and the schedule maths the engine asks of them.

use std::time::Duration;

/// A ramp stage: reach `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// How iterations are started.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// Closed model: `vus` loop as fast as answers come.
    ConstantVus { vus: u32, end: End },
    /// Closed model, the number of looping VUs following the stages.
    RampingVus { start_vus: u32, stages: Vec<Stage> },
    /// Open model: iterations start at `per_second`, whatever the answers do.
    ConstantArrivalRate {
        per_second: f64,
        duration: Duration,
        max_vus: u32,
    },
    /// Open model with a rate following the stages.
    RampingArrivalRate {
        start_per_second: f64,
        stages: Vec<Stage>,
        max_vus: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    After(Duration),
    Iterations(u64),
}

impl Executor {
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. }
        )
    }

    /// How many VUs (connections) may run at once.
    pub fn max_vus(&self) -> u32 {
        match self {
            Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|s| s.target.ceil() as u32)
                .max()
                .unwrap_or(0)
                .max(*start_vus),
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => *max_vus,
        }
    }

    /// How long it runs, if bounded by time.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Executor::ConstantVus {
                end: End::After(d), ..
            }
            | Executor::ConstantArrivalRate { duration: d, .. } => Some(*d),
            Executor::ConstantVus { .. } => None,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                Some(stages.iter().map(|s| s.duration).sum())
            }
        }
    }

    /// Ramping VUs: how many should be looping `t` after the start.
    pub fn active_vus(&self, t: Duration) -> u32 {
        match self {
            Executor::RampingVus { start_vus, stages } => {
                ramp_value(f64::from(*start_vus), stages, t).round() as u32
            }
            other => other.max_vus(),
        }
    }

    /// Open model: when iteration `i` (from 0) should start, after the start; `None` once
    /// past the end. Constant rate: `i / rate`. Ramps: the time at which the integral of
    /// the (piecewise linear) rate reaches `i`.
    pub fn intended_start(&self, i: u64) -> Option<Duration> {
        let n = i as f64;
        match self {
            Executor::ConstantArrivalRate {
                per_second,
                duration,
                ..
            } => {
                let t = Duration::from_secs_f64(n / per_second);
                (t < *duration).then_some(t)
            }
            Executor::RampingArrivalRate {
                start_per_second,
                stages,
                ..
            } => {
                let (mut before, mut elapsed, mut r0) = (0.0, 0.0, *start_per_second);
                for s in stages {
                    let d = s.duration.as_secs_f64();
                    let r1 = s.target;
                    let here = (r0 + r1) / 2.0 * d;
                    if n < before + here {
                        // Solve r0 t + (r1 - r0) t² / 2d = n - before for t in [0, d].
                        let need = n - before;
                        let a = (r1 - r0) / (2.0 * d);
                        let t = if a.abs() < 1e-12 {
                            need / r0
                        } else {
                            (-r0 + (r0 * r0 + 4.0 * a * need).max(0.0).sqrt()) / (2.0 * a)
                        };
                        return Some(Duration::from_secs_f64(elapsed + t.clamp(0.0, d)));
                    }
                    before += here;
                    elapsed += d;
                    r0 = r1;
                }
                None
            }
            _ => None,
        }
    }

    /// The intended rate `t` after the start (open model), for reporting.
    pub fn target_rate(&self) -> Option<f64> {
        match self {
            Executor::ConstantArrivalRate { per_second, .. } => Some(*per_second),
            Executor::RampingArrivalRate {
                start_per_second,
                stages,
                ..
            } => {
                let total: f64 = stages.iter().map(|s| s.duration.as_secs_f64()).sum();
                let mut sum = 0.0;
                let mut r0 = *start_per_second;
                for s in stages {
                    sum += (r0 + s.target) / 2.0 * s.duration.as_secs_f64();
                    r0 = s.target;
                }
                (total > 0.0).then(|| sum / total)
            }
            _ => None,
        }
    }
}

/// A piecewise linear ramp's value `t` after its start.
fn ramp_value(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut left = t;
    for s in stages {
        if left < s.duration {
            let f = left.as_secs_f64() / s.duration.as_secs_f64().max(1e-9);
            return from + (s.target - from) * f;
        }
        left -= s.duration;
        from = s.target;
    }
    from
}
