//! Provider verification, end to end: the committed pacts replayed by `pact_verifier`
//! against the real inventory service (its own database, its provider states) on a loopback
//! port. The same provider with one JSON field renamed must fail, naming the field.

use gauntlet_contracts::{PACTS_DIR, Report, VerifyConfig, pacts, verify};
use gauntlet_demo_system::inventory::{self, Inventory};
use gauntlet_demo_system::platform::provider_states;

/// Serves the inventory service with its provider states; `rename` switches on the
/// test-only variant that renames a JSON field in every answer.
async fn inventory(
    dir: &std::path::Path,
    rename: Option<(&'static str, &'static str)>,
) -> (String, tokio::task::JoinHandle<()>) {
    let inv = Inventory::open(&dir.join("inventory.sqlite")).expect("inventory db");
    let mut app = inventory::app(inv.clone())
        .merge(provider_states::router(inv.clone()))
        .merge(inventory::provider_states::messages_router(inv));
    if let Some((from, to)) = rename {
        app = provider_states::with_renamed_field(app, from, to);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, server)
}

async fn verify_inventory(url: &str) -> Report {
    let pacts = pacts::for_provider(std::path::Path::new(PACTS_DIR), "inventory")
        .expect("the repository's pacts name inventory");
    assert_eq!(
        pacts
            .iter()
            .map(|p| p.consumer.as_str())
            .collect::<Vec<_>>(),
        // The mobile BFF reads inventory over gRPC: its contract is a pinned .proto.
        ["gateway", "notifications", "orders", "web-bff"]
    );
    verify(&VerifyConfig::new("inventory", url, pacts))
        .await
        .expect("verification ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_honours_every_contract_it_is_named_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, server) = inventory(dir.path(), None).await;
    let report = verify_inventory(&url).await;
    assert!(report.passed(), "{}", report.render());
    // Every consumer's interactions ran: the product list (the gateway's and the web BFF's;
    // the mobile BFF's is gRPC), a product and an unknown one, reservations made, refused,
    // confirmed and released, an order's reservation and none, and the stock.low event of a
    // product taken low.
    assert_eq!(report.outcomes.len(), 11, "{}", report.render());
    // Run again on the same database: every state setup resets what it touches.
    let again = verify_inventory(&url).await;
    assert!(again.passed(), "{}", again.render());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_field_fails_verification_with_a_diff_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, server) = inventory(dir.path(), Some(("stock", "units_free"))).await;
    let report = verify_inventory(&url).await;
    assert!(!report.passed(), "{}", report.render());
    // Every HTTP consumer reads `stock`: the gateway and the web BFF in the list, the saga
    // in one product.
    let failed: Vec<_> = report
        .failures()
        .map(|o| (o.consumer.as_str(), o.description.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("gateway", "a request for the product list"),
            ("orders", "a request for a product"),
            ("web-bff", "a request for the product list"),
        ],
        "{}",
        report.render()
    );
    for o in report.failures() {
        assert!(
            o.problems
                .iter()
                .any(|p| p.starts_with('$') && p.contains("stock")),
            "the problem names the path of the missing field: {:?}",
            o.problems
        );
    }
    let junit = dir.path().join("junit.xml");
    gauntlet_contracts::junit::write(&report, &junit).expect("junit");
    let xml = std::fs::read_to_string(&junit).expect("read");
    assert!(
        xml.contains("tests=\"11\"") && xml.contains("failures=\"3\""),
        "{xml}"
    );
    assert!(xml.contains("stock"), "{xml}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_provider_state_fails_the_interaction_and_says_which_states_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, server) = inventory(dir.path(), None).await;
    let pact = dir.path().join("pacts");
    std::fs::create_dir(&pact).expect("mkdir");
    let body = serde_json::json!({
        "consumer": {"name": "someone"},
        "provider": {"name": "inventory"},
        "interactions": [{
            "type": "Synchronous/HTTP",
            "description": "a product list in a state inventory cannot be put in",
            "providerStates": [{"name": "the warehouse is on fire"}],
            "request": {"method": "GET", "path": "/products"},
            "response": {"status": 200}
        }],
        "metadata": {"pactSpecification": {"version": "4.0"}}
    });
    std::fs::write(pact.join("someone-inventory.json"), body.to_string()).expect("write");
    let pacts = pacts::for_provider(&pact, "inventory").expect("one pact");
    let report = verify(&VerifyConfig::new("inventory", &url, pacts))
        .await
        .expect("ran");
    assert!(!report.passed());
    let problems = report.outcomes[0].problems.join("\n");
    // The provider's own refusal, naming the states it does know.
    assert!(
        problems.contains("unknown provider state \"the warehouse is on fire\"")
            && problems.contains("products are in stock"),
        "{problems}"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_with_bad_bodies_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, server) = inventory(dir.path(), None).await;
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{url}{}", provider_states::STATE_CHANGE_PATH))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        (
            r#"{"state": "a product is out of stock", "params": {}}"#,
            "sku",
        ),
        (
            r#"{"state": "a product is out of stock", "params": {"sku": "SKU-NONE"}}"#,
            "no product SKU-NONE",
        ),
        (
            r#"{"state": "products are in stock", "action": "explode"}"#,
            "action",
        ),
        (r#"{"params": {}}"#, "state"),
        ("not json", "expected"),
    ];
    for (body, says) in cases {
        let resp = post(body.to_string()).await.expect("answered");
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.expect("body");
        assert!(text.contains(says), "{body}: {text}");
    }
    // A teardown of a known state, and the empty state verifiers send for stateless
    // interactions, need nothing.
    for body in [
        r#"{"state": "products are in stock", "action": "teardown"}"#,
        r#"{"state": "", "params": {}}"#,
    ] {
        assert_eq!(
            post(body.to_string()).await.expect("answered").status(),
            200,
            "{body}"
        );
    }
    server.abort();
}
