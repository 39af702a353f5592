//! Assertions on the spans a selector chose, after Tracetest's: `count = 1` (how many were
//! chosen), and on every chosen span `attr:http.response.status_code = 201`,
//! `attr:correlation_id exists` (or `absent`), `duration < 500ms`, `event:retry = 0` (how many
//! of its events are called so), `links >= 1` (how many spans it links to), `children <= 1` (how many spans it
//! is the parent of). `attr:` reads
//! the same keys as selectors (`service.name`, `name`, `kind`, `status`, any attribute).

use std::fmt;

use super::selector::{Literal, Op, Parser, SyntaxError, check_key, compile};
use super::span_set::{Attr, SpanSet};

#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// How many spans the selector chose.
    Count,
    Attr(String),
    /// How many of the span's events are called this.
    Event(String),
}

#[derive(Debug, Clone)]
enum Test {
    Compare(Op, Literal),
    Exists,
    Absent,
}

/// One assertion as written, parsed.
#[derive(Debug, Clone)]
pub struct Check {
    text: String,
    pub subject: Subject,
    test: Test,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a check failed: the span (when it is about one) and the value it had.
#[derive(Debug, Clone, PartialEq)]
pub struct Miss {
    /// Index into the span set; `None` for `count`.
    pub span: Option<usize>,
    /// What was measured (`"absent"` when the span lacks the attribute).
    pub actual: String,
}

impl Check {
    /// Whether it is about each chosen span rather than how many were chosen.
    pub fn per_span(&self) -> bool {
        self.subject != Subject::Count
    }

    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut p = Parser::new(text);
        p.skip_ws();
        let subject = subject(&mut p)?;
        p.skip_ws();
        let test = if matches!(subject, Subject::Attr(_)) && p.eat_word("exists") {
            Test::Exists
        } else if matches!(subject, Subject::Attr(_)) && p.eat_word("absent") {
            Test::Absent
        } else {
            let op = p.op()?;
            p.skip_ws();
            let at = p.column();
            let value = p.literal()?;
            let op = compile(op, &value).or_else(|m| p.error_at_column(at, m))?;
            if let Subject::Attr(key) = &subject {
                check_key(key, &op, &value).or_else(|m| p.error_at_column(at, m))?;
            } else if !matches!(value, Literal::Number(_)) {
                return p.error_at_column(at, "a count compares with a number".into());
            }
            Test::Compare(op, value)
        };
        p.skip_ws();
        if !p.at_end() {
            return p.error("expected the end of the assertion");
        }
        Ok(Self {
            text: text.trim().to_string(),
            subject,
            test,
        })
    }

    /// The first way the chosen spans break this check, if any (a check about each span
    /// holds for none; the spec's judge decides what an empty choice means).
    pub fn first_miss(&self, spans: &SpanSet, chosen: &[usize]) -> Option<Miss> {
        if self.subject == Subject::Count {
            let n = Attr::Number(chosen.len() as f64);
            return (!self.holds(&[n])).then(|| Miss {
                span: None,
                actual: chosen.len().to_string(),
            });
        }
        chosen.iter().find_map(|&i| {
            let values = match &self.subject {
                Subject::Attr(key) => spans.values(i, key),
                Subject::Event(name) => vec![Attr::Number(spans.events_named(i, name) as f64)],
                Subject::Count => Vec::new(),
            };
            (!self.holds(&values)).then(|| Miss {
                span: Some(i),
                actual: if values.is_empty() {
                    "absent".into()
                } else {
                    values
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
        })
    }

    fn holds(&self, values: &[Attr]) -> bool {
        match &self.test {
            Test::Exists => !values.is_empty(),
            Test::Absent => values.is_empty(),
            Test::Compare(Op::Ne, v) => values.iter().all(|a| Op::Ne.holds(a, v)),
            Test::Compare(op, v) => values.iter().any(|a| op.holds(a, v)),
        }
    }
}

fn subject(p: &mut Parser<'_>) -> Result<Subject, SyntaxError> {
    if p.eat_word("count") {
        return Ok(Subject::Count);
    }
    if p.eat_word("duration") {
        return Ok(Subject::Attr("duration".into()));
    }
    for word in ["links", "children"] {
        if p.eat_word(word) {
            return Ok(Subject::Attr(word.into()));
        }
    }
    if p.eat_prefix("attr:") {
        return Ok(Subject::Attr(p.key()?));
    }
    if p.eat_prefix("event:") {
        return Ok(Subject::Event(p.event_name()?));
    }
    p.error("expected `count`, `duration`, `links`, `children`, `attr:NAME` or `event:NAME`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_refuses_the_rest() {
        for ok in [
            "count = 1",
            "count <= 2",
            "attr:http.response.status_code = 201",
            "attr:correlation_id exists",
            "attr:correlation_id absent",
            r#"attr:url.full contains "/payments""#,
            r#"attr:name =~ "^POST""#,
            "duration < 500ms",
            "event:retry = 0",
            r#"event:"payment authorized" >= 1"#,
            "links >= 1",
            "children <= 1",
        ] {
            Check::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("size = 1", "expected `count`"),
            ("count = \"one\"", "a count compares with a number"),
            ("count exists", "expected an operator"),
            ("duration < 5", "compares with a duration"),
            ("attr:x = 1 extra", "expected the end"),
            ("attr: = 1", "expected an attribute name"),
        ] {
            let e = Check::parse(bad).expect_err(bad);
            assert!(e.message.contains(says), "{bad}: {e}");
        }
    }
}
