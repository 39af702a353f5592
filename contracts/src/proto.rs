//! A gRPC API's contract is its `.proto`: Pact's gRPC support needs a plugin, so a consumer
//! pins a copy of the provider's `.proto` files, and the provider's CI checks its current
//! ones against that copy. [`breaking`] lists what would break a consumer built from the
//! pinned copy, by buf's rules (named as buf names them): the `WIRE_JSON` category (what
//! breaks the binary or the JSON encoding) and the service rules of its `PACKAGE` category
//! (a removed or changed method breaks every caller of it).
//!
//! Things are matched by full name (`.package.Message.field`), fields and enum values by
//! number. Checked, for everything the pinned copy has:
//! - `SERVICE_NO_DELETE`, `RPC_NO_DELETE`: a service or method is gone;
//! - `RPC_SAME_REQUEST_TYPE`, `RPC_SAME_RESPONSE_TYPE`, `RPC_SAME_CLIENT_STREAMING`,
//!   `RPC_SAME_SERVER_STREAMING`: a method takes, answers or streams otherwise;
//! - `MESSAGE_NO_DELETE`, `ENUM_NO_DELETE`: a message or enum is gone (a consumer decodes it);
//! - `FIELD_NO_DELETE_UNLESS_NAME_RESERVED`: a field's number is gone and not reserved, with
//!   its name, in the message (a field renumbered is this: its old number is gone);
//! - `FIELD_SAME_NAME`, `FIELD_SAME_JSON_NAME`: the number now has another name (JSON keys);
//! - `FIELD_SAME_TYPE`: another scalar or message type. Stricter than buf's
//!   `FIELD_WIRE_JSON_COMPATIBLE_TYPE`, which lets a few pairs through (e.g. `int32` →
//!   `int64`): any change of type is refused here;
//! - `FIELD_SAME_CARDINALITY`: singular, `optional`, `repeated` or map changed;
//! - `FIELD_SAME_ONEOF`: moved into, out of or between oneofs;
//! - `ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED`, `ENUM_VALUE_SAME_NAME`: an enum value's
//!   number is gone (its name not reserved), or has another name (JSON writes names).
//!
//! What is added (services, methods, messages, fields, values) never breaks a consumer.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
};

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not compile: {reason}")]
    Compile { path: String, reason: String },
    #[error(
        "{path} is not a FileDescriptorSet (the binary `protoc -o` and `buf build -o` write): {reason}"
    )]
    Descriptor { path: String, reason: String },
    #[error("{path}: give a .proto file, or a descriptor set (.binpb, .pb, .desc)")]
    Kind { path: String },
}

/// The API at `path`: a `.proto` file compiled (with `protox`, imports found beside it and
/// in `includes`), or a binary descriptor set as `protoc -o` or `buf build -o` write it.
pub fn load(path: &Path, includes: &[PathBuf]) -> Result<FileDescriptorSet, ProtoError> {
    let shown = path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some("proto") => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(Path::new("."));
            let file = path.file_name().map(PathBuf::from).unwrap_or_default();
            let mut dirs = vec![dir.to_path_buf()];
            dirs.extend(includes.iter().cloned());
            if !path.is_file() {
                return Err(ProtoError::Read {
                    path: shown,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            protox::compile([file], &dirs).map_err(|e| ProtoError::Compile {
                path: shown,
                reason: compile_error(&e, &dirs),
            })
        }
        Some("binpb" | "pb" | "desc") => {
            let bytes = std::fs::read(path).map_err(|source| ProtoError::Read {
                path: shown.clone(),
                source,
            })?;
            FileDescriptorSet::decode(bytes.as_slice()).map_err(|e| ProtoError::Descriptor {
                path: shown,
                reason: e.to_string(),
            })
        }
        _ => Err(ProtoError::Kind { path: shown }),
    }
}

/// protox's error with the file and line it points at, when it names them.
fn compile_error(e: &protox::Error, dirs: &[PathBuf]) -> String {
    use miette::Diagnostic;
    let Some(file) = e.file() else {
        return e.to_string();
    };
    let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let text = dirs.iter().find_map(|d| std::fs::read(d.join(file)).ok());
    match offset.zip(text) {
        Some((at, text)) => {
            let line = text[..at.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            format!("{file}:{}: {e}", line + 1)
        }
        None => format!("{file}: {e}"),
    }
}

/// One change that breaks consumers of the pinned API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Breaking {
    /// buf's name for the rule.
    pub rule: &'static str,
    /// What it is about: `.pkg.Service/Method`, `.pkg.Message.field` (number), ...
    pub at: String,
    pub why: String,
}

impl fmt::Display for Breaking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.rule, self.at, self.why)
    }
}

/// What the current API breaks of the pinned one, sorted.
pub fn breaking(pinned: &FileDescriptorSet, current: &FileDescriptorSet) -> Vec<Breaking> {
    let (was, now) = (Index::of(pinned), Index::of(current));
    let mut out = Vec::new();
    for (name, service) in &was.services {
        match now.services.get(name) {
            None => out.push(found("SERVICE_NO_DELETE", name, "the service is gone")),
            Some(current) => services(&mut out, name, service, current),
        }
    }
    for (name, message) in &was.messages {
        match now.messages.get(name) {
            None => out.push(found("MESSAGE_NO_DELETE", name, "the message is gone")),
            Some(current) => messages(&mut out, name, message, current),
        }
    }
    for (name, e) in &was.enums {
        match now.enums.get(name) {
            None => out.push(found("ENUM_NO_DELETE", name, "the enum is gone")),
            Some(current) => enums(&mut out, name, e, current),
        }
    }
    out.sort();
    out
}

fn found(rule: &'static str, at: &str, why: impl Into<String>) -> Breaking {
    Breaking {
        rule,
        at: at.to_string(),
        why: why.into(),
    }
}

/// Every service, message and enum of a set, by full name (nested ones included).
#[derive(Default)]
struct Index<'a> {
    services: BTreeMap<String, &'a ServiceDescriptorProto>,
    messages: BTreeMap<String, &'a DescriptorProto>,
    enums: BTreeMap<String, &'a EnumDescriptorProto>,
}

impl<'a> Index<'a> {
    fn of(set: &'a FileDescriptorSet) -> Self {
        let mut index = Index::default();
        for file in &set.file {
            let scope = match file.package() {
                "" => String::new(),
                p => format!(".{p}"),
            };
            for s in &file.service {
                index.services.insert(format!("{scope}.{}", s.name()), s);
            }
            for e in &file.enum_type {
                index.enums.insert(format!("{scope}.{}", e.name()), e);
            }
            for m in &file.message_type {
                index.message(&scope, m);
            }
        }
        index
    }

    fn message(&mut self, scope: &str, m: &'a DescriptorProto) {
        let name = format!("{scope}.{}", m.name());
        for e in &m.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e);
        }
        for nested in &m.nested_type {
            self.message(&name, nested);
        }
        self.messages.insert(name, m);
    }
}

fn services(
    out: &mut Vec<Breaking>,
    name: &str,
    was: &ServiceDescriptorProto,
    now: &ServiceDescriptorProto,
) {
    for method in &was.method {
        let at = format!("{name}/{}", method.name());
        let Some(current) = now.method.iter().find(|m| m.name() == method.name()) else {
            out.push(found("RPC_NO_DELETE", &at, "the method is gone"));
            continue;
        };
        let pairs = [
            (
                "RPC_SAME_REQUEST_TYPE",
                "request",
                method.input_type(),
                current.input_type(),
            ),
            (
                "RPC_SAME_RESPONSE_TYPE",
                "response",
                method.output_type(),
                current.output_type(),
            ),
        ];
        for (rule, what, a, b) in pairs {
            if a != b {
                out.push(found(rule, &at, format!("the {what} was {a}, now {b}")));
            }
        }
        let streams = [
            (
                "RPC_SAME_CLIENT_STREAMING",
                "client",
                method.client_streaming(),
                current.client_streaming(),
            ),
            (
                "RPC_SAME_SERVER_STREAMING",
                "server",
                method.server_streaming(),
                current.server_streaming(),
            ),
        ];
        for (rule, side, a, b) in streams {
            if a != b {
                let said = |s: bool| if s { "streaming" } else { "unary" };
                out.push(found(
                    rule,
                    &at,
                    format!("the {side} side was {}, now {}", said(a), said(b)),
                ));
            }
        }
    }
}

fn messages(out: &mut Vec<Breaking>, name: &str, was: &DescriptorProto, now: &DescriptorProto) {
    let reserved_numbers = |n: i32| {
        now.reserved_range
            .iter()
            .any(|r| r.start() <= n && n < r.end())
    };
    let reserved_name = |s: &str| now.reserved_name.iter().any(|r| r == s);
    for field in &was.field {
        let at = format!("{name}.{} ({})", field.name(), field.number());
        let Some(current) = now.field.iter().find(|f| f.number() == field.number()) else {
            if reserved_numbers(field.number()) && reserved_name(field.name()) {
                continue;
            }
            let why = match now.field.iter().find(|f| f.name() == field.name()) {
                Some(moved) => format!(
                    "renumbered from {} to {}: a consumer's {} is read as nothing",
                    field.number(),
                    moved.number(),
                    field.number()
                ),
                None => format!(
                    "the field is gone; reserve {} and \"{}\" to retire it",
                    field.number(),
                    field.name()
                ),
            };
            out.push(found("FIELD_NO_DELETE_UNLESS_NAME_RESERVED", &at, why));
            continue;
        };
        fields(out, &at, (was, field), (now, current));
    }
}

fn fields(
    out: &mut Vec<Breaking>,
    at: &str,
    (was_msg, was): (&DescriptorProto, &FieldDescriptorProto),
    (now_msg, now): (&DescriptorProto, &FieldDescriptorProto),
) {
    if was.name() != now.name() {
        out.push(found(
            "FIELD_SAME_NAME",
            at,
            format!("now named {}", now.name()),
        ));
    }
    if json_name(was) != json_name(now) {
        out.push(found(
            "FIELD_SAME_JSON_NAME",
            at,
            format!(
                "its JSON name was {}, now {}",
                json_name(was),
                json_name(now)
            ),
        ));
    }
    if type_of(was) != type_of(now) {
        out.push(found(
            "FIELD_SAME_TYPE",
            at,
            format!("was {}, now {}", type_of(was), type_of(now)),
        ));
    }
    if cardinality(was) != cardinality(now) {
        out.push(found(
            "FIELD_SAME_CARDINALITY",
            at,
            format!("was {}, now {}", cardinality(was), cardinality(now)),
        ));
    }
    let (a, b) = (oneof(was_msg, was), oneof(now_msg, now));
    if a != b {
        let said = |o: Option<&str>| o.map_or("in no oneof".to_string(), |o| format!("in {o}"));
        out.push(found(
            "FIELD_SAME_ONEOF",
            at,
            format!("was {}, now {}", said(a), said(b)),
        ));
    }
}

fn json_name(f: &FieldDescriptorProto) -> String {
    f.json_name.clone().unwrap_or_else(|| lower_camel(f.name()))
}

/// protoc's default JSON name: underscores dropped, the letter after each upper-cased.
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn type_of(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Message | Type::Enum | Type::Group => f.type_name().to_string(),
        t => t.as_str_name().trim_start_matches("TYPE_").to_lowercase(),
    }
}

/// Proto3's explicit `optional` is a synthetic oneof: it is cardinality, not a oneof.
fn cardinality(f: &FieldDescriptorProto) -> &'static str {
    match f.label() {
        Label::Repeated => "repeated",
        Label::Required => "required",
        Label::Optional if f.proto3_optional() => "optional",
        Label::Optional => "singular",
    }
}

fn oneof<'a>(m: &'a DescriptorProto, f: &FieldDescriptorProto) -> Option<&'a str> {
    if f.proto3_optional() {
        return None;
    }
    let index = usize::try_from(f.oneof_index?).ok()?;
    m.oneof_decl.get(index).map(|o| o.name())
}

fn enums(
    out: &mut Vec<Breaking>,
    name: &str,
    was: &EnumDescriptorProto,
    now: &EnumDescriptorProto,
) {
    let reserved_name: BTreeSet<&str> = now.reserved_name.iter().map(String::as_str).collect();
    for value in &was.value {
        let at = format!("{name}.{} ({})", value.name(), value.number());
        match now.value.iter().find(|v| v.number() == value.number()) {
            None if reserved_name.contains(value.name()) => {}
            None => out.push(found(
                "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
                &at,
                format!(
                    "the value is gone; reserve \"{}\" to retire it",
                    value.name()
                ),
            )),
            Some(current) if current.name() != value.name() => out.push(found(
                "ENUM_VALUE_SAME_NAME",
                &at,
                format!("now named {}", current.name()),
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &str = r#"syntax = "proto3";
package gauntlet.inventory.v1;

service Catalog {
  rpc GetProduct(GetProductRequest) returns (Product);
  rpc ListProducts(ListProductsRequest) returns (stream Product);
}

message GetProductRequest { string sku = 1; }
message ListProductsRequest { optional int32 limit = 1; }

message Product {
  string sku = 1;
  string name = 2;
  int64 price_cents = 3;
  repeated string tags = 4;
  oneof stock {
    int64 on_hand = 5;
    bool unlimited = 6;
  }
  Availability availability = 7;
  message Dimensions { double width_cm = 1; }
  Dimensions dimensions = 8;
}

enum Availability {
  AVAILABILITY_UNSPECIFIED = 0;
  IN_STOCK = 1;
  BACKORDER = 2;
}
"#;

    fn compile(dir: &Path, name: &str, text: &str) -> Result<FileDescriptorSet, ProtoError> {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        load(&path, &[])
    }

    /// The rules `edit` of the pinned API breaks, with where.
    fn broken_by(edit: impl Fn(&str) -> String) -> Vec<(&'static str, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let pinned = compile(dir.path(), "pinned.proto", PINNED).expect("pinned");
        let text = edit(PINNED);
        assert_ne!(text, PINNED, "the edit changed nothing");
        let current = compile(dir.path(), "current.proto", &text).expect("current");
        breaking(&pinned, &current)
            .into_iter()
            .map(|b| (b.rule, b.at))
            .collect()
    }

    fn replace(from: &'static str, to: &'static str) -> impl Fn(&str) -> String {
        move |text: &str| {
            assert!(text.contains(from), "{from:?} is not in the pinned API");
            text.replacen(from, to, 1)
        }
    }

    const P: &str = ".gauntlet.inventory.v1";

    #[test]
    fn the_same_api_or_one_with_additions_breaks_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pinned = compile(dir.path(), "pinned.proto", PINNED).expect("pinned");
        assert_eq!(breaking(&pinned, &pinned), []);
        let added = replace(
            "  bool unlimited = 6;\n  }",
            "  bool unlimited = 6;\n    int64 per_order = 9;\n  }\n  string colour = 10;",
        );
        let more = |t: &str| {
            added(t)
                .replace("  BACKORDER = 2;", "  BACKORDER = 2;\n  RETIRED = 3;")
                .replace(
                    "returns (stream Product);",
                    "returns (stream Product);\n  rpc Count(ListProductsRequest) returns (Product);",
                )
                + "message Review { string text = 1; }\nservice Reviews { rpc Get(Review) returns (Review); }\n"
        };
        assert_eq!(broken_by(more), []);
    }

    #[test]
    fn a_field_gone_breaks_unless_its_number_and_name_are_reserved() {
        let gone = |reserve: &'static str| replace("  string name = 2;\n", reserve);
        let at = format!("{P}.Product.name (2)");
        assert_eq!(
            broken_by(gone("")),
            [("FIELD_NO_DELETE_UNLESS_NAME_RESERVED", at.clone())]
        );
        assert_eq!(
            broken_by(gone("  reserved 2;\n")),
            [("FIELD_NO_DELETE_UNLESS_NAME_RESERVED", at)],
            "JSON still knows it by name"
        );
        assert_eq!(broken_by(gone("  reserved 2;\n  reserved \"name\";\n")), []);
    }

    #[test]
    fn a_field_renumbered_is_its_old_number_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pinned = compile(dir.path(), "pinned.proto", PINNED).expect("pinned");
        let text = PINNED.replacen(
            "string sku = 1;\n  string name",
            "string sku = 11;\n  string name",
            1,
        );
        let current = compile(dir.path(), "current.proto", &text).expect("current");
        let got = breaking(&pinned, &current);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].rule, "FIELD_NO_DELETE_UNLESS_NAME_RESERVED");
        assert_eq!(got[0].at, format!("{P}.Product.sku (1)"));
        assert!(got[0].why.contains("renumbered from 1 to 11"), "{}", got[0]);
    }

    #[test]
    fn a_field_changed_in_type_name_cardinality_or_oneof_breaks() {
        let cases: [(&str, &str, &[&str]); 7] = [
            (
                "int64 price_cents = 3;",
                "int32 price_cents = 3;",
                &["FIELD_SAME_TYPE"],
            ),
            (
                "Availability availability = 7;",
                "string availability = 7;",
                &["FIELD_SAME_TYPE"],
            ),
            (
                "string name = 2;",
                "string title = 2;",
                &["FIELD_SAME_JSON_NAME", "FIELD_SAME_NAME"],
            ),
            (
                "int64 price_cents = 3;",
                "int64 price_cents = 3 [json_name = \"price\"];",
                &["FIELD_SAME_JSON_NAME"],
            ),
            (
                "repeated string tags = 4;",
                "string tags = 4;",
                &["FIELD_SAME_CARDINALITY"],
            ),
            (
                "string sku = 1;\n  string",
                "optional string sku = 1;\n  string",
                &["FIELD_SAME_CARDINALITY"],
            ),
            (
                "    bool unlimited = 6;\n  }",
                "  }\n  bool unlimited = 6;",
                &["FIELD_SAME_ONEOF"],
            ),
        ];
        for (from, to, rules) in cases {
            let got = broken_by(|t: &str| t.replacen(from, to, 1));
            let got: Vec<&str> = got.iter().map(|(r, _)| *r).collect();
            assert_eq!(got, rules, "{from} → {to}");
        }
        assert_eq!(
            broken_by(replace("double width_cm", "float width_cm")),
            [(
                "FIELD_SAME_TYPE",
                format!("{P}.Product.Dimensions.width_cm (1)")
            )],
            "nested messages are checked"
        );
        assert_eq!(
            broken_by(replace("{ optional int32 limit", "{ int32 limit")),
            [(
                "FIELD_SAME_CARDINALITY",
                format!("{P}.ListProductsRequest.limit (1)")
            )],
        );
    }

    #[test]
    fn a_method_gone_or_changed_breaks_its_callers() {
        let catalog = |m: &str| format!("{P}.Catalog/{m}");
        assert_eq!(
            broken_by(replace(
                "  rpc GetProduct(GetProductRequest) returns (Product);\n",
                ""
            )),
            [("RPC_NO_DELETE", catalog("GetProduct"))]
        );
        assert_eq!(
            broken_by(replace("returns (stream Product)", "returns (Product)")),
            [("RPC_SAME_SERVER_STREAMING", catalog("ListProducts"))]
        );
        assert_eq!(
            broken_by(replace(
                "ListProducts(ListProductsRequest)",
                "ListProducts(stream ListProductsRequest)"
            )),
            [("RPC_SAME_CLIENT_STREAMING", catalog("ListProducts"))]
        );
        assert_eq!(
            broken_by(replace(
                "GetProduct(GetProductRequest)",
                "GetProduct(ListProductsRequest)"
            )),
            [("RPC_SAME_REQUEST_TYPE", catalog("GetProduct"))]
        );
        assert_eq!(
            broken_by(replace(
                "returns (Product);",
                "returns (GetProductRequest);"
            )),
            [("RPC_SAME_RESPONSE_TYPE", catalog("GetProduct"))]
        );
        let moved = broken_by(replace(
            "package gauntlet.inventory.v1;",
            "package gauntlet.inventory.v2;",
        ));
        assert!(
            moved.contains(&("SERVICE_NO_DELETE", format!("{P}.Catalog"))),
            "{moved:?}"
        );
        assert!(
            moved.contains(&("MESSAGE_NO_DELETE", format!("{P}.Product"))),
            "{moved:?}"
        );
        assert!(
            moved.contains(&("ENUM_NO_DELETE", format!("{P}.Availability"))),
            "{moved:?}"
        );
    }

    #[test]
    fn an_enum_value_gone_or_renamed_breaks() {
        let at = format!("{P}.Availability.BACKORDER (2)");
        assert_eq!(
            broken_by(replace("  BACKORDER = 2;\n", "")),
            [("ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED", at.clone())]
        );
        assert_eq!(
            broken_by(replace("  BACKORDER = 2;\n", "  reserved \"BACKORDER\";\n")),
            []
        );
        assert_eq!(
            broken_by(replace("BACKORDER = 2", "ON_ORDER = 2")),
            [("ENUM_VALUE_SAME_NAME", at)]
        );
    }

    #[test]
    fn what_cannot_be_read_says_where_and_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = compile(
            dir.path(),
            "bad.proto",
            "syntax = \"proto3\";\n\nmessage M {\n  strin a = 1;\n}\n",
        )
        .expect_err("does not compile");
        let said = bad.to_string();
        assert!(
            said.contains("bad.proto:4:") && said.contains("strin"),
            "{said}"
        );
        let missing = load(&dir.path().join("nowhere.proto"), &[]).expect_err("no file");
        assert!(missing.to_string().contains("nowhere.proto"), "{missing}");
        let json = dir.path().join("api.json");
        std::fs::write(&json, "{}").expect("write");
        let kind = load(&json, &[]).expect_err("not a proto");
        assert!(
            kind.to_string()
                .contains(".proto file, or a descriptor set"),
            "{kind}"
        );
        let garbage = dir.path().join("api.binpb");
        std::fs::write(&garbage, b"\xff\xff\xff").expect("write");
        assert!(matches!(
            load(&garbage, &[]),
            Err(ProtoError::Descriptor { .. })
        ));
    }

    /// A descriptor set (as `protoc -o` writes it) is the same API as its `.proto`.
    #[test]
    fn a_descriptor_set_reads_as_its_proto() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = compile(dir.path(), "api.proto", PINNED).expect("compiles");
        let bin = dir.path().join("api.binpb");
        std::fs::write(&bin, set.encode_to_vec()).expect("write");
        let read = load(&bin, &[]).expect("a descriptor set");
        assert_eq!(read, set);
        let current = compile(
            dir.path(),
            "current.proto",
            &PINNED.replace("BACKORDER = 2", "ON_ORDER = 2"),
        )
        .expect("current");
        assert_eq!(breaking(&read, &current).len(), 1);
    }
}
