//! `gauntlet assert` against a running demo: every selector form and every assertion kind
//! has a case that passes and a case that fails over the real traces of one order (the
//! failing case differs from its passing twin in one place, and must fail on the assertion
//! it names, with the value the traces hold); the correlation scope reaches the
//! asynchronous hops a trace scope does not; a window of orders holds a spec for a share of
//! its sets and not for a larger one; bad files and a missing system exit 2 with nothing
//! sent. One test: one demo, in order.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Demo};
use gauntlet_demo_system::orders::{Item, PlaceOrder};
use gauntlet_suite::assertions::AssertReport;

/// Each case: (name, selector, assertion, passes?, what the failing case measures).
const CASES: &[(&str, &str, &str, bool, &str)] = &[
    // Selector forms.
    (
        "equals",
        r#"span[service.name="payments"]"#,
        "count = 1",
        true,
        "",
    ),
    // Each of order-history's two shards reads every one of the order's four events (and
    // keeps it or passes it over by the customer's shard): eight spans.
    (
        "equals chooses other spans",
        r#"span[service.name="order-history"]"#,
        "count = 1",
        false,
        "8",
    ),
    (
        "not equals",
        r#"span[service.name="orders" kind="client" peer.service!="inventory"]"#,
        "count = 1",
        true,
        "",
    ),
    (
        "not equals chooses other spans",
        r#"span[service.name="orders" kind="client" peer.service!="payments"]"#,
        "count = 1",
        false,
        "3",
    ),
    (
        "less than",
        r#"span[kind="server" http.response.status_code<300]"#,
        "count = 6",
        true,
        "",
    ),
    (
        "greater than",
        r#"span[kind="server" http.response.status_code>300]"#,
        "count = 6",
        false,
        "0",
    ),
    (
        "contains",
        r#"span[kind="server" name contains "reservations"]"#,
        "count = 2",
        true,
        "",
    ),
    (
        "contains chooses other spans",
        r#"span[kind="server" name contains "refunds"]"#,
        "count = 2",
        false,
        "0",
    ),
    (
        "regex",
        r#"span[url.path=~"^/reservations/[^/]+/confirm$"]"#,
        "count = 1",
        true,
        "",
    ),
    (
        "regex chooses other spans",
        r#"span[url.path=~"^/refunds"]"#,
        "count = 1",
        false,
        "0",
    ),
    (
        "and",
        r#"span[service.name="inventory" http.route="/reservations"]"#,
        "count = 1",
        true,
        "",
    ),
    (
        "and chooses fewer",
        r#"span[service.name="payments" http.route="/reservations"]"#,
        "count = 1",
        false,
        "0",
    ),
    (
        "or",
        r#"span[service.name="payments"], span[service.name="gateway" kind="server"]"#,
        "count = 2",
        true,
        "",
    ),
    (
        "or of one",
        r#"span[service.name="payments"], span[service.name="payments"]"#,
        "count = 2",
        false,
        "1",
    ),
    (
        "descendant",
        r#"span[service.name="orders" name="POST /orders"] span[service.name="payments"]"#,
        "count = 1",
        true,
        "",
    ),
    (
        "descendant not there",
        r#"span[service.name="payments"] span[service.name="inventory"]"#,
        "count = 1",
        false,
        "0",
    ),
    (
        "first",
        r#"span[service.name="inventory" kind="server"]:first"#,
        r#"attr:http.route = "/products/{sku}""#,
        true,
        "",
    ),
    (
        "first is not last",
        r#"span[service.name="inventory" kind="server"]:first"#,
        r#"attr:http.route = "/reservations/{id}/confirm""#,
        false,
        "/products/{sku}",
    ),
    (
        "last",
        r#"span[service.name="inventory" kind="server"]:last"#,
        r#"attr:http.route = "/reservations/{id}/confirm""#,
        true,
        "",
    ),
    (
        "last is not first",
        r#"span[service.name="inventory" kind="server"]:last"#,
        r#"attr:http.route = "/products/{sku}""#,
        false,
        "/reservations/{id}/confirm",
    ),
    (
        "nth child",
        r#"span[service.name="inventory" kind="server"]:nth_child(2)"#,
        r#"attr:http.route = "/reservations""#,
        true,
        "",
    ),
    (
        "nth child is another",
        r#"span[service.name="inventory" kind="server"]:nth_child(3)"#,
        r#"attr:http.route = "/reservations""#,
        false,
        "/reservations/{id}/confirm",
    ),
    ("every span", "", "count >= 15", true, ""),
    ("every span is not few", "", "count < 5", false, ""),
    // Assertion kinds.
    (
        "attribute",
        r#"span[service.name="payments" kind="server"]"#,
        "attr:http.response.status_code = 201",
        true,
        "",
    ),
    (
        "attribute differs",
        r#"span[service.name="payments" kind="server"]"#,
        "attr:http.response.status_code = 200",
        false,
        "201",
    ),
    (
        "attribute below",
        r#"span[service.name="payments" kind="server"]"#,
        "attr:http.response.status_code < 300",
        true,
        "",
    ),
    (
        "attribute above",
        r#"span[service.name="payments" kind="server"]"#,
        "attr:http.response.status_code > 300",
        false,
        "201",
    ),
    (
        "attribute exists",
        r#"span[kind="server"]"#,
        "attr:correlation_id exists",
        true,
        "",
    ),
    (
        "attribute absent",
        r#"span[kind="server"]"#,
        "attr:correlation_id absent",
        false,
        "",
    ),
    (
        "attribute contains",
        r#"span[service.name="orders" peer.service="payments"]"#,
        r#"attr:url.full contains "/payments/authorizations""#,
        true,
        "",
    ),
    (
        "attribute lacks",
        r#"span[service.name="orders" peer.service="payments"]"#,
        r#"attr:url.full contains "/refunds""#,
        false,
        "",
    ),
    (
        "attribute regex",
        r#"span[kind="server"]"#,
        r#"attr:correlation_id =~ "^gauntlet-assert-""#,
        true,
        "",
    ),
    (
        "attribute regex misses",
        r#"span[kind="server"]"#,
        r#"attr:correlation_id =~ "^order-""#,
        false,
        "",
    ),
    (
        "status",
        r#"span[service.name="gateway" kind="server"]"#,
        r#"attr:status != "error""#,
        true,
        "",
    ),
    (
        "status is not error",
        r#"span[service.name="gateway" kind="server"]"#,
        r#"attr:status = "error""#,
        false,
        "unset",
    ),
    (
        "duration",
        r#"span[service.name="gateway" kind="server"]"#,
        "duration < 30s",
        true,
        "",
    ),
    (
        "duration is not instant",
        r#"span[service.name="gateway" kind="server"]"#,
        "duration < 1us",
        false,
        "",
    ),
    (
        "event",
        r#"span[service.name="payments" kind="server"]"#,
        r#"event:"payment authorized" = 1"#,
        true,
        "",
    ),
    (
        "event that did not happen",
        r#"span[service.name="payments" kind="server"]"#,
        r#"event:"payment declined" = 1"#,
        false,
        "0",
    ),
    (
        "links",
        r#"span[service.name="notifications" kind="consumer"]"#,
        "links >= 1",
        true,
        "",
    ),
    (
        "no links",
        r#"span[service.name="notifications" kind="consumer"]"#,
        "links = 0",
        false,
        "1",
    ),
    (
        "children",
        r#"span[service.name="orders" kind="client" peer.service="payments"]"#,
        "children = 1",
        true,
        "",
    ),
    (
        "no children",
        r#"span[service.name="orders" kind="client" peer.service="payments"]"#,
        "children = 0",
        false,
        "1",
    ),
    (
        "exactly none",
        r#"span[service.name="payments" event="payment declined"]"#,
        "count = 0",
        true,
        "",
    ),
    (
        "exactly none, but one",
        r#"span[service.name="payments" event="payment authorized"]"#,
        "count = 0",
        false,
        "1",
    ),
    // Across the asynchronous hops (the correlation scope; a trace scope lacks them).
    (
        "asynchronous hops",
        r#"span[service.name="notifications" name="order.confirmed process"]"#,
        "count = 1",
        true,
        "",
    ),
];

fn cases_file(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from(
        r#"title = "Every form, passing and failing"
# The cases count every span of the order's journey: on a loaded machine a service's
# export can trail the rest by more than a couple of seconds (a CI run saw 11 of 15).
quiet = "5s"

[trigger]
method = "POST"
url = "{{gateway}}/api/orders"
headers = { authorization = "Bearer {{token}}", "idempotency-key" = "{{uuid}}" }
body = '{"customer_id": "assert-cases", "items": [{"sku": "SKU-STICKER", "quantity": 1}]}'
status = 201
token = { url = "{{gateway}}/api/token", body = '{"username": "demo", "password": "demo"}', pointer = "/access_token" }
"#,
    );
    for (name, selector, check, _, _) in CASES {
        text.push_str(&format!(
            "\n[[spec]]\nname = {name:?}\nselector = '{selector}'\nassert = ['{check}']\n"
        ));
    }
    // `when`: a set it does not apply to is not checked, and a spec that applied to no set
    // checked nothing, which is no pass.
    text.push_str(concat!(
        "\n[[spec]]\nname = \"when it applies\"\nwhen = 'span[service.name=\"payments\"]'\n",
        "selector = 'span[service.name=\"notifications\" event=\"notification recorded\"]'\nassert = ['count >= 1']\n",
        "\n[[spec]]\nname = \"when it never applies\"\nwhen = 'span[service.name=\"refunds\"]'\n",
        "selector = ''\nassert = ['count >= 1']\n",
    ));
    let path = dir.join("cases.toml");
    std::fs::write(&path, text).expect("write");
    path
}

/// `gauntlet assert FILE --demo HANDLE --json OUT ARGS...`: exit code, stdout, report.
fn assert(file: &Path, handle: &Path, out: &Path, args: &[&str]) -> (i32, String, AssertReport) {
    let o = Command::new(BIN)
        .arg("assert")
        .arg(file)
        .arg("--demo")
        .arg(handle)
        .arg("--json")
        .arg(out)
        .args(args)
        .output()
        .expect("gauntlet assert");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let report = serde_json::from_slice(
        &std::fs::read(out).unwrap_or_else(|e| panic!("no report ({e}):\n{stdout}\n{stderr}")),
    )
    .expect("the report parses");
    (o.status.code().unwrap_or(-1), stdout, report)
}

#[test]
fn trace_assertions_pass_and_fail_for_the_right_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    bad_files_exit_2_with_nothing_sent(dir.path());
    let _demo = Demo::start(&dir.path().join("demo"), &[]);
    let handle = dir.path().join("demo/demo.json");
    common::wait_for_file(&handle, Duration::from_secs(120));
    let cases = cases_file(dir.path());

    let (code, stdout, report) = assert(&cases, &handle, &dir.path().join("a.json"), &[]);
    assert_eq!(code, 1, "failing cases fail the run:\n{stdout}");
    assert!(report.complete, "the set went quiet:\n{stdout}");
    let by_name = |name: &str| {
        report
            .specs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no spec {name:?}"))
    };
    for (name, _, check, passes, measured) in CASES {
        let spec = by_name(name);
        assert_eq!(spec.passed, *passes, "{name}: {stdout}");
        if !passes {
            let f = &spec.failures[0];
            assert_eq!(f.assertion, *check, "{name} fails on its assertion");
            if !measured.is_empty() {
                assert_eq!(f.actual, *measured, "{name} measured what the trace holds");
            }
        }
    }
    assert!(by_name("when it applies").passed, "{stdout}");
    let never = by_name("when it never applies");
    assert!(!never.passed && never.applicable == 0, "{stdout}");

    // The same correlation read by its ID, and its request's trace alone: the trace has no
    // asynchronous hop, so the spec about them fails there.
    let correlation = report
        .correlation_id
        .clone()
        .expect("the trigger's correlation ID");
    let trace = report.trace_id.clone().expect("the trigger's trace ID");
    let (_, _, again) = assert(
        &cases,
        &handle,
        &dir.path().join("b.json"),
        &["--correlation-id", &correlation],
    );
    for (a, b) in report.specs.iter().zip(&again.specs) {
        assert_eq!(
            (&a.name, a.passed),
            (&b.name, b.passed),
            "the same set, the same answers"
        );
    }
    let (_, stdout, one) = assert(
        &cases,
        &handle,
        &dir.path().join("c.json"),
        &["--trace-id", &trace],
    );
    let hops = one
        .specs
        .iter()
        .find(|s| s.name == "asynchronous hops")
        .expect("spec");
    assert!(
        !hops.passed,
        "one trace does not hold the consumers' spans:\n{stdout}"
    );
    assert_eq!(hops.failures[0].actual, "0");

    a_window_holds_for_a_share(dir.path(), &handle);
}

/// Ten orders, one of them declined: "payments answers 201" holds for 90 % of the window's
/// order sets, not for 95 %.
fn a_window_holds_for_a_share(dir: &Path, handle: &Path) {
    let gateway = serde_json::from_slice::<gauntlet_demo_system::handle::DemoHandle>(
        &std::fs::read(handle).expect("handle"),
    )
    .expect("handle parses")
    .gateway;
    common::runtime().block_on(async {
        let client = common::demo_gateway(&gateway).await;
        for i in 0..10 {
            // A desk lamp's price ends in 13 cents: payments declines it.
            let sku = if i == 0 { "SKU-LAMP" } else { "SKU-STICKER" };
            let order = PlaceOrder {
                customer_id: format!("window-{i}"),
                items: vec![Item {
                    sku: sku.into(),
                    quantity: 1,
                }],
            };
            client
                .place_order(&order, None)
                .await
                .expect("order placed");
        }
    });
    let file = dir.join("window.toml");
    std::fs::write(
        &file,
        r#"title = "A window"
quiet = "2s"

[[spec]]
name = "payments authorizes 90 %"
selector = 'span[service.name="payments" kind="server"]'
assert = ["attr:http.response.status_code = 201"]
for = "90%"

[[spec]]
name = "payments authorizes 95 %"
selector = 'span[service.name="payments" kind="server"]'
assert = ["attr:http.response.status_code = 201"]
for = "95%"
"#,
    )
    .expect("write");
    let (code, stdout, report) = assert(&file, handle, &dir.join("w.json"), &["--since", "2m"]);
    assert_eq!(code, 1, "{stdout}");
    let [ninety, ninety_five] = &report.specs[..] else {
        panic!("two specs: {stdout}")
    };
    // The cases' order and these ten (and a saga the resumer finished, when the machine is
    // slow enough for one to wait): one set fails, the declined order's.
    assert_eq!(ninety.applicable - ninety.passed_sets, 1, "{stdout}");
    assert!((11..=15).contains(&ninety.applicable), "{stdout}");
    assert!(ninety.passed, "{stdout}");
    assert!(!ninety_five.passed, "{stdout}");
    assert_eq!(
        ninety_five.failures[0].actual, "402",
        "the declined payment"
    );
}

fn bad_files_exit_2_with_nothing_sent(dir: &Path) {
    let cases: &[(&str, &str)] = &[
        (
            "title = \"t\"\n[[spec]]\nname = \"n\"\nselector = 'span[service.name=\"a\"'\nassert = [\"count = 1\"]\n",
            "4:34: the selector of spec \"n\": expected a condition or `]`, found the end",
        ),
        (
            "title = \"t\"\n[[spec]]\nname = \"n\"\nselector = 'span[service.name \"a\"]'\nassert = [\"count = 1\"]\n",
            "4:31: the selector of spec \"n\": expected an operator",
        ),
        (
            "title = \"t\"\n[[spec]]\nname = \"n\"\nselector = 'span[kind=\"sever\"]'\nassert = [\"count = 1\"]\n",
            "4:23: the selector of spec \"n\": `kind` is one of",
        ),
        (
            "title = \"t\"\n[[spec]]\nname = \"n\"\nselector = ''\nassert = [\"duration < 5\"]\n",
            "5:23: the assertion of spec \"n\": `duration` compares with a duration",
        ),
        (
            "title = \"t\"\n[[spec]]\nname = \"n\"\nselector = ''\nassert = [\"count = 1\"]\nfor = \"99\"\n",
            "\"99\" is not a share like \"99%\"",
        ),
        (
            "title = \"t\"\n[[spec]]\nname = \"n\"\nselectr = ''\nassert = [\"count = 1\"]\n",
            "unknown field `selectr`",
        ),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&file, text).expect("write");
        let o = Command::new(BIN)
            .arg("assert")
            .arg(&file)
            .arg("--demo")
            .arg(dir.join("no-such-demo.json"))
            .output()
            .expect("gauntlet assert");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(says), "{text}: want {says:?} in {stderr}");
    }
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "title = \"t\"\n[[spec]]\nname = \"n\"\nselector = ''\nassert = [\"count = 1\"]\n",
    )
    .expect("write");
    let o = Command::new(BIN)
        .args([
            "assert",
            good.to_str().expect("utf-8"),
            "--since",
            "1m",
            "--demo",
        ])
        .arg(dir.join("no-such-demo.json"))
        .output()
        .expect("gauntlet assert");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("start the demo"), "{stderr}");
}
