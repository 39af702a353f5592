//! Debian's RabbitMQ as a child of the demo (`gauntlet demo --broker rabbitmq` without a
//! URL): its own data directory, node name and ports on loopback, stopped with the rest.
//!
//! Three traps shape it. `/usr/sbin/rabbitmq-server` switches to the `rabbitmq` user and
//! its directories, so the server script under `/usr/lib/rabbitmq/bin/` runs instead, with
//! `RABBITMQ_*` variables and `HOME` pointing into the demo's directory. `epmd` (Erlang's
//! port mapper) daemonizes and outlives its parent, so each broker gets an `epmd` port of
//! its own and stops it by that port. And the Erlang VM does not notice its parent dying
//! (the workspace forbids the `unsafe` a parent-death signal needs), so a **watcher**
//! stands between: `gauntlet demo-broker` ([`watch`]) starts the VM, holds the pipe from the
//! demo on its stdin, and when it closes (the demo stopped, or was SIGKILLed) stops the VM
//! (SIGTERM, then SIGKILL) and its `epmd`. [`BrokerServer`] is the demo's side.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The server script that runs the VM in the foreground, as the current user.
pub const SERVER_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// How long the broker may take to accept AMQP connections.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long the VM gets to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BrokerServerError {
    #[error(
        "RabbitMQ is not installed ({SERVER_SCRIPT} is missing): `apt-get install rabbitmq-server`, or pass --broker-url for a broker of your own"
    )]
    NotInstalled,
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("RabbitMQ did not accept connections within {secs} s (its log: {log})")]
    NotReady { secs: u64, log: String },
    #[error("RabbitMQ exited while starting (its log: {log})")]
    Exited { log: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BrokerServerError {
    let what = what.into();
    move |source| BrokerServerError::Io { what, source }
}

/// Where one broker listens, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerPorts {
    /// AMQP.
    pub amqp: u16,
    /// Erlang distribution (the CLI tools' way in).
    pub dist: u16,
    /// This broker's own `epmd`.
    pub epmd: u16,
}

impl BrokerPorts {
    /// Free loopback ports, with AMQP on `amqp` if given (the documented 5672 for fixed
    /// ports). Erlang binds without `SO_REUSEPORT`, so they cannot be held as the
    /// instances' are: a port taken in between fails the start with the broker's log.
    pub fn pick(amqp: Option<u16>) -> std::io::Result<Self> {
        let free = || -> std::io::Result<u16> {
            Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
                .local_addr()?
                .port())
        };
        Ok(Self {
            amqp: match amqp {
                Some(p) => p,
                None => free()?,
            },
            dist: free()?,
            epmd: free()?,
        })
    }

    /// The guest account's URL of the default vhost (guest may log in from loopback only).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp)
    }
}

/// The environment that points the server script at `dir` and `ports`.
fn server_env(dir: &Path, ports: BrokerPorts) -> Vec<(String, String)> {
    let at = |p: &str| dir.join(p).display().to_string();
    let erl_args = "-kernel inet_dist_use_interface {127,0,0,1}";
    [
        ("HOME", at("home")),
        (
            "RABBITMQ_NODENAME",
            format!("gauntlet-{}@localhost", ports.amqp),
        ),
        ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
        ("RABBITMQ_NODE_PORT", ports.amqp.to_string()),
        ("RABBITMQ_DIST_PORT", ports.dist.to_string()),
        ("ERL_EPMD_PORT", ports.epmd.to_string()),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
        ("RABBITMQ_MNESIA_BASE", at("mnesia")),
        ("RABBITMQ_LOG_BASE", at("log")),
        ("RABBITMQ_LOGS", "-".into()),
        ("RABBITMQ_ENABLED_PLUGINS_FILE", at("enabled_plugins")),
        ("RABBITMQ_CONFIG_FILE", at("rabbitmq")),
        ("RABBITMQ_ADVANCED_CONFIG_FILE", at("advanced.config")),
        ("RABBITMQ_CONF_ENV_FILE", at("rabbitmq-env.conf")),
        ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", erl_args.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The watcher (`gauntlet demo-broker`): runs the broker in `dir` on `ports` until stdin
/// closes, SIGTERM or SIGINT arrives, or the broker exits; then stops it and its `epmd`.
pub async fn watch(dir: &Path, ports: BrokerPorts) -> Result<(), BrokerServerError> {
    if !Path::new(SERVER_SCRIPT).exists() {
        return Err(BrokerServerError::NotInstalled);
    }
    for sub in ["home", "mnesia", "log"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
    }
    let plugins = dir.join("enabled_plugins");
    std::fs::write(&plugins, "[].\n").map_err(io(format!("write {}", plugins.display())))?;
    let log = dir.join("log").join("server.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io(format!("open {}", log.display())))?;
    let err = out.try_clone().map_err(io("duplicate the log"))?;
    let mut vm = tokio::process::Command::new(SERVER_SCRIPT)
        .envs(server_env(dir, ports))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(io(format!("start {SERVER_SCRIPT}")))?;
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = crate::runner::parent_gone() => tracing::info!("the demo is gone; stopping RabbitMQ"),
        _ = term.recv() => {}
        _ = int.recv() => {}
        status = vm.wait() => tracing::warn!(?status, "RabbitMQ exited on its own"),
    }
    stop_vm(&mut vm).await;
    stop_epmd(ports.epmd).await;
    Ok(())
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, BrokerServerError> {
    tokio::signal::unix::signal(kind).map_err(io("listen for signals"))
}

/// SIGTERM (the VM shuts down cleanly), SIGKILL after [`GRACE`].
async fn stop_vm(vm: &mut tokio::process::Child) {
    if let Some(pid) = vm.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if tokio::time::timeout(GRACE, vm.wait()).await.is_err() {
        tracing::warn!("RabbitMQ did not stop after SIGTERM; killing it");
        let _ = vm.kill().await;
    }
}

/// Stops the `epmd` on `port` (ours alone: no other node uses that port).
async fn stop_epmd(port: u16) {
    let stopped = tokio::process::Command::new("epmd")
        .arg("-kill")
        .env("ERL_EPMD_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = stopped {
        tracing::warn!(error = %e, port, "cannot stop epmd");
    }
}

/// A RabbitMQ the demo started, through its watcher.
#[derive(Debug)]
pub struct BrokerServer {
    pub ports: BrokerPorts,
    /// How long it took to accept its first AMQP connection.
    pub started_in: Duration,
    watcher: tokio::process::Child,
    pub dir: PathBuf,
}

impl BrokerServer {
    /// Starts `exe demo-broker` for a broker in `dir` on `ports` and waits until it takes
    /// AMQP connections.
    pub async fn start(
        exe: &Path,
        dir: PathBuf,
        ports: BrokerPorts,
    ) -> Result<Self, BrokerServerError> {
        if !Path::new(SERVER_SCRIPT).exists() {
            return Err(BrokerServerError::NotInstalled);
        }
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let log = dir.join("watcher.log");
        let out = std::fs::File::create(&log).map_err(io(format!("create {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicate the log"))?;
        let began = Instant::now();
        let watcher = tokio::process::Command::new(exe)
            .arg("demo-broker")
            .arg("--dir")
            .arg(&dir)
            .args(["--amqp-port", &ports.amqp.to_string()])
            .args(["--dist-port", &ports.dist.to_string()])
            .args(["--epmd-port", &ports.epmd.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("start {} demo-broker", exe.display())))?;
        let mut server = Self {
            ports,
            started_in: Duration::ZERO,
            watcher,
            dir,
        };
        if let Err(e) = server.wait_ready().await {
            server.stop().await;
            return Err(e);
        }
        server.started_in = began.elapsed();
        Ok(server)
    }

    /// The broker's AMQP URL.
    pub fn url(&self) -> String {
        self.ports.url()
    }

    async fn wait_ready(&mut self) -> Result<(), BrokerServerError> {
        let deadline = Instant::now() + READY_WITHIN;
        let log = self
            .dir
            .join("log")
            .join("server.log")
            .display()
            .to_string();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.amqp));
        loop {
            // The port opens once the broker boots; a full AMQP handshake proves it serves.
            if tokio::net::TcpStream::connect(addr).await.is_ok() && amqp_answers(&self.url()).await
            {
                return Ok(());
            }
            if matches!(self.watcher.try_wait(), Ok(Some(_))) {
                return Err(BrokerServerError::Exited { log });
            }
            if Instant::now() > deadline {
                return Err(BrokerServerError::NotReady {
                    secs: READY_WITHIN.as_secs(),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Closes the watcher's stdin (it stops the broker and its `epmd`) and waits for it.
    pub async fn stop(mut self) {
        drop(self.watcher.stdin.take());
        if tokio::time::timeout(GRACE + Duration::from_secs(5), self.watcher.wait())
            .await
            .is_err()
        {
            tracing::warn!("the broker's watcher did not stop; killing it");
            let _ = self.watcher.kill().await;
        }
    }
}

async fn amqp_answers(url: &str) -> bool {
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "ready".into()).await;
            true
        }
        _ => false,
    }
}
