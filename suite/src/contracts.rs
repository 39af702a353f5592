//! The suite's contracts, the way a team's pipeline runs them: the pacts published to a Pact
//! broker of the run's own (Gauntlet's, in-process on loopback, its data under
//! `DIR/broker`) as the run's version, every provider verified against the system from the
//! broker with its results published back, then `can-i-deploy` asked for every pacticipant
//! at that version: the broker's matrix, not this code, says whether each could go out.

use std::collections::BTreeMap;
use std::path::Path;

use gauntlet_contracts::VerifyConfig;
use gauntlet_contracts::broker::client::BrokerClient;
use gauntlet_contracts::broker::{Broker, router};
use gauntlet_contracts::verify::{BrokerSource, Publish};

use crate::file::Contracts;
use crate::report::{ContractRow, DeployRow};
use crate::run::Progress;

/// The branch every version of the run is on.
const BRANCH: &str = "main";

/// A broker on 127.0.0.1, stopped and joined by [`LocalBroker::stop`].
struct LocalBroker {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalBroker {
    async fn start(dir: &Path) -> Result<Self, String> {
        let broker =
            Broker::open(dir).map_err(|e| format!("the run's Pact broker did not open: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the run's Pact broker cannot listen: {e}"))?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router(broker))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { url, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Publishes, verifies every provider of `services` and asks can-i-deploy; `version` is
/// every pacticipant's version in the broker.
pub async fn check(
    c: &Contracts,
    services: &BTreeMap<String, Vec<String>>,
    report_dir: &Path,
    version: &str,
    progress: Progress<'_>,
) -> Result<(Vec<ContractRow>, Vec<DeployRow>), String> {
    let broker = LocalBroker::start(&report_dir.join("broker")).await?;
    let client = BrokerClient::new(&broker.url);
    progress(&format!(
        "contracts: {} pacts published to the run's broker as version {version}",
        c.pacts.len()
    ));
    let result = match client.publish(&c.pacts, version, Some(BRANCH), &[]).await {
        Ok(()) => {
            let rows = verify_all(c, services, &broker.url, version, progress).await;
            let deploy = can_i_deploy(c, &client, version).await;
            Ok((rows, deploy))
        }
        Err(e) => Err(format!("publishing the pacts failed: {e}")),
    };
    broker.stop().await;
    result
}

fn providers(c: &Contracts) -> Vec<String> {
    let mut providers: Vec<String> = c.pacts.iter().map(|p| p.provider.clone()).collect();
    providers.sort();
    providers.dedup();
    providers
}

async fn verify_all(
    c: &Contracts,
    services: &BTreeMap<String, Vec<String>>,
    broker: &str,
    version: &str,
    progress: Progress<'_>,
) -> Vec<ContractRow> {
    let mut rows = Vec::new();
    for provider in providers(c) {
        progress(&format!("contracts: verifying {provider}..."));
        let failed = |why: String| ContractRow {
            provider: provider.clone(),
            passed: false,
            interactions: 0,
            failures: vec![why],
        };
        let Some(base) = services.get(&provider).and_then(|urls| urls.first()) else {
            rows.push(failed(format!(
                "the system has no service named {provider}"
            )));
            continue;
        };
        let mut config = VerifyConfig::new(&provider, base, Vec::new());
        config.broker = Some(BrokerSource {
            url: broker.to_string(),
            selectors: vec![gauntlet_contracts::broker::select::Selector {
                main_branch: Some(true),
                ..Default::default()
            }],
            enable_pending: false,
            include_wip_since: None,
            provider_branch: Some(BRANCH.into()),
            login: Default::default(),
        });
        config.publish = Some(Publish {
            provider_version: version.to_string(),
            branch: Some(BRANCH.into()),
        });
        rows.push(match gauntlet_contracts::verify(&config).await {
            Ok(r) => ContractRow {
                provider: provider.clone(),
                passed: r.passed(),
                interactions: r.outcomes.len(),
                failures: r
                    .failures()
                    .map(|o| {
                        format!(
                            "{}: {}: {}",
                            o.consumer,
                            o.description,
                            o.problems.join("; ")
                        )
                    })
                    .collect(),
            },
            Err(e) => failed(e.to_string()),
        });
    }
    rows
}

/// Every consumer and provider the pacts name, asked at `version`.
async fn can_i_deploy(c: &Contracts, client: &BrokerClient, version: &str) -> Vec<DeployRow> {
    let mut names: Vec<String> = c
        .pacts
        .iter()
        .flat_map(|p| [p.consumer.clone(), p.provider.clone()])
        .collect();
    names.sort();
    names.dedup();
    let mut rows = Vec::new();
    for pacticipant in names {
        rows.push(
            match client.can_i_deploy(&pacticipant, version, None).await {
                Ok(a) => DeployRow {
                    pacticipant,
                    deployable: a.summary.deployable,
                    reason: a.summary.reason,
                },
                Err(e) => DeployRow {
                    pacticipant,
                    deployable: false,
                    reason: format!("the broker could not answer: {e}"),
                },
            },
        );
    }
    rows
}
