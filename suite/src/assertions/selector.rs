//! The selector language, after Tracetest's: `span[service.name="orders" kind="server"]`
//! chooses spans whose every condition holds (AND within the brackets), `A, B` the spans of
//! either (OR), `A B` the spans chosen by `B` that descend from a span chosen by `A`, and
//! `:first`, `:last`, `:nth_child(n)` one span of a step's choice in start order. An empty
//! selector chooses every span.
//!
//! Tracetest's grammar has no Rust implementation to reuse and is small, so the parser is a
//! hand-written descent that reports the column and what it expected.

use std::fmt;

use super::span_set::{Attr, SpanSet};

/// A comparison, in a selector's condition or an assertion.
#[derive(Debug, Clone)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Contains,
    /// `=~`: the value as text matches the regular expression.
    Matches(regex::Regex),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Gt => ">",
            Self::Le => "<=",
            Self::Ge => ">=",
            Self::Contains => "contains",
            Self::Matches(_) => "=~",
        })
    }
}

/// A value written in a selector or an assertion.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    /// Nanoseconds (`500ms`, `2s`, `250us`).
    Duration(i64),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Duration(ns) => write!(f, "{}", show_duration(*ns)),
        }
    }
}

/// Nanoseconds the way people write them: `1.5s`, `120ms`, `80us`.
pub fn show_duration(ns: i64) -> String {
    let abs = ns.unsigned_abs();
    if abs >= 1_000_000_000 {
        format!("{}s", ns as f64 / 1e9)
    } else if abs >= 1_000_000 {
        format!("{}ms", ns as f64 / 1e6)
    } else if abs >= 1_000 {
        format!("{}us", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

impl Op {
    /// Whether `actual op expected` holds. A number compares as a number (an attribute
    /// sent as text that reads as one too), a duration as a duration; `contains` and `=~`
    /// read the value as text.
    pub fn holds(&self, actual: &Attr, expected: &Literal) -> bool {
        use std::cmp::Ordering::*;
        let text = actual.to_string();
        let order = match (actual, expected) {
            (Attr::Duration(a), Literal::Duration(b)) => Some(a.cmp(b)),
            (Attr::Number(a), Literal::Number(b)) => a.partial_cmp(b),
            (Attr::Text(a), Literal::Number(b)) => {
                a.parse::<f64>().ok().and_then(|a| a.partial_cmp(b))
            }
            (Attr::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
            (Attr::Text(a), Literal::Bool(b)) => {
                Some(a.as_str().cmp(if *b { "true" } else { "false" }))
            }
            (Attr::Text(a), Literal::Text(b)) => Some(a.as_str().cmp(b.as_str())),
            (_, Literal::Text(b)) => Some(text.as_str().cmp(b.as_str())),
            _ => None,
        };
        match self {
            Self::Eq => order == Some(Equal),
            Self::Ne => order != Some(Equal),
            Self::Lt => order == Some(Less),
            Self::Gt => order == Some(Greater),
            Self::Le => matches!(order, Some(Less | Equal)),
            Self::Ge => matches!(order, Some(Greater | Equal)),
            Self::Contains => match expected {
                Literal::Text(b) => text.contains(b.as_str()),
                other => text.contains(&other.to_string()),
            },
            Self::Matches(re) => re.is_match(&text),
        }
    }
}

/// One condition inside brackets: `key op value`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub key: String,
    pub op: Op,
    pub value: Literal,
}

impl Condition {
    /// A span matches when its value for the key compares; a span without the key matches
    /// only `!=`. `event` is every event's name: `event="retry"` holds when one is called
    /// so, `event!="retry"` when none is.
    fn matches(&self, spans: &SpanSet, node: usize) -> bool {
        let values = spans.values(node, &self.key);
        match self.op {
            Op::Ne => values.iter().all(|v| self.op.holds(v, &self.value)),
            _ => values.iter().any(|v| self.op.holds(v, &self.value)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pseudo {
    First,
    Last,
    /// 1-based.
    NthChild(usize),
}

/// `span[...]` with its pseudo-class.
#[derive(Debug, Clone)]
struct Step {
    conditions: Vec<Condition>,
    pseudo: Option<Pseudo>,
}

/// A selector as written, parsed.
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    /// OR of descendant chains; none for the empty selector (every span).
    alternatives: Vec<Vec<Step>>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A selector or assertion that does not parse: where (0-based character in its text) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {}: {message}", column + 1)]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut p = Parser::new(text);
        let mut alternatives = Vec::new();
        p.skip_ws();
        if !p.at_end() {
            loop {
                alternatives.push(p.chain()?);
                p.skip_ws();
                if p.at_end() {
                    break;
                }
                p.expect(',', "`,` between selectors, or the end")?;
                p.skip_ws();
            }
        }
        Ok(Self {
            text: text.to_string(),
            alternatives,
        })
    }

    /// The spans chosen, as indices into `spans` in start order, each once.
    pub fn select(&self, spans: &SpanSet) -> Vec<usize> {
        if self.alternatives.is_empty() {
            return (0..spans.len()).collect();
        }
        let mut chosen: Vec<usize> = self
            .alternatives
            .iter()
            .flat_map(|chain| select_chain(chain, spans))
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        chosen
    }
}

fn select_chain(chain: &[Step], spans: &SpanSet) -> Vec<usize> {
    let mut current: Vec<usize> = Vec::new();
    for (i, step) in chain.iter().enumerate() {
        let matched: Vec<usize> = (0..spans.len())
            .filter(|&n| step.conditions.iter().all(|c| c.matches(spans, n)))
            .filter(|&n| {
                i == 0
                    || spans
                        .ancestors(n)
                        .any(|a| current.binary_search(&a).is_ok())
            })
            .collect();
        current = match step.pseudo {
            None => matched,
            Some(Pseudo::First) => matched.first().copied().into_iter().collect(),
            Some(Pseudo::Last) => matched.last().copied().into_iter().collect(),
            Some(Pseudo::NthChild(n)) => matched.get(n - 1).copied().into_iter().collect(),
        };
    }
    current
}

/// A cursor over a selector's or assertion's characters.
pub(super) struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _text: &'a str,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            _text: text,
        }
    }

    pub(super) fn error<T>(&self, message: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            column: self.pos,
            message: message.into(),
        })
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, word: &str) -> bool {
        let n = word.chars().count();
        let here: String = self.chars.iter().skip(self.pos).take(n).collect();
        if here == word {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}, found {}", self.found()))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(c) => format!("`{c}`"),
        }
    }

    /// `span[...] span[...] ...` up to a `,` or the end.
    fn chain(&mut self) -> Result<Vec<Step>, SyntaxError> {
        let mut steps = vec![self.step()?];
        loop {
            let spaced = self.skip_ws();
            if self.at_end() || self.peek() == Some(',') {
                return Ok(steps);
            }
            if !spaced {
                return self.error(format!(
                    "expected a space before the next `span[...]`, `,` or the end, found {}",
                    self.found()
                ));
            }
            steps.push(self.step()?);
        }
    }

    fn step(&mut self) -> Result<Step, SyntaxError> {
        if !self.eat("span") {
            return self.error(format!("expected `span[`, found {}", self.found()));
        }
        self.expect('[', "`[` after `span`")?;
        let mut conditions = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(']') {
                self.pos += 1;
                break;
            }
            if self.at_end() {
                return self.error("expected a condition or `]`, found the end");
            }
            conditions.push(self.condition()?);
        }
        if conditions.is_empty() {
            return self.error_at(
                self.pos - 1,
                "expected a condition: `span[]` chooses nothing (an empty selector chooses every span)",
            );
        }
        let pseudo = self.pseudo()?;
        Ok(Step { conditions, pseudo })
    }

    fn error_at<T>(&self, column: usize, message: &str) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            column,
            message: message.into(),
        })
    }

    fn pseudo(&mut self) -> Result<Option<Pseudo>, SyntaxError> {
        if self.peek() != Some(':') {
            return Ok(None);
        }
        self.pos += 1;
        if self.eat("first") {
            return Ok(Some(Pseudo::First));
        }
        if self.eat("last") {
            return Ok(Some(Pseudo::Last));
        }
        if self.eat("nth_child(") {
            let at = self.pos;
            let digits = self.take_while(|c| c.is_ascii_digit());
            let n: usize = digits.parse().unwrap_or(0);
            if n == 0 {
                return self.error_at(at, "expected a position from 1 in `:nth_child(n)`");
            }
            self.expect(')', "`)` closing `:nth_child(`")?;
            return Ok(Some(Pseudo::NthChild(n)));
        }
        self.error(format!(
            "expected `first`, `last` or `nth_child(n)` after `:`, found {}",
            self.found()
        ))
    }

    pub(super) fn column(&self) -> usize {
        self.pos
    }

    pub(super) fn error_at_column<T>(
        &self,
        column: usize,
        message: String,
    ) -> Result<T, SyntaxError> {
        Err(SyntaxError { column, message })
    }

    /// `word` when no name character follows it.
    pub(super) fn eat_word(&mut self, word: &str) -> bool {
        let start = self.pos;
        if self.eat(word) && !self.peek().is_some_and(is_key_char) {
            return true;
        }
        self.pos = start;
        false
    }

    pub(super) fn eat_prefix(&mut self, prefix: &str) -> bool {
        self.eat(prefix)
    }

    /// An event's name: bare like a key, or quoted when it holds spaces.
    pub(super) fn event_name(&mut self) -> Result<String, SyntaxError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => match self.quoted(q)? {
                Literal::Text(t) => Ok(t),
                _ => self.error("expected an event name"),
            },
            _ => self.key(),
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// An attribute key: letters, digits, `_`, `.`, `-`, `/` and `@`.
    pub(super) fn key(&mut self) -> Result<String, SyntaxError> {
        let key = self.take_while(is_key_char);
        if key.is_empty() {
            return self.error(format!(
                "expected an attribute name, found {}",
                self.found()
            ));
        }
        Ok(key)
    }

    fn condition(&mut self) -> Result<Condition, SyntaxError> {
        let key = self.key()?;
        self.skip_ws();
        let op = self.op()?;
        self.skip_ws();
        let at = self.pos;
        let value = self.literal()?;
        let op = compile(op, &value).or_else(|m| self.error_at(at, &m))?;
        check_key(&key, &op, &value).or_else(|m| self.error_at(at, &m))?;
        Ok(Condition { key, op, value })
    }

    /// An operator: `=`, `!=`, `<`, `>`, `<=`, `>=`, `contains`, `=~`.
    pub(super) fn op(&mut self) -> Result<Op, SyntaxError> {
        for (word, op) in [
            ("=~", Op::Matches(regex_placeholder())),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("contains", Op::Contains),
        ] {
            if self.eat(word) {
                return Ok(op);
            }
        }
        self.error(format!(
            "expected an operator (=, !=, <, >, <=, >=, contains, =~), found {}",
            self.found()
        ))
    }

    /// A quoted string, a number, `true`/`false`, or a duration (`500ms`).
    pub(super) fn literal(&mut self) -> Result<Literal, SyntaxError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => self.quoted(q),
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let at = self.pos;
                let word = self.take_while(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
                number_or_duration(&word).or_else(|m| self.error_at(at, &m))
            }
            _ if self.eat("true") => Ok(Literal::Bool(true)),
            _ if self.eat("false") => Ok(Literal::Bool(false)),
            _ => self.error(format!(
                "expected a value (\"text\", a number, a duration like 500ms, true or false), found {}",
                self.found()
            )),
        }
    }

    fn quoted(&mut self, quote: char) -> Result<Literal, SyntaxError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return self.error_at(start, &format!("this {quote} is never closed")),
                Some('\\') if self.chars.get(self.pos + 1).is_some() => {
                    text.push(self.chars[self.pos + 1]);
                    self.pos += 2;
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(Literal::Text(text));
                }
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || "_.-/@".contains(c)
}

/// The operator a regular expression will replace once the value is read.
fn regex_placeholder() -> regex::Regex {
    regex::Regex::new("").unwrap_or_else(|_| unreachable!("the empty expression compiles"))
}

/// `=~` gets its compiled expression; the value must suit the operator.
pub(super) fn compile(op: Op, value: &Literal) -> Result<Op, String> {
    match (op, value) {
        (Op::Matches(_), Literal::Text(re)) => regex::Regex::new(re)
            .map(Op::Matches)
            .map_err(|e| format!("not a regular expression: {e}")),
        (Op::Matches(_), _) => Err("`=~` takes a quoted regular expression".into()),
        (Op::Contains, Literal::Text(_)) => Ok(Op::Contains),
        (Op::Contains, _) => Err("`contains` takes quoted text".into()),
        (op, _) => Ok(op),
    }
}

/// The keys with a type of their own take values of that type.
pub(super) fn check_key(key: &str, op: &Op, value: &Literal) -> Result<(), String> {
    match key {
        "duration" if !matches!(value, Literal::Duration(_)) => {
            Err("`duration` compares with a duration, like 500ms or 2s".into())
        }
        "kind" if matches!(op, Op::Eq | Op::Ne) => match value {
            Literal::Text(k)
                if ["server", "client", "producer", "consumer", "internal", ""]
                    .contains(&k.as_str()) =>
            {
                Ok(())
            }
            _ => Err(
                "`kind` is one of \"server\", \"client\", \"producer\", \"consumer\", \"internal\""
                    .into(),
            ),
        },
        "status" if matches!(op, Op::Eq | Op::Ne) => match value {
            Literal::Text(s) if ["ok", "error", "unset"].contains(&s.as_str()) => Ok(()),
            _ => Err("`status` is one of \"ok\", \"error\", \"unset\"".into()),
        },
        _ => Ok(()),
    }
}

fn number_or_duration(word: &str) -> Result<Literal, String> {
    if let Ok(n) = word.parse::<f64>() {
        return Ok(Literal::Number(n));
    }
    let split = word
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(word.len());
    let (number, unit) = word.split_at(split);
    let per = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => {
            return Err(format!(
                "{word:?} is neither a number nor a duration (units: ns, us, ms, s, m)"
            ));
        }
    };
    number
        .parse::<f64>()
        .map(|n| Literal::Duration((n * per) as i64))
        .map_err(|_| format!("{word:?} is neither a number nor a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gauntlet_query_api::jaeger::{Process, RefType, Reference, Span, Tag, Trace};

    /// gateway → orders → payments, and an orders span beside.
    fn trace() -> SpanSet {
        let span = |id: &str, parent: Option<&str>, p: &str, name: &str, start: i64| Span {
            trace_id: "t".into(),
            span_id: id.into(),
            operation_name: name.into(),
            references: parent
                .map(|p| Reference {
                    ref_type: RefType::ChildOf,
                    trace_id: "t".into(),
                    span_id: p.into(),
                })
                .into_iter()
                .collect(),
            flags: 1,
            start_time: start,
            duration: 1000,
            tags: vec![Tag::string("span.kind", "server")],
            logs: Vec::new(),
            process_id: p.into(),
            warnings: None,
        };
        let process = |name: &str| Process {
            service_name: name.into(),
            tags: Vec::new(),
        };
        let t = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("a", None, "p1", "GET /", 1),
                span("b", Some("a"), "p2", "POST /orders", 2),
                span("c", Some("b"), "p3", "POST /payments", 3),
                span("d", Some("a"), "p2", "GET /orders", 4),
            ],
            processes: [("p1", "gateway"), ("p2", "orders"), ("p3", "payments")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), process(v)))
                .collect(),
            warnings: None,
        };
        SpanSet::new([&t])
    }

    fn ids(selector: &str) -> Vec<String> {
        let spans = trace();
        Selector::parse(selector)
            .expect("parses")
            .select(&spans)
            .into_iter()
            .map(|i| spans.node(i).span.span_id.clone())
            .collect()
    }

    #[test]
    fn selects_as_tracetest_does() {
        assert_eq!(ids(""), ["a", "b", "c", "d"]);
        assert_eq!(ids(r#"span[service.name="orders"]"#), ["b", "d"]);
        assert_eq!(
            ids(r#"span[service.name="orders" name contains "POST"]"#),
            ["b"]
        );
        assert_eq!(ids(r#"span[service.name!="orders"]"#), ["a", "c"]);
        assert_eq!(
            ids(r#"span[name=~"^GET"], span[service.name="payments"]"#),
            ["a", "c", "d"]
        );
        assert_eq!(
            ids(r#"span[service.name="gateway"] span[service.name="payments"]"#),
            ["c"]
        );
        assert_eq!(
            ids(r#"span[service.name="payments"] span[service.name="orders"]"#),
            Vec::<String>::new()
        );
        assert_eq!(ids(r#"span[service.name="orders"]:last"#), ["d"]);
        assert_eq!(ids(r#"span[kind="server"]:nth_child(2)"#), ["b"]);
        assert_eq!(
            ids(r#"span[duration>=1ms duration<2ms]"#),
            ["a", "b", "c", "d"]
        );
        assert_eq!(ids(r#"span[no.such.key="x"]"#), Vec::<String>::new());
        assert_eq!(ids(r#"span[no.such.key!="x"]"#), ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_bad_selector_says_where_and_what_was_expected() {
        for (text, column, says) in [
            ("span", 5, "expected `[` after `span`"),
            ("span[]", 6, "expected a condition"),
            ("span[a=1]span[b=2]", 10, "expected a space"),
            ("span[a 1]", 8, "expected an operator"),
            ("span[a=~\"(\"]", 9, "not a regular expression"),
            (
                "span[a=1]:second",
                11,
                "expected `first`, `last` or `nth_child(n)`",
            ),
            ("span[a=1]:nth_child(0)", 21, "a position from 1"),
            ("span[a=\"x]", 8, "never closed"),
            ("span[duration<5]", 15, "compares with a duration"),
            ("span[a=1], ", 12, "expected `span[`"),
            ("span[a=5xs]", 8, "neither a number nor a duration"),
        ] {
            let e = Selector::parse(text).expect_err(text);
            assert_eq!(e.column + 1, column, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }
}
