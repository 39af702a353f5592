//! Dead letters: an event a consumer's handler fails on `dead_letter_after` times in a row is
//! parked (the event as it came, with its trace context, the error and the attempts) in the
//! consumer's own database, in the same transaction that moves its cursor past it, so the
//! events after it flow again and the poison one is kept, not lost. `GET
//! /admin/dead-letters` lists them; `POST /admin/dead-letters/{id}/replay` applies one again
//! (after a fix), exactly as delivery would: once, or not at all.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::db::{Db, DbError};
use super::http::{ApiError, now_unix_ms};
use super::outbox::{Apply, Event};

/// Created in every consumer's database, beside its cursor and processed events.
pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS dead_letters (
        event_id TEXT PRIMARY KEY,
        feed TEXT NOT NULL,
        event TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        parked_unix_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// A parked event, as `GET /admin/dead-letters` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The feed it came from (`orders`).
    pub feed: String,
    /// The event as the feed served it, trace context included.
    pub event: Event,
    /// The handler's last error.
    pub error: String,
    /// Deliveries (and replays) that failed.
    pub attempts: u32,
    pub parked_unix_ms: i64,
}

/// Parks `event` inside the consumer's transaction (its cursor moves past it there too).
pub(super) fn park(
    tx: &Transaction<'_>,
    feed: &str,
    event: &Event,
    error: &str,
    attempts: u32,
) -> Result<(), DbError> {
    let json = serde_json::to_string(event).map_err(|e| DbError::Aborted(e.to_string()))?;
    tx.execute(
        "INSERT INTO dead_letters (event_id, feed, event, error, attempts, parked_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (event_id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts",
        params![
            event.id.to_string(),
            feed,
            json,
            error,
            attempts,
            now_unix_ms()
        ],
    )?;
    Ok(())
}

fn read(tx: &Transaction<'_>) -> Result<Vec<DeadLetter>, DbError> {
    let mut stmt = tx.prepare(
        "SELECT feed, event, error, attempts, parked_unix_ms FROM dead_letters
         ORDER BY parked_unix_ms, event_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, u32>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (feed, event, error, attempts, parked_unix_ms) = row?;
        // A row this code wrote; one that no longer reads is skipped, and said.
        match serde_json::from_str(&event) {
            Ok(event) => out.push(DeadLetter {
                feed,
                event,
                error,
                attempts,
                parked_unix_ms,
            }),
            Err(e) => tracing::warn!(error = %e, "a dead letter's event does not read back"),
        }
    }
    Ok(out)
}

/// What a replay found.
#[derive(Debug, PartialEq)]
enum Replayed {
    Done(Event),
    Missing,
    AlreadyHandled,
}

/// Applies the parked event `id` as delivery would (recorded as processed in the same
/// transaction) and unparks it; a handler that fails again leaves it parked, one attempt more.
async fn replay(db: &Db, apply: impl Apply, id: String) -> Result<Replayed, ApiError> {
    let (key, handler) = (id.clone(), apply);
    let tried = db
        .write(move |tx| {
            let Some(json) = tx
                .query_row(
                    "SELECT event FROM dead_letters WHERE event_id = ?1",
                    [&key],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
            else {
                return Ok(Replayed::Missing);
            };
            let event: Event =
                serde_json::from_str(&json).map_err(|e| DbError::Aborted(e.to_string()))?;
            let fresh = tx.execute(
                "INSERT OR IGNORE INTO processed_events (id, processed_unix_ms) VALUES (?1, ?2)",
                params![key, now_unix_ms()],
            )? == 1;
            if !fresh {
                return Ok(Replayed::AlreadyHandled);
            }
            handler(tx, &event).map_err(DbError::Aborted)?;
            tx.execute("DELETE FROM dead_letters WHERE event_id = ?1", [&key])?;
            Ok(Replayed::Done(event))
        })
        .await;
    match tried {
        Ok(r) => Ok(r),
        Err(DbError::Aborted(reason)) => {
            let (key, error) = (id.clone(), reason.clone());
            db.write(move |tx| {
                tx.execute(
                    "UPDATE dead_letters SET attempts = attempts + 1, error = ?2 WHERE event_id = ?1",
                    params![key, error],
                )?;
                Ok(())
            })
            .await?;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("event {id} failed again, and stays parked: {reason}"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /admin/dead-letters` and `POST /admin/dead-letters/{id}/replay` over `db`, whose
/// consumer applies events with `apply`.
pub fn router<A: Apply>(db: Db, apply: A) -> Router {
    Router::new()
        .route("/admin/dead-letters", get(list::<A>))
        .route("/admin/dead-letters/{id}/replay", post(replay_handler::<A>))
        .with_state((db, apply))
}

async fn list<A: Apply>(State((db, _)): State<(Db, A)>) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    Ok(Json(db.read(read).await?))
}

async fn replay_handler<A: Apply>(
    State((db, apply)): State<(Db, A)>,
    Path(id): Path<String>,
) -> Result<Json<Event>, ApiError> {
    match replay(&db, apply, id.clone()).await? {
        Replayed::Done(event) => {
            tracing::info!(event_id = %id, kind = %event.kind, "dead letter replayed");
            Ok(Json(event))
        }
        Replayed::Missing => Err(ApiError::not_found(format!(
            "no parked event {id} (GET /admin/dead-letters lists them)"
        ))),
        Replayed::AlreadyHandled => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "event {id} was already handled: replaying it would apply it twice; nothing changed"
            ),
        )),
    }
}
