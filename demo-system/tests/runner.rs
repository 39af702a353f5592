//! One instance run as `gauntlet demo-service` runs it: it announces itself to the real
//! registry, and when told to stop it deregisters before `run` returns, so callers stop
//! being sent to it at once rather than after the registry's TTL.

mod common;

use std::time::{Duration, Instant};

use gauntlet_demo_system::config::DemoConfig;
use gauntlet_demo_system::registry::{self, Registry, RegistryClient, RegistryClientError};
use gauntlet_demo_system::runner::{self, Instance};
use gauntlet_demo_system::topology::{InstanceId, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_has_deregistered_when_run_returns() {
    let (rl, registry_url) = common::bind().await;
    // A long TTL: only deregistration can take the instance off the list quickly.
    let mut config = DemoConfig::default();
    config.registry.ttl = Duration::from_secs(60);
    tokio::spawn(registry::run(
        Registry::new(config.registry),
        rl,
        std::future::pending(),
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(runner::run(
        Instance {
            id: InstanceId {
                service: Service::Payments,
                ordinal: 1,
            },
            listen: port,
            data_dir: dir.path().to_path_buf(),
            registry_url: registry_url.clone(),
            config,
            otlp_endpoint: None,
            routes: Default::default(),
            app: None,
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let registry = RegistryClient::new(&registry_url);
    let deadline = Instant::now() + Duration::from_secs(10);
    while registry
        .healthy("payments")
        .await
        .map_or(true, |l| l.is_empty())
    {
        assert!(Instant::now() < deadline, "payments never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running
        .await
        .expect("task")
        .expect("the instance stopped cleanly");
    assert!(
        matches!(
            registry.healthy("payments").await,
            Err(RegistryClientError::Refused { status: 404, .. })
        ),
        "still listed after run returned"
    );
    assert!(
        std::net::TcpStream::connect(port).is_err(),
        "its port is closed"
    );
}
