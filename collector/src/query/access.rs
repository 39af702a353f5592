//! Who may read the query API: a bearer token when one is set (`--auth-token`), and headers
//! that keep a browser from running anything the API returns (a Content-Security-Policy
//! without inline scripts, `nosniff`, no framing). `/health` and `/ready` stay open for
//! probes, which carry no token, and so does the web UI's shell, which holds no data.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tower_http::set_header::SetResponseHeaderLayer;

use super::ApiError;

/// Scripts, styles and data only from the collector itself; nothing inline, no plugins, no
/// framing by other sites.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths answered without a token.
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// A bearer token the query API requires.
#[derive(Clone)]
pub struct AuthToken(String);

impl AuthToken {
    /// A token; empty and whitespace-only ones are refused (they would protect nothing).
    pub fn new(token: impl Into<String>) -> Result<Self, String> {
        let token = token.into();
        if token.trim().is_empty() {
            return Err("the auth token is empty".into());
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "the auth token holds whitespace or control characters, which an \
                        Authorization header cannot carry"
                    .into(),
            );
        }
        Ok(Self(token))
    }

    fn admits(&self, request: &Request) -> bool {
        self.admits_header(request.headers().get(header::AUTHORIZATION))
    }

    /// Does this `Authorization` header carry the token? (Compared in constant time.)
    pub fn admits_header(&self, authorization: Option<&HeaderValue>) -> bool {
        authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given.as_bytes().ct_eq(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(..)")
    }
}

/// The query router behind the token check (given a token), the UI's routes beside it (its
/// shell and assets hold no telemetry: the page asks for the token and sends it with every
/// API call), and the security headers on both.
pub fn protect(api: axum::Router, ui: axum::Router, token: Option<AuthToken>) -> axum::Router {
    let api = match token {
        Some(token) => api.layer(axum::middleware::from_fn_with_state(token, require_token)),
        None => api,
    };
    api.merge(ui)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

async fn require_token(State(token): State<AuthToken>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) || token.admits(&request) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this collector requires a token: send the header \"Authorization: Bearer <token>\" \
         with the token it was started with (--auth-token or GAUNTLET_AUTH_TOKEN)",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gauntlet\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_protect_nothing_are_refused() {
        assert!(AuthToken::new("").is_err());
        assert!(AuthToken::new("  ").is_err());
        assert!(AuthToken::new("two words").is_err());
        assert!(AuthToken::new("s3cr3t-Token_42").is_ok());
        assert_eq!(
            format!("{:?}", AuthToken::new("s3cr3t").expect("token")),
            "AuthToken(..)",
            "never printed"
        );
    }
}
