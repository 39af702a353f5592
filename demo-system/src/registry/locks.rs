//! Consul's sessions and locks on the registry's KV store: what leader election is built
//! from. A session lives while it is renewed within its TTL; a key's lock is taken with
//! `PUT /v1/kv/{key}?acquire={session}` (`true`: this session holds it now, `false`: another
//! does) and given up with `?release={session}`, or by the session's end (destroyed, or its
//! TTL passed): then the lock is released (or the key deleted, with `Behavior: delete`), and
//! for the session's `LockDelay` nobody can take it, so a holder that only seems gone has
//! time to notice. Each acquisition by a new holder adds one to the key's `LockIndex`: a
//! fencing token that grows with each new leader, which a resource can check to refuse the
//! writes of one whose lock has passed on.
//!
//! - `PUT /v1/session/create` (`{"TTL": "10s", "Name", "Behavior", "LockDelay"}`, any
//!   field's name in either case, as Consul reads them): `{"ID": ...}`.
//! - `PUT /v1/session/renew/{id}`: `[session]`, `404` once it has ended.
//! - `PUT /v1/session/destroy/{id}`: `true`.
//! - `GET /v1/session/info/{id}` (`[session]` or `[]`), `GET /v1/session/list`.
//!
//! Sessions and locks are committed to the registry's file like every change, with the
//! store's index. Where it differs from Consul: a TTL may be 1 s to 24 h (Consul: from 10 s),
//! so a demo fails over in seconds; sessions cannot be bound to health checks; a registry
//! restarted gives every session a fresh TTL (as Consul does when its leader changes).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use rusqlite::params;
use tokio::time::Instant;
use uuid::Uuid;

use super::api::{KV_INDEX_HEADER, SessionCreated, SessionEntry, SessionRequest};
use super::kv::{KvStore, index_at, json_bool, next_index, parse_duration};
use crate::platform::db::DbError;
use crate::platform::http::ApiError;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    ttl_ms INTEGER,
    behavior TEXT NOT NULL,
    lock_delay_ms INTEGER NOT NULL,
    create_index INTEGER NOT NULL
);
";

const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(86_400);
/// Consul's default and largest lock delay.
const DEFAULT_LOCK_DELAY: Duration = Duration::from_secs(15);
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// What a session's end does to the keys it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behavior {
    Release,
    Delete,
}

impl Behavior {
    fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Session {
    name: String,
    ttl: Option<Duration>,
    behavior: Behavior,
    lock_delay: Duration,
    create_index: u64,
    /// When it ends unless renewed.
    expires: Option<Instant>,
}

impl Session {
    fn entry(&self, id: Uuid) -> SessionEntry {
        SessionEntry {
            id: id.to_string(),
            name: self.name.clone(),
            node: "registry".into(),
            lock_delay: self.lock_delay.as_nanos() as u64,
            behavior: self.behavior.as_str().into(),
            ttl: self
                .ttl
                .map(|t| format!("{}ms", t.as_millis()))
                .unwrap_or_default(),
            checks: Vec::new(),
            create_index: self.create_index,
            modify_index: self.create_index,
        }
    }

    fn ended(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// The live sessions, and until when each key a session's end released stays locked.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    live: BTreeMap<Uuid, Session>,
    lock_delays: HashMap<String, Instant>,
}

impl Sessions {
    /// The sessions the file holds, each with a fresh TTL from now.
    pub(super) fn load(tx: &rusqlite::Transaction<'_>) -> Result<Self, DbError> {
        let mut stmt = tx.prepare(
            "SELECT id, name, ttl_ms, behavior, lock_delay_ms, create_index FROM sessions",
        )?;
        let now = Instant::now();
        let rows = stmt.query_map([], |r| {
            let ttl = r
                .get::<_, Option<i64>>(2)?
                .map(|ms| Duration::from_millis(ms.max(0) as u64));
            Ok((
                r.get::<_, String>(0)?,
                Session {
                    name: r.get(1)?,
                    ttl,
                    behavior: if r.get::<_, String>(3)? == "delete" {
                        Behavior::Delete
                    } else {
                        Behavior::Release
                    },
                    lock_delay: Duration::from_millis(r.get::<_, i64>(4)?.max(0) as u64),
                    create_index: index_at(r, 5)?,
                    expires: ttl.map(|t| now + t),
                },
            ))
        })?;
        let mut live = BTreeMap::new();
        for row in rows {
            let (id, session) = row?;
            if let Ok(id) = Uuid::parse_str(&id) {
                live.insert(id, session);
            }
        }
        Ok(Self {
            live,
            lock_delays: HashMap::new(),
        })
    }
}

/// The session a create request describes, or why it cannot be made.
fn session_of(req: SessionRequest, create_index: u64) -> Result<Session, String> {
    if !req.checks.is_empty() {
        return Err(
            "sessions bound to health checks are not supported: give a TTL and renew it".into(),
        );
    }
    let ttl = req
        .ttl
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| parse_duration("TTL", t))
        .transpose()?;
    if let Some(t) = ttl
        && !(MIN_TTL..=MAX_TTL).contains(&t)
    {
        return Err(format!("TTL {t:?} is outside 1s to 24h"));
    }
    let lock_delay = match req.lock_delay.as_deref() {
        None => DEFAULT_LOCK_DELAY,
        Some(d) => parse_duration("LockDelay", d)?,
    };
    if lock_delay > MAX_LOCK_DELAY {
        return Err(format!("LockDelay {lock_delay:?} is longer than 60s"));
    }
    let behavior = match req.behavior.as_deref() {
        None | Some("release") => Behavior::Release,
        Some("delete") => Behavior::Delete,
        Some(other) => return Err(format!("Behavior {other:?}: release or delete")),
    };
    Ok(Session {
        name: req.name.unwrap_or_default(),
        ttl,
        behavior,
        lock_delay,
        create_index,
        expires: ttl.map(|t| Instant::now() + t),
    })
}

fn session_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::bad_request(format!(
            "{text:?} is not a session ID (PUT /v1/session/create makes one)"
        ))
    })
}

impl KvStore {
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        crate::platform::lock(&self.sessions)
    }

    /// Makes a session, committed before it returns.
    pub async fn create_session(&self, req: SessionRequest) -> Result<Uuid, ApiError> {
        let _one = self.writing.lock().await;
        let mut session = session_of(req, 0).map_err(ApiError::bad_request)?;
        let id = Uuid::now_v7();
        let row = session.clone();
        let index = self
            .db
            .write(move |tx| {
                let index = next_index(tx)?;
                tx.execute(
                    "INSERT INTO sessions (id, name, ttl_ms, behavior, lock_delay_ms, create_index)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id.to_string(),
                        row.name,
                        row.ttl.map(|t| t.as_millis() as i64),
                        row.behavior.as_str(),
                        row.lock_delay.as_millis() as i64,
                        index as i64
                    ],
                )?;
                Ok(index)
            })
            .await?;
        session.create_index = index;
        self.sessions().live.insert(id, session);
        self.index.send_replace(index);
        Ok(id)
    }

    /// Starts the session's TTL again; `None` once it has ended.
    pub fn renew_session(&self, id: Uuid) -> Option<SessionEntry> {
        let now = Instant::now();
        let mut all = self.sessions();
        let s = all.live.get_mut(&id).filter(|s| !s.ended(now))?;
        s.expires = s.ttl.map(|t| now + t);
        Some(s.entry(id))
    }

    pub fn session_entry(&self, id: Uuid) -> Option<SessionEntry> {
        let now = Instant::now();
        let all = self.sessions();
        all.live
            .get(&id)
            .filter(|s| !s.ended(now))
            .map(|s| s.entry(id))
    }

    pub fn session_entries(&self) -> Vec<SessionEntry> {
        let now = Instant::now();
        let all = self.sessions();
        (all.live.iter())
            .filter(|(_, s)| !s.ended(now))
            .map(|(id, s)| s.entry(*id))
            .collect()
    }

    /// Ends the session now, as its TTL would; whether it was live.
    pub async fn destroy_session(&self, id: Uuid) -> Result<bool, DbError> {
        let _one = self.writing.lock().await;
        self.end(id).await
    }

    /// Ends every session whose TTL has passed; how many.
    pub async fn end_expired_sessions(&self) -> Result<usize, DbError> {
        let _one = self.writing.lock().await;
        self.end_expired().await
    }

    /// [`KvStore::end_expired_sessions`], for a caller holding the write lock.
    async fn end_expired(&self) -> Result<usize, DbError> {
        let now = Instant::now();
        let expired: Vec<Uuid> = (self.sessions().live.iter())
            .filter(|(_, s)| s.ended(now))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.end(*id).await?;
        }
        Ok(expired.len())
    }

    /// Ends `id` (the caller holds the write lock): its row goes, the keys it holds are
    /// released (or deleted) and stay locked for its lock delay.
    async fn end(&self, id: Uuid) -> Result<bool, DbError> {
        let Some(session) = self.sessions().live.get(&id).cloned() else {
            return Ok(false);
        };
        let held: Vec<String> = (crate::platform::lock(&self.entries).iter())
            .filter(|(_, s)| s.session == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        let behavior = session.behavior;
        let index = self
            .db
            .write(move |tx| {
                let index = next_index(tx)?;
                let sid = id.to_string();
                tx.execute("DELETE FROM sessions WHERE id = ?1", [&sid])?;
                match behavior {
                    Behavior::Release => tx.execute(
                        "UPDATE kv SET session = NULL, modify_index = ?2 WHERE session = ?1",
                        params![sid, index as i64],
                    )?,
                    Behavior::Delete => tx.execute("DELETE FROM kv WHERE session = ?1", [&sid])?,
                };
                Ok(index)
            })
            .await?;
        {
            let mut entries = crate::platform::lock(&self.entries);
            for key in &held {
                if behavior == Behavior::Delete {
                    entries.remove(key);
                } else if let Some(e) = entries.get_mut(key) {
                    e.session = None;
                    e.modify_index = index;
                }
            }
        }
        let mut all = self.sessions();
        all.live.remove(&id);
        let until = Instant::now() + session.lock_delay;
        for key in &held {
            all.lock_delays.insert(key.clone(), until);
        }
        drop(all);
        tracing::info!(session = %id, name = %session.name, released = ?held, "session.ended");
        self.index.send_replace(index);
        Ok(true)
    }

    /// Takes `key`'s lock for `session` and sets its value: `false` when another session
    /// holds it or its lock delay runs.
    pub async fn acquire(
        &self,
        key: &str,
        value: Vec<u8>,
        session: &str,
    ) -> Result<bool, ApiError> {
        let id = session_id(session)?;
        let _one = self.writing.lock().await;
        // A holder whose TTL passed holds nothing, whether or not it was noticed yet.
        self.end_expired().await?;
        let now = Instant::now();
        {
            let mut all = self.sessions();
            if all.live.get(&id).is_none_or(|s| s.ended(now)) {
                return Err(ApiError::bad_request(format!(
                    "no session {id}: it ended or never was (PUT /v1/session/create makes one)"
                )));
            }
            match all.lock_delays.get(key) {
                Some(until) if *until > now => return Ok(false),
                Some(_) => {
                    all.lock_delays.remove(key);
                }
                None => {}
            }
        }
        let held = crate::platform::lock(&self.entries).get(key).cloned();
        if held
            .as_ref()
            .is_some_and(|h| h.session.is_some_and(|s| s != id))
        {
            return Ok(false);
        }
        let lock_index = match &held {
            Some(h) if h.session == Some(id) => h.lock_index,
            Some(h) => h.lock_index + 1,
            None => 1,
        };
        self.commit(key, value, Some(id), lock_index, held).await?;
        Ok(true)
    }

    /// Gives up `key`'s lock held by `session` and sets its value: `false` when the session
    /// does not hold it (nothing changes then).
    pub async fn release(
        &self,
        key: &str,
        value: Vec<u8>,
        session: &str,
    ) -> Result<bool, ApiError> {
        let id = session_id(session)?;
        let _one = self.writing.lock().await;
        let held = crate::platform::lock(&self.entries).get(key).cloned();
        let Some(h) = held.filter(|h| h.session == Some(id)) else {
            return Ok(false);
        };
        let lock_index = h.lock_index;
        self.commit(key, value, None, lock_index, Some(h)).await?;
        Ok(true)
    }
}

/// The session routes, on the registry's KV store.
pub fn router(store: KvStore) -> Router {
    Router::new()
        .route("/v1/session/create", put(create))
        .route("/v1/session/renew/{id}", put(renew))
        .route("/v1/session/destroy/{id}", put(destroy))
        .route("/v1/session/info/{id}", get(info))
        .route("/v1/session/list", get(list))
        .with_state(store)
}

async fn create(State(store): State<KvStore>, body: Bytes) -> Result<Response, ApiError> {
    let req: SessionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SessionRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the session's settings: {e}")))?
    };
    let id = store.create_session(req).await?;
    Ok(indexed(
        &store,
        axum::Json(SessionCreated { id: id.to_string() }),
    ))
}

async fn renew(
    State(store): State<KvStore>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let sid = session_id(&id)?;
    match store.renew_session(sid) {
        Some(entry) => Ok(indexed(&store, axum::Json(vec![entry]))),
        None => Err(ApiError::not_found(format!(
            "Session id '{id}' not found: it ended (its TTL passed, or it was destroyed)"
        ))),
    }
}

async fn destroy(
    State(store): State<KvStore>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    store.destroy_session(session_id(&id)?).await?;
    Ok(json_bool(true))
}

async fn info(
    State(store): State<KvStore>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let entry = store.session_entry(session_id(&id)?);
    Ok(indexed(
        &store,
        axum::Json(entry.into_iter().collect::<Vec<_>>()),
    ))
}

async fn list(State(store): State<KvStore>) -> Response {
    indexed(&store, axum::Json(store.session_entries()))
}

/// An answer with the store's index in `X-Consul-Index`, as Consul's reads carry it.
fn indexed(store: &KvStore, body: impl IntoResponse) -> Response {
    let mut answer = (StatusCode::OK, body).into_response();
    if let Ok(v) = HeaderValue::from_str(&store.index().to_string()) {
        answer.headers_mut().insert(KV_INDEX_HEADER, v);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ttl: &str, lock_delay: &str) -> SessionRequest {
        SessionRequest {
            name: Some("orders-1".into()),
            ttl: Some(ttl.into()),
            lock_delay: Some(lock_delay.into()),
            ..SessionRequest::default()
        }
    }

    fn lock_of(kv: &KvStore, key: &str) -> (Option<String>, u64, Option<String>) {
        let e = kv.get(key, false).pop().expect("the key");
        (e.session.clone(), e.lock_index, e.text())
    }

    const KEY: &str = "service/orders/leader";

    #[tokio::test]
    async fn one_session_holds_a_lock_and_each_new_holder_gets_a_larger_lock_index() {
        let kv = KvStore::in_memory().expect("store");
        let a = kv
            .create_session(request("10s", "0s"))
            .await
            .expect("a")
            .to_string();
        let b = kv
            .create_session(request("10s", "0s"))
            .await
            .expect("b")
            .to_string();
        assert!(kv.acquire(KEY, b"a".to_vec(), &a).await.expect("acquire"));
        assert!(
            !kv.acquire(KEY, b"b".to_vec(), &b).await.expect("acquire"),
            "a holds it"
        );
        assert!(
            kv.acquire(KEY, b"a2".to_vec(), &a).await.expect("again"),
            "its own"
        );
        assert_eq!(lock_of(&kv, KEY), (Some(a.clone()), 1, Some("a2".into())));
        assert!(
            !kv.release(KEY, b"b".to_vec(), &b).await.expect("release"),
            "not b's"
        );
        assert!(
            kv.release(KEY, b"free".to_vec(), &a)
                .await
                .expect("release")
        );
        assert!(kv.acquire(KEY, b"b".to_vec(), &b).await.expect("acquire"));
        assert_eq!(
            lock_of(&kv, KEY),
            (Some(b), 2, Some("b".into())),
            "a new holder: 2"
        );
        // A plain write changes the value, not the holder.
        kv.put(KEY, b"note".to_vec()).await.expect("put");
        assert_eq!(lock_of(&kv, KEY).1, 2);
        assert!(kv.get(KEY, false)[0].session.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_not_renewed_within_its_ttl_ends_and_its_lock_waits_out_the_delay() {
        let kv = KvStore::in_memory().expect("store");
        let a = kv.create_session(request("2s", "1s")).await.expect("a");
        let b = kv
            .create_session(request("10s", "0s"))
            .await
            .expect("b")
            .to_string();
        assert!(
            kv.acquire(KEY, b"a".to_vec(), &a.to_string())
                .await
                .expect("acquire")
        );
        tokio::time::advance(Duration::from_millis(1900)).await;
        assert!(kv.renew_session(a).is_some(), "renewed in time");
        tokio::time::advance(Duration::from_millis(1900)).await;
        assert_eq!(
            kv.end_expired_sessions().await.expect("reap"),
            0,
            "still within its TTL"
        );
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(kv.end_expired_sessions().await.expect("reap"), 1);
        assert_eq!(
            lock_of(&kv, KEY),
            (None, 1, Some("a".into())),
            "released, value kept"
        );
        assert!(
            kv.renew_session(a).is_none(),
            "an ended session cannot be renewed"
        );
        assert!(
            !kv.acquire(KEY, b"b".to_vec(), &b).await.expect("acquire"),
            "the lock delay runs"
        );
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(kv.acquire(KEY, b"b".to_vec(), &b).await.expect("acquire"));
        assert_eq!(lock_of(&kv, KEY).1, 2);
        let gone = kv.acquire(KEY, b"a".to_vec(), &a.to_string()).await;
        assert!(gone.is_err(), "an ended session is refused");
    }

    #[tokio::test]
    async fn sessions_and_locks_outlive_a_restart_and_delete_sessions_take_their_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registry.sqlite");
        let kv = KvStore::open(&path).expect("store");
        let a = kv.create_session(request("10s", "0s")).await.expect("a");
        assert!(
            kv.acquire(KEY, b"a".to_vec(), &a.to_string())
                .await
                .expect("acquire")
        );
        let again = KvStore::open(&path).expect("reopens");
        assert_eq!(
            lock_of(&again, KEY),
            (Some(a.to_string()), 1, Some("a".into()))
        );
        assert!(again.renew_session(a).is_some(), "the session too");

        let ephemeral = SessionRequest {
            behavior: Some("delete".into()),
            ..request("10s", "0s")
        };
        let d = again.create_session(ephemeral).await.expect("d");
        let key = "service/orders/instances/orders-1";
        assert!(
            again
                .acquire(key, b"up".to_vec(), &d.to_string())
                .await
                .expect("acquire")
        );
        assert!(again.destroy_session(d).await.expect("destroy"));
        assert!(again.get(key, false).is_empty(), "its key went with it");
        assert!(
            !again.destroy_session(d).await.expect("destroy"),
            "already gone"
        );
    }

    #[tokio::test]
    async fn bad_sessions_are_refused_with_the_reason() {
        let kv = KvStore::in_memory().expect("store");
        for (req, needle) in [
            (request("500ms", "0s"), "outside 1s to 24h"),
            (request("2d", "0s"), "use ms, s, m or h"),
            (request("ten", "0s"), "not a duration"),
            (request("10s", "2m"), "longer than 60s"),
            (
                SessionRequest {
                    behavior: Some("keep".into()),
                    ..request("10s", "0s")
                },
                "release or delete",
            ),
            (
                SessionRequest {
                    checks: vec!["serfHealth".into()],
                    ..request("10s", "0s")
                },
                "health checks are not supported",
            ),
        ] {
            let err = kv.create_session(req.clone()).await.expect_err("refused");
            assert!(format!("{err:?}").contains(needle), "{req:?}: {err:?}");
        }
        assert!(kv.session_entries().is_empty(), "nothing was made");
        let err = kv
            .acquire(KEY, Vec::new(), "not-a-uuid")
            .await
            .expect_err("refused");
        assert!(format!("{err:?}").contains("not a session ID"), "{err:?}");
    }
}
