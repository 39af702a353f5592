//! Runs the demo's instances as child processes (`<exe> demo-service NAME ...`) and lets
//! chaos experiments and tests act on them: list, kill (SIGKILL), restart, start (a killed
//! one), pause (SIGSTOP) and resume (SIGCONT), through [`app`]. [`Supervisor::shutdown`] stops every child
//! (SIGTERM, then SIGKILL after a grace period) and reaps it, so nothing is left running;
//! and each child holds a pipe from the supervisor on its stdin and exits when it closes,
//! so even a SIGKILLed supervisor leaves nothing behind. The plan comes from [`crate::topology`].
//!
//! With self-healing on ([`HealingConfig`]), a watcher task starts again an instance that
//! exits on its own or fails its liveness check too often, after a backoff; what the API
//! does (kill, pause) is an operator's decision and is left alone.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::healing::HealingConfig;
use crate::platform::http::ApiError;
use crate::platform::lock;
use crate::ports::{self, HeldPort};
use crate::topology::{InstanceId, Service};

/// One instance to run.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub id: InstanceId,
    pub listen: SocketAddr,
}

impl InstanceSpec {
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// Everything the children need to find each other.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `gauntlet` binary.
    pub exe: PathBuf,
    pub data_dir: PathBuf,
    /// Where every instance registers and discovers the others.
    pub registry_url: String,
    /// Where the services send their traces and logs (OTLP/HTTP).
    pub otlp_endpoint: Option<String>,
    /// The effective settings every child reads (JSON).
    pub config_file: Option<PathBuf>,
    /// Under `--chaos`: per consumer service, instance URL → proxy URL (JSON).
    pub routes_file: Option<PathBuf>,
    /// In start order: the registry first, every provider before its consumers.
    pub instances: Vec<InstanceSpec>,
    /// Restarting what crashes.
    pub healing: HealingConfig,
    /// Ports held for instances that do not listen on them (yet, or while killed).
    held: Arc<std::sync::Mutex<HashMap<SocketAddr, HeldPort>>>,
}

/// The supervisor API's fixed port.
pub const SUPERVISOR_PORT: u16 = 8700;

/// Fixed ports that are already taken, named, with what to do about them.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} already in use, so the demo cannot start on its documented ports. Another `gauntlet demo` (or another program) holds {}: stop it, or run `gauntlet demo --ports auto` to pick free ports (DIR/demo.json then says where everything is).",
    .taken.iter().map(|(what, addr)| format!("{addr} ({what})")).collect::<Vec<_>>().join(", "),
    if .taken.len() == 1 { "it" } else { "them" }
)]
pub struct PortsInUse {
    /// What wanted the port, and the address.
    pub taken: Vec<(String, SocketAddr)>,
}

/// Checks, before anything starts, that every address in `wanted` can be listened on.
pub fn check_ports_free(wanted: &[(String, SocketAddr)]) -> Result<(), PortsInUse> {
    let taken: Vec<(String, SocketAddr)> = wanted
        .iter()
        .filter(|(_, addr)| std::net::TcpListener::bind(addr).is_err())
        .cloned()
        .collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(PortsInUse { taken })
    }
}

impl Plan {
    /// Holds `addr` for its instance while the instance does not listen on it.
    fn hold(&self, addr: SocketAddr) {
        match ports::hold(addr) {
            Ok(port) => {
                lock(&self.held).insert(addr, port);
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot hold the port of a stopped instance")
            }
        }
    }

    fn release(&self, addr: SocketAddr) {
        lock(&self.held).remove(&addr);
    }

    /// Every instance of the demo on loopback, at the fixed ports or at free ones.
    pub fn local(exe: PathBuf, data_dir: PathBuf, auto_ports: bool) -> std::io::Result<Self> {
        let mut instances = Vec::new();
        let mut held = HashMap::new();
        for id in InstanceId::all() {
            let listen = if auto_ports {
                let port = ports::hold_free_port()?;
                let addr = port.addr;
                held.insert(addr, port);
                addr
            } else {
                SocketAddr::from(([127, 0, 0, 1], id.fixed_port()))
            };
            instances.push(InstanceSpec { id, listen });
        }
        let registry_url = instances
            .iter()
            .find(|i| i.id.service == Service::Registry)
            .map(InstanceSpec::url)
            .unwrap_or_default();
        Ok(Self {
            exe,
            data_dir,
            registry_url,
            otlp_endpoint: None,
            config_file: None,
            routes_file: None,
            instances,
            healing: HealingConfig::default(),
            held: Arc::new(std::sync::Mutex::new(held)),
        })
    }

    /// The base URLs of every instance of `service`.
    /// Where the instances keep their databases.
    pub fn services_dir(&self) -> PathBuf {
        self.data_dir.join("services")
    }

    pub fn urls_of(&self, service: Service) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.id.service == service)
            .map(InstanceSpec::url)
            .collect()
    }

    /// The base URLs of the instances that register under `service`'s name: what callers
    /// discover (the sidecar's, for the legacy).
    pub fn registered_urls(&self, service: Service) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.id.service.registers_as() == Some(service))
            .map(InstanceSpec::url)
            .collect()
    }

    /// Every address the plan listens on, named: for [`check_ports_free`].
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.instances
            .iter()
            .map(|i| (i.id.to_string(), i.listen))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Running,
    Paused,
    /// Killed through the API: down until an operator starts it.
    Killed,
    /// Exited on its own, or failed its liveness checks: started again after a backoff
    /// (with self-healing on).
    Crashed,
}

/// One instance as `GET /instances` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceInfo {
    /// e.g. `inventory-2`.
    pub id: String,
    pub service: Service,
    pub url: String,
    pub pid: Option<u32>,
    pub state: InstanceState,
    pub restarts: u32,
    /// Times it exited on its own or failed its liveness checks.
    #[serde(default)]
    pub crashes: u32,
    pub log: PathBuf,
}

/// The answer to `POST /instances/{id}/{action}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActionDone {
    pub id: String,
    pub done: String,
}

struct Managed {
    spec: InstanceSpec,
    child: Option<tokio::process::Child>,
    /// The write end of the child's stdin: the child exits when it closes, which the
    /// kernel does for us if this process dies, however it dies.
    _lifeline: Option<tokio::process::ChildStdin>,
    state: InstanceState,
    restarts: u32,
    crashes: u32,
    /// Crashes in a row (the backoff's exponent); forgotten once it stays up long enough.
    crash_run: u32,
    /// Liveness checks failed in a row.
    failed_checks: u32,
    started_at: Instant,
    /// When a crashed instance is due to start again.
    restart_at: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start {id}: {source}")]
    Spawn {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{id} did not become ready at {url} within {secs} s; see its log in {log}")]
    NotReady {
        id: String,
        url: String,
        secs: u64,
        log: String,
    },
    #[error("no instance {0}")]
    Unknown(String),
    #[error("cannot signal {id}: {reason}")]
    Signal { id: String, reason: String },
    #[error("cannot wipe {id}'s data: {reason}")]
    Wipe { id: String, reason: String },
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        let status = match e {
            SupervisorError::Unknown(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

#[derive(Clone)]
pub struct Supervisor {
    plan: Arc<Plan>,
    instances: Arc<Mutex<BTreeMap<String, Managed>>>,
    http: reqwest::Client,
    /// Tells the healer to stop; it is joined on shutdown.
    stop: Arc<watch::Sender<bool>>,
    healer: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("instances", &self.plan.instances.len())
            .finish()
    }
}

/// How long an instance may take to answer its readiness check.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a child gets to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

impl Supervisor {
    /// Starts every instance in order, each one ready before the next starts.
    pub async fn start(plan: Plan) -> Result<Self, SupervisorError> {
        let sup = Self {
            plan: Arc::new(plan),
            instances: Arc::new(Mutex::new(BTreeMap::new())),
            http: reqwest::Client::new(),
            stop: Arc::new(watch::channel(false).0),
            healer: Arc::default(),
        };
        for spec in sup.plan.instances.clone() {
            if let Err(e) = sup.launch(spec).await {
                sup.shutdown().await;
                return Err(e);
            }
        }
        if sup.plan.healing.self_healing {
            let healer = tokio::spawn(sup.clone().heal(sup.stop.subscribe()));
            *lock(&sup.healer) = Some(healer);
        }
        Ok(sup)
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.plan.data_dir.join("logs").join(format!("{id}.log"))
    }

    async fn launch(&self, spec: InstanceSpec) -> Result<(), SupervisorError> {
        let id = spec.id.to_string();
        let spawn_err = |source| SupervisorError::Spawn {
            id: id.clone(),
            source,
        };
        std::fs::create_dir_all(self.plan.data_dir.join("logs")).map_err(spawn_err)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(&id))
            .map_err(spawn_err)?;
        let err_log = log.try_clone().map_err(spawn_err)?;
        let mut child = self
            .command(&spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        let lifeline = child.stdin.take();
        let url = format!("{}{}", spec.url(), spec.id.service.ready_path());
        {
            let mut all = self.instances.lock().await;
            let before = all.get(&id);
            let (restarts, crashes, crash_run) =
                before.map_or((0, 0, 0), |m| (m.restarts, m.crashes, m.crash_run));
            all.insert(
                id.clone(),
                Managed {
                    spec: spec.clone(),
                    child: Some(child),
                    _lifeline: lifeline,
                    state: InstanceState::Running,
                    restarts,
                    crashes,
                    crash_run,
                    failed_checks: 0,
                    started_at: Instant::now(),
                    restart_at: None,
                },
            );
        }
        self.wait_ready(&spec, &id, &url).await
    }

    /// `gauntlet demo-service NAME ...` for one instance, with what it needs to find the
    /// others and report.
    fn command(&self, spec: &InstanceSpec) -> tokio::process::Command {
        let p = &self.plan;
        let mut command = tokio::process::Command::new(&p.exe);
        command
            .arg("demo-service")
            .arg(spec.id.service.name())
            .args(["--instance", &spec.id.ordinal.to_string()])
            .args(["--listen", &spec.listen.to_string()])
            .arg("--data-dir")
            .arg(p.services_dir())
            .args(["--registry", &p.registry_url])
            .args(
                spec.id
                    .service
                    .sidecar_of()
                    .and_then(|app| p.urls_of(app).into_iter().next())
                    .into_iter()
                    .flat_map(|app| ["--app".to_string(), app]),
            )
            .arg("--exit-with-parent")
            .args(
                p.otlp_endpoint
                    .iter()
                    .flat_map(|e| ["--otlp-endpoint", e.as_str()]),
            )
            .args(
                p.config_file
                    .iter()
                    .flat_map(|f| [std::ffi::OsStr::new("--config"), f.as_os_str()]),
            )
            .args(
                p.routes_file
                    .iter()
                    .flat_map(|f| [std::ffi::OsStr::new("--routes"), f.as_os_str()]),
            )
            // Export every 500 ms rather than the SDK's 5 s, so a demo shows its traffic
            // almost at once (unless the user chose otherwise).
            .envs(
                ["OTEL_BSP_SCHEDULE_DELAY", "OTEL_BLRP_SCHEDULE_DELAY"]
                    .into_iter()
                    .filter(|k| std::env::var_os(k).is_none())
                    .map(|k| (k, "500")),
            );
        command
    }

    /// Polls the instance's readiness until it answers, it exits, or [`READY_WITHIN`] ends.
    async fn wait_ready(
        &self,
        spec: &InstanceSpec,
        id: &str,
        url: &str,
    ) -> Result<(), SupervisorError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if matches!(self.http.get(url).timeout(Duration::from_secs(1)).send().await, Ok(r) if r.status().is_success())
            {
                // It listens: the port needs holding no longer.
                self.plan.release(spec.listen);
                return Ok(());
            }
            let exited = {
                let mut all = self.instances.lock().await;
                all.get_mut(id)
                    .and_then(|m| m.child.as_mut())
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
            };
            if exited || Instant::now() > deadline {
                return Err(SupervisorError::NotReady {
                    id: id.to_string(),
                    url: url.to_string(),
                    secs: READY_WITHIN.as_secs(),
                    log: self.log_path(id).display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(m: &Managed, sig: Signal) -> Result<(), SupervisorError> {
        let pid = m
            .child
            .as_ref()
            .and_then(|c| c.id())
            .ok_or_else(|| SupervisorError::Signal {
                id: m.spec.id.to_string(),
                reason: "it is not running".into(),
            })?;
        kill(Pid::from_raw(pid as i32), sig).map_err(|e| SupervisorError::Signal {
            id: m.spec.id.to_string(),
            reason: e.to_string(),
        })
    }

    /// SIGKILL: the crash of an instance, as chaos experiments need it.
    pub async fn kill(&self, id: &str) -> Result<(), SupervisorError> {
        let mut all = self.instances.lock().await;
        let m = all
            .get_mut(id)
            .ok_or_else(|| SupervisorError::Unknown(id.into()))?;
        // Held before the child dies, so the port is still this instance's when it comes back.
        self.plan.hold(m.spec.listen);
        if let Some(mut child) = m.child.take() {
            let _ = child.kill().await;
        }
        m._lifeline = None;
        m.state = InstanceState::Killed;
        Ok(())
    }

    pub async fn restart(&self, id: &str) -> Result<(), SupervisorError> {
        self.kill(id).await?;
        let (spec, restarts) = {
            let all = self.instances.lock().await;
            let m = all
                .get(id)
                .ok_or_else(|| SupervisorError::Unknown(id.into()))?;
            (m.spec.clone(), m.restarts)
        };
        self.launch(spec).await?;
        if let Some(m) = self.instances.lock().await.get_mut(id) {
            m.restarts = restarts + 1;
        }
        Ok(())
    }

    /// Starts a killed instance again; one that runs (or is paused) is left alone, so a
    /// rollback can always say `start`.
    pub async fn start_again(&self, id: &str) -> Result<bool, SupervisorError> {
        self.find_exits().await;
        let (spec, restarts) = {
            let all = self.instances.lock().await;
            let m = all
                .get(id)
                .ok_or_else(|| SupervisorError::Unknown(id.into()))?;
            if !matches!(m.state, InstanceState::Killed | InstanceState::Crashed) {
                return Ok(false);
            }
            (m.spec.clone(), m.restarts)
        };
        self.launch(spec).await?;
        if let Some(m) = self.instances.lock().await.get_mut(id) {
            m.restarts = restarts + 1;
        }
        Ok(true)
    }

    /// Kills `id` as [`Supervisor::kill`] does and deletes its service's database files,
    /// leaving it down: the loss of a disk, for experiments on rebuilding state. Refused
    /// for a database other instances also use (inventory's). The files it removed.
    pub async fn wipe(&self, id: &str) -> Result<Vec<String>, SupervisorError> {
        let spec = {
            let all = self.instances.lock().await;
            all.get(id)
                .ok_or_else(|| SupervisorError::Unknown(id.into()))?
                .spec
                .clone()
        };
        let database = spec.id.database();
        let sharing: Vec<String> = (self.plan.instances.iter())
            .filter(|s| s.id != spec.id && s.id.database() == database)
            .map(|s| s.id.to_string())
            .collect();
        if !sharing.is_empty() {
            return Err(SupervisorError::Wipe {
                id: id.into(),
                reason: format!("its database is shared with {}", sharing.join(", ")),
            });
        }
        self.kill(id).await?;
        let db = crate::runner::database_path(&self.plan.services_dir(), spec.id);
        let mut removed = Vec::new();
        for suffix in ["sqlite", "sqlite-wal", "sqlite-shm", "redb"] {
            let path = db.with_extension(suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path.display().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(SupervisorError::Wipe {
                        id: id.into(),
                        reason: format!("{}: {e}", path.display()),
                    });
                }
            }
        }
        Ok(removed)
    }

    pub async fn pause(&self, id: &str) -> Result<(), SupervisorError> {
        self.set_state(id, Signal::SIGSTOP, InstanceState::Paused)
            .await
    }

    pub async fn resume(&self, id: &str) -> Result<(), SupervisorError> {
        self.set_state(id, Signal::SIGCONT, InstanceState::Running)
            .await
    }

    async fn set_state(
        &self,
        id: &str,
        sig: Signal,
        to: InstanceState,
    ) -> Result<(), SupervisorError> {
        let mut all = self.instances.lock().await;
        let m = all
            .get_mut(id)
            .ok_or_else(|| SupervisorError::Unknown(id.into()))?;
        Self::signal(m, sig)?;
        m.state = to;
        Ok(())
    }

    /// Every instance with its URL, PID and state, in start order.
    pub async fn list(&self) -> Vec<InstanceInfo> {
        self.find_exits().await;
        let all = self.instances.lock().await;
        self.plan
            .instances
            .iter()
            .filter_map(|spec| {
                let id = spec.id.to_string();
                let m = all.get(&id)?;
                Some(InstanceInfo {
                    service: spec.id.service,
                    url: spec.url(),
                    pid: m.child.as_ref().and_then(|c| c.id()),
                    state: m.state,
                    restarts: m.restarts,
                    crashes: m.crashes,
                    log: self.log_path(&id),
                    id,
                })
            })
            .collect()
    }

    /// PIDs of the children still running, for checks that nothing is left behind.
    pub async fn pids(&self) -> Vec<u32> {
        self.instances
            .lock()
            .await
            .values()
            .filter_map(|m| m.child.as_ref().and_then(|c| c.id()))
            .collect()
    }

    /// Stops every child: SIGCONT (a paused child cannot stop), SIGTERM, then SIGKILL after
    /// the grace period; waits for each so no zombie or orphan remains.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub async fn shutdown(&self) {
        // The healer first, so nothing is started again while everything stops.
        let _ = self.stop.send(true);
        let healer = lock(&self.healer).take();
        if let Some(h) = healer {
            let _ = h.await;
        }
        let mut all = self.instances.lock().await;
        // Reverse start order: the gateway and the consumers (whose long polls hold the
        // orders feed open) stop before what they depend on.
        for spec in self.plan.instances.iter().rev() {
            let Some(m) = all.get_mut(&spec.id.to_string()) else {
                continue;
            };
            let Some(mut child) = m.child.take() else {
                continue;
            };
            if let Some(pid) = child.id() {
                let pid = Pid::from_raw(pid as i32);
                let _ = kill(pid, Signal::SIGCONT);
                let _ = kill(pid, Signal::SIGTERM);
            }
            if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                tracing::warn!(id = %m.spec.id, "did not stop after SIGTERM; killing it");
                let _ = child.kill().await;
            }
            m._lifeline = None;
            m.state = InstanceState::Killed;
        }
    }
}

/// Self-healing's watching (the settings and the backoff are [`crate::healing`]'s).
impl Supervisor {
    /// Every `liveness_interval_ms`: finds instances that exited on their own, checks the
    /// running ones' liveness, and starts again those whose backoff is over.
    async fn heal(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.plan.healing.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.find_exits().await;
            self.check_liveness().await;
            for spec in self.due_restarts().await {
                if *stop.borrow() {
                    return;
                }
                self.bring_back(spec).await;
            }
        }
    }

    /// Running instances whose process is gone (a crash, or a kill from outside): the
    /// healer's first look, and what the list and `start` see with self-healing off too.
    async fn find_exits(&self) {
        let mut all = self.instances.lock().await;
        for m in all.values_mut() {
            if m.state != InstanceState::Running {
                continue;
            }
            let Some(child) = m.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                m.child = None;
                self.crashed(m, &format!("exited on its own ({status})"));
            }
        }
    }

    /// Marks `m` crashed and schedules its start after the backoff.
    fn crashed(&self, m: &mut Managed, why: &str) {
        let healing = &self.plan.healing;
        // Held while it is down, so its port is still its own when it comes back.
        self.plan.hold(m.spec.listen);
        m._lifeline = None;
        if m.started_at.elapsed() >= healing.reset_after() {
            m.crash_run = 0;
        }
        m.crash_run += 1;
        m.crashes += 1;
        m.failed_checks = 0;
        m.state = InstanceState::Crashed;
        if !healing.self_healing {
            tracing::warn!(id = %m.spec.id, why, "instance down; self-healing is off: it stays down until started");
            return;
        }
        let wait = healing.backoff(m.crash_run);
        m.restart_at = Some(Instant::now() + wait);
        tracing::warn!(
            id = %m.spec.id,
            why,
            restart_in_ms = wait.as_millis() as u64,
            "instance down; starting it again after the backoff"
        );
    }

    /// Checks every running instance's liveness at once; one that failed
    /// `liveness_failures` checks in a row is killed and handled as crashed.
    async fn check_liveness(&self) {
        let targets: Vec<(String, String)> = {
            let all = self.instances.lock().await;
            all.iter()
                .filter(|(_, m)| m.state == InstanceState::Running && m.child.is_some())
                .map(|(id, m)| {
                    let path = m.spec.id.service.live_path();
                    (id.clone(), format!("{}{path}", m.spec.url()))
                })
                .collect()
        };
        let mut checks = tokio::task::JoinSet::new();
        for (id, url) in targets {
            let sent = self
                .http
                .get(url)
                .timeout(self.plan.healing.timeout())
                .send();
            checks
                .spawn(async move { (id, matches!(sent.await, Ok(r) if r.status().is_success())) });
        }
        let answers = checks.join_all().await;
        let mut all = self.instances.lock().await;
        for (id, alive) in answers {
            // An operator may have acted while it was checked.
            let Some(m) = all
                .get_mut(&id)
                .filter(|m| m.state == InstanceState::Running)
            else {
                continue;
            };
            m.failed_checks = if alive { 0 } else { m.failed_checks + 1 };
            if m.failed_checks >= self.plan.healing.liveness_failures {
                if let Some(mut child) = m.child.take() {
                    let _ = child.kill().await;
                }
                let why = format!("failed {} liveness checks in a row", m.failed_checks);
                self.crashed(m, &why);
            }
        }
    }

    async fn due_restarts(&self) -> Vec<InstanceSpec> {
        let now = Instant::now();
        self.instances
            .lock()
            .await
            .values()
            .filter(|m| m.state == InstanceState::Crashed && m.restart_at.is_some_and(|t| t <= now))
            .map(|m| m.spec.clone())
            .collect()
    }

    /// Starts a crashed instance again (unless an operator acted since); one that does not
    /// become ready is crashed again, with a longer backoff.
    async fn bring_back(&self, spec: InstanceSpec) {
        let id = spec.id.to_string();
        let still_crashed = self
            .instances
            .lock()
            .await
            .get(&id)
            .is_some_and(|m| m.state == InstanceState::Crashed);
        if !still_crashed {
            return;
        }
        let started = self.launch(spec).await;
        let mut all = self.instances.lock().await;
        let Some(m) = all.get_mut(&id) else {
            return;
        };
        match started {
            Ok(()) => {
                m.restarts += 1;
                tracing::info!(id, restarts = m.restarts, "started again after a crash");
            }
            Err(e) if m.state == InstanceState::Running => {
                if let Some(mut child) = m.child.take() {
                    let _ = child.kill().await;
                }
                self.crashed(m, &e.to_string());
            }
            Err(_) => {}
        }
    }
}

/// The supervisor API: `GET /instances`,
/// `POST /instances/{id}/{kill|restart|start|pause|resume|wipe}`.
pub fn app(sup: Supervisor) -> Router {
    Router::new()
        .route(
            "/instances",
            get(|State(s): State<Supervisor>| async move { Json(s.list().await) }),
        )
        .route("/instances/{id}/{action}", post(act))
        .with_state(sup)
}

async fn act(
    State(s): State<Supervisor>,
    UrlPath((id, action)): UrlPath<(String, String)>,
) -> Result<Json<ActionDone>, ApiError> {
    match action.as_str() {
        "kill" => s.kill(&id).await?,
        "restart" => s.restart(&id).await?,
        "start" => {
            if !s.start_again(&id).await? {
                return Ok(Json(ActionDone {
                    id,
                    done: "already running".into(),
                }));
            }
        }
        "pause" => s.pause(&id).await?,
        "resume" => s.resume(&id).await?,
        "wipe" => {
            let removed = s.wipe(&id).await?;
            return Ok(Json(ActionDone {
                id,
                done: format!("killed; removed {}", removed.join(", ")),
            }));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?}: kill, restart, start, pause, resume or wipe"),
            ));
        }
    }
    Ok(Json(ActionDone { id, done: action }))
}
