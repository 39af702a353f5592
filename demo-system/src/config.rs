//! The demo's settings: one TOML file (`demo-system/demo.toml` documents every key and its
//! default), plus `--disable PATTERN` switches that turn one pattern off so an experiment
//! can show what it is worth. The supervisor hands each child the effective settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, BTreeSet};

use crate::gateway::GatewayConfig;
use crate::healing::HealingConfig;
use crate::inventory::CandidateFaults;
use crate::payments::PaymentsConfig;
use crate::platform::discovery::DiscoveryConfig;
use crate::platform::resilience::ResilienceConfig;
use crate::registry::{RegistryConfig, Weights};
use crate::topology::Service;
use crate::web_bff::WebBffConfig;

/// A pattern of the demo that `--disable` can switch off, so an experiment's control can
/// show what it is worth. One type for the demo, its handle, and the chaos experiments that
/// name the pattern they prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    CircuitBreaker,
    Retries,
    HealthChecks,
    Outbox,
    Timeouts,
    Fallback,
    LoadBalancing,
    Compensation,
    ReadModelCatchUp,
    Bulkhead,
    RateLimiting,
    CompositionDeadlines,
    ShadowIsolation,
    CanaryAnalysis,
    SelfHealing,
    DeadLetters,
    EventReplay,
    LeaderElection,
    Sharding,
    PublisherConfirms,
    AckAfterCommit,
}

impl Pattern {
    pub const ALL: [Pattern; 21] = [
        Pattern::CircuitBreaker,
        Pattern::Retries,
        Pattern::HealthChecks,
        Pattern::Outbox,
        Pattern::Timeouts,
        Pattern::Fallback,
        Pattern::LoadBalancing,
        Pattern::Compensation,
        Pattern::ReadModelCatchUp,
        Pattern::Bulkhead,
        Pattern::RateLimiting,
        Pattern::CompositionDeadlines,
        Pattern::ShadowIsolation,
        Pattern::CanaryAnalysis,
        Pattern::SelfHealing,
        Pattern::DeadLetters,
        Pattern::EventReplay,
        Pattern::LeaderElection,
        Pattern::Sharding,
        Pattern::PublisherConfirms,
        Pattern::AckAfterCommit,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Pattern::CircuitBreaker => "circuit-breaker",
            Pattern::Retries => "retries",
            Pattern::HealthChecks => "health-checks",
            Pattern::Outbox => "outbox",
            Pattern::Timeouts => "timeouts",
            Pattern::Fallback => "fallback",
            Pattern::LoadBalancing => "load-balancing",
            Pattern::Compensation => "compensation",
            Pattern::ReadModelCatchUp => "read-model-catch-up",
            Pattern::Bulkhead => "bulkhead",
            Pattern::RateLimiting => "rate-limiting",
            Pattern::CompositionDeadlines => "composition-deadlines",
            Pattern::ShadowIsolation => "shadow-isolation",
            Pattern::CanaryAnalysis => "canary-analysis",
            Pattern::SelfHealing => "self-healing",
            Pattern::DeadLetters => "dead-letters",
            Pattern::EventReplay => "event-replay",
            Pattern::LeaderElection => "leader-election",
            Pattern::Sharding => "sharding",
            Pattern::PublisherConfirms => "publisher-confirms",
            Pattern::AckAfterCommit => "ack-after-commit",
        }
    }

    /// Every name, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Pattern::name).join(", ")
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pattern {
    type Err = ConfigFileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ConfigFileError::UnknownPattern(s.to_string()))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Publish events through each service's transactional outbox; `false` (`--disable
    /// outbox`) publishes fire-and-forget instead (see `Outbox::fire_and_forget`).
    pub transactional_outbox: bool,
    /// Undo a failed order's earlier steps (release its stock, refund its payment);
    /// `false` (`--disable compensation`): it is cancelled and keeps what it held.
    pub saga_compensation: bool,
    /// Feed consumers (notifications, order-history) resume from their stored cursor after
    /// a restart; `false` (`--disable read-model-catch-up`): from the newest event.
    pub consumer_catch_up: bool,
    /// Feed consumers park an event their handler failed on `dead_letter_after` times in a
    /// row and go on (`GET /admin/dead-letters`); false (`--disable dead-letters`): they
    /// retry it for ever, and every event after it waits.
    pub dead_letters: bool,
    pub dead_letter_after: u32,
    /// A consumer whose read model is new or was lost (order-history's documents) replays
    /// the feed from its first event to rebuild it; `false` (`--disable event-replay`): it
    /// starts from the newest event, and what came before is missing from it.
    pub event_replay: bool,
    /// Orders' two instances elect a leader through the registry, and only it resumes
    /// parked sagas and settles each period; `false` (`--disable leader-election`): both do.
    pub leader_election: bool,
    pub leadership: LeadershipConfig,
    /// How every service finds the instances of the services it calls.
    pub discovery: DiscoveryConfig,
    pub registry: RegistryConfig,
    pub gateway: GatewayConfig,
    pub payments: PaymentsConfig,
    /// Resilience of the orders service's calls to inventory and payments.
    pub orders: ResilienceConfig,
    pub contracts: ContractsConfig,
    pub shadow: ShadowConfig,
    /// The web BFF's GraphQL limits.
    pub web_bff: WebBffConfig,
    /// Version weights at start, and what makes inventory's next version worse.
    pub canary: CanaryConfig,
    /// Restarting instances that crash or stop answering.
    pub supervisor: HealingConfig,
    /// How events travel from publishers to consumers.
    pub events: EventsConfig,
}

/// How events travel: each publisher's HTTP long-poll feed (the default), or RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub transport: EventTransport,
    /// The broker (`amqp://user:password@host:port/vhost`), for `transport = "rabbitmq"`:
    /// `gauntlet demo --broker rabbitmq` starts Debian's RabbitMQ and fills it in; set it to
    /// use a broker of your own.
    pub url: Option<String>,
    /// The relay advances its position in the outbox only past events the broker
    /// confirmed; `false` (`--disable publisher-confirms`): fire-and-forget publishes,
    /// the position moves as soon as a message is written to the socket.
    pub publisher_confirms: bool,
    /// Consumers acknowledge a message after their handler's transaction committed;
    /// `false` (`--disable ack-after-commit`): on receipt, before the handler runs.
    pub ack_after_commit: bool,
}

impl EventsConfig {
    /// A broker URL must be one lapin can dial.
    pub fn check(&self) -> Result<(), String> {
        match &self.url {
            Some(url) if !(url.starts_with("amqp://") || url.starts_with("amqps://")) => Err(
                format!("url = {url:?}: an AMQP URL, amqp://user:password@host:port/vhost"),
            ),
            _ => Ok(()),
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            transport: EventTransport::Feed,
            url: None,
            publisher_confirms: true,
            ack_after_commit: true,
        }
    }
}

/// What carries events from publishers to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EventTransport {
    /// Consumers long-poll each publisher's `GET /events`.
    #[default]
    Feed,
    /// Each publisher's relay sends its outbox to RabbitMQ; consumers read durable queues.
    Rabbitmq,
}

/// Canary releases and blue-green switches: the share of a service's calls each version
/// gets when the demo starts (changed at run time through the registry's `PUT
/// /admin/weights/{service}`), and faults for inventory's next version (`inventory-v2`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// Service → version → percent of its calls; a service not listed spreads its calls
    /// over every instance, whatever its version.
    pub weights: BTreeMap<Service, Weights>,
    pub candidate: CandidateFaults,
    /// The tools' automated canary (`gauntlet canary`, the canary experiment) asks the
    /// judge before each step; false (`--disable canary-analysis`): it steps up regardless.
    /// No service reads it: it travels to the tools in `demo.json`'s disabled patterns.
    pub analysis: bool,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        let inventory = Weights([("v1".to_string(), 90), ("v2".to_string(), 10)].into());
        Self {
            weights: [(Service::Inventory, inventory)].into(),
            candidate: CandidateFaults::default(),
            analysis: true,
        }
    }
}

impl CanaryConfig {
    /// Weights that add up to 100 and give calls only to versions the demo runs.
    pub fn check(&self) -> Result<(), String> {
        for (service, weights) in &self.weights {
            let running: BTreeSet<String> = Service::ALL
                .into_iter()
                .filter(|s| s.registers_as() == Some(*service))
                .map(|s| s.version().to_string())
                .collect();
            weights.check(service.name(), &running)?;
        }
        self.candidate.check()
    }

    /// The weights as the registry keeps them, by service name.
    pub fn registry_weights(&self) -> BTreeMap<String, Weights> {
        self.weights
            .iter()
            .map(|(s, w)| (s.name().to_string(), w.clone()))
            .collect()
    }
}

/// The shadow deployment's candidate (`inventory-shadow`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    /// Added to every price the candidate shows: a candidate whose answers differ from
    /// the primary's in one field, which the gateway's comparison must report.
    pub candidate_price_offset_cents: i64,
}

/// What contract verification needs from the services.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContractsConfig {
    /// Serve Pact's `POST /_pact/provider-states` on every provider (and orders' `POST
    /// /_pact/messages`), so `gauntlet contracts verify` can set each one up. Never in
    /// production: it writes to the services' databases on request.
    pub provider_states: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid demo config: {message}")]
    Invalid { path: String, message: String },
    #[error("{0:?} is not a pattern that can be switched off: use one of {names}", names = Pattern::names())]
    UnknownPattern(String),
}

/// Orders' leader election and the singleton work it guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeadershipConfig {
    /// The leader's session TTL: a leader that stops renewing (paused, cut off) is
    /// replaced within it.
    pub ttl_ms: u64,
    /// How often the leader resumes sagas parked for `parked_after_ms`.
    pub resume_every_ms: u64,
    pub parked_after_ms: u64,
    /// The length of a settlement period.
    pub settlement_period_ms: u64,
}

impl LeadershipConfig {
    /// A TTL the registry takes, and periods long enough to mean something.
    pub fn check(&self) -> Result<(), String> {
        if !(1000..=86_400_000).contains(&self.ttl_ms) {
            return Err(format!(
                "ttl_ms = {}: the registry takes 1000 to 86400000",
                self.ttl_ms
            ));
        }
        for (name, ms) in [
            ("resume_every_ms", self.resume_every_ms),
            ("settlement_period_ms", self.settlement_period_ms),
        ] {
            if ms < 100 {
                return Err(format!("{name} = {ms}: at least 100"));
            }
        }
        Ok(())
    }
}

impl Default for LeadershipConfig {
    fn default() -> Self {
        Self {
            ttl_ms: 3000,
            resume_every_ms: 2000,
            parked_after_ms: 2000,
            settlement_period_ms: 5000,
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            transactional_outbox: true,
            saga_compensation: true,
            consumer_catch_up: true,
            dead_letters: true,
            dead_letter_after: 3,
            event_replay: true,
            leader_election: true,
            leadership: LeadershipConfig::default(),
            discovery: DiscoveryConfig::default(),
            registry: RegistryConfig::default(),
            gateway: GatewayConfig::default(),
            payments: PaymentsConfig::default(),
            orders: ResilienceConfig::saga(),
            contracts: ContractsConfig::default(),
            shadow: ShadowConfig::default(),
            web_bff: WebBffConfig::default(),
            canary: CanaryConfig::default(),
            supervisor: HealingConfig::default(),
            events: EventsConfig::default(),
        }
    }
}

impl DemoConfig {
    /// Reads a TOML (or, for the file the supervisor writes, JSON) config; missing keys
    /// take their defaults, unknown keys are an error.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let config: Self = parsed.map_err(|message| ConfigFileError::Invalid {
            path: shown.clone(),
            message,
        })?;
        let checks = [
            ("gateway", config.gateway.check()),
            ("web_bff", config.web_bff.check()),
            ("canary", config.canary.check()),
            ("supervisor", config.supervisor.check()),
            ("leadership", config.leadership.check()),
            ("events", config.events.check()),
            (
                "top level",
                if config.dead_letter_after == 0 {
                    Err(
                        "dead_letter_after must be at least 1 (dead_letters = false never parks)"
                            .into(),
                    )
                } else {
                    Ok(())
                },
            ),
        ];
        for (section, check) in checks {
            check.map_err(|message| ConfigFileError::Invalid {
                path: shown.clone(),
                message: format!("[{section}] {message}"),
            })?;
        }
        Ok(config)
    }

    /// Switches one pattern off everywhere it is used.
    pub fn disable(&mut self, pattern: Pattern) {
        let (gateway, orders) = (&mut self.gateway.resilience, &mut self.orders);
        match pattern {
            Pattern::CircuitBreaker => {
                gateway.circuit_breaker.enabled = false;
                orders.circuit_breaker.enabled = false;
            }
            Pattern::Retries => {
                gateway.retry.enabled = false;
                orders.retry.enabled = false;
            }
            Pattern::Timeouts => {
                gateway.timeouts = false;
                orders.timeouts = false;
            }
            Pattern::HealthChecks => self.registry.health_checks = false,
            Pattern::Outbox => self.transactional_outbox = false,
            Pattern::Fallback => self.gateway.fallback = false,
            Pattern::LoadBalancing => self.discovery.load_balancing = false,
            Pattern::Compensation => self.saga_compensation = false,
            Pattern::ReadModelCatchUp => self.consumer_catch_up = false,
            Pattern::Bulkhead => {
                gateway.bulkhead.enabled = false;
                orders.bulkhead.enabled = false;
            }
            Pattern::RateLimiting => self.gateway.rate_limit = false,
            Pattern::CompositionDeadlines => self.gateway.composition_deadlines = false,
            Pattern::ShadowIsolation => self.gateway.shadow.isolation = false,
            Pattern::CanaryAnalysis => self.canary.analysis = false,
            Pattern::SelfHealing => self.supervisor.self_healing = false,
            Pattern::DeadLetters => self.dead_letters = false,
            Pattern::EventReplay => self.event_replay = false,
            Pattern::LeaderElection => self.leader_election = false,
            Pattern::Sharding => self.discovery.sharding = false,
            Pattern::PublisherConfirms => self.events.publisher_confirms = false,
            Pattern::AckAfterCommit => self.events.ack_after_commit = false,
        }
    }

    /// Whether `pattern` is off everywhere it is used (as `--disable` leaves it, or a
    /// config file that says so): a run against this demo is the pattern's control.
    pub fn is_disabled(&self, pattern: Pattern) -> bool {
        let (gateway, orders) = (&self.gateway.resilience, &self.orders);
        match pattern {
            Pattern::CircuitBreaker => {
                !gateway.circuit_breaker.enabled && !orders.circuit_breaker.enabled
            }
            Pattern::Retries => !gateway.retry.enabled && !orders.retry.enabled,
            Pattern::Timeouts => !gateway.timeouts && !orders.timeouts,
            Pattern::HealthChecks => !self.registry.health_checks,
            Pattern::Outbox => !self.transactional_outbox,
            Pattern::Fallback => !self.gateway.fallback,
            Pattern::LoadBalancing => !self.discovery.load_balancing,
            Pattern::Compensation => !self.saga_compensation,
            Pattern::ReadModelCatchUp => !self.consumer_catch_up,
            Pattern::Bulkhead => !gateway.bulkhead.enabled && !orders.bulkhead.enabled,
            Pattern::RateLimiting => !self.gateway.rate_limit,
            Pattern::CompositionDeadlines => !self.gateway.composition_deadlines,
            Pattern::ShadowIsolation => !self.gateway.shadow.isolation,
            Pattern::CanaryAnalysis => !self.canary.analysis,
            Pattern::SelfHealing => !self.supervisor.self_healing,
            Pattern::DeadLetters => !self.dead_letters,
            Pattern::EventReplay => !self.event_replay,
            Pattern::LeaderElection => !self.leader_election,
            Pattern::Sharding => !self.discovery.sharding,
            Pattern::PublisherConfirms => !self.events.publisher_confirms,
            Pattern::AckAfterCommit => !self.events.ack_after_commit,
        }
    }

    /// How the feed consumers read (catch-up, dead letters).
    pub fn consume_options(&self) -> crate::platform::outbox::ConsumeOptions {
        crate::platform::outbox::ConsumeOptions {
            catch_up: self.consumer_catch_up,
            dead_letter_after: self.dead_letters.then_some(self.dead_letter_after),
        }
    }

    /// The patterns this demo runs without.
    pub fn disabled(&self) -> Vec<Pattern> {
        Pattern::ALL
            .into_iter()
            .filter(|p| self.is_disabled(*p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_file_is_the_defaults() {
        let shipped = DemoConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("demo.toml"))
            .expect("demo.toml parses");
        let as_json = |c: &DemoConfig| serde_json::to_value(c).expect("serializes");
        assert_eq!(as_json(&shipped), as_json(&DemoConfig::default()));
    }

    #[test]
    fn a_broker_url_that_is_not_amqp_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(
            &file,
            "[events]\ntransport = \"rabbitmq\"\nurl = \"http://127.0.0.1:5672\"\n",
        )
        .expect("write");
        let err = DemoConfig::load(&file).expect_err("http URL").to_string();
        assert!(err.contains("an AMQP URL"), "{err}");
        std::fs::write(&file, "[events]\ntransport = \"kafka\"\n").expect("write");
        let err = DemoConfig::load(&file).expect_err("kafka").to_string();
        assert!(err.contains("kafka") && err.contains("rabbitmq"), "{err}");
    }

    #[test]
    fn bad_files_and_patterns_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[gateway]\nrate_limit_per_secnd = 5\n").expect("write");
        let err = DemoConfig::load(&file)
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("rate_limit_per_secnd"), "{err}");
        std::fs::write(
            &file,
            "[gateway]\ndetails_deadline_ms = 300\ndetails_part_deadline_ms = 500\n",
        )
        .expect("write");
        let err = DemoConfig::load(&file)
            .expect_err("a part's deadline past the request's")
            .to_string();
        assert!(
            err.contains(
                "details_part_deadline_ms (500) must fit inside details_deadline_ms (300)"
            ),
            "{err}"
        );
        for (routes, says) in [
            (
                r#""/shop/prods" = "legacy""#,
                "\"/shop/prods\" is not a route of the old shop",
            ),
            (
                r#""/shop/products" = "payments""#,
                "only legacy or inventory can answer it",
            ),
            (
                r#""/shop/products" = "warehouse""#,
                "unknown variant `warehouse`",
            ),
        ] {
            std::fs::write(&file, format!("[gateway.shop_routes]\n{routes}\n")).expect("write");
            let err = DemoConfig::load(&file).expect_err(routes).to_string();
            assert!(err.contains(says), "{routes}: {err}");
        }
        for (canary, says) in [
            (
                "[canary.weights.inventory]\nv1 = 90\nv2 = 20\n",
                "[canary] the weights of inventory add up to 110 %, not 100 %",
            ),
            (
                "[canary.weights.inventory]\nv1 = 50\nv3 = 50\n",
                "no instance of inventory runs version v3 (running: v1, v2)",
            ),
            (
                "[canary.weights.payments]\nv2 = 100\n",
                "no instance of payments runs version v2 (running: v1)",
            ),
            (
                "[canary.weights.warehouse]\nv1 = 100\n",
                "unknown variant `warehouse`",
            ),
            (
                "[canary.candidate]\nerror_percent = 120\n",
                "error_percent (120) is a percentage",
            ),
        ] {
            std::fs::write(&file, canary).expect("write");
            let err = DemoConfig::load(&file).expect_err(canary).to_string();
            assert!(err.contains(says), "{canary}: {err}");
        }
        assert!(
            "gravity"
                .parse::<Pattern>()
                .expect_err("unknown")
                .to_string()
                .contains("circuit-breaker, retries")
        );
    }

    /// Each switch turns its pattern off, and only its own: the handle's list of disabled
    /// patterns is what decides whether a run is a control.
    #[test]
    fn each_switch_turns_off_exactly_its_pattern() {
        assert!(DemoConfig::default().disabled().is_empty());
        for p in Pattern::ALL {
            let mut c = DemoConfig::default();
            c.disable(p);
            assert_eq!(c.disabled(), [p], "{p}");
            assert_eq!(p.name().parse::<Pattern>().expect("round trip"), p);
        }
        // Off in one place only is not off.
        let mut c = DemoConfig::default();
        c.orders.circuit_breaker.enabled = false;
        assert!(c.disabled().is_empty());
    }
}
