//! The demo on RabbitMQ (`gauntlet demo --broker rabbitmq`): Debian's RabbitMQ started as
//! the demo's child, every order's events through it to notifications, once; the spans and
//! the service map say `rabbitmq`; a message that is not an event, sent by an AMQP client we
//! did not write (Python's pika), lands in the dead-letter queue with its reason while the
//! consumer keeps going; and a demo killed with SIGKILL leaves no RabbitMQ or epmd behind.
//! (The broker's patterns are proven with their controls in `tests/chaos_experiments.rs`.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Demo, wait_for_file};
use gauntlet_demo_system::config::EventTransport;
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_demo_system::notifications::NotificationsClient;
use gauntlet_demo_system::notifications::api::NotificationQuery;
use gauntlet_demo_system::orders::{Item, PlaceOrder};
use gauntlet_demo_system::platform::client::HttpClient;
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use gauntlet_demo_system::topology::{EDGES, EdgeKind, Service};
use gauntlet_query_api::client::QueryClient;
use gauntlet_query_api::params::DependenciesQuery;
use serde_json::Value;

#[test]
fn a_broker_the_demo_cannot_use_is_refused_before_anything_starts() {
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new(common::BIN)
            .args(["demo", "--ports", "auto", "--no-traffic", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{args:?} was taken");
        assert!(
            !dir.path().join("demo.json").exists(),
            "{args:?}: nothing starts"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["--broker", "kafka"]);
    assert!(err.contains("feed") && err.contains("rabbitmq"), "{err}");
    let err = run(&[
        "--broker",
        "rabbitmq",
        "--broker-url",
        "http://127.0.0.1:5672",
    ]);
    assert!(err.contains("an AMQP URL"), "{err}");
    let err = run(&["--broker", "feed", "--broker-url", "amqp://127.0.0.1:5672"]);
    assert!(err.contains("--broker rabbitmq"), "{err}");
}

#[test]
fn events_travel_through_rabbitmq_once_and_what_is_not_an_event_is_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let began = Instant::now();
    let mut demo = Demo::start(&data, &["--broker", "rabbitmq"]);
    wait_for_file(&data.join("demo.json"), Duration::from_secs(120));
    eprintln!(
        "the demo on RabbitMQ was up in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let handle = DemoHandle::load(&data.join("demo.json")).expect("demo.json");
    let broker = handle.broker.clone().expect("demo.json names the broker");
    assert!(
        broker.starts_with("amqp://guest:guest@127.0.0.1:"),
        "{broker}"
    );

    let rt = common::runtime();
    rt.block_on(async {
        let customer = format!("broker-{}", std::process::id());
        let placed = place_orders(&handle.gateway, &customer, 5).await;
        let notes = notifications(&handle);
        notified_once(&notes, &customer, &placed).await;
        map_says_rabbitmq(&handle).await;

        pact_messages_are_taken_from_the_queue(&broker, &notes).await;

        let found = dead_letter_with_pika(&broker, "notifications.orders").await;
        assert_eq!(found["body"], "{this is not an event", "{found}");
        assert_eq!(found["routing_key"], "notifications.orders", "{found}");
        let reason = found["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("not an event"), "{found}");
        // Nothing half done: the consumer goes on with the next orders.
        let more = place_orders(&handle.gateway, &customer, 2).await;
        let all: Vec<String> = placed.into_iter().chain(more).collect();
        notified_once(&notes, &customer, &all).await;
    });

    // No SIGTERM, no cleanup: the demo vanishes, and its broker's watcher stops the VM and
    // its epmd.
    let rabbit_dir = data.join("rabbitmq").display().to_string();
    assert!(
        !processes_mentioning(&rabbit_dir).is_empty(),
        "RabbitMQ runs"
    );
    demo.0.kill().expect("SIGKILL");
    demo.0.wait().expect("reaped");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_mentioning(&rabbit_dir);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outlived the killed demo: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Places `n` orders for `customer` through the gateway; their IDs.
async fn place_orders(gateway: &str, customer: &str, n: usize) -> Vec<String> {
    let gateway = common::demo_gateway(gateway).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let order = PlaceOrder {
            customer_id: customer.into(),
            items: vec![Item {
                sku: "SKU-STICKER".into(),
                quantity: 1,
            }],
        };
        let placed = gateway.place_order(&order, None).await.expect("an order");
        ids.push(placed.body.id);
    }
    ids
}

fn notifications(handle: &DemoHandle) -> NotificationsClient {
    let url = &handle.services["notifications"][0];
    let http = HttpClient::at("notifications", url, &ResilienceConfig::default()).expect("client");
    NotificationsClient::new(http)
}

/// Within 30 s every order in `ids` has exactly one notification.
async fn notified_once(notes: &NotificationsClient, customer: &str, ids: &[String]) {
    let query = NotificationQuery {
        customer_id: Some(customer.to_string()),
        order_id: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = notes.list(&query).await.expect("notifications");
        let count = |id: &String| got.iter().filter(|n| &n.order_id == id).count();
        if ids.iter().all(|id| count(id) == 1) {
            return;
        }
        let counts: Vec<usize> = ids.iter().map(count).collect();
        assert!(
            counts.iter().all(|c| *c <= 1),
            "notified more than once: {counts:?}"
        );
        assert!(Instant::now() < deadline, "not all notified: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The collector's service map: the asynchronous edges orders → notifications and
/// orders → order-history are carried by RabbitMQ (the consumer spans' messaging.system).
async fn map_says_rabbitmq(handle: &DemoHandle) {
    let api = handle.collector.api.clone().expect("the demo's collector");
    let client = QueryClient::new(&api, None, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let deps = client
            .dependencies(&DependenciesQuery::default())
            .await
            .expect("dependencies");
        let over = |parent: &str, child: &str| {
            deps.data
                .iter()
                .find(|l| l.parent == parent && l.child == child)
                .map(|l| l.protocols.clone())
        };
        // The topology's event edges from orders, as carried under RabbitMQ.
        let edges: Vec<_> = EDGES
            .into_iter()
            .filter(|e| e.kind == EdgeKind::Events && e.provider == Service::Orders)
            .collect();
        assert_eq!(
            edges.len(),
            2,
            "notifications and order-history read orders"
        );
        let carried = |e: &gauntlet_demo_system::topology::Edge| {
            let system = e.carried_by(EventTransport::Rabbitmq).messaging_system();
            over(e.provider.name(), e.consumer.name())
                == Some(vec![system.expect("a broker").into()])
        };
        if edges.iter().all(carried) {
            return;
        }
        assert!(Instant::now() < deadline, "{:?}", deps.data);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A message pact is transport-free: the messages of notifications' pact with orders, sent
/// through RabbitMQ as the relay sends events (by pika, under `orders.TYPE`), are each taken
/// by notifications' handler from its queue, as the pact's consumer test has it take them
/// directly.
async fn pact_messages_are_taken_from_the_queue(broker: &str, notes: &NotificationsClient) {
    let pact: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/pacts/notifications-orders.json"),
        )
        .expect("the pact"),
    )
    .expect("pact JSON");
    let events: Vec<Value> = pact["interactions"]
        .as_array()
        .expect("interactions")
        .iter()
        .map(|i| i["contents"]["content"].clone())
        .collect();
    assert!(events.len() >= 3, "{pact}");
    let messages: Vec<(String, Value)> = events
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().expect("type");
            (format!("orders.{kind}"), e.clone())
        })
        .collect();
    let mut child = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/amqp_publish.py"))
        .arg(broker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs pika)");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, &serde_json::to_vec(&messages).expect("json"))
        .await
        .expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("pika");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let customer = events[0]["payload"]["customer_id"]
        .as_str()
        .expect("customer");
    let orders: Vec<String> = events
        .iter()
        .filter_map(|e| e["payload"]["id"].as_str().map(str::to_string))
        .collect();
    notified_once(notes, customer, &orders).await;
}

/// `tests/clients/amqp_dead_letter.py`: what it found in `queue`'s dead-letter queue.
async fn dead_letter_with_pika(broker: &str, queue: &str) -> Value {
    let out = tokio::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/amqp_dead_letter.py"))
        .arg(broker)
        .arg(queue)
        .output()
        .await
        .expect("python3 (scripts/test.sh installs pika)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client's JSON")
}

/// PIDs of live processes whose command line or environment mentions `text`.
fn processes_mentioning(text: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']));
            let mentions = ["cmdline", "environ"].iter().any(|f| {
                std::fs::read(format!("/proc/{pid}/{f}"))
                    .map(|b| String::from_utf8_lossy(&b).contains(text))
                    .unwrap_or(false)
            });
            alive && mentions
        })
        .collect()
}
