//! One virtual user's connections, one per target host, with `TCP_NODELAY`, and every
//! failure sorted into an [`ErrorKind`]; a failed connection is dropped and the next request
//! opens a new one.
//!
//! HTTP/1.1 is written from one buffer and parsed in place with `httparse` (what hyper
//! parses with), keep-alive, `Content-Length` and chunked bodies: a load generator that
//! must keep up with wrk cannot afford a client's per-request channels and allocations.
//! HTTP/2 (prior knowledge, no TLS) goes through hyper's connection-level client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::ErrorKind;

/// A request about to be sent.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub method: &'a http::Method,
    /// Absolute URI (HTTP/2 needs the scheme and authority; HTTP/1.1 sends the path).
    pub uri: &'a http::Uri,
    pub authority: &'a str,
    pub headers: &'a [(http::HeaderName, String)],
    pub body: &'a [u8],
}

enum Conn {
    H1(H1),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// An answer, read to its end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// Status line, headers and body, approximately as they came over the wire.
    pub wire_bytes: u64,
}

/// An HTTP/1.1 keep-alive connection.
struct H1 {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request being written.
    out: Vec<u8>,
    /// The server said `Connection: close`: this was the last exchange.
    closing: bool,
}

/// Where a host name resolves, checked against the loopback rule once per host.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error(
        "{host} resolves to {addr}, which is not this machine: load is only sent to loopback (127.0.0.0/8, ::1) unless you pass --allow-remote"
    )]
    Remote { host: String, addr: SocketAddr },
    #[error(
        "scenario {scenario:?} sends from {from}, which is not a loopback address: load comes only from and goes only to loopback (127.0.0.0/8, ::1) unless you pass --allow-remote"
    )]
    RemoteSource {
        scenario: String,
        from: std::net::IpAddr,
    },
}

/// Resolves `authority` (host:port) and applies the loopback rule.
pub async fn resolve(authority: &str, allow_remote: bool) -> Result<SocketAddr, TargetError> {
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| TargetError::Resolve(authority.to_string(), e.to_string()))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| TargetError::Resolve(authority.to_string(), "no address".into()))?;
    if !allow_remote && let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(TargetError::Remote {
            host: authority.to_string(),
            addr: *bad,
        });
    }
    Ok(first)
}

/// A VU's open connections, by host.
#[derive(Default)]
pub struct Connections {
    open: HashMap<SocketAddr, Conn>,
    /// The local address new connections are bound to.
    source: Option<std::net::IpAddr>,
}

impl Connections {
    /// Connections whose local end is `source` (any port), when given.
    pub fn from(source: Option<std::net::IpAddr>) -> Self {
        Self {
            open: HashMap::new(),
            source,
        }
    }

    /// Sends `req` to `addr` (over an open connection or a new one) and reads the whole
    /// answer within `timeout`.
    pub async fn send(
        &mut self,
        addr: SocketAddr,
        http2: bool,
        req: &Outgoing<'_>,
        timeout: Duration,
    ) -> Result<Answer, ErrorKind> {
        match tokio::time::timeout(timeout, self.exchange(addr, http2, req)).await {
            Ok(Ok(answer)) => {
                if matches!(self.open.get(&addr), Some(Conn::H1(c)) if c.closing) {
                    self.open.remove(&addr);
                }
                Ok(answer)
            }
            Ok(Err(kind)) => {
                self.open.remove(&addr);
                Err(kind)
            }
            Err(_) => {
                // The connection may still be busy with the abandoned request.
                self.open.remove(&addr);
                Err(ErrorKind::Timeout)
            }
        }
    }

    async fn exchange(
        &mut self,
        addr: SocketAddr,
        http2: bool,
        req: &Outgoing<'_>,
    ) -> Result<Answer, ErrorKind> {
        let conn = match self.open.entry(addr) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(connect(addr, http2, self.source).await?)
            }
        };
        match conn {
            Conn::H1(c) => c.exchange(req).await,
            Conn::H2(s) => {
                let mut b = http::Request::builder()
                    .method(req.method.clone())
                    .uri(req.uri.clone());
                for (k, v) in req.headers {
                    b = b.header(k, v.as_str());
                }
                let r = b
                    .body(Full::new(Bytes::copy_from_slice(req.body)))
                    .map_err(|_| ErrorKind::Protocol)?;
                s.ready().await.map_err(|e| classify(&e))?;
                let resp = s.send_request(r).await.map_err(|e| classify(&e))?;
                read_h2(resp).await
            }
        }
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Reset,
    }
}

fn valid_header_text(s: &[u8]) -> bool {
    !s.iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0)
}

impl H1 {
    async fn exchange(&mut self, req: &Outgoing<'_>) -> Result<Answer, ErrorKind> {
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(req.authority.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in req.headers {
            if !valid_header_text(v.as_bytes()) {
                return Err(ErrorKind::Protocol);
            }
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !req.body.is_empty()
            || matches!(
                *req.method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            )
        {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(req.body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(req.body);
        self.stream.write_all(out).await.map_err(|e| io_kind(&e))?;
        let head_only = *req.method == http::Method::HEAD;
        loop {
            if let Some(answer) = self.parse(head_only).await? {
                return Ok(answer);
            }
            self.fill().await?;
        }
    }

    /// Reads more; the peer closing here means the answer was cut short.
    async fn fill(&mut self) -> Result<(), ErrorKind> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(ErrorKind::Reset),
            Ok(_) => Ok(()),
            Err(e) => Err(io_kind(&e)),
        }
    }

    /// Parses a whole answer from the buffer, reading its body as needed; `None` when the
    /// head is not complete yet.
    async fn parse(&mut self, head_only: bool) -> Result<Option<Answer>, ErrorKind> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ErrorKind::Protocol),
        };
        let status = resp.code.ok_or(ErrorKind::Protocol)?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or(ErrorKind::Protocol)?,
                );
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .windows(7)
                    .any(|w| w.eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                self.closing |= h.value.eq_ignore_ascii_case(b"close");
            }
        }
        if (100..200).contains(&status) && status != 101 {
            // An interim answer (100 Continue): the real one follows.
            let _ = self.buf.split_to(head_len);
            return Ok(None);
        }
        let no_body = head_only || status == 204 || status == 304;
        let body = if no_body {
            let _ = self.buf.split_to(head_len);
            Bytes::new()
        } else if chunked {
            self.chunked_body(head_len).await?
        } else if let Some(len) = length {
            while self.buf.len() < head_len + len {
                self.fill().await?;
            }
            let mut whole = self.buf.split_to(head_len + len);
            whole.split_off(head_len).freeze()
        } else {
            // No length: the body runs until the server closes the connection.
            loop {
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(io_kind(&e)),
                }
            }
            self.closing = true;
            let mut whole = self.buf.split_to(self.buf.len());
            whole.split_off(head_len).freeze()
        };
        Ok(Some(Answer {
            status,
            wire_bytes: (head_len + body.len()) as u64,
            body,
        }))
    }

    async fn chunked_body(&mut self, head_len: usize) -> Result<Bytes, ErrorKind> {
        let _ = self.buf.split_to(head_len);
        let mut body = BytesMut::new();
        loop {
            let (skip, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((n, size))) => break (n, size as usize),
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(ErrorKind::Protocol),
                }
            };
            if size == 0 {
                // The last chunk, then optional trailers, then an empty line.
                let _ = self.buf.split_to(skip);
                loop {
                    if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        let line_empty = end == 0;
                        let _ = self.buf.split_to(end + 2);
                        if line_empty {
                            return Ok(body.freeze());
                        }
                    } else {
                        self.fill().await?;
                    }
                }
            }
            while self.buf.len() < skip + size + 2 {
                self.fill().await?;
            }
            let chunk = self.buf.split_to(skip + size + 2);
            body.extend_from_slice(&chunk[skip..skip + size]);
        }
    }
}

/// Reads an HTTP/2 answer to its end.
async fn read_h2(resp: http::Response<hyper::body::Incoming>) -> Result<Answer, ErrorKind> {
    let status = resp.status().as_u16();
    let head: u64 = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum::<u64>()
        + 17;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| classify(&e))?
        .to_bytes();
    Ok(Answer {
        status,
        wire_bytes: head + body.len() as u64,
        body,
    })
}

async fn connect(
    addr: SocketAddr,
    http2: bool,
    source: Option<std::net::IpAddr>,
) -> Result<Conn, ErrorKind> {
    let stream = match source {
        None => TcpStream::connect(addr).await,
        Some(ip) => {
            let socket = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .map_err(|_| ErrorKind::Connect)?;
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|_| ErrorKind::Connect)?;
            socket.connect(addr).await
        }
    }
    .map_err(|_| ErrorKind::Connect)?;
    // Small requests must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    if http2 {
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H2(sender))
    } else {
        Ok(Conn::H1(H1 {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(1024),
            closing: false,
        }))
    }
}

fn classify(e: &hyper::Error) -> ErrorKind {
    if e.is_parse() || e.is_parse_status() || e.is_user() {
        return ErrorKind::Protocol;
    }
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    // Closed, canceled, incomplete message, or an I/O error under it: the connection went.
    ErrorKind::Reset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_targets_unless_told() {
        assert!(resolve("127.0.0.1:8080", false).await.is_ok());
        assert!(
            resolve("[::1]:8080", false).await.is_ok()
                || std::net::TcpListener::bind("[::1]:0").is_err()
        );
        assert!(resolve("localhost:8080", false).await.is_ok());
        let err = resolve("10.1.2.3:80", false).await.expect_err("remote");
        assert!(err.to_string().contains("--allow-remote"), "{err}");
        assert!(
            resolve("10.1.2.3:80", true).await.is_ok(),
            "resolving sends nothing"
        );
    }

    /// A scenario's source address is where the server sees its connections come from.
    #[tokio::test]
    async fn connections_come_from_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("addr");
        let source: std::net::IpAddr = [127, 0, 0, 2].into();
        let (conn, accepted) = tokio::join!(connect(addr, false, Some(source)), listener.accept());
        assert!(conn.is_ok());
        assert_eq!(accepted.expect("accepted").1.ip(), source);
        let (_, plain) = tokio::join!(connect(addr, false, None), listener.accept());
        assert_eq!(
            plain.expect("accepted").1.ip(),
            std::net::IpAddr::from([127, 0, 0, 1])
        );
    }
}
