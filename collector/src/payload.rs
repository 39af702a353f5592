//! Reading an HTTP request body within the size limit and undoing its `Content-Encoding`.
//! Both limits are checked while streaming, so neither a huge body nor a gzip bomb is ever
//! held in memory past `max_body` bytes; and every body held counts against one
//! [`BodyBudget`], so many large exports at once cannot exhaust memory either.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("request body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("unsupported Content-Encoding {0:?}: send gzip or identity")]
    UnsupportedEncoding(String),
    #[error("could not read the request body: {0}")]
    Read(String),
    #[error(
        "the collector already holds {budget} bytes of request bodies (--max-inflight); retry shortly"
    )]
    OverBudget { budget: usize },
}

/// How long a client refused for the budget should wait: bodies in memory are decoded and
/// committed within milliseconds to a second.
pub const BUDGET_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The budget is counted in KiB, so a `u32` of permits covers terabytes.
const UNIT: usize = 1024;

/// Bytes of request bodies held in memory at once, across every receiver. A request that
/// would pass it is refused (HTTP 429, gRPC UNAVAILABLE, both with a retry hint), as a
/// full queue is, before its body is kept.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    bytes: usize,
    /// Bytes reserved now, for `/metrics`: how close the collector runs to the budget.
    held: Gauge,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(units)),
            bytes,
            held: Gauge::default(),
        }
    }

    /// The gauge of bytes reserved now; clones share it.
    pub fn held_gauge(&self) -> Gauge {
        self.held.clone()
    }

    /// An empty reservation, to grow as a body arrives.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
        }
    }

    /// A reservation of `bytes` at once.
    pub fn take(&self, bytes: usize) -> Result<Reservation, PayloadError> {
        let mut r = self.reserve();
        r.cover(bytes)?;
        Ok(r)
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits().saturating_mul(UNIT)
    }
}

/// Part of the budget, held until dropped (after the body's data was committed).
#[derive(Debug)]
pub struct Reservation {
    budget: BodyBudget,
    permit: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Makes the reservation cover `bytes` in all; refuses if the budget has no room.
    pub fn cover(&mut self, bytes: usize) -> Result<(), PayloadError> {
        let want = bytes.div_ceil(UNIT);
        let held = self
            .permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if want <= held {
            return Ok(());
        }
        let more = u32::try_from(want - held).map_err(|_| PayloadError::OverBudget {
            budget: self.budget.bytes,
        })?;
        match self.budget.permits.clone().try_acquire_many_owned(more) {
            Ok(p) => {
                self.budget.held.inc_by(units_to_bytes(more as usize));
                match &mut self.permit {
                    Some(held) => held.merge(p),
                    None => self.permit = Some(p),
                }
                Ok(())
            }
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                Err(PayloadError::OverBudget {
                    budget: self.budget.bytes,
                })
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(p) = &self.permit {
            self.budget.held.dec_by(units_to_bytes(p.num_permits()));
        }
    }
}

fn units_to_bytes(units: usize) -> i64 {
    i64::try_from(units.saturating_mul(UNIT)).unwrap_or(i64::MAX)
}

/// Reads the whole body (at most `limit` bytes) and gunzips it if `encoding` says so; the
/// bytes held (compressed and decompressed) are reserved from `budget` as they arrive, and
/// stay reserved while the returned [`Reservation`] lives.
pub async fn read(
    body: Body,
    encoding: Option<&str>,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, Reservation), PayloadError> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => return Err(PayloadError::UnsupportedEncoding(other.to_string())),
    };
    let mut reservation = budget.reserve();
    let raw = collect_limited(body, limit, &mut reservation).await?;
    if !gzip {
        return Ok((raw, reservation));
    }
    let plain = gunzip(&raw, limit)?;
    reservation.cover(raw.len() + plain.len())?;
    Ok((plain, reservation))
}

/// Collects at most `limit` bytes, within the budget. Past either, the rest is read and
/// dropped (up to another `limit` bytes) before answering, because HTTP/1.1 clients that
/// are still sending do not read an early answer: they would see a broken pipe instead.
async fn collect_limited(
    mut body: Body,
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Bytes, PayloadError> {
    // Sized from Content-Length when the sender gave one: grown from nothing, a 200 KB
    // export was copied about twice more as the buffer doubled. At most 1 MiB before the
    // bytes arrive, so a length that lies reserves no more than that.
    const PRESIZE: u64 = 1 << 20;
    let hint = http_body::Body::size_hint(&body).lower().min(PRESIZE) as usize;
    let mut buf = bytes::BytesMut::with_capacity(hint.min(limit));
    let mut seen = 0usize;
    let mut refused = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| PayloadError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if refused.is_none()
            && seen <= limit
            && let Err(e) = reservation.cover(seen)
        {
            refused = Some(e);
        }
        if seen <= limit && refused.is_none() {
            buf.extend_from_slice(&data);
        } else {
            buf = bytes::BytesMut::new();
            if seen > limit.saturating_mul(2) {
                break;
            }
        }
    }
    if seen > limit {
        return Err(PayloadError::TooLarge { limit });
    }
    if let Some(e) = refused {
        return Err(e);
    }
    Ok(buf.freeze())
}

/// Decompresses gzip, failing as soon as the output would pass `limit`.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Bytes, PayloadError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| PayloadError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(PayloadError::DecompressedTooLarge { limit });
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write to memory");
        e.finish().expect("finish gzip")
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let bomb = gz(&vec![0u8; 8 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(PayloadError::DecompressedTooLarge { .. })
        ));
        assert_eq!(
            gunzip(&gz(b"hello"), 5).map(|b| b.to_vec()).ok(),
            Some(b"hello".to_vec())
        );
    }

    #[test]
    fn broken_gzip_is_reported() {
        let mut data = gz(b"some payload that is long enough");
        data.truncate(data.len() / 2);
        assert!(matches!(
            gunzip(&data, 1 << 20),
            Err(PayloadError::BadGzip(_))
        ));
        assert!(matches!(
            gunzip(b"not gzip at all", 1 << 20),
            Err(PayloadError::BadGzip(_))
        ));
    }

    #[tokio::test]
    async fn bodies_over_the_limit_and_unknown_encodings_are_refused() {
        let budget = BodyBudget::new(1 << 20);
        let body = Body::from(vec![1u8; 100]);
        assert!(matches!(
            read(body, None, 99, &budget).await,
            Err(PayloadError::TooLarge { limit: 99 })
        ));
        let body = Body::from(vec![1u8; 10]);
        assert!(matches!(
            read(body, Some("br"), 99, &budget).await,
            Err(PayloadError::UnsupportedEncoding(_))
        ));
        assert_eq!(budget.available(), 1 << 20, "refused bodies hold nothing");
    }

    #[tokio::test]
    async fn bodies_held_at_once_stay_within_the_budget() {
        let budget = BodyBudget::new(64 << 10);
        let (first, held) = read(Body::from(vec![7u8; 40 << 10]), None, 1 << 20, &budget)
            .await
            .expect("fits");
        assert_eq!(first.len(), 40 << 10);
        assert_eq!(budget.available(), 24 << 10);
        assert_eq!(budget.held_gauge().get(), 40 << 10);
        // A second body that would pass the budget while the first is held is refused...
        assert!(matches!(
            read(Body::from(vec![7u8; 40 << 10]), None, 1 << 20, &budget).await,
            Err(PayloadError::OverBudget { .. })
        ));
        // ...and so is a small body that decompresses past it.
        let expanding = gz(&vec![0u8; 30 << 10]);
        assert!(matches!(
            read(
                Body::from(expanding.clone()),
                Some("gzip"),
                1 << 20,
                &budget
            )
            .await,
            Err(PayloadError::OverBudget { .. })
        ));
        assert_eq!(budget.available(), 24 << 10, "the refusals hold nothing");
        // Once the first is committed (its reservation dropped), there is room again.
        drop(held);
        assert_eq!(budget.held_gauge().get(), 0);
        let (plain, _held) = read(Body::from(expanding), Some("gzip"), 1 << 20, &budget)
            .await
            .expect("fits now");
        assert_eq!(plain.len(), 30 << 10);
    }
}
