//! The proxies themselves: each listens on its address and pipes every connection to its
//! upstream, one task per direction, with `TCP_NODELAY` on both sides. Each chunk read goes
//! through the toxics of its direction in order, as they are at that moment (a toxic added
//! or removed applies to open connections too); whether a toxic applies to a connection is
//! drawn once per connection from its toxicity. Disabling or deleting a proxy closes its
//! listener and every connection it had.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::model::{ApiError, Attributes, Kind, NewProxy, ProxyUpdate, ProxyView, Stream, Toxic};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every proxy, by name, and what proxies may be made; cheap to clone.
#[derive(Clone, Default)]
pub struct Proxies {
    all: Arc<Mutex<BTreeMap<String, Arc<Proxy>>>>,
    policy: Policy,
}

/// What the API may ask for. By default a proxy listens and connects on loopback only:
/// Toxiproxy's clients send no credentials, so anything else would let whoever reaches the
/// API relay TCP through this machine.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Listen addresses and upstreams off loopback are allowed.
    pub allow_remote: bool,
    /// Proxies at most.
    pub max_proxies: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_remote: false,
            max_proxies: 256,
        }
    }
}

/// Refuses an address that is not on loopback (a name is resolved to see where it points),
/// unless the policy allows remote ones.
async fn check_local(policy: Policy, what: &str, addr: &str) -> Result<(), ApiError> {
    if policy.allow_remote || addr.is_empty() {
        return Ok(());
    }
    let refused = |why: String| {
        ApiError::bad_request(format!(
            "{what} {addr:?} {why}: this proxy server only relays on loopback (start it with \
             --allow-remote to allow other addresses)"
        ))
    };
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| refused(format!("cannot be resolved to check it ({e})")))?
        .collect();
    if resolved.is_empty() || resolved.iter().any(|a| !a.ip().is_loopback()) {
        return Err(refused("is not on loopback".into()));
    }
    Ok(())
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proxies")
    }
}

struct Settings {
    listen: String,
    upstream: String,
    enabled: bool,
    /// Where it listens while enabled.
    bound: Option<SocketAddr>,
    /// Resolves when the listening socket is closed (its owner dropped the sender).
    listener_closed: Option<oneshot::Receiver<()>>,
}

/// One proxy.
pub struct Proxy {
    name: String,
    kind: Kind,
    settings: Mutex<Settings>,
    toxics: RwLock<Arc<Vec<Toxic>>>,
    /// Wakes connections held by a `timeout` toxic when the toxics change.
    toxics_changed: Notify,
    /// Bumped to close the listener and every connection (disable, delete, new address).
    epoch: watch::Sender<u64>,
    /// Bytes received from clients (upstream) and from the upstream server (downstream).
    pub bytes: [AtomicU64; 2],
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Upstream => 0,
        Stream::Downstream => 1,
    }
}

impl Proxy {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where connections and requests are sent on to.
    pub fn upstream(&self) -> String {
        lock(&self.settings).upstream.clone()
    }

    /// The toxics as they are now.
    pub fn current_toxics(&self) -> Arc<Vec<Toxic>> {
        self.toxics()
    }

    pub fn view(&self) -> ProxyView {
        let s = lock(&self.settings);
        ProxyView {
            name: self.name.clone(),
            kind: self.kind,
            listen: s
                .bound
                .map(|a| a.to_string())
                .unwrap_or_else(|| s.listen.clone()),
            upstream: s.upstream.clone(),
            enabled: s.enabled,
            toxics: self.toxics().to_vec(),
        }
    }

    fn toxics(&self) -> Arc<Vec<Toxic>> {
        self.toxics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_toxics(&self, f: impl FnOnce(&mut Vec<Toxic>)) {
        let mut guard = self.toxics.write().unwrap_or_else(|p| p.into_inner());
        let mut list = (**guard).clone();
        f(&mut list);
        *guard = Arc::new(list);
        drop(guard);
        self.toxics_changed.notify_waiters();
    }

    fn close_all(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Starts listening (if enabled): binds, then accepts until the epoch changes.
    async fn start(self: &Arc<Self>) -> Result<(), ApiError> {
        let (listen, enabled) = {
            let s = lock(&self.settings);
            (s.listen.clone(), s.enabled)
        };
        if !enabled {
            return Ok(());
        }
        let addr = if listen.is_empty() {
            "127.0.0.1:0".to_string()
        } else {
            listen
        };
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| ApiError::new(500, format!("listen tcp {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ApiError::new(500, e.to_string()))?;
        // Whoever owns the listener owns `open`: it drops with the socket, which is how
        // `stop` knows the port is free again.
        let (open, closed) = oneshot::channel::<()>();
        {
            // As Toxiproxy does: the address it got is its address from now on, so a
            // proxy disabled and enabled again comes back on the same port.
            let mut st = lock(&self.settings);
            st.bound = Some(bound);
            st.listen = bound.to_string();
            st.listener_closed = Some(closed);
        }
        let mut epoch = self.epoch.subscribe();
        epoch.mark_unchanged();
        let me = self.clone();
        if self.kind == Kind::Http {
            let listener = crate::http_faults::OwnedListener::new(listener, open);
            tokio::spawn(crate::http_faults::serve(me, listener, epoch));
            tracing::info!(proxy = %self.name, listen = %bound, "HTTP proxy listening");
            return Ok(());
        }
        tokio::spawn(async move {
            let _open = open;
            loop {
                tokio::select! {
                    _ = epoch.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => {
                            let conn_epoch = me.epoch.subscribe();
                            tokio::spawn(connection(me.clone(), client, conn_epoch));
                        }
                        Err(e) => tracing::warn!(proxy = %me.name, error = %e, "accept failed"),
                    },
                }
            }
        });
        tracing::info!(proxy = %self.name, listen = %bound, "proxy listening");
        Ok(())
    }

    /// Closes the listener and every connection; returns once the port is closed, so
    /// a connection attempt is refused and the address can be bound again (as Toxiproxy's
    /// API answers only after its listener has closed).
    async fn stop(&self) {
        self.close_all();
        let closed = {
            let mut s = lock(&self.settings);
            s.bound = None;
            s.listener_closed.take()
        };
        if let Some(closed) = closed {
            // An error is the answer here: the sender went with the listener.
            let _ = closed.await;
        }
    }
}

impl Proxies {
    pub fn get(&self, name: &str) -> Result<Arc<Proxy>, ApiError> {
        lock(&self.all)
            .get(name)
            .cloned()
            .ok_or_else(ApiError::proxy_not_found)
    }

    pub fn views(&self) -> BTreeMap<String, ProxyView> {
        lock(&self.all)
            .iter()
            .map(|(k, p)| (k.clone(), p.view()))
            .collect()
    }

    /// No proxy yet, and what the API may ask for.
    pub fn new(policy: Policy) -> Self {
        Self {
            all: Arc::default(),
            policy,
        }
    }

    /// Creates and starts a proxy.
    pub async fn create(&self, p: NewProxy) -> Result<ProxyView, ApiError> {
        if p.name.is_empty() {
            return Err(ApiError::bad_request("missing required field: name"));
        }
        if p.upstream.is_empty() {
            return Err(ApiError::bad_request("missing required field: upstream"));
        }
        check_local(self.policy, "listen", &p.listen).await?;
        check_local(self.policy, "upstream", &p.upstream).await?;
        if lock(&self.all).len() >= self.policy.max_proxies {
            return Err(ApiError::bad_request(format!(
                "there are {} proxies already, the most this server keeps",
                self.policy.max_proxies
            )));
        }
        let proxy = Arc::new(Proxy {
            name: p.name.clone(),
            kind: p.kind,
            settings: Mutex::new(Settings {
                listen: p.listen,
                upstream: p.upstream,
                enabled: p.enabled,
                bound: None,
                listener_closed: None,
            }),
            toxics: RwLock::new(Arc::new(Vec::new())),
            toxics_changed: Notify::new(),
            epoch: watch::channel(0).0,
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        {
            let mut all = lock(&self.all);
            if all.contains_key(&p.name) {
                return Err(ApiError::new(409, "proxy already exists"));
            }
            all.insert(p.name.clone(), proxy.clone());
        }
        if let Err(e) = proxy.start().await {
            lock(&self.all).remove(&p.name);
            return Err(e);
        }
        Ok(proxy.view())
    }

    /// Creates or replaces each proxy (one whose settings are unchanged is kept as it is).
    pub async fn populate(&self, list: Vec<NewProxy>) -> (Vec<ProxyView>, Option<ApiError>) {
        let mut done = Vec::new();
        for p in list {
            if let Ok(existing) = self.get(&p.name) {
                let same = {
                    let s = lock(&existing.settings);
                    s.upstream == p.upstream
                        && s.enabled == p.enabled
                        && (s.listen == p.listen
                            || s.bound.map(|b| b.to_string()) == Some(p.listen.clone()))
                };
                if same {
                    done.push(existing.view());
                    continue;
                }
                let _ = self.delete(&p.name).await;
            }
            match self.create(p).await {
                Ok(v) => done.push(v),
                Err(e) => return (done, Some(e)),
            }
        }
        (done, None)
    }

    pub async fn update(&self, name: &str, u: ProxyUpdate) -> Result<ProxyView, ApiError> {
        let proxy = self.get(name)?;
        if let Some(l) = &u.listen {
            check_local(self.policy, "listen", l).await?;
        }
        if let Some(up) = &u.upstream {
            check_local(self.policy, "upstream", up).await?;
        }
        let restart = {
            let mut s = lock(&proxy.settings);
            let moved = u.listen.as_ref().is_some_and(|l| {
                *l != s.listen && Some(l.clone()) != s.bound.map(|b| b.to_string())
            }) || u.upstream.as_ref().is_some_and(|up| *up != s.upstream);
            let was = s.enabled;
            if let Some(l) = u.listen {
                s.listen = l;
            }
            if let Some(up) = u.upstream {
                s.upstream = up;
            }
            if let Some(e) = u.enabled {
                s.enabled = e;
            }
            (was, s.enabled, moved)
        };
        match restart {
            (true, false, _) => proxy.stop().await,
            (false, true, _) => proxy.start().await?,
            (true, true, true) => {
                proxy.stop().await;
                proxy.start().await?;
            }
            _ => {}
        }
        Ok(proxy.view())
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let proxy = lock(&self.all)
            .remove(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        proxy.stop().await;
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let all: Vec<Arc<Proxy>> = lock(&self.all).values().cloned().collect();
        for p in all {
            p.set_toxics(Vec::clear);
            let enable = {
                let mut s = lock(&p.settings);
                let was = s.enabled;
                s.enabled = true;
                !was
            };
            if enable {
                p.start().await?;
            }
        }
        Ok(())
    }

    pub fn add_toxic(&self, name: &str, toxic: Toxic) -> Result<Toxic, ApiError> {
        let proxy = self.get(name)?;
        if toxic.attributes.is_http() != (proxy.kind == Kind::Http) {
            return Err(ApiError::bad_request(format!(
                "invalid toxic type: {} acts on {}, and proxy {name} is a {} proxy",
                toxic.kind,
                if toxic.attributes.is_http() {
                    "HTTP requests"
                } else {
                    "TCP bytes"
                },
                if proxy.kind == Kind::Http {
                    "http"
                } else {
                    "tcp"
                }
            )));
        }
        if proxy.toxics().iter().any(|t| t.name == toxic.name) {
            return Err(ApiError::new(409, "toxic already exists"));
        }
        proxy.set_toxics(|l| l.push(toxic.clone()));
        Ok(toxic)
    }

    pub fn toxic(&self, name: &str, toxic: &str) -> Result<Toxic, ApiError> {
        self.get(name)?
            .toxics()
            .iter()
            .find(|t| t.name == toxic)
            .cloned()
            .ok_or_else(ApiError::toxic_not_found)
    }

    pub fn toxic_list(&self, name: &str) -> Result<Vec<Toxic>, ApiError> {
        Ok(self.get(name)?.toxics().to_vec())
    }

    /// Replaces a toxic with `updated` (same name).
    pub fn replace_toxic(&self, name: &str, updated: Toxic) -> Result<Toxic, ApiError> {
        let proxy = self.get(name)?;
        if !proxy.toxics().iter().any(|t| t.name == updated.name) {
            return Err(ApiError::toxic_not_found());
        }
        proxy.set_toxics(|l| {
            for t in l.iter_mut() {
                if t.name == updated.name {
                    *t = updated.clone();
                }
            }
        });
        Ok(updated)
    }

    pub fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let proxy = self.get(name)?;
        if !proxy.toxics().iter().any(|t| t.name == toxic) {
            return Err(ApiError::toxic_not_found());
        }
        proxy.set_toxics(|l| l.retain(|t| t.name != toxic));
        Ok(())
    }

    /// `(proxy, upstream, listen, received bytes [upstream, downstream])` of every proxy.
    pub fn counters(&self) -> Vec<(String, String, String, [u64; 2])> {
        lock(&self.all)
            .values()
            .map(|p| {
                let v = p.view();
                (
                    v.name,
                    v.upstream,
                    v.listen,
                    [
                        p.bytes[0].load(Ordering::Relaxed),
                        p.bytes[1].load(Ordering::Relaxed),
                    ],
                )
            })
            .collect()
    }

    /// Stops every proxy and its connections.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Proxy>> = lock(&self.all).values().cloned().collect();
        for p in all {
            p.stop().await;
        }
    }
}

/// How one connection ends, decided by a toxic: both sides close now.
struct Ending {
    close: Notify,
}

async fn connection(proxy: Arc<Proxy>, client: TcpStream, mut epoch: watch::Receiver<u64>) {
    let upstream = lock(&proxy.settings).upstream.clone();
    let server = match TcpStream::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(proxy = %proxy.name, %upstream, error = %e, "upstream unreachable; closing the client");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let ending = Arc::new(Ending {
        close: Notify::new(),
    });
    let up = pump(proxy.clone(), Stream::Upstream, cr, sw, ending.clone());
    let down = pump(proxy.clone(), Stream::Downstream, sr, cw, ending.clone());
    let (mut up, mut down) = (tokio::spawn(up), tokio::spawn(down));
    tokio::select! {
        _ = async { let _ = (&mut up).await; let _ = (&mut down).await; } => {}
        _ = epoch.changed() => {}
        _ = ending.close.notified() => {}
    }
    up.abort();
    down.abort();
    // Dropping the halves (inside the aborted tasks) closes both sockets; after reset_peer,
    // with SO_LINGER 0 set, the close is a reset.
}

/// The toxics of `toxics` that act on `dir` and, as drawn once per connection from their
/// toxicity, on this connection.
fn active<'t>(
    toxics: &'t [Toxic],
    dir: Stream,
    applies: &mut HashMap<String, bool>,
) -> Vec<&'t Toxic> {
    toxics
        .iter()
        .filter(|t| t.stream == dir)
        .filter(|t| {
            *applies
                .entry(t.name.clone())
                .or_insert_with(|| fastrand::f32() < t.toxicity)
        })
        .collect()
}

/// Copies `from` → `to` through the toxics of `dir`. The toxics that act without data
/// (timeout, slow_close) are those in force while waiting; the ones that act on
/// a chunk are those in force when it arrived, so a toxic added to a connection waiting for
/// an answer applies to that answer.
async fn pump(
    proxy: Arc<Proxy>,
    dir: Stream,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    ending: Arc<Ending>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut applies: HashMap<String, bool> = HashMap::new();
    let mut sent: u64 = 0;
    loop {
        let waiting = proxy.toxics();
        let waiting = active(&waiting, dir, &mut applies);
        match held(&proxy, &waiting).await {
            Held::Not => {}
            Held::Changed => continue,
            Held::TimedOut => {
                ending.close.notify_one();
                return;
            }
        }
        let slow_close = waiting.iter().find_map(|t| match t.attributes {
            Attributes::SlowClose { delay } => Some(delay),
            _ => None,
        });
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // The source closed: pass the close on, late if slow_close says so.
                if let Some(delay) = slow_close {
                    tokio::time::sleep(Duration::from_millis(delay as u64)).await;
                }
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let arrived = Instant::now();
        proxy.bytes[index(dir)].fetch_add(n as u64, Ordering::Relaxed);
        let now = proxy.toxics();
        if now.is_empty() {
            // No toxic: a plain copy (the common case, and the one the benchmark measures).
            if to.write_all(&buf[..n]).await.is_err() {
                ending.close.notify_one();
                return;
            }
            sent += n as u64;
            continue;
        }
        let active_now = active(&now, dir, &mut applies);
        if let Some(timeout) = active_now.iter().find_map(|t| match t.attributes {
            Attributes::ResetPeer { timeout } => Some(timeout),
            _ => None,
        }) {
            reset(&mut from, to, timeout).await;
            ending.close.notify_one();
            return;
        }
        let shaped = shape(&proxy, &active_now, &buf[..n], arrived, sent).await;
        let data = &buf[..shaped.len];
        let written = match shaped.slices {
            None => to.write_all(data).await,
            Some((avg, var, delay)) => write_sliced(&mut to, data, avg, var, delay).await,
        };
        sent += data.len() as u64;
        if written.is_err() || shaped.close_after {
            ending.close.notify_one();
            return;
        }
    }
}

/// What a `timeout` toxic does to a stream before its next read.
enum Held {
    /// No timeout toxic: read on.
    Not,
    /// The toxics changed while held: look at them again.
    Changed,
    /// Its time ran out: the connection closes.
    TimedOut,
}

/// timeout: nothing passes; after `timeout` (if not 0) the connection closes.
async fn held(proxy: &Proxy, active: &[&Toxic]) -> Held {
    let Some(timeout) = active.iter().find_map(|t| match t.attributes {
        Attributes::Timeout { timeout } => Some(timeout),
        _ => None,
    }) else {
        return Held::Not;
    };
    let changed = proxy.toxics_changed.notified();
    if timeout > 0 {
        tokio::select! {
            _ = changed => Held::Changed,
            _ = tokio::time::sleep(Duration::from_millis(timeout as u64)) => Held::TimedOut,
        }
    } else {
        changed.await;
        Held::Changed
    }
}

/// reset_peer, as Toxiproxy's: the first data to arrive is dropped, and after `timeout` ms
/// the connection is aborted with a RST. A zero linger never blocks the closing thread (the
/// deprecation warns of non-zero ones).
async fn reset(from: &mut OwnedReadHalf, to: OwnedWriteHalf, timeout: i64) {
    tokio::time::sleep(Duration::from_millis(timeout as u64)).await;
    #[allow(deprecated)]
    {
        let _ = to.as_ref().set_linger(Some(Duration::ZERO));
        let _ = from.as_ref().set_linger(Some(Duration::ZERO));
    }
    // No FIN first: with a zero linger, the close of the socket we write to is a reset.
    // (The other socket's write half, in the other task, closes normally.)
    to.forget();
}

/// How a chunk goes on once latency and bandwidth have delayed it: how much of it (a
/// `limit_data` toxic may cut it), in slices or whole, and whether the connection closes
/// after it.
struct Shaped {
    len: usize,
    slices: Option<(usize, usize, u64)>,
    close_after: bool,
}

async fn shape(
    proxy: &Proxy,
    active: &[&Toxic],
    data: &[u8],
    arrived: Instant,
    sent: u64,
) -> Shaped {
    let mut shaped = Shaped {
        len: data.len(),
        slices: None,
        close_after: false,
    };
    for t in active {
        match t.attributes {
            Attributes::Latency { latency, jitter } => {
                let delay = latency_delay(latency, jitter);
                held_back(proxy, &t.name, arrived.checked_add(delay)).await;
            }
            Attributes::Bandwidth { rate } if rate > 0 => {
                // KB/s, with Toxiproxy's 1 KB = 1000 bytes.
                let secs = shaped.len as f64 / (rate as f64 * 1000.0);
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            Attributes::Slicer {
                average_size,
                size_variation,
                delay,
            } if average_size > 0 => {
                shaped.slices =
                    Some((average_size as usize, size_variation as usize, delay as u64));
            }
            Attributes::LimitData { bytes } if bytes > 0 => {
                let left = (bytes as u64).saturating_sub(sent) as usize;
                if shaped.len >= left {
                    shaped.len = left;
                    shaped.close_after = true;
                }
            }
            _ => {}
        }
    }
    shaped
}

/// How long a latency toxic holds a chunk: its latency plus a jitter drawn per chunk,
/// never below 0. Saturating: the API takes any whole number, and an absurd one must be a
/// long wait, not an overflow in the connection's task.
fn latency_delay(latency: i64, jitter: i64) -> Duration {
    let j = if jitter > 0 {
        fastrand::i64(-jitter..=jitter)
    } else {
        0
    };
    Duration::from_millis(latency.saturating_add(j).max(0) as u64)
}

/// Sleeps until `deadline` within a fraction of a millisecond: tokio's timer wakes up to
/// ~2 ms late (it rounds to whole milliseconds twice), so it is used up to 2 ms before the
/// deadline and the rest is waited by yielding. A latency toxic of 100 ms then adds 100 ms,
/// not 102.
/// Holds a chunk until `deadline` (`None`: too far to name, for ever) or until the latency
/// toxic `name` is removed, whichever comes first: as Toxiproxy's latency toxic, which
/// passes what it holds on at once when it is interrupted, so data held when the fault
/// ends is not late for the whole of the fault's latency.
async fn held_back(proxy: &Proxy, name: &str, deadline: Option<Instant>) {
    let until = async {
        match deadline {
            Some(d) => sleep_precisely(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    loop {
        let changed = proxy.toxics_changed.notified();
        tokio::pin!(changed);
        // Registered before the check, so a removal between the two is not missed.
        changed.as_mut().enable();
        if !proxy.toxics().iter().any(|t| t.name == name) {
            return;
        }
        tokio::select! {
            _ = &mut until => return,
            _ = changed => {}
        }
    }
}

async fn sleep_precisely(deadline: Instant) {
    let slack = Duration::from_millis(2);
    if deadline > Instant::now() + slack {
        tokio::time::sleep_until(deadline - slack).await;
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// Writes `data` in pieces of `avg ± var` bytes, `delay_us` apart.
async fn write_sliced(
    to: &mut OwnedWriteHalf,
    mut data: &[u8],
    avg: usize,
    var: usize,
    delay_us: u64,
) -> std::io::Result<()> {
    while !data.is_empty() {
        let size = if var > 0 {
            fastrand::usize(avg.saturating_sub(var).max(1)..=avg + var)
        } else {
            avg.max(1)
        };
        let (piece, rest) = data.split_at(size.min(data.len()));
        to.write_all(piece).await?;
        to.flush().await?;
        data = rest;
        if !data.is_empty() && delay_us > 0 {
            tokio::time::sleep(Duration::from_micros(delay_us)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_with_jitter_saturates() {
        for _ in 0..100 {
            let d = latency_delay(i64::MAX, i64::MAX);
            assert!(d <= Duration::from_millis(i64::MAX as u64));
            assert!(latency_delay(0, i64::MAX) <= Duration::from_millis(i64::MAX as u64));
        }
        assert_eq!(latency_delay(100, 0), Duration::from_millis(100));
        assert_eq!(latency_delay(-5, 0), Duration::ZERO);
    }
}
