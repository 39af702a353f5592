//! A checked, compiled run: its scenarios, their flows and steps with URLs parsed and
//! templates compiled once, the CSV data, the thresholds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::schedule::{End, Executor};
use crate::check::Check;
use crate::template::Template;
use crate::threshold::Threshold;

/// A URL known when the plan is made, parsed once.
#[derive(Debug, Clone)]
pub struct FixedUrl {
    pub text: String,
    pub uri: http::Uri,
    pub authority: String,
}

impl FixedUrl {
    pub fn parse(text: &str) -> Option<Self> {
        let uri: http::Uri = text.parse().ok()?;
        let authority = uri.authority()?.as_str().to_string();
        Some(Self {
            text: text.to_string(),
            uri,
            authority,
        })
    }
}

/// One request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// Index into [`Plan::names`].
    pub name: usize,
    pub method: http::Method,
    pub url: Template,
    /// The URL, when it has no placeholders.
    pub fixed_url: Option<FixedUrl>,
    pub headers: Vec<(http::HeaderName, Template)>,
    pub body: Option<Template>,
    pub captures: Vec<(String, String)>,
    pub checks: Vec<Check>,
    pub expect_status: Option<Vec<u16>>,
}

impl Step {
    /// Whether the answer must be parsed as JSON (for a check or a capture).
    pub fn needs_json(&self) -> bool {
        !self.captures.is_empty() || self.checks.iter().any(Check::needs_json)
    }

    pub fn status_ok(&self, status: u16) -> bool {
        match &self.expect_status {
            Some(list) => list.contains(&status),
            None => status < 400,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub weight: u32,
    pub steps: Vec<Step>,
}

/// CSV rows handed out round-robin, one per iteration.
#[derive(Debug)]
pub struct CsvData {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    next: AtomicUsize,
}

impl CsvData {
    /// Reads a CSV file with a header row and at least one row.
    pub fn read(path: &Path) -> Result<Self, String> {
        let shown = path.display().to_string();
        let mut reader =
            csv::Reader::from_path(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("{shown}: {e}"))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| format!("{shown} row {}: {e}", i + 2))?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err(format!("{shown} has a header but no rows"));
        }
        Ok(Self {
            columns,
            rows,
            next: AtomicUsize::new(0),
        })
    }

    pub fn next_row(&self) -> Option<&[String]> {
        if self.rows.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.rows.len();
        Some(&self.rows[i])
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub executor: Executor,
    pub start_after: Duration,
    /// Pause between a VU's iterations (closed model).
    pub think_time: Duration,
    pub setup: Vec<Step>,
    pub flows: Vec<Flow>,
    pub csv: Option<Arc<CsvData>>,
    /// Where this scenario's connections come from (the system's choice when `None`).
    pub source: Option<Sources>,
}

impl Scenario {
    /// A flow picked by weight.
    pub fn pick_flow(&self) -> Option<&Flow> {
        let total: u32 = self.flows.iter().map(|f| f.weight).sum();
        if total == 0 {
            return None;
        }
        let mut at = fastrand::u32(0..total);
        for f in &self.flows {
            if at < f.weight {
                return Some(f);
            }
            at -= f.weight;
        }
        self.flows.last()
    }
}

/// A checked, compiled run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    /// Request names, indexed by [`Step::name`].
    pub names: Vec<String>,
    /// For each name, the scenario it belongs to.
    pub name_scenario: Vec<usize>,
    pub vars: HashMap<String, String>,
    /// (scope, threshold): scope is `all`, `scenario:NAME` or `request:NAME`.
    pub thresholds: Vec<(String, Threshold)>,
    pub timeout: Duration,
    pub http2: bool,
}

impl Plan {
    /// How long the run lasts at most (start offsets included), if bounded by time.
    pub fn duration(&self) -> Option<Duration> {
        self.scenarios
            .iter()
            .map(|s| s.executor.duration().map(|d| d + s.start_after))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
    }

    /// The total request count, when every scenario is bounded by a count.
    pub fn request_budget(&self) -> Option<u64> {
        self.scenarios
            .iter()
            .map(|s| match s.executor {
                Executor::ConstantVus {
                    end: End::Iterations(n),
                    ..
                } => Some(n),
                _ => None,
            })
            .sum()
    }
}

/// Where a scenario's connections come from: one local address, or a range of IPv4 addresses
/// its VUs take in turn (VU `i` the `i mod n`-th), so a server that tells clients apart by
/// address sees one client, or a crowd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    first: std::net::IpAddr,
    /// How many addresses from `first` (1 for a single address).
    count: u32,
}

impl Sources {
    /// `127.0.0.2`, or `127.0.0.2-127.0.0.9` (IPv4, first to last, at most 65,536).
    pub fn parse(text: &str) -> Result<Self, String> {
        let one = |a: &str| {
            a.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("{a:?} is not an IP address (e.g. 127.0.0.2)"))
        };
        let Some((a, b)) = text.split_once('-') else {
            return Ok(Self {
                first: one(text)?,
                count: 1,
            });
        };
        match (one(a)?, one(b)?) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) if u32::from(a) <= u32::from(b) => {
                let count = u32::from(b) - u32::from(a) + 1;
                if count > 65_536 {
                    return Err(format!("{text:?} holds {count} addresses; at most 65536"));
                }
                Ok(Self {
                    first: a.into(),
                    count,
                })
            }
            (std::net::IpAddr::V4(_), std::net::IpAddr::V4(_)) => Err(format!(
                "{text:?}: the range's first address is above its last"
            )),
            _ => Err(format!("{text:?}: a range is of IPv4 addresses")),
        }
    }

    /// The address VU `index` connects from.
    pub fn for_vu(&self, index: u32) -> std::net::IpAddr {
        match self.first {
            std::net::IpAddr::V4(a) if self.count > 1 => {
                std::net::Ipv4Addr::from(u32::from(a) + index % self.count).into()
            }
            other => other,
        }
    }

    /// The first and the last address (the same for one address).
    pub fn ends(&self) -> [std::net::IpAddr; 2] {
        [self.first, self.for_vu(self.count - 1)]
    }
}
