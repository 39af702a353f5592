//! can-i-deploy: whether a version of a pacticipant can go to an environment (or, without
//! one, alongside the latest of everything). Every pact it has with a counterpart there
//! must have a successful verification: as a consumer, by the provider version deployed
//! there (a provider that is not there means no); as a provider, of the pact of each
//! consumer version deployed there (a consumer that is not there needs nothing).

use serde::{Deserialize, Serialize};

use super::BrokerError;
use super::store::{Environment, Publication, Store};

/// One integration the answer rests on, in the Pact Broker's matrix shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub consumer: Side,
    /// The provider, with the version that verified the pact or would have to.
    pub provider: Side,
    /// Absent when no verification exists.
    pub verification_result: Option<VerificationSummary>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Side {
    pub name: String,
    pub version: Option<VersionRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionRef {
    pub number: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerificationSummary {
    pub success: bool,
}

impl Row {
    /// `Some(true)` verified, `Some(false)` failed, `None` never verified.
    pub fn success(&self) -> Option<bool> {
        self.verification_result.as_ref().map(|v| v.success)
    }
}

/// The answer (also `GET /can-i-deploy`'s body).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub summary: Summary,
    pub matrix: Vec<Row>,
    /// One per row, as the Pact CLI prints them under its table.
    #[serde(default)]
    pub notices: Vec<Notice>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notice {
    /// `success` or `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub deployable: bool,
    pub reason: String,
    pub success: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// The newest verification of `sha` by `provider` (at `version`, if given).
fn verdict(
    store: &Store,
    sha: &str,
    provider: &str,
    version: Option<&str>,
) -> Result<Option<(String, bool)>, BrokerError> {
    Ok(store
        .verifications(sha)?
        .into_iter()
        .find(|v| v.provider == provider && version.is_none_or(|want| v.provider_version == want))
        .map(|v| (v.provider_version, v.success)))
}

fn row(
    p: &Publication,
    provider_version: Option<String>,
    success: Option<bool>,
    reason: String,
) -> Row {
    Row {
        consumer: Side {
            name: p.consumer.clone(),
            version: Some(VersionRef {
                number: p.consumer_version.clone(),
            }),
        },
        provider: Side {
            name: p.provider.clone(),
            version: provider_version.map(|number| VersionRef { number }),
        },
        verification_result: success.map(|success| VerificationSummary { success }),
        reason,
    }
}

pub fn can_i_deploy(
    store: &Store,
    pacticipant: &str,
    version: &str,
    environment: Option<&str>,
) -> Result<Answer, BrokerError> {
    if !store.version_exists(pacticipant, version)? {
        return Err(BrokerError::NotFound(format!(
            "the broker knows no version {version} of {pacticipant}"
        )));
    }
    let env = match environment {
        Some(name) => Some(store.environment(name)?.ok_or_else(|| {
            BrokerError::NotFound(format!("no environment {name:?}: create it first"))
        })?),
        None => None,
    };
    let pubs = store.publications(None)?;
    let mut rows = as_consumer(store, &pubs, pacticipant, version, env.as_ref())?;
    rows.extend(as_provider(
        store,
        &pubs,
        pacticipant,
        version,
        env.as_ref(),
    )?);
    Ok(answer(pacticipant, version, rows))
}

/// The version as a consumer: a row for each provider of its pacts (the one deployed to
/// `env`, or the latest that verified it).
fn as_consumer(
    store: &Store,
    pubs: &[Publication],
    pacticipant: &str,
    version: &str,
    env: Option<&Environment>,
) -> Result<Vec<Row>, BrokerError> {
    let mut rows = Vec::new();
    for p in pubs
        .iter()
        .filter(|p| p.consumer == pacticipant && p.consumer_version == version)
    {
        match env {
            Some(e) => match store.deployed(&p.provider, &e.uuid)? {
                None => rows.push(row(
                    p,
                    None,
                    None,
                    format!("no version of {} is deployed to {}", p.provider, e.name),
                )),
                Some(pv) => {
                    let v = verdict(store, &p.sha, &p.provider, Some(&pv))?;
                    rows.push(described(p, Some(pv), v.map(|(_, ok)| ok)));
                }
            },
            None => {
                let v = verdict(store, &p.sha, &p.provider, None)?;
                let (pv, ok) = v.map_or((None, None), |(pv, ok)| (Some(pv), Some(ok)));
                rows.push(described(p, pv, ok));
            }
        }
    }
    Ok(rows)
}

/// The version as a provider: a row for the pact of each consumer version it would meet
/// (the one deployed to `env`, or each consumer's latest).
fn as_provider(
    store: &Store,
    pubs: &[Publication],
    pacticipant: &str,
    version: &str,
    env: Option<&Environment>,
) -> Result<Vec<Row>, BrokerError> {
    let mut consumers: Vec<&str> = pubs
        .iter()
        .filter(|p| p.provider == pacticipant)
        .map(|p| p.consumer.as_str())
        .collect();
    consumers.sort();
    consumers.dedup();
    let mut rows = Vec::new();
    for c in consumers {
        let theirs = pubs
            .iter()
            .filter(|p| p.provider == pacticipant && p.consumer == c);
        let pick = match env {
            Some(e) => match store.deployed(c, &e.uuid)? {
                Some(cv) => theirs.into_iter().find(|p| p.consumer_version == cv),
                // Not there: nothing to be compatible with.
                None => None,
            },
            None => theirs.max_by_key(|p| p.consumer_version_order),
        };
        if let Some(p) = pick {
            let v = verdict(store, &p.sha, pacticipant, Some(version))?;
            rows.push(described(p, Some(version.to_string()), v.map(|(_, ok)| ok)));
        }
    }
    Ok(rows)
}

/// The verdict over the rows: deployable only when every row verified successfully.
fn answer(pacticipant: &str, version: &str, rows: Vec<Row>) -> Answer {
    let success = rows.iter().filter(|r| r.success() == Some(true)).count();
    let failed = rows.iter().filter(|r| r.success() == Some(false)).count();
    let unknown = rows.len() - success - failed;
    let deployable = failed == 0 && unknown == 0;
    let reason = if deployable {
        if rows.is_empty() {
            format!("{pacticipant} {version} has no integrations to check")
        } else {
            "all required verification results are published and successful".to_string()
        }
    } else {
        rows.iter()
            .filter(|r| r.success() != Some(true))
            .map(|r| r.reason.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let notices = rows
        .iter()
        .map(|r| Notice {
            kind: if r.success() == Some(true) {
                "success"
            } else {
                "error"
            }
            .to_string(),
            text: r.reason.clone(),
        })
        .collect();
    Answer {
        notices,
        summary: Summary {
            deployable,
            reason,
            success,
            failed,
            unknown,
        },
        matrix: rows,
    }
}

fn described(p: &Publication, provider_version: Option<String>, success: Option<bool>) -> Row {
    let between = format!(
        "the pact between {} {} and {}{}",
        p.consumer,
        p.consumer_version,
        p.provider,
        provider_version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default()
    );
    let reason = match success {
        Some(true) => format!("{between} is verified"),
        Some(false) => format!("the verification of {between} failed"),
        None => format!("{between} has no verification"),
    };
    row(p, provider_version, success, reason)
}
