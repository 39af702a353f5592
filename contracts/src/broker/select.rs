//! "Pacts for verification": which pacts a provider must verify, chosen by consumer version
//! selectors (main branch, branch, tag, latest, deployed or released, environment,
//! consumer), each marked pending while no version of the provider (on its branch) has
//! verified it successfully, plus work-in-progress pacts when asked for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::BrokerError;
use super::store::{Publication, Store};

/// A consumer version selector, as the Pact tools send it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_or_released: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_branch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_branch: Option<bool>,
}

impl std::str::FromStr for Selector {
    type Err = String;

    /// `mainBranch`, `deployedOrReleased`, `deployed`, `released`, `latest`,
    /// `matchingBranch`, `branch=NAME`, `tag=NAME`, `environment=NAME`, `consumer=NAME`,
    /// joined by commas: `branch=main,consumer=gateway`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut s = Selector::default();
        for part in text.split(',').map(str::trim) {
            match part.split_once('=') {
                None => match part {
                    "mainBranch" => s.main_branch = Some(true),
                    "deployedOrReleased" => s.deployed_or_released = Some(true),
                    "deployed" => s.deployed = Some(true),
                    "released" => s.released = Some(true),
                    "latest" => s.latest = Some(true),
                    "matchingBranch" => s.matching_branch = Some(true),
                    other => {
                        return Err(format!(
                            "unknown selector {other:?}: use mainBranch, deployedOrReleased, deployed, released, latest, matchingBranch, or branch=, tag=, environment=, consumer="
                        ));
                    }
                },
                Some((key, value)) if !value.is_empty() => match key {
                    "branch" => s.branch = Some(value.into()),
                    "tag" => s.tag = Some(value.into()),
                    "environment" => s.environment = Some(value.into()),
                    "consumer" => s.consumer = Some(value.into()),
                    other => {
                        return Err(format!(
                            "unknown selector key {other:?}: use branch, tag, environment or consumer"
                        ));
                    }
                },
                Some((key, _)) => return Err(format!("{key}= needs a value")),
            }
        }
        Ok(s)
    }
}

/// `POST /pacts/provider/{provider}/for-verification`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForVerification {
    #[serde(default)]
    pub consumer_version_selectors: Vec<Selector>,
    #[serde(default)]
    pub include_pending_status: bool,
    #[serde(default)]
    pub include_wip_pacts_since: Option<String>,
    #[serde(default)]
    pub provider_version_branch: Option<String>,
    #[serde(default)]
    pub provider_version_tags: Vec<String>,
}

/// One pact the provider is to verify.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub publication: Publication,
    /// Why: one phrase per selector that chose it.
    pub why: Vec<String>,
    pub pending: bool,
    pub wip: bool,
}

/// The pacts `provider` must verify for `req`, one per pact content.
pub fn for_verification(
    store: &Store,
    provider: &str,
    req: &ForVerification,
) -> Result<Vec<Chosen>, BrokerError> {
    let pubs = store.publications(Some(provider))?;
    let default = [Selector {
        latest: Some(true),
        ..Selector::default()
    }];
    let selectors = if req.consumer_version_selectors.is_empty() {
        &default[..]
    } else {
        &req.consumer_version_selectors[..]
    };
    // Content SHA → what chose it.
    let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
    for s in selectors {
        for (p, why) in select(store, &pubs, s, req.provider_version_branch.as_deref())? {
            chosen
                .entry(p.sha.clone())
                .or_insert_with(|| Chosen {
                    publication: p.clone(),
                    why: Vec::new(),
                    pending: false,
                    wip: false,
                })
                .why
                .push(why);
        }
    }
    if let Some(since) = &req.include_wip_pacts_since {
        let since_ms = parse_date(since)?;
        for p in latest_per(&pubs, |p| p.consumer.clone()) {
            if p.created_ms >= since_ms
                && !chosen.contains_key(&p.sha)
                && is_pending(store, &p.sha, req.provider_version_branch.as_deref())?
            {
                chosen.insert(
                    p.sha.clone(),
                    Chosen {
                        publication: p.clone(),
                        why: vec![format!("work in progress (published since {since})")],
                        pending: true,
                        wip: true,
                    },
                );
            }
        }
    }
    let mut out: Vec<Chosen> = chosen.into_values().collect();
    if req.include_pending_status {
        for c in out.iter_mut().filter(|c| !c.wip) {
            c.pending = is_pending(
                store,
                &c.publication.sha,
                req.provider_version_branch.as_deref(),
            )?;
        }
    }
    out.sort_by_key(|c| {
        (
            c.publication.consumer.clone(),
            c.publication.consumer_version_order,
        )
    });
    Ok(out)
}

/// Pending: no provider version (on `branch`, if given) has verified this content successfully.
pub fn is_pending(store: &Store, sha: &str, branch: Option<&str>) -> Result<bool, BrokerError> {
    for v in store.verifications(sha)?.into_iter().filter(|v| v.success) {
        match branch {
            None => return Ok(false),
            Some(b) => {
                if store
                    .branches(&v.provider, &v.provider_version)?
                    .iter()
                    .any(|x| x == b)
                {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

fn latest_per<K: Ord>(pubs: &[Publication], key: impl Fn(&Publication) -> K) -> Vec<Publication> {
    let mut latest: BTreeMap<K, &Publication> = BTreeMap::new();
    for p in pubs {
        latest
            .entry(key(p))
            .and_modify(|q| {
                if p.consumer_version_order > q.consumer_version_order {
                    *q = p;
                }
            })
            .or_insert(p);
    }
    latest.into_values().cloned().collect()
}

fn select(
    store: &Store,
    pubs: &[Publication],
    s: &Selector,
    provider_branch: Option<&str>,
) -> Result<Vec<(Publication, String)>, BrokerError> {
    let mut candidates: Vec<Publication> = pubs
        .iter()
        .filter(|p| s.consumer.as_ref().is_none_or(|c| *c == p.consumer))
        .cloned()
        .collect();
    let branch = match (&s.branch, s.matching_branch) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(true)) => provider_branch.map(str::to_string),
        _ => None,
    };
    let mut why = Vec::new();
    if s.main_branch == Some(true) {
        let on_main = kept(candidates, |p| {
            Ok(match store.main_branch(&p.consumer)? {
                Some(main) => store
                    .branches(&p.consumer, &p.consumer_version)?
                    .contains(&main),
                None => false,
            })
        })?;
        candidates = latest_per(&on_main, |p| p.consumer.clone());
        why.push("latest from the main branch".to_string());
    } else if let Some(b) = &branch {
        let on = kept(candidates, |p| {
            Ok(store
                .branches(&p.consumer, &p.consumer_version)?
                .contains(b))
        })?;
        candidates = latest_per(&on, |p| p.consumer.clone());
        why.push(format!("latest from branch {b}"));
    } else if let Some(t) = &s.tag {
        let tagged = kept(candidates, |p| {
            Ok(store.tags(&p.consumer, &p.consumer_version)?.contains(t))
        })?;
        if s.latest == Some(true) {
            candidates = latest_per(&tagged, |p| p.consumer.clone());
            why.push(format!("latest with tag {t}"));
        } else {
            candidates = tagged;
            why.push(format!("tagged {t}"));
        }
    } else if s.deployed_or_released == Some(true)
        || s.deployed == Some(true)
        || s.released == Some(true)
        || s.environment.is_some()
    {
        candidates = deployed(store, candidates, s.environment.as_deref())?;
        why.push(match &s.environment {
            Some(env) => format!("deployed to {env}"),
            None => "deployed or released".to_string(),
        });
    } else {
        candidates = latest_per(&candidates, |p| p.consumer.clone());
        why.push("latest".to_string());
    }
    let why = why.join(", ");
    Ok(candidates.into_iter().map(|p| (p, why.clone())).collect())
}

/// The publications `keep` says yes to (it may fail: it reads the store).
fn kept(
    pubs: Vec<Publication>,
    mut keep: impl FnMut(&Publication) -> Result<bool, BrokerError>,
) -> Result<Vec<Publication>, BrokerError> {
    let mut out = Vec::new();
    for p in pubs {
        if keep(&p)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The publications whose consumer version is deployed to `environment`, or, without
/// one, deployed or released anywhere.
fn deployed(
    store: &Store,
    pubs: Vec<Publication>,
    environment: Option<&str>,
) -> Result<Vec<Publication>, BrokerError> {
    let anywhere = store.deployed_anywhere()?;
    let uuid = match environment {
        Some(env) => store.environment(env)?.map(|e| e.uuid),
        None => None,
    };
    kept(pubs, |p| {
        Ok(match (environment, &uuid) {
            (Some(_), Some(u)) => {
                store.deployed(&p.consumer, u)?.as_deref() == Some(p.consumer_version.as_str())
            }
            (Some(_), None) => false,
            (None, _) => anywhere
                .iter()
                .any(|(c, v)| *c == p.consumer && *v == p.consumer_version),
        })
    })
}

/// `2026-11-01` or an RFC 3339 time, as ms since the epoch.
fn parse_date(text: &str) -> Result<i64, BrokerError> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|e| {
            BrokerError::BadRequest(format!(
                "includeWipPactsSince {text:?} is not a date (2026-11-01 or RFC 3339): {e}"
            ))
        })
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_from_the_command_line() {
        let s: Selector = "branch=main,consumer=gateway".parse().expect("valid");
        assert_eq!(s.branch.as_deref(), Some("main"));
        assert_eq!(s.consumer.as_deref(), Some("gateway"));
        let s: Selector = "mainBranch".parse().expect("valid");
        assert_eq!(s.main_branch, Some(true));
        for bad in ["mainbranch", "branch=", "colour=blue"] {
            assert!(bad.parse::<Selector>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_for_wip_pacts() {
        assert_eq!(parse_date("1970-01-02").expect("date"), 86_400_000);
        assert!(parse_date("yesterday").is_err());
    }
}
