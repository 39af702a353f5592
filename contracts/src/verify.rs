//! Provider verification with `pact_verifier`, the reference implementation: every
//! interaction of the chosen pacts is replayed against the running provider (HTTP requests
//! to its base URL, message requests to its message endpoint), after Pact's state-change
//! call. The report keeps, per interaction, each mismatch with the path it names.

use std::sync::Arc;
use std::time::Duration;

use pact_verifier::callback_executors::NullRequestFilterExecutor;
use pact_verifier::pact_broker::ConsumerVersionSelector;
use pact_verifier::{
    FilterInfo, MismatchResult, PactSource, ProviderInfo, ProviderTransport, PublishOptions,
    VerificationOptions,
};

use crate::states::StateChanges;
use crate::{ContractsError, PactFile};

/// Where Gauntlet's demo services take state changes and message requests (the defaults).
pub use gauntlet_demo_system::platform::provider_states::{MESSAGES_PATH, STATE_CHANGE_PATH};

/// What to verify, against what.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// The provider's name, as the pacts write it.
    pub provider: String,
    /// The running provider, e.g. `http://127.0.0.1:8300`.
    pub base_url: String,
    /// The pacts naming the provider (see [`crate::pacts::for_provider`]); ignored when
    /// `broker` is set.
    pub pacts: Vec<PactFile>,
    /// Fetch the pacts from a Pact Broker instead ("pacts for verification").
    pub broker: Option<BrokerSource>,
    /// Publish the results to the broker as this provider version.
    pub publish: Option<Publish>,
    /// Where provider states are set up; `None` for `{base_url}/_pact/provider-states`.
    pub state_change_url: Option<String>,
    /// Where message pacts' requests go, relative to the base URL.
    pub messages_path: String,
    /// Per request and per state change.
    pub timeout: Duration,
    /// ANSI colours in the verifier's own output.
    pub coloured: bool,
}

impl VerifyConfig {
    pub fn new(provider: &str, base_url: &str, pacts: Vec<PactFile>) -> Self {
        Self {
            provider: provider.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            pacts,
            broker: None,
            publish: None,
            state_change_url: None,
            messages_path: MESSAGES_PATH.to_string(),
            timeout: Duration::from_secs(10),
            coloured: false,
        }
    }
}

/// Which pacts a broker is to hand out.
#[derive(Debug, Clone)]
pub struct BrokerSource {
    pub url: String,
    /// Consumer version selectors (`mainBranch`, `deployedOrReleased`, `branch=...`, ...).
    pub selectors: Vec<crate::broker::select::Selector>,
    /// Mark pacts no version of this provider has verified yet as pending: their failure
    /// is reported but does not fail the verification.
    pub enable_pending: bool,
    /// Also verify work-in-progress pacts published since this date (`2026-11-01`).
    pub include_wip_since: Option<String>,
    /// The provider's branch (for pending, WIP and `matchingBranch`).
    pub provider_branch: Option<String>,
    /// How to log in to the broker (fetching pacts and publishing results).
    pub login: crate::broker::client::BrokerLogin,
}

/// Where verification results go.
#[derive(Debug, Clone)]
pub struct Publish {
    pub provider_version: String,
    pub branch: Option<String>,
}

/// How one interaction fared.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionOutcome {
    pub consumer: String,
    pub description: String,
    pub provider_states: Vec<String>,
    /// Empty when it passed; else each mismatch (`$.items[0].sku -> ...`) or the error.
    pub problems: Vec<String>,
    pub duration: Duration,
    /// A pending pact's interaction: its failure does not fail the verification.
    pub pending: bool,
}

impl InteractionOutcome {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The verification of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub provider: String,
    pub outcomes: Vec<InteractionOutcome>,
}

impl Report {
    /// Every interaction passed (pending ones may fail), and there was at least one.
    pub fn passed(&self) -> bool {
        !self.outcomes.is_empty() && self.failures().next().is_none()
    }

    /// The failed interactions that count (not those of pending pacts).
    pub fn failures(&self) -> impl Iterator<Item = &InteractionOutcome> {
        self.outcomes.iter().filter(|o| !o.passed() && !o.pending)
    }

    /// One line per interaction, the problems of failed ones indented below it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for o in &self.outcomes {
            let mark = match (o.passed(), o.pending) {
                (true, _) => "ok  ",
                (false, true) => "fail (pending)",
                (false, false) => "FAIL",
            };
            out.push_str(&format!(
                "{mark} {} → {}: {}",
                o.consumer, self.provider, o.description
            ));
            if !o.provider_states.is_empty() {
                out.push_str(&format!(" (given {})", o.provider_states.join("; ")));
            }
            out.push('\n');
            for p in &o.problems {
                out.push_str(&format!("       {p}\n"));
            }
        }
        let failed = self.failures().count();
        out.push_str(&format!(
            "{}: {} interactions, {} passed, {failed} failed\n",
            self.provider,
            self.outcomes.len(),
            self.outcomes.len() - failed
        ));
        out
    }
}

/// Verifies the provider against `config.pacts`. An error means the verification could not
/// run or checked nothing; a [`Report`] that did not pass means the provider broke a contract.
pub async fn verify(config: &VerifyConfig) -> Result<Report, ContractsError> {
    let provider = provider_info(config)?;
    let sources = sources(config);
    let publish = config.publish.as_ref().map(|p| PublishOptions {
        provider_version: Some(p.provider_version.clone()),
        build_url: None,
        provider_tags: Vec::new(),
        provider_branch: p.branch.clone(),
    });
    let options = VerificationOptions::<NullRequestFilterExecutor> {
        request_timeout: u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX),
        coloured_output: config.coloured,
        no_pacts_is_error: true,
        ..VerificationOptions::default()
    };
    let state_url = config
        .state_change_url
        .clone()
        .unwrap_or_else(|| format!("{}{STATE_CHANGE_PATH}", config.base_url));
    let states = Arc::new(StateChanges::new(&state_url, config.timeout));
    let result = pact_verifier::verify_provider_async(
        provider,
        sources,
        FilterInfo::None,
        Vec::new(),
        &options,
        publish.as_ref(),
        &states,
        None,
    )
    .await
    .map_err(|e| ContractsError::Verifier(format!("{e:#}")))?;
    let outcomes: Vec<_> = result
        .interaction_results
        .into_iter()
        .map(|r| InteractionOutcome {
            consumer: r.consumer,
            description: r.interaction_description,
            provider_states: r.provider_states.clone(),
            problems: match &r.result {
                Ok(()) => Vec::new(),
                // The verifier says only that a state failed; the provider said why.
                Err(e) => problems(e)
                    .into_iter()
                    .chain(r.provider_states.iter().filter_map(|s| states.refusal(s)))
                    .collect(),
            },
            duration: r.duration,
            pending: r.pending,
        })
        .collect();
    // A pact that could not be loaded is reported by the verifier only as a failed result.
    if outcomes.is_empty() {
        return Err(if result.result {
            ContractsError::NothingVerified {
                provider: config.provider.clone(),
            }
        } else {
            ContractsError::Verifier(result.output.join("\n"))
        });
    }
    Ok(Report {
        provider: config.provider.clone(),
        outcomes,
    })
}

/// Where the pacts come from: a broker (with its selectors, pending and WIP pacts) or files.
fn sources(config: &VerifyConfig) -> Vec<PactSource> {
    match &config.broker {
        Some(b) => vec![PactSource::BrokerWithDynamicConfiguration {
            provider_name: config.provider.clone(),
            broker_url: b.url.trim_end_matches('/').to_string(),
            enable_pending: b.enable_pending,
            include_wip_pacts_since: b.include_wip_since.clone(),
            provider_tags: Vec::new(),
            provider_branch: b.provider_branch.clone(),
            selectors: b.selectors.iter().map(selector).collect(),
            auth: b.login.http_auth(),
            links: Vec::new(),
        }],
        None => config
            .pacts
            .iter()
            .map(|p| PactSource::File(p.path.display().to_string()))
            .collect(),
    }
}

fn problems(e: &MismatchResult) -> Vec<String> {
    match e {
        // Body mismatches read `$.items[0].sku -> Expected ...`: the path comes first.
        MismatchResult::Mismatches { mismatches, .. } => {
            mismatches.iter().map(|m| m.description()).collect()
        }
        MismatchResult::Error(message, _) => vec![message.clone()],
    }
}

fn selector(s: &crate::broker::select::Selector) -> ConsumerVersionSelector {
    ConsumerVersionSelector {
        consumer: s.consumer.clone(),
        tag: s.tag.clone(),
        fallback_tag: None,
        latest: s.latest,
        deployed_or_released: s.deployed_or_released,
        deployed: s.deployed,
        released: s.released,
        environment: s.environment.clone(),
        main_branch: s.main_branch,
        branch: s.branch.clone(),
        matching_branch: s.matching_branch,
        fallback_branch: None,
    }
}

/// The provider's HTTP transport at `base_url`, and its message transport beside it.
fn provider_info(config: &VerifyConfig) -> Result<ProviderInfo, ContractsError> {
    let bad = |why: &str| {
        ContractsError::Verifier(format!(
            "--base-url {:?} {why}: give it as http://HOST:PORT[/PATH]",
            config.base_url
        ))
    };
    let rest = config
        .base_url
        .strip_prefix("http://")
        .ok_or_else(|| bad("is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.to_string(),
            Some(p.parse::<u16>().map_err(|_| bad("has no valid port"))?),
        ),
        _ => (authority.to_string(), None),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let transport = |kind: &str, path: String| ProviderTransport {
        transport: kind.to_string(),
        port,
        path: Some(path),
        scheme: Some("http".into()),
    };
    #[allow(deprecated)]
    Ok(ProviderInfo {
        name: config.provider.clone(),
        protocol: "http".into(),
        host,
        port,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        },
        transports: vec![
            transport("http", path.to_string()),
            transport("message", format!("{path}{}", config.messages_path)),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_become_transports_or_say_what_is_wrong() {
        let cfg = VerifyConfig::new("p", "http://127.0.0.1:8300/", Vec::new());
        let info = provider_info(&cfg).expect("valid");
        assert_eq!(info.host, "127.0.0.1");
        assert_eq!(
            info.transports[0].base_url(&info.host),
            "http://127.0.0.1:8300"
        );
        assert_eq!(
            info.transports[1].base_url(&info.host),
            "http://127.0.0.1:8300/_pact/messages"
        );
        let with_path = VerifyConfig::new("p", "http://localhost:9/api", Vec::new());
        let info = provider_info(&with_path).expect("valid");
        assert_eq!(
            info.transports[0].base_url(&info.host),
            "http://localhost:9/api"
        );
        for bad in ["https://x:1", "127.0.0.1:80", "http://:80", "http://h:port"] {
            let err = provider_info(&VerifyConfig::new("p", bad, Vec::new()))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--base-url"), "{bad}: {err}");
        }
    }
}
