//! An assertion file as written (TOML), checked whole: every selector and assertion
//! parsed, every key known, before anything is sent. A mistake in a selector or an
//! assertion is reported at its line and column in the file, with what was expected.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::check::Check;
use super::selector::{Selector, SyntaxError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertFile {
    title: String,
    #[serde(default)]
    scope: Scope,
    /// No new span for this long and the set is taken as complete.
    quiet: Option<String>,
    /// Give up waiting for a quiet set after this long (and say so).
    timeout: Option<String>,
    trigger: Option<RequestSpec>,
    #[serde(default, rename = "spec")]
    specs: Vec<SpecFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    /// `""`: every span.
    selector: Spanned<String>,
    /// Only the trace sets where this selector chooses a span are checked.
    when: Option<Spanned<String>>,
    #[serde(rename = "assert")]
    checks: Vec<Spanned<String>>,
    /// The share of trace sets that must pass (`"99%"`); all of them unless said.
    #[serde(rename = "for")]
    share: Option<Spanned<String>>,
}

/// What a spec's trace sets are: every trace of one correlation ID (its asynchronous hops
/// included), or one trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Correlation,
    Trace,
}

/// The request an assertion file sends as its trigger. `{{gateway}}` is the system's
/// gateway, `{{uuid}}` a fresh UUID, `{{token}}` the bearer token `token` fetched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Option<String>,
    /// The status the trigger must answer (any 2xx unless said).
    pub status: Option<u16>,
    pub token: Option<TokenSpec>,
}

fn get() -> String {
    "GET".into()
}

/// A bearer token fetched before the trigger: `POST url` with `body`, the token at the JSON
/// pointer `pointer` of the answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub url: String,
    pub body: String,
    pub pointer: String,
}

/// One spec, checked.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub selector: Selector,
    pub when: Option<Selector>,
    pub checks: Vec<Check>,
    /// 0 < share ≤ 1.
    pub share: f64,
}

/// An assertion file, checked whole.
#[derive(Debug, Clone)]
pub struct Assertions {
    pub title: String,
    pub path: std::path::PathBuf,
    pub scope: Scope,
    pub quiet: Duration,
    pub timeout: Duration,
    pub trigger: Option<RequestSpec>,
    pub specs: Vec<Spec>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssertFileError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a valid assertion file: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Assertions {
    pub fn load(path: &Path) -> Result<Self, AssertFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AssertFileError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, AssertFileError> {
        let shown = path.display().to_string();
        let invalid = |message: String| AssertFileError::Invalid {
            path: shown.clone(),
            message,
        };
        let file: AssertFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.specs.is_empty() {
            return Err(invalid("it has no [[spec]]: nothing to assert".into()));
        }
        let time = |v: &Option<String>, default: u64, what: &str| match v {
            None => Ok(Duration::from_secs(default)),
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| invalid(format!("{what} = {t:?} is not a duration like 2s: {e}"))),
        };
        let quiet = time(&file.quiet, 2, "quiet")?;
        let timeout = time(&file.timeout, 30, "timeout")?;
        let at = |s: &Spanned<String>, e: SyntaxError, what: &str| {
            let (line, column) = position(text, s.span().start, e.column);
            AssertFileError::At {
                path: shown.clone(),
                line,
                column,
                message: format!("{what}: {}", e.message),
            }
        };
        let mut specs = Vec::new();
        for s in file.specs {
            let what = |part: &str| format!("the {part} of spec {:?}", s.name);
            let selector = Selector::parse(s.selector.get_ref())
                .map_err(|e| at(&s.selector, e, &what("selector")))?;
            let when = s
                .when
                .as_ref()
                .map(|w| Selector::parse(w.get_ref()).map_err(|e| at(w, e, &what("when"))))
                .transpose()?;
            if s.checks.is_empty() {
                return Err(invalid(format!(
                    "spec {:?} asserts nothing: give it assert = [...]",
                    s.name
                )));
            }
            let checks = s
                .checks
                .iter()
                .map(|c| Check::parse(c.get_ref()).map_err(|e| at(c, e, &what("assertion"))))
                .collect::<Result<_, _>>()?;
            let share = match &s.share {
                None => 1.0,
                Some(f) => parse_share(f.get_ref()).map_err(|m| {
                    let (line, column) = position(text, f.span().start, 0);
                    AssertFileError::At {
                        path: shown.clone(),
                        line,
                        column,
                        message: format!("{}: {m}", what("for")),
                    }
                })?,
            };
            specs.push(Spec {
                name: s.name,
                selector,
                when,
                checks,
                share,
            });
        }
        Ok(Self {
            title: file.title,
            path: path.to_path_buf(),
            scope: file.scope,
            quiet,
            timeout,
            trigger: file.trigger,
            specs,
        })
    }
}

/// `"99%"` → 0.99.
fn parse_share(text: &str) -> Result<f64, String> {
    let n = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("{text:?} is not a share like \"99%\""))?;
    if n > 0.0 && n <= 100.0 {
        Ok(n / 100.0)
    } else {
        Err(format!("{text:?} must be above 0% and at most 100%"))
    }
}

/// The 1-based line and column in `text` of the `column`-th character of the TOML string
/// starting at byte `start` (its opening quote; three for a multi-line string).
fn position(text: &str, start: usize, column: usize) -> (usize, usize) {
    let rest = &text[start.min(text.len())..];
    let quotes = rest.chars().take_while(|c| *c == '"' || *c == '\'').count();
    let quotes = if quotes >= 3 { 3 } else { quotes.min(1) };
    let before = &text[..start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..start.min(text.len())].chars().count() + quotes + column + 1;
    (line, col)
}
