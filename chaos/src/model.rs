//! Toxiproxy's JSON shapes, field by field: a proxy `{name, listen, upstream, enabled}`
//! (with its `toxics` when shown), a toxic `{name, type, stream, toxicity, attributes}`,
//! and an error `{"error": "...", "status": CODE}`.

use serde::{Deserialize, Serialize};

/// A proxy as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProxyView {
    pub name: String,
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
}

/// The toxic types this proxy knows.
pub const TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
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
        }
    }
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
#[derive(Debug, Clone, Deserialize)]
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
