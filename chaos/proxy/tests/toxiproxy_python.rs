//! An existing Toxiproxy client, unchanged, against this proxy: the Python one
//! (`toxiproxy-python` from PyPI; `scripts/test.sh` installs it). It creates a proxy, adds a
//! latency toxic and sees it, takes the proxy down and up, resets and destroys.

use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SCRIPT: &str = r#"
import socket, sys, time
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
APIConsumer.host, APIConsumer.port = "127.0.0.1", int(sys.argv[1])
upstream = sys.argv[2]
server = Toxiproxy()
assert server.running()
assert b"version" in server.version()
proxy = server.create(upstream=upstream, name="orders_to_inventory_1")
host, port = proxy.listen.rsplit(":", 1)

def round_trip():
    t = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
    return time.monotonic() - t

assert round_trip() < 0.5
proxy.add_toxic(type="latency", attributes={"latency": 300, "jitter": 0})
assert set(proxy.toxics()) == {"latency_downstream"}, proxy.toxics()
assert proxy.get_toxic("latency_downstream").attributes["latency"] == 300
assert round_trip() >= 0.3
with proxy.down():
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        raise SystemExit("connected to a proxy that is down")
    except OSError:
        pass
server.reset()
assert server.get_proxy("orders_to_inventory_1").enabled
assert proxy.toxics() == {}
assert round_trip() < 0.5
proxy.destroy()
assert server.proxies() == {}
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_toxiproxy_client_works_unchanged() {
    let api = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api_port = api.local_addr().expect("addr").port();
    tokio::spawn(gauntlet_chaos_proxy::serve(
        api,
        Vec::new(),
        std::future::pending(),
    ));
    let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = echo.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &api_port.to_string(), &upstream])
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("task");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
