//! Templated URLs, headers and bodies: `{{uuid}}`, `{{seq}}`, `{{rand_int 1 100}}`,
//! `{{csv.column}}` and `{{name}}` (a `[vars]` entry or a value captured from an earlier
//! response). Parsed once when the scenario is loaded, rendered per request.

use std::fmt::Write;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unclosed `{{{{` in {0:?}")]
    Unclosed(String),
    #[error("empty `{{{{}}}}` in {0:?}")]
    Empty(String),
    #[error("{0:?}: rand_int takes two whole numbers, low and high, e.g. {{{{rand_int 1 100}}}}")]
    RandInt(String),
    #[error("{{{{{0}}}}} has no value (not in [vars], not a CSV column, and not captured yet)")]
    Missing(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Uuid,
    Seq,
    RandInt(i64, i64),
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(source.to_string()))?;
            let inner = after[..close].trim();
            let mut words = inner.split_whitespace();
            let part = match words.next() {
                None => return Err(TemplateError::Empty(source.to_string())),
                Some("uuid") => Part::Uuid,
                Some("seq") => Part::Seq,
                Some("rand_int") => {
                    let bounds: Vec<i64> = words.filter_map(|w| w.parse().ok()).collect();
                    match bounds[..] {
                        [lo, hi] if lo <= hi && inner.split_whitespace().count() == 3 => {
                            Part::RandInt(lo, hi)
                        }
                        _ => return Err(TemplateError::RandInt(inner.to_string())),
                    }
                }
                Some(name) => Part::Var(name.to_string()),
            };
            parts.push(part);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// A template that is `text` as it is, braces included.
    pub fn literal(text: impl Into<String>) -> Self {
        Self {
            parts: vec![Part::Text(text.into())],
        }
    }

    /// The variables this template reads (`uuid`, `seq` and `rand_int` excluded).
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// The text, when the template has no placeholders at all.
    pub fn as_static(&self) -> Option<&str> {
        match &self.parts[..] {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders with `seq` (the run's request counter) and `lookup` for variables.
    pub fn render<'a>(
        &self,
        seq: u64,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Uuid => {
                    let _ = write!(out, "{}", uuid::Uuid::now_v7());
                }
                Part::Seq => {
                    let _ = write!(out, "{seq}");
                }
                Part::RandInt(lo, hi) => {
                    let _ = write!(out, "{}", fastrand::i64(*lo..=*hi));
                }
                Part::Var(name) => {
                    out.push_str(lookup(name).ok_or_else(|| TemplateError::Missing(name.clone()))?)
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_and_bad_ones_say_what_is_wrong() {
        let t = Template::parse("{{base}}/orders/{{ seq }}?r={{rand_int 5 5}}").expect("parses");
        let out = t
            .render(42, |v| (v == "base").then_some("http://x"))
            .expect("renders");
        assert_eq!(out, "http://x/orders/42?r=5");
        assert_eq!(t.vars().collect::<Vec<_>>(), ["base"]);
        let id = Template::parse("{{uuid}}")
            .expect("parses")
            .render(0, |_| None)
            .expect("renders");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(
            Template::parse("plain").expect("parses").as_static(),
            Some("plain")
        );
        assert!(matches!(
            Template::parse("{{oops"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("{{rand_int 9 1}}"),
            Err(TemplateError::RandInt(_))
        ));
        assert!(matches!(
            Template::parse("{{ }}"),
            Err(TemplateError::Empty(_))
        ));
        assert_eq!(
            Template::parse("{{token}}")
                .expect("parses")
                .render(0, |_| None),
            Err(TemplateError::Missing("token".into()))
        );
    }
}
