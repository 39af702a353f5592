//! `gauntlet contracts` as a user runs it: verify's refusals when nothing can be verified,
//! and drift against a real demo's traffic in its collector (a contract removed shows as
//! traffic no contract covers), and proto-check on a breaking gRPC change.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Demo, demo_gateway, wait_for_file};
use gauntlet_demo_system::orders::{Item, PlaceOrder};
use gauntlet_demo_system::topology::{EDGES, EdgeKind, Protocol};

fn gauntlet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("gauntlet runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verifying_nothing_is_a_failure_that_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().to_str().expect("utf-8");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--provider", "billing", "--base-url", "http://127.0.0.1:9"],
            "no pact in contracts/pacts names the provider \"billing\"",
        ),
        (
            &[
                "--provider",
                "orders",
                "--base-url",
                "http://127.0.0.1:9",
                "--pacts",
                empty,
            ],
            "holds no pact files",
        ),
        (
            &[
                "--provider",
                "orders",
                "--base-url",
                "http://127.0.0.1:9",
                "--pacts",
                "/nonexistent",
            ],
            "cannot read the pacts directory /nonexistent",
        ),
        (
            &["--provider", "orders", "--base-url", "127.0.0.1:8200"],
            "is not an http:// URL",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["contracts", "verify"];
        all.extend_from_slice(args);
        let (code, _, err) = gauntlet(&all);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn drift_sets_the_demos_traffic_against_the_pacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let _demo = Demo::start(&data, &[]);
    let handle = wait_for_file(&data.join("demo.json"), Duration::from_secs(90));
    let gateway = handle["gateway"].as_str().expect("gateway").to_string();
    let api = handle["collector"]["api"]
        .as_str()
        .expect("collector api")
        .to_string();
    common::runtime().block_on(async {
        let client = demo_gateway(&gateway).await;
        let order = PlaceOrder {
            customer_id: "drift".into(),
            items: vec![Item {
                sku: "SKU-STICKER".into(),
                quantity: 1,
            }],
        };
        let placed = client.place_order(&order, None).await.expect("placed");
        assert_eq!(placed.status, 201);
    });
    // The strangler fig: the old shop's pact holds against the legacy (through its sidecar,
    // as the gateway reaches it) and against the gateway, whose catalogue route has moved to
    // inventory: the new side answers the same contract. A pact that names no provider state
    // needs no state-change route on either.
    let sidecar = handle["services"]["legacy-sidecar"][0]
        .as_str()
        .expect("the legacy's sidecar")
        .to_string();
    for base in [&sidecar, &gateway] {
        let (code, out, err) = gauntlet(&[
            "contracts",
            "verify",
            "--provider",
            "legacy",
            "--base-url",
            base,
        ]);
        assert_eq!(code, 0, "{base}: {out}{err}");
        assert!(
            out.contains("legacy: 3 interactions, 3 passed, 0 failed"),
            "{base}: {out}"
        );
    }
    // Without --provider-states, the state-change route does not exist.
    let orders = handle["services"]["orders"][0]
        .as_str()
        .expect("orders")
        .to_string();
    let states = common::runtime().block_on(async {
        reqwest::Client::new()
            .post(format!("{orders}/_pact/provider-states"))
            .json(&serde_json::json!({"state": "an order has reached a status"}))
            .send()
            .await
            .expect("answered")
            .status()
    });
    assert_eq!(states, 404);
    // Each service exports on its own timer: wait until the saga's calls are all in.
    let placed = "gateway → orders: POST /orders → 201  \"a request to place an order\"";
    // Covered interactions show the route they were seen on, as uncovered ones do.
    let priced = "orders → inventory: GET /products/{sku} → 200  \"a request for a product\"";
    let section = |report: &str, name: &str| -> String {
        report
            .split("\n\n")
            .find(|s| s.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let (code, out, err) =
            gauntlet(&["contracts", "drift", "--collector", &api, "--since", "10m"]);
        assert_eq!(code, 0, "{err}");
        let seen = section(&out, "contracted and seen");
        if seen.contains(placed) && seen.contains(priced) {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "never saw the order's calls:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // No order was read back through the gateway.
    assert!(
        section(&report, "contracted, never seen")
            .contains("gateway → orders: GET /orders/ord-pact-1 → 200"),
        "{report}"
    );

    // Without gateway → orders' pact, the same traffic is uncovered, and --strict fails.
    let pacts = dir.path().join("pacts");
    std::fs::create_dir(&pacts).expect("mkdir");
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/pacts"))
        .expect("pacts")
    {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n != "gateway-orders.json") {
            std::fs::copy(&path, pacts.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let (code, out, err) = gauntlet(&[
        "contracts",
        "drift",
        "--collector",
        &api,
        "--since",
        "10m",
        "--strict",
        "--pacts",
        pacts.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let uncovered = out
        .split("\n\n")
        .find(|s| s.starts_with("seen, no contract covers it"))
        .unwrap_or_default();
    assert!(
        uncovered.contains("gateway → orders: POST /orders → 201"),
        "{out}"
    );

    // A collector that is not there is a clear error.
    let (code, _, err) = gauntlet(&["contracts", "drift", "--collector", "http://127.0.0.1:9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read traces from the collector"),
        "{err}"
    );
}

/// `gauntlet contracts broker` as a process, driven by the CLI's own clients.
#[test]
fn the_broker_and_its_clients_work_from_the_command_line() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = common::KillOnDrop(
        Command::new(BIN)
            .args([
                "contracts",
                "broker",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("broker starts"),
    );
    let mut stderr = BufReader::new(broker.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains("pact broker on ") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read") > 0,
            "the broker exited"
        );
    }
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_string();
    let (code, out, err) = gauntlet(&[
        "contracts",
        "publish",
        "--broker",
        &url,
        "--consumer-version",
        "1.0.0",
        "--branch",
        "main",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let mut pacts: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/pacts"))
            .expect("the pacts")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
    pacts.sort();
    let mut edges: Vec<String> = EDGES
        .iter()
        .filter(|e| e.kind != EdgeKind::Mirror && e.protocol != Protocol::Grpc)
        .map(|e| format!("{}-{}.json", e.consumer, e.provider))
        .collect();
    edges.sort();
    assert_eq!(
        pacts, edges,
        "a pact for every consumer-provider pair of the demo's HTTP and event edges"
    );
    // A gRPC edge's contract is the consumer's pinned copy of the provider's .proto.
    for e in EDGES.iter().filter(|e| e.protocol == Protocol::Grpc) {
        let pinned = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contracts/proto")
            .join(e.consumer.name());
        assert!(pinned.is_dir(), "no pinned .proto for {}", e.name());
    }
    let committed = pacts.len();
    assert!(
        out.contains(&format!("published {committed} pacts")),
        "{out}"
    );
    let (code, out, _) = gauntlet(&[
        "contracts",
        "can-i-deploy",
        "--broker",
        &url,
        "--pacticipant",
        "gateway",
        "--version",
        "1.0.0",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("can I deploy? NO"), "{out}");
    assert!(
        out.contains("gateway          1.0.0      inventory"),
        "{out}"
    );
    let (code, _, err) = gauntlet(&[
        "contracts",
        "record-deployment",
        "--broker",
        &url,
        "--pacticipant",
        "gateway",
        "--version",
        "1.0.0",
        "--environment",
        "production",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("create it with `gauntlet contracts create-environment`"),
        "{err}"
    );
    let (code, _, err) = gauntlet(&[
        "contracts",
        "verify",
        "--provider",
        "inventory",
        "--base-url",
        "http://127.0.0.1:9",
        "--publish",
    ]);
    assert_eq!(code, 2, "clap refuses --publish without --broker: {err}");
}

/// `gauntlet contracts proto-check` as a provider's CI runs it: the pinned `.proto` against
/// the current one, or against a descriptor set; 0 when nothing breaks, 1 with each breaking
/// change and its rule, 2 (and why) when a side cannot be read.
#[test]
fn proto_check_tells_a_breaking_grpc_change_from_an_addition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let pinned_text = "syntax = \"proto3\";\npackage stock.v1;\n\
        service Stock { rpc Check(CheckRequest) returns (CheckReply); }\n\
        message CheckRequest { string sku = 1; int32 quantity = 2; }\n\
        message CheckReply { bool available = 1; int64 on_hand = 2; }\n";
    let pinned = write("pinned.proto", pinned_text);
    let added = write(
        "added.proto",
        &pinned_text.replace(
            "int64 on_hand = 2;",
            "int64 on_hand = 2; string warehouse = 3;",
        ),
    );
    let broken = write(
        "broken.proto",
        &pinned_text
            .replace("int32 quantity = 2;", "int32 quantity = 3;")
            .replace("rpc Check(", "rpc Verify("),
    );
    let check = |current: &str| {
        gauntlet(&[
            "contracts",
            "proto-check",
            "--pinned",
            &pinned,
            "--current",
            current,
        ])
    };
    let (code, out, err) = check(&added);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no breaking change"), "{out}");
    let (code, out, err) = check(&broken);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FIELD_NO_DELETE_UNLESS_NAME_RESERVED .stock.v1.CheckRequest.quantity (2): renumbered from 2 to 3"),
        "{out}"
    );
    assert!(out.contains("RPC_NO_DELETE .stock.v1.Stock/Check"), "{out}");
    assert!(out.contains("2 breaking change(s)"), "{out}");
    let (code, out, err) = check(&write(
        "typo.proto",
        "syntax = \"proto3\";\nmessage M {\n  int33 a = 1;\n}\n",
    ));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("typo.proto:3:") && err.contains("int33"),
        "{err}"
    );
    let (code, _, err) = check(&dir.path().join("absent.proto").display().to_string());
    assert_eq!(code, 2);
    assert!(err.contains("absent.proto"), "{err}");
    // The demo's own gRPC edge: the mobile BFF's pinned catalogue holds against inventory's.
    let (code, out, err) = gauntlet(&[
        "contracts",
        "proto-check",
        "--pinned",
        "contracts/proto/mobile-bff/gauntlet/inventory/v1/catalog.proto",
        "--current",
        "demo-system/proto/gauntlet/inventory/v1/catalog.proto",
    ]);
    assert_eq!(code, 0, "{out}{err}");
}
