//! Reading an HTTP request body within the size limit and undoing its `Content-Encoding`.
//! Both limits are checked while streaming, so neither a huge body nor a gzip bomb is ever
//! held in memory past `max_body` bytes.

use std::io::Read;

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
}

/// Reads the whole body (at most `limit` bytes) and gunzips it if `encoding` says so.
pub async fn read(body: Body, encoding: Option<&str>, limit: usize) -> Result<Bytes, PayloadError> {
    let encoding = encoding.map(|e| e.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => return Err(PayloadError::UnsupportedEncoding(other.to_string())),
    };
    let raw = collect_limited(body, limit).await?;
    if !gzip {
        return Ok(raw);
    }
    gunzip(&raw, limit)
}

/// Collects at most `limit` bytes. Past it, the rest is read and dropped (up to another
/// `limit` bytes) before answering, because HTTP/1.1 clients that are still sending do not
/// read an early answer: they would see a broken pipe instead of the 413.
async fn collect_limited(mut body: Body, limit: usize) -> Result<Bytes, PayloadError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| PayloadError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
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
        let body = Body::from(vec![1u8; 100]);
        assert!(matches!(
            read(body, None, 99).await,
            Err(PayloadError::TooLarge { limit: 99 })
        ));
        let body = Body::from(vec![1u8; 10]);
        assert!(matches!(
            read(body, Some("br"), 99).await,
            Err(PayloadError::UnsupportedEncoding(_))
        ));
    }
}
