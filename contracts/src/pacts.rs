//! The pact files of a directory: who each is between and how many interactions it holds,
//! read from the file's own `consumer`, `provider` and `interactions` (any spec version).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ContractsError;

/// One pact file, as far as choosing what to verify needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PactFile {
    pub path: PathBuf,
    pub consumer: String,
    pub provider: String,
    /// Interactions (V4), or requests and messages (earlier specs).
    pub interactions: usize,
}

#[derive(Deserialize)]
struct Pacticipant {
    name: String,
}

#[derive(Deserialize)]
struct Header {
    consumer: Pacticipant,
    provider: Pacticipant,
    #[serde(default)]
    interactions: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    messages: Vec<serde::de::IgnoredAny>,
}

impl PactFile {
    pub fn read(path: &Path) -> Result<Self, ContractsError> {
        let bad = |reason: String| ContractsError::BadPact {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let h: Header = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            consumer: h.consumer.name,
            provider: h.provider.name,
            interactions: h.interactions.len() + h.messages.len(),
        })
    }
}

/// Every pact file (`*.json`) in `dir`, by file name.
pub fn all(dir: &Path) -> Result<Vec<PactFile>, ContractsError> {
    let shown = || dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|source| ContractsError::Dir {
        dir: shown(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| ContractsError::Dir {
                dir: shown(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| PactFile::read(p)).collect()
}

/// The pacts in `dir` that name `provider`. None is an error that says what is there: a
/// verification that checks nothing must not pass.
pub fn for_provider(dir: &Path, provider: &str) -> Result<Vec<PactFile>, ContractsError> {
    let pacts = all(dir)?;
    if pacts.is_empty() {
        return Err(ContractsError::NoPacts {
            dir: dir.display().to_string(),
        });
    }
    let (mine, others): (Vec<_>, Vec<_>) = pacts.into_iter().partition(|p| p.provider == provider);
    if mine.is_empty() {
        let mut found: Vec<String> = others.into_iter().map(|p| p.provider).collect();
        found.sort();
        found.dedup();
        return Err(ContractsError::NoPactForProvider {
            dir: dir.display().to_string(),
            provider: provider.to_string(),
            found,
        });
    }
    if mine.iter().all(|p| p.interactions == 0) {
        return Err(ContractsError::NothingVerified {
            provider: provider.to_string(),
        });
    }
    Ok(mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pact(dir: &Path, file: &str, consumer: &str, provider: &str, n: usize) {
        let interactions: Vec<_> = (0..n)
            .map(
                |i| serde_json::json!({"description": format!("i{i}"), "type": "Synchronous/HTTP"}),
            )
            .collect();
        let body = serde_json::json!({
            "consumer": {"name": consumer},
            "provider": {"name": provider},
            "interactions": interactions,
            "metadata": {"pactSpecification": {"version": "4.0"}}
        });
        std::fs::write(dir.join(file), body.to_string()).expect("write");
    }

    #[test]
    fn finds_the_pacts_naming_a_provider() {
        let dir = tempfile::tempdir().expect("tempdir");
        pact(dir.path(), "a-b.json", "a", "b", 2);
        pact(dir.path(), "c-b.json", "c", "b", 1);
        pact(dir.path(), "a-d.json", "a", "d", 1);
        std::fs::write(dir.path().join("README.md"), "not a pact").expect("write");
        let found = for_provider(dir.path(), "b").expect("two pacts");
        assert_eq!(
            found
                .iter()
                .map(|p| p.consumer.as_str())
                .collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(found[0].interactions, 2);
    }

    #[test]
    fn checking_nothing_is_an_error_that_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = for_provider(dir.path(), "b").expect_err("empty");
        assert!(matches!(err, ContractsError::NoPacts { .. }), "{err}");
        pact(dir.path(), "a-d.json", "a", "d", 1);
        let err = for_provider(dir.path(), "b").expect_err("none for b");
        assert!(err.to_string().contains("are for: d"), "{err}");
        pact(dir.path(), "a-b.json", "a", "b", 0);
        let err = for_provider(dir.path(), "b").expect_err("no interactions");
        assert!(
            matches!(err, ContractsError::NothingVerified { .. }),
            "{err}"
        );
        let err = for_provider(&dir.path().join("missing"), "b").expect_err("no dir");
        assert!(matches!(err, ContractsError::Dir { .. }), "{err}");
        std::fs::write(dir.path().join("broken.json"), "{").expect("write");
        let err = for_provider(dir.path(), "b").expect_err("broken");
        assert!(err.to_string().contains("broken.json"), "{err}");
    }
}
