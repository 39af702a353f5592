//! Toxiproxy's JSON shapes, field by field: a proxy `{name, listen, upstream, enabled}`
//! (with its `toxics` when shown), a toxic `{name, type, stream, toxicity, attributes}`,
//! and an error `{"error": "...", "status": CODE}`.

use serde::{Deserialize, Serialize};

/// What a proxy understands of the bytes it carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A TCP proxy, as Toxiproxy's: the TCP toxics.
    #[default]
    Tcp,
    /// An HTTP/1.1 reverse proxy: the HTTP faults (`http_abort`, `http_delay`), per request.
    Http,
}

fn is_tcp(k: &Kind) -> bool {
    *k == Kind::Tcp
}

/// A proxy as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProxyView {
    pub name: String,
    /// Gauntlet's extension (absent for TCP proxies, so Toxiproxy clients see their shape).
    #[serde(default, skip_serializing_if = "is_tcp")]
    pub kind: Kind,
    /// The address it listens on (the port it got, when asked for port 0).
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub toxics: Vec<Toxic>,
}

/// A proxy as it is created or populated (`listen` defaults to a free loopback port).
#[derive(Debug, Clone, Deserialize)]
pub struct NewProxy {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub listen: String,
    #[serde(default)]
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `tcp` (default) or `http`.
    #[serde(default)]
    pub kind: Kind,
}

impl NewProxy {
    /// A TCP proxy, enabled.
    pub fn tcp(name: &str, listen: &str, upstream: &str) -> Self {
        Self {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
            kind: Kind::Tcp,
        }
    }
}

fn yes() -> bool {
    true
}

/// A partial update of a proxy: what is absent keeps its value.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProxyUpdate {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub enabled: Option<bool>,
}

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → upstream server.
    Upstream,
    /// Upstream server → client.
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic does, with its attributes (Toxiproxy's units: ms, KB/s, bytes, µs).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Attributes {
    Latency {
        latency: i64,
        jitter: i64,
    },
    Bandwidth {
        rate: i64,
    },
    SlowClose {
        delay: i64,
    },
    Timeout {
        timeout: i64,
    },
    ResetPeer {
        timeout: i64,
    },
    Slicer {
        average_size: i64,
        size_variation: i64,
        delay: i64,
    },
    LimitData {
        bytes: i64,
    },
    /// Answers `status` instead of forwarding, for `percentage` of matching requests.
    HttpAbort {
        status: i64,
        percentage: i64,
        #[serde(flatten)]
        matching: HttpMatch,
    },
    /// Holds matching requests `delay` ms before forwarding them.
    HttpDelay {
        delay: i64,
        percentage: i64,
        #[serde(flatten)]
        matching: HttpMatch,
    },
}

/// Which requests an HTTP fault applies to; an empty field matches anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpMatch {
    /// e.g. `POST`.
    pub method: String,
    /// The path, exact, or a prefix when it ends in `*` (`/payments/*`).
    pub path: String,
    /// `Name: value`, exact (the name case-insensitively).
    pub header: String,
}

impl HttpMatch {
    pub fn matches(
        &self,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<String>,
    ) -> bool {
        let method_ok = self.method.is_empty() || self.method.eq_ignore_ascii_case(method);
        let path_ok = if self.path.is_empty() {
            true
        } else if let Some(prefix) = self.path.strip_suffix('*') {
            path.starts_with(prefix)
        } else {
            path == self.path
        };
        let header_ok = self.header.is_empty()
            || self.header.split_once(':').is_some_and(|(name, value)| {
                header(name.trim()).is_some_and(|v| v == value.trim())
            });
        method_ok && path_ok && header_ok
    }
}

/// The toxic types this proxy knows.
pub const TYPES: [&str; 9] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "http_abort",
    "http_delay",
];

impl Attributes {
    /// The attributes of a toxic of `kind`, from JSON (missing ones are 0, as in Toxiproxy).
    pub fn parse(kind: &str, v: &serde_json::Value) -> Result<Self, ApiError> {
        let n = |k: &str| -> Result<i64, ApiError> {
            match v.get(k) {
                None | Some(serde_json::Value::Null) => Ok(0),
                Some(x) => x.as_i64().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "bad request body: attribute {k} must be a whole number"
                    ))
                }),
            }
        };
        let a = match kind {
            "latency" => Attributes::Latency {
                latency: n("latency")?,
                jitter: n("jitter")?,
            },
            "bandwidth" => Attributes::Bandwidth { rate: n("rate")? },
            "slow_close" => Attributes::SlowClose { delay: n("delay")? },
            "timeout" => Attributes::Timeout {
                timeout: n("timeout")?,
            },
            "reset_peer" => Attributes::ResetPeer {
                timeout: n("timeout")?,
            },
            "slicer" => Attributes::Slicer {
                average_size: n("average_size")?,
                size_variation: n("size_variation")?,
                delay: n("delay")?,
            },
            "limit_data" => Attributes::LimitData { bytes: n("bytes")? },
            "http_abort" => Attributes::HttpAbort {
                status: match n("status")? {
                    0 => 503,
                    s => s,
                },
                percentage: percentage(v)?,
                matching: http_match(v)?,
            },
            "http_delay" => Attributes::HttpDelay {
                delay: n("delay")?,
                percentage: percentage(v)?,
                matching: http_match(v)?,
            },
            _ => return Err(ApiError::new(400, "invalid toxic type")),
        };
        a.validate()?;
        Ok(a)
    }

    fn validate(&self) -> Result<(), ApiError> {
        let negative = match self {
            Attributes::Latency { latency, jitter } => *latency < 0 || *jitter < 0,
            Attributes::Bandwidth { rate } => *rate < 0,
            Attributes::SlowClose { delay } => *delay < 0,
            Attributes::Timeout { timeout } | Attributes::ResetPeer { timeout } => *timeout < 0,
            Attributes::Slicer {
                average_size,
                size_variation,
                delay,
            } => {
                if size_variation > average_size {
                    return Err(ApiError::bad_request(
                        "bad request body: size_variation must be smaller than average_size",
                    ));
                }
                *average_size < 0 || *size_variation < 0 || *delay < 0
            }
            Attributes::LimitData { bytes } => *bytes < 0,
            Attributes::HttpAbort { status, .. } => {
                if !(100..=599).contains(status) {
                    return Err(ApiError::bad_request(
                        "bad request body: status must be an HTTP status (100-599)",
                    ));
                }
                false
            }
            Attributes::HttpDelay { delay, .. } => *delay < 0,
        };
        if negative {
            return Err(ApiError::bad_request(
                "bad request body: attributes cannot be negative",
            ));
        }
        Ok(())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Attributes::Latency { .. } => "latency",
            Attributes::Bandwidth { .. } => "bandwidth",
            Attributes::SlowClose { .. } => "slow_close",
            Attributes::Timeout { .. } => "timeout",
            Attributes::ResetPeer { .. } => "reset_peer",
            Attributes::Slicer { .. } => "slicer",
            Attributes::LimitData { .. } => "limit_data",
            Attributes::HttpAbort { .. } => "http_abort",
            Attributes::HttpDelay { .. } => "http_delay",
        }
    }

    /// Whether this toxic acts on HTTP requests (and so needs an `http` proxy).
    pub fn is_http(&self) -> bool {
        matches!(
            self,
            Attributes::HttpAbort { .. } | Attributes::HttpDelay { .. }
        )
    }
}

/// `percentage` (0-100, default 100).
fn percentage(v: &serde_json::Value) -> Result<i64, ApiError> {
    match v.get("percentage") {
        None | Some(serde_json::Value::Null) => Ok(100),
        Some(p) => p
            .as_i64()
            .filter(|p| (0..=100).contains(p))
            .ok_or_else(|| ApiError::bad_request("bad request body: percentage must be 0-100")),
    }
}

fn http_match(v: &serde_json::Value) -> Result<HttpMatch, ApiError> {
    let text = |k: &str| -> Result<String, ApiError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::bad_request(format!(
                "bad request body: attribute {k} must be a string"
            ))),
        }
    };
    let m = HttpMatch {
        method: text("method")?,
        path: text("path")?,
        header: text("header")?,
    };
    if !m.header.is_empty() && !m.header.contains(':') {
        return Err(ApiError::bad_request(
            "bad request body: header must be written `Name: value`",
        ));
    }
    Ok(m)
}

/// A toxic, as the API shows it (and reads it back, checked like a new one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "NewToxic")]
pub struct Toxic {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub stream: Stream,
    /// The share of connections it applies to (0.0-1.0), drawn per connection.
    pub toxicity: f32,
    pub attributes: Attributes,
}

/// A toxic as it is created: `stream` defaults to downstream, `toxicity` to 1, `name` to
/// `TYPE_STREAM`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToxic {
    pub name: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub stream: Option<String>,
    pub toxicity: Option<f32>,
    #[serde(default)]
    pub attributes: serde_json::Value,
}

impl TryFrom<NewToxic> for Toxic {
    type Error = ApiError;
    fn try_from(t: NewToxic) -> Result<Self, ApiError> {
        t.into_toxic()
    }
}

impl NewToxic {
    pub fn into_toxic(self) -> Result<Toxic, ApiError> {
        let stream = match self.stream.as_deref().unwrap_or("downstream") {
            "upstream" => Stream::Upstream,
            "downstream" => Stream::Downstream,
            _ => {
                return Err(ApiError::bad_request(
                    "stream was invalid, can be either upstream or downstream",
                ));
            }
        };
        if !TYPES.contains(&self.kind.as_str()) {
            return Err(ApiError::bad_request("invalid toxic type"));
        }
        let toxicity = self.toxicity.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(ApiError::bad_request(
                "bad request body: toxicity must be between 0 and 1",
            ));
        }
        Ok(Toxic {
            name: self
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{}_{}", self.kind, stream.as_str())),
            attributes: Attributes::parse(&self.kind, &self.attributes)?,
            kind: self.kind,
            stream,
            toxicity,
        })
    }
}

impl Toxic {
    /// This toxic with `u` applied: its attributes merged over the current ones (the rest
    /// keeps its value), checked as a new toxic's are.
    pub fn updated(self, u: ToxicUpdate) -> Result<Toxic, ApiError> {
        let mut attrs = serde_json::to_value(&self.attributes)
            .map_err(|e| ApiError::new(500, e.to_string()))?;
        if let (Some(into), Some(from)) = (attrs.as_object_mut(), u.attributes.as_object()) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
        let toxicity = u.toxicity.unwrap_or(self.toxicity);
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(ApiError::bad_request(
                "bad request body: toxicity must be between 0 and 1",
            ));
        }
        Ok(Toxic {
            attributes: Attributes::parse(&self.kind, &attrs)?,
            toxicity,
            ..self
        })
    }
}

/// An update of a toxic: new attributes (merged over the current ones) and toxicity.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ToxicUpdate {
    #[serde(default)]
    pub attributes: serde_json::Value,
    pub toxicity: Option<f32>,
}

/// Toxiproxy's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    pub error: String,
    pub status: u16,
}

impl ApiError {
    pub fn new(status: u16, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status,
        }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(400, error)
    }

    pub fn proxy_not_found() -> Self {
        Self::new(404, "proxy not found")
    }

    pub fn toxic_not_found() -> Self {
        Self::new(404, "toxic not found")
    }
}
