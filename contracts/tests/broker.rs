//! The broker end to end: the repository's pacts published to it, every demo provider
//! (real services on loopback ports, with their provider states) verified through it by
//! `pact_verifier` with results published back, can-i-deploy before and after, per
//! environment, and a pending pact that fails without failing the verification.

use std::path::Path;

use gauntlet_contracts::broker::client::BrokerClient;
use gauntlet_contracts::broker::{self, Broker};
use gauntlet_contracts::verify::{BrokerSource, Publish};
use gauntlet_contracts::{PACTS_DIR, Report, VerifyConfig, pacts, verify};
use gauntlet_demo_system::inventory::{self, CatalogClient, Inventory, InventoryClient};
use gauntlet_demo_system::legacy::{self, Legacy};
use gauntlet_demo_system::mobile_bff::{self, MobileBff};
use gauntlet_demo_system::notifications::{self, Notifications};
use gauntlet_demo_system::order_history::{self, OrderHistory, OrderHistoryClient};
use gauntlet_demo_system::orders::{self, Orders, OrdersClient};
use gauntlet_demo_system::payments::{self, Payments, PaymentsClient, PaymentsConfig};
use gauntlet_demo_system::platform::client::HttpClient;
use gauntlet_demo_system::platform::provider_states;
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use gauntlet_demo_system::registry::RegistryClient;
use gauntlet_demo_system::web_bff::{self, WebBff, WebBffConfig};

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// Every provider, each with its provider states, on loopback: name → base URL.
async fn providers(dir: &Path) -> Vec<(&'static str, String)> {
    let inv = Inventory::open(&dir.join("inventory.sqlite")).expect("inventory");
    let inventory = serve(
        inventory::app(inv.clone())
            .merge(provider_states::router(inv.clone()))
            .merge(inventory::provider_states::messages_router(inv)),
    )
    .await;
    let pay =
        Payments::open(&dir.join("payments.sqlite"), PaymentsConfig::default()).expect("payments");
    let payments = serve(payments::app(pay.clone()).merge(provider_states::router(pay))).await;
    let saga = ResilienceConfig::saga();
    let o = Orders::open(
        &dir.join("orders.sqlite"),
        InventoryClient::new(HttpClient::at("inventory", &inventory, &saga).expect("client")),
        PaymentsClient::new(HttpClient::at("payments", &payments, &saga).expect("client")),
    )
    .expect("orders");
    let orders = serve(
        orders::app(o.clone())
            .merge(provider_states::router(o.clone()))
            .merge(orders::provider_states::messages_router(o)),
    )
    .await;
    let h = OrderHistory::open(&dir.join("history.sqlite")).expect("history");
    let history = serve(order_history::app(h.clone()).merge(provider_states::router(h))).await;
    let n = Notifications::open(&dir.join("notifications.sqlite")).expect("notifications");
    let notes = serve(notifications::app(n.clone()).merge(provider_states::router(n))).await;
    let l = Legacy::open(&dir.join("legacy.sqlite")).expect("legacy");
    l.seed().await.expect("seeded");
    let legacy = serve(legacy::app(l)).await;
    // The BFFs keep no data: they answer from the providers above. Their registry is only
    // asked by their readiness check, which verification does not call.
    let registry = RegistryClient::new("http://127.0.0.1:9");
    let edge = ResilienceConfig::default();
    let at = |name: &str, url: &str| HttpClient::at(name, url, &edge).expect("client");
    let upstreams = web_bff::Upstreams {
        inventory: InventoryClient::new(at("inventory", &inventory)),
        history: OrderHistoryClient::new(at("order-history", &history)),
        payments: PaymentsClient::new(at("payments", &payments)),
    };
    let web = serve(web_bff::app(
        WebBff::new(upstreams, &WebBffConfig::default()),
        registry.clone(),
    ))
    .await;
    let mobile = MobileBff {
        inventory: CatalogClient::new(at("inventory", &inventory)),
        orders: OrdersClient::new(at("orders", &orders)),
    };
    let mobile = serve(mobile_bff::app(mobile, registry)).await;
    vec![
        ("inventory", inventory),
        ("payments", payments),
        ("orders", orders),
        ("order-history", history),
        ("notifications", notes),
        ("legacy", legacy),
        ("web-bff", web),
        ("mobile-bff", mobile),
    ]
}

async fn verify_through(
    broker: &str,
    provider: &str,
    url: &str,
    selectors: &[&str],
    pending: bool,
    wip_since: Option<&str>,
) -> Report {
    let mut config = VerifyConfig::new(provider, url, Vec::new());
    config.broker = Some(BrokerSource {
        url: broker.to_string(),
        selectors: selectors
            .iter()
            .map(|s| s.parse().expect("selector"))
            .collect(),
        enable_pending: pending,
        include_wip_since: wip_since.map(str::to_string),
        provider_branch: Some("main".into()),
        login: Default::default(),
    });
    config.publish = Some(Publish {
        provider_version: "2.0.0".into(),
        branch: Some("main".into()),
    });
    verify(&config).await.expect("verification ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacts_go_through_the_broker_and_can_i_deploy_follows_the_verifications() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::open(&dir.path().join("broker")).expect("broker");
    let broker = serve(broker::router(b)).await;
    let client = BrokerClient::new(&broker);

    // The HAL index leads the Pact tools to what they need.
    let index: serde_json::Value = reqwest::get(&broker)
        .await
        .expect("index")
        .json()
        .await
        .expect("json");
    for rel in [
        "pb:publish-pact",
        "pb:provider-pacts-for-verification",
        "pb:environments",
    ] {
        assert!(index["_links"][rel]["href"].is_string(), "{rel}: {index}");
    }

    let all = pacts::all(Path::new(PACTS_DIR)).expect("pacts");
    client
        .publish(&all, "1.0.0", Some("main"), &["ci".to_string()])
        .await
        .expect("published");

    // Nothing verified yet: the gateway cannot go anywhere.
    let before = client
        .can_i_deploy("gateway", "1.0.0", None)
        .await
        .expect("answer");
    assert!(!before.summary.deployable, "{}", before.render());
    let gateway_pacts = all.iter().filter(|p| p.consumer == "gateway").count();
    assert_eq!(gateway_pacts, 8, "the gateway's providers");
    assert_eq!(before.summary.unknown, gateway_pacts, "{}", before.render());

    let servers = providers(dir.path()).await;
    let default = ["mainBranch", "deployedOrReleased"];
    for (name, url) in &servers {
        let report = verify_through(&broker, name, url, &default, false, None).await;
        assert!(report.passed(), "{name}: {}", report.render());
        if *name == "inventory" {
            // One of the gateway's providers verified: still no, and the answer says which
            // are missing.
            let partial = client
                .can_i_deploy("gateway", "1.0.0", None)
                .await
                .expect("answer");
            assert!(!partial.summary.deployable);
            assert_eq!(
                (partial.summary.success, partial.summary.unknown),
                (1, gateway_pacts - 1)
            );
            assert!(
                partial.summary.reason.contains("orders"),
                "{}",
                partial.render()
            );
        }
    }
    let after = client
        .can_i_deploy("gateway", "1.0.0", None)
        .await
        .expect("answer");
    assert!(after.summary.deployable, "{}", after.render());
    assert_eq!(after.summary.success, gateway_pacts);
    let orders = client
        .can_i_deploy("orders", "2.0.0", None)
        .await
        .expect("answer");
    assert!(orders.summary.deployable, "{}", orders.render());

    // To production: only against what is deployed there.
    client
        .create_environment("production", true)
        .await
        .expect("env");
    let empty = client
        .can_i_deploy("gateway", "1.0.0", Some("production"))
        .await
        .expect("answer");
    assert!(!empty.summary.deployable);
    assert!(
        empty
            .summary
            .reason
            .contains("no version of inventory is deployed to production"),
        "{}",
        empty.render()
    );
    for p in [
        "inventory",
        "orders",
        "order-history",
        "payments",
        "notifications",
        "legacy",
        "web-bff",
        "mobile-bff",
    ] {
        client
            .record_deployment(p, "2.0.0", "production")
            .await
            .expect("deployed");
    }
    let ready = client
        .can_i_deploy("gateway", "1.0.0", Some("production"))
        .await
        .expect("answer");
    assert!(ready.summary.deployable, "{}", ready.render());
    // The Pact CLI asks the matrix the same question.
    let matrix: serde_json::Value = reqwest::get(format!(
        "{broker}/matrix?q%5B%5D%5Bpacticipant%5D=gateway&q%5B%5D%5Bversion%5D=1.0.0&latestby=cvp&environment=production"
    ))
    .await
    .expect("matrix")
    .json()
    .await
    .expect("json");
    assert_eq!(matrix["summary"]["deployable"], true, "{matrix}");
    assert_eq!(
        matrix["matrix"][0]["consumer"]["version"]["number"],
        "1.0.0"
    );
    assert_eq!(matrix["matrix"][0]["verificationResult"]["success"], true);

    // Bad questions get clear answers.
    let unknown = client
        .can_i_deploy("gateway", "9.9.9", None)
        .await
        .expect_err("unknown");
    assert!(
        unknown.to_string().contains("no version 9.9.9 of gateway"),
        "{unknown}"
    );
    let no_env = client
        .can_i_deploy("gateway", "1.0.0", Some("staging"))
        .await
        .expect_err("no env");
    assert!(
        no_env.to_string().contains("no environment \"staging\""),
        "{no_env}"
    );
    let dup = client
        .create_environment("production", true)
        .await
        .expect_err("dup");
    assert!(dup.to_string().contains("exists already"), "{dup}");

    // A feature branch of the gateway expects a field inventory does not send.
    let mut changed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(PACTS_DIR).join("gateway-inventory.json")).expect("pact"),
    )
    .expect("json");
    let list = changed["interactions"]
        .as_array_mut()
        .and_then(|all| {
            all.iter_mut()
                .find(|i| i["description"] == "a request for the product list")
        })
        .expect("the product list's interaction");
    let body = &mut list["response"]["body"]["content"][0];
    body["units_free"] = body["stock"].take();
    body.as_object_mut().expect("object").remove("stock");
    let feature = dir.path().join("feature");
    std::fs::create_dir(&feature).expect("mkdir");
    std::fs::write(feature.join("gateway-inventory.json"), changed.to_string()).expect("write");
    client
        .publish(
            &pacts::all(&feature).expect("pacts"),
            "1.1.0",
            Some("feat-x"),
            &[],
        )
        .await
        .expect("published");
    let inventory = &servers[0].1;
    let strict = verify_through(
        &broker,
        "inventory",
        inventory,
        &["branch=feat-x"],
        false,
        None,
    )
    .await;
    assert!(!strict.passed(), "{}", strict.render());
    // Pending: never verified by inventory, so its failure is reported, not fatal.
    let pending = verify_through(
        &broker,
        "inventory",
        inventory,
        &["branch=feat-x"],
        true,
        None,
    )
    .await;
    assert!(pending.passed(), "{}", pending.render());
    assert!(
        pending.render().contains("fail (pending)"),
        "{}",
        pending.render()
    );
    let junit = dir.path().join("pending.xml");
    gauntlet_contracts::junit::write(&pending, &junit).expect("junit");
    let xml = std::fs::read_to_string(&junit).expect("read");
    assert!(
        xml.contains("failures=\"0\"") && xml.contains("skipped=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("pending pact: $[") && xml.contains("units_free"),
        "{xml}"
    );
    // Work in progress: not selected (main branch only), but published since the date and
    // never verified, so verified as pending.
    let wip = verify_through(
        &broker,
        "inventory",
        inventory,
        &["mainBranch"],
        false,
        Some("2000-01-01"),
    )
    .await;
    assert!(wip.passed(), "{}", wip.render());
    assert!(wip.render().contains("fail (pending)"), "{}", wip.render());
    let feature_answer = client
        .can_i_deploy("gateway", "1.1.0", None)
        .await
        .expect("answer");
    assert!(
        !feature_answer.summary.deployable,
        "{}",
        feature_answer.render()
    );
    assert_eq!(
        feature_answer.summary.failed,
        1,
        "{}",
        feature_answer.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_bad_publications_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = serve(broker::router(Broker::open(dir.path()).expect("broker"))).await;
    let http = reqwest::Client::new();
    let put = |path: &str, body: &'static str| {
        http.put(format!("{broker}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let mismatched = put(
        "/pacts/provider/orders/consumer/gateway/version/1",
        r#"{"consumer": {"name": "web"}, "provider": {"name": "orders"}, "interactions": []}"#,
    )
    .await
    .expect("answered");
    assert_eq!(mismatched.status(), 400);
    assert!(
        mismatched
            .text()
            .await
            .expect("body")
            .contains("between web and orders")
    );
    let not_json = put("/pacts/provider/orders/consumer/gateway/version/1", "{")
        .await
        .expect("answered");
    assert_eq!(not_json.status(), 400);
    let for_verification = |provider: &str, body: serde_json::Value| {
        http.post(format!(
            "{broker}/pacts/provider/{provider}/for-verification"
        ))
        .json(&body)
        .send()
    };
    let missing = for_verification("nobody", serde_json::json!({}))
        .await
        .expect("answered");
    assert_eq!(missing.status(), 404);
    let pact =
        r#"{"consumer": {"name": "gateway"}, "provider": {"name": "orders"}, "interactions": []}"#;
    let path = "/pacts/provider/orders/consumer/gateway/version/1";
    let ok = put(path, pact).await.expect("answered");
    assert_eq!(ok.status(), 201);
    let again = put(path, pact).await.expect("answered");
    assert_eq!(again.status(), 200, "the same content again is no change");
    let bad_wip = for_verification(
        "orders",
        serde_json::json!({"includeWipPactsSince": "yesterday"}),
    )
    .await
    .expect("answered");
    assert_eq!(bad_wip.status(), 400);
    assert!(bad_wip.text().await.expect("body").contains("not a date"));
}

/// A broker with credentials: the read/write account and token publish, the read-only
/// account reads but may not write (403), anyone else gets 401 with `WWW-Authenticate`;
/// a body over the limit is 413 naming it; too many contracts at once is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_limits_guard_the_broker() {
    use gauntlet_contracts::broker::auth::{self, Credentials};
    use gauntlet_contracts::broker::client::BrokerLogin;
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = Credentials::from_lookup(|name| {
        match name {
            auth::USERNAME => Some("ci"),
            auth::PASSWORD => Some("ci-secret"),
            auth::READ_ONLY_USERNAME => Some("dev"),
            auth::READ_ONLY_PASSWORD => Some("dev-secret"),
            auth::TOKEN => Some("token-secret"),
            _ => None,
        }
        .map(str::to_string)
    })
    .expect("credentials");
    let limits = broker::Limits {
        max_body: 64 * 1024,
        max_contracts: 2,
        ..broker::Limits::default()
    };
    let b = Broker::open(dir.path())
        .expect("broker")
        .with_limits(limits);
    let url = serve(broker::guarded_router(b, credentials)).await;
    let pacts = pacts::all(Path::new(PACTS_DIR)).expect("pacts");
    let client = |login: BrokerLogin| BrokerClient::new(&url).with_login(login);
    let basic = |user: &str, password: &str| BrokerLogin::Basic {
        username: user.into(),
        password: password.into(),
    };

    let anonymous = client(BrokerLogin::None)
        .publish(&pacts[..1], "1.0.0", Some("main"), &[])
        .await
        .expect_err("no credentials");
    assert!(anonymous.to_string().contains("401"), "{anonymous}");
    let wrong = client(basic("ci", "nope"))
        .publish(&pacts[..1], "1.0.0", Some("main"), &[])
        .await
        .expect_err("wrong password");
    assert!(wrong.to_string().contains("401"), "{wrong}");
    let read_only = client(basic("dev", "dev-secret"))
        .publish(&pacts[..1], "1.0.0", Some("main"), &[])
        .await
        .expect_err("read-only");
    assert!(read_only.to_string().contains("403"), "{read_only}");

    client(basic("ci", "ci-secret"))
        .publish(&pacts[..1], "1.0.0", Some("main"), &[])
        .await
        .expect("the read/write account publishes");
    client(BrokerLogin::Token("token-secret".into()))
        .publish(&pacts[1..2], "1.0.0", Some("main"), &[])
        .await
        .expect("the token publishes");
    let consumer = &pacts[0].consumer;
    let answer = client(basic("dev", "dev-secret"))
        .can_i_deploy(consumer, "1.0.0", None)
        .await
        .expect("the read-only account reads");
    assert!(!answer.summary.deployable, "nothing verified yet");

    let http = reqwest::Client::new();
    let challenged = http.get(format!("{url}/")).send().await.expect("answered");
    assert_eq!(challenged.status(), 401);
    let challenge = challenged
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(challenge.starts_with("Basic"), "{challenge}");

    let big = format!(
        r#"{{"consumer": {{"name": "gateway"}}, "provider": {{"name": "orders"}}, "padding": "{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let too_large = http
        .put(format!(
            "{url}/pacts/provider/orders/consumer/gateway/version/2"
        ))
        .basic_auth("ci", Some("ci-secret"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("answered");
    assert_eq!(too_large.status(), 413);
    let said = too_large.text().await.expect("body");
    assert!(said.contains("65536 bytes"), "{said}");

    let contract = serde_json::json!({
        "consumerName": "gateway", "providerName": "orders", "specification": "pact",
        "contentType": "application/json", "content": "e30=",
    });
    let many = http
        .post(format!("{url}/contracts/publish"))
        .bearer_auth("token-secret")
        .json(&serde_json::json!({
            "pacticipantName": "gateway", "pacticipantVersionNumber": "3",
            "contracts": [contract.clone(), contract.clone(), contract],
        }))
        .send()
        .await
        .expect("answered");
    assert_eq!(many.status(), 400);
    assert!(many.text().await.expect("body").contains("2 at most"));
}
