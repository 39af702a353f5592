//! Checks on an answer (status, a JSON pointer's value or presence, body text, latency) and
//! captures (a JSON pointer's value kept for later steps, e.g. a token, then an order ID).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// A check as a scenario file writes it: exactly one of its kinds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// The status must be this.
    pub status: Option<u16>,
    /// A JSON pointer into the body (`/status`), with `equals` or `exists`.
    pub json: Option<String>,
    pub equals: Option<Value>,
    pub exists: Option<bool>,
    /// The body must contain this text.
    pub body_contains: Option<String>,
    /// The latency must be under this (`500ms`).
    pub latency_under: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Status(u16),
    JsonEquals(String, Value),
    JsonExists(String, bool),
    BodyContains(String),
    LatencyUnder(Duration),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "check {0}: write exactly one of {{status = 200}}, {{json = \"/id\", exists = true}}, {{json = \"/status\", equals = \"confirmed\"}}, {{body_contains = \"...\"}}, {{latency_under = \"500ms\"}}"
)]
pub struct CheckError(pub String);

impl TryFrom<CheckSpec> for Check {
    type Error = CheckError;
    fn try_from(c: CheckSpec) -> Result<Self, CheckError> {
        let shown = format!("{c:?}");
        let bad = || CheckError(shown.clone());
        let pointer_ok = |p: &str| p.is_empty() || p.starts_with('/');
        match c {
            CheckSpec {
                status: Some(s),
                json: None,
                equals: None,
                exists: None,
                body_contains: None,
                latency_under: None,
            } => Ok(Check::Status(s)),
            CheckSpec {
                status: None,
                json: Some(p),
                equals: Some(v),
                exists: None,
                body_contains: None,
                latency_under: None,
            } if pointer_ok(&p) => Ok(Check::JsonEquals(p, v)),
            CheckSpec {
                status: None,
                json: Some(p),
                equals: None,
                exists,
                body_contains: None,
                latency_under: None,
            } if pointer_ok(&p) => Ok(Check::JsonExists(p, exists.unwrap_or(true))),
            CheckSpec {
                status: None,
                json: None,
                equals: None,
                exists: None,
                body_contains: Some(t),
                latency_under: None,
            } => Ok(Check::BodyContains(t)),
            CheckSpec {
                status: None,
                json: None,
                equals: None,
                exists: None,
                body_contains: None,
                latency_under: Some(d),
            } => humantime::parse_duration(&d)
                .map(Check::LatencyUnder)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

impl Check {
    /// Whether the body must be parsed as JSON for this check.
    pub fn needs_json(&self) -> bool {
        matches!(self, Check::JsonEquals(..) | Check::JsonExists(..))
    }

    pub fn passes(
        &self,
        status: u16,
        body: &[u8],
        json: Option<&Value>,
        latency: Duration,
    ) -> bool {
        match self {
            Check::Status(s) => status == *s,
            Check::JsonEquals(p, v) => json.and_then(|j| j.pointer(p)) == Some(v),
            Check::JsonExists(p, want) => json.and_then(|j| j.pointer(p)).is_some() == *want,
            Check::BodyContains(t) => body.windows(t.len().max(1)).any(|w| w == t.as_bytes()),
            Check::LatencyUnder(d) => latency < *d,
        }
    }
}

/// A captured value as a template reads it: strings as they are, anything else as JSON.
pub fn capture(json: &Value, pointer: &str) -> Option<String> {
    match json.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_pass_and_fail_and_bad_ones_are_refused() {
        let body = br#"{"id": 7, "status": "confirmed", "token": "abc"}"#;
        let json: Value = serde_json::from_slice(body).expect("json");
        let ms = Duration::from_millis(5);
        let ok = |c: Check| c.passes(201, body, Some(&json), ms);
        assert!(ok(Check::Status(201)));
        assert!(!ok(Check::Status(200)));
        assert!(ok(Check::JsonEquals("/status".into(), "confirmed".into())));
        assert!(!ok(Check::JsonEquals("/status".into(), "cancelled".into())));
        assert!(ok(Check::JsonExists("/id".into(), true)));
        assert!(ok(Check::JsonExists("/nope".into(), false)));
        assert!(ok(Check::BodyContains("confirmed".into())));
        assert!(!ok(Check::LatencyUnder(Duration::from_millis(1))));
        assert_eq!(capture(&json, "/token").as_deref(), Some("abc"));
        assert_eq!(capture(&json, "/id").as_deref(), Some("7"));
        assert_eq!(capture(&json, "/missing"), None);
        let both = CheckSpec {
            status: Some(200),
            body_contains: Some("x".into()),
            ..CheckSpec::default()
        };
        assert!(Check::try_from(both).is_err());
        let no_slash = CheckSpec {
            json: Some("id".into()),
            ..CheckSpec::default()
        };
        assert!(Check::try_from(no_slash).is_err());
    }
}
