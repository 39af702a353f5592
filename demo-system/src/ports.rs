//! Ports the supervisor picks for its instances (`--ports auto`), held from the moment they
//! are picked until the instance listens on them, and again while a killed instance is down,
//! so no other process can take one in between: the race a port handed over by number after
//! release would leave open. The workspace forbids `unsafe`, so a listening socket cannot be
//! passed to the child; instead the supervisor holds the port with `SO_REUSEPORT` (bound, not
//! listening: it takes no connections) and the child binds it with `SO_REUSEPORT` too.
//!
//! A port is first found with a plain bind to port 0, which the kernel never answers with a
//! port someone holds, so two demos on one machine never share one.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

/// A loopback port held for an instance; dropping it lets the port go.
#[derive(Debug)]
pub struct HeldPort {
    pub addr: SocketAddr,
    _socket: TcpSocket,
}

fn shared_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// A free loopback port, held.
pub fn hold_free_port() -> std::io::Result<HeldPort> {
    let mut last = None;
    for _ in 0..100 {
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        // Between the probe's release and this bind another process may take the port:
        // then this bind fails and another port is tried.
        match shared_socket(addr) {
            Ok(socket) => {
                return Ok(HeldPort {
                    addr,
                    _socket: socket,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free loopback port")))
}

/// Holds `addr` again (its instance is going down or coming back), while it is free or only
/// held by our own instance.
pub fn hold(addr: SocketAddr) -> std::io::Result<HeldPort> {
    shared_socket(addr).map(|socket| HeldPort {
        addr,
        _socket: socket,
    })
}

/// The instance's listener on `addr`, which the supervisor may be holding.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    shared_socket(addr)?.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_port_is_taken_by_nobody_but_its_instance() {
        let held = hold_free_port().expect("a port");
        assert!(
            std::net::TcpListener::bind(held.addr).is_err(),
            "another process cannot take a held port"
        );
        let listener = listen(held.addr).expect("the instance listens on it");
        drop(held);
        // The instance keeps serving once the hold is gone.
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"));
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        assert!(accepted.is_ok() && connected.is_ok());
        assert!(
            std::net::TcpListener::bind(listener.local_addr().expect("addr")).is_err(),
            "nor one its instance listens on"
        );
    }

    #[test]
    fn free_ports_are_distinct_while_held() {
        let held: Vec<HeldPort> = (0..200)
            .map(|_| hold_free_port().expect("a port"))
            .collect();
        let mut ports: Vec<u16> = held.iter().map(|h| h.addr.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 200);
    }
}
