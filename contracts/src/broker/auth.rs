//! Who may read the broker and who may write to it, as the Pact Broker has it: a read/write
//! and a read-only basic-auth account (`PACT_BROKER_BASIC_AUTH_USERNAME`/`_PASSWORD`,
//! `PACT_BROKER_BASIC_AUTH_READ_ONLY_USERNAME`/`_PASSWORD`), and bearer tokens as PactFlow's
//! clients send them (`GAUNTLET_BROKER_TOKEN`, `GAUNTLET_BROKER_READ_ONLY_TOKEN`). They come
//! from the environment or a file of `NAME=value` lines, never from the command line, are
//! compared in constant time and never logged.
//!
//! A wrong or missing credential is `401` with `WWW-Authenticate`; the read-only account
//! writing is `403`. Reading is `GET`/`HEAD`/`OPTIONS`, and `POST .../for-verification`
//! (a query sent as a body).

use std::net::SocketAddr;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

pub const USERNAME: &str = "PACT_BROKER_BASIC_AUTH_USERNAME";
pub const PASSWORD: &str = "PACT_BROKER_BASIC_AUTH_PASSWORD";
pub const READ_ONLY_USERNAME: &str = "PACT_BROKER_BASIC_AUTH_READ_ONLY_USERNAME";
pub const READ_ONLY_PASSWORD: &str = "PACT_BROKER_BASIC_AUTH_READ_ONLY_PASSWORD";
pub const TOKEN: &str = "GAUNTLET_BROKER_TOKEN";
pub const READ_ONLY_TOKEN: &str = "GAUNTLET_BROKER_READ_ONLY_TOKEN";

/// Every variable the broker reads its credentials from.
pub const VARIABLES: [&str; 6] = [
    USERNAME,
    PASSWORD,
    READ_ONLY_USERNAME,
    READ_ONLY_PASSWORD,
    TOKEN,
    READ_ONLY_TOKEN,
];

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{set} is set but {missing} is not: give both, or neither")]
    Half {
        set: &'static str,
        missing: &'static str,
    },
    #[error("cannot read the credentials file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error(
        "the broker would listen on {listen}, off loopback, with no credentials: anyone who \
         reaches it could publish pacts and make can-i-deploy say yes. Set {USERNAME} and \
         {PASSWORD} (and {READ_ONLY_USERNAME}/{READ_ONLY_PASSWORD} for readers), or \
         {TOKEN}, in the environment or a --credentials-file; or pass \
         --public-unauthenticated if that is really meant"
    )]
    Exposed { listen: SocketAddr },
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
    Denied,
}

/// One way in.
#[derive(Clone)]
enum Secret {
    Basic { user: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: a debug print must not leak them to a log.
        match self {
            Self::Basic { .. } => f.write_str("Basic(..)"),
            Self::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// The broker's accounts; empty when none is configured (then everyone may do anything,
/// which only a loopback broker allows by default).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    read_write: Vec<Secret>,
    read_only: Vec<Secret>,
}

impl Credentials {
    /// From the process environment.
    pub fn from_env() -> Result<Self, AuthError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// From a file of `NAME=value` lines (`#` comments and blank lines skipped), with the
    /// variables' names.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::File {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut values = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| AuthError::Line {
                path: shown.clone(),
                line: i + 1,
                reason,
            };
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=value".into()))?;
            let name = name.trim();
            if !VARIABLES.contains(&name) {
                return Err(bad(format!(
                    "unknown name {name:?}; the names are {}",
                    VARIABLES.join(", ")
                )));
            }
            values.insert(name.to_string(), value.trim().to_string());
        }
        Self::from_lookup(|name| values.get(name).cloned().filter(|v| !v.is_empty()))
    }

    /// From whatever answers a variable's name.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthError> {
        let pair = |user: &'static str, password: &'static str| match (get(user), get(password)) {
            (Some(user), Some(password)) => Ok(Some(Secret::Basic { user, password })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(AuthError::Half {
                set: user,
                missing: password,
            }),
            (None, Some(_)) => Err(AuthError::Half {
                set: password,
                missing: user,
            }),
        };
        let mut out = Self::default();
        out.read_write.extend(pair(USERNAME, PASSWORD)?);
        out.read_write.extend(get(TOKEN).map(Secret::Bearer));
        out.read_only
            .extend(pair(READ_ONLY_USERNAME, READ_ONLY_PASSWORD)?);
        out.read_only
            .extend(get(READ_ONLY_TOKEN).map(Secret::Bearer));
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.read_write.is_empty() && self.read_only.is_empty()
    }

    /// What the `Authorization` header lets a request do.
    pub fn access(&self, authorization: Option<&HeaderValue>) -> Access {
        if self.is_empty() {
            return Access::ReadWrite;
        }
        let Some(given) = authorization
            .and_then(|h| h.to_str().ok())
            .and_then(Given::parse)
        else {
            return Access::Denied;
        };
        // Every secret is compared, so the time taken says nothing of which one matched.
        let write = self
            .read_write
            .iter()
            .fold(false, |m, s| m | given.matches(s));
        let read = self
            .read_only
            .iter()
            .fold(false, |m, s| m | given.matches(s));
        match (write, read) {
            (true, _) => Access::ReadWrite,
            (false, true) => Access::ReadOnly,
            (false, false) => Access::Denied,
        }
    }

    /// Refuses to serve off loopback with no credentials unless `public` says it is meant.
    pub fn check_exposure(&self, listen: SocketAddr, public: bool) -> Result<(), AuthError> {
        if listen.ip().is_loopback() || !self.is_empty() || public {
            return Ok(());
        }
        Err(AuthError::Exposed { listen })
    }
}

/// A credential as a request presents it.
enum Given {
    Basic(String, String),
    Bearer(String),
}

impl Given {
    fn parse(header: &str) -> Option<Self> {
        let (scheme, rest) = header.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            return Some(Self::Basic(user.to_string(), password.to_string()));
        }
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| Self::Bearer(rest.trim().to_string()))
    }

    fn matches(&self, secret: &Secret) -> bool {
        let same = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
        match (self, secret) {
            (Self::Basic(u, p), Secret::Basic { user, password }) => {
                same(u, user) & same(p, password)
            }
            (Self::Bearer(t), Secret::Bearer(token)) => same(t, token),
            _ => false,
        }
    }
}

/// Does this request only read? (Pacts for verification are asked for with a POST.)
fn reads(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST && path.ends_with("/for-verification"))
}

/// The middleware that lets a request through, or answers 401 or 403.
pub async fn guard(
    State(credentials): State<std::sync::Arc<Credentials>>,
    req: Request,
    next: Next,
) -> Response {
    let access = credentials.access(req.headers().get(header::AUTHORIZATION));
    let read = reads(req.method(), req.uri().path());
    match access {
        Access::ReadWrite => next.run(req).await,
        Access::ReadOnly if read => next.run(req).await,
        Access::ReadOnly => refused(
            StatusCode::FORBIDDEN,
            "this account may only read: publishing, tagging, deployments and verification \
             results need the read/write account",
        ),
        Access::Denied => {
            let mut r = refused(
                StatusCode::UNAUTHORIZED,
                "this broker needs credentials: basic auth or a bearer token",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Pact Broker\", Bearer"),
            );
            r
        }
    }
}

fn refused(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/hal+json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(pairs: &[(&str, &str)]) -> Result<Credentials, AuthError> {
        Credentials::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or(HeaderValue::from_static(""))
    }

    #[test]
    fn accounts_and_tokens_grant_what_they_should() {
        let c = creds(&[
            (USERNAME, "ci"),
            (PASSWORD, "s3cret"),
            (READ_ONLY_USERNAME, "dev"),
            (READ_ONLY_PASSWORD, "look"),
            (TOKEN, "tok-rw"),
        ])
        .expect("valid");
        assert_eq!(c.access(Some(&basic("ci", "s3cret"))), Access::ReadWrite);
        assert_eq!(c.access(Some(&basic("dev", "look"))), Access::ReadOnly);
        assert_eq!(c.access(Some(&basic("ci", "look"))), Access::Denied);
        assert_eq!(c.access(Some(&basic("dev", "s3cret"))), Access::Denied);
        let bearer = HeaderValue::from_static("Bearer tok-rw");
        assert_eq!(c.access(Some(&bearer)), Access::ReadWrite);
        let wrong = HeaderValue::from_static("bearer tok-r");
        assert_eq!(c.access(Some(&wrong)), Access::Denied);
        assert_eq!(c.access(None), Access::Denied);
        let garbage = HeaderValue::from_static("Basic !!!");
        assert_eq!(c.access(Some(&garbage)), Access::Denied);
    }

    #[test]
    fn half_an_account_is_an_error_and_none_lets_everyone_in() {
        let e = creds(&[(USERNAME, "ci")]).expect_err("no password");
        assert!(e.to_string().contains(PASSWORD), "{e}");
        let none = creds(&[]).expect("empty");
        assert!(none.is_empty());
        assert_eq!(none.access(None), Access::ReadWrite);
    }

    #[test]
    fn off_loopback_needs_credentials_or_an_explicit_yes() {
        let none = Credentials::default();
        let public: SocketAddr = "0.0.0.0:9292".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:9292".parse().expect("addr");
        assert!(none.check_exposure(local, false).is_ok());
        let e = none.check_exposure(public, false).expect_err("refused");
        assert!(e.to_string().contains(USERNAME), "{e}");
        assert!(none.check_exposure(public, true).is_ok());
        let some = creds(&[(TOKEN, "t")]).expect("valid");
        assert!(some.check_exposure(public, false).is_ok());
    }

    #[test]
    fn a_credentials_file_uses_the_variables_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broker.env");
        std::fs::write(&path, "# the CI account\nPACT_BROKER_BASIC_AUTH_USERNAME=ci\nPACT_BROKER_BASIC_AUTH_PASSWORD = s3cret\n")
            .expect("write");
        let c = Credentials::from_file(&path).expect("valid");
        assert_eq!(c.access(Some(&basic("ci", "s3cret"))), Access::ReadWrite);
        std::fs::write(&path, "PACT_BROKER_PASSWORD=x\n").expect("write");
        let e = Credentials::from_file(&path).expect_err("unknown name");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let c = creds(&[(TOKEN, "tok-rw")]).expect("valid");
        assert!(!format!("{c:?}").contains("tok-rw"));
    }

    #[test]
    fn verification_queries_are_reads() {
        assert!(reads(&Method::GET, "/pacts/latest"));
        assert!(reads(
            &Method::POST,
            "/pacts/provider/orders/for-verification"
        ));
        assert!(!reads(&Method::POST, "/contracts/publish"));
        assert!(!reads(&Method::PUT, "/pacticipants/a/versions/1/tags/prod"));
    }
}
