//! What `gauntlet demo` prints once everything is up: where each part listens, the UI's
//! pages, what the first burst of traffic did, and what to run next.

use gauntlet_dashboards::links;
use gauntlet_demo_system::traffic::{self, Intent, TrafficError};

use crate::RunningDemo;

/// The lines about where everything is.
pub fn running(demo: &RunningDemo) -> String {
    let h = &demo.handle;
    let looking = match &h.collector.api {
        Some(api) => format!(
            "{}   (the UI; map: {})",
            links::search(api),
            links::map(api)
        ),
        None => format!("the collector at {}", h.collector.otlp_http),
    };
    let mut out = format!(
        "gauntlet demo is running\n  gateway      {}/api/products\n  supervisor   {}/instances\n  telemetry    {looking}\n  handle       {}\n",
        h.gateway,
        h.supervisor,
        demo.handle_path.display()
    );
    if let Some(c) = &h.chaos {
        out += &format!(
            "  chaos        {}/proxies ({} proxies, Toxiproxy's API)\n",
            c.api,
            c.proxies.len()
        );
    }
    out
}

/// The lines about a burst of traffic: what it did, and one request to follow in the UI.
pub fn traffic(demo: &RunningDemo, burst: &Result<traffic::Report, TrafficError>) -> String {
    match burst {
        Ok(r) => {
            let mut out = format!(
                "traffic: {} product views, orders {}, {} orders' details, {} web pages \
                 (GraphQL), {} mobile product lists\n",
                r.product_views,
                r.summary(),
                r.details_views,
                r.page_views,
                r.mobile_views
            );
            if let (Some(api), Some(cid)) = (
                &demo.handle.collector.api,
                r.correlation_of(Intent::Declined),
            ) {
                out += &format!(
                    "  one request across services (a declined payment, compensated): {}\n",
                    links::correlation(api, cid)
                );
            }
            out
        }
        Err(e) => format!("traffic failed: {e}\n"),
    }
}

/// What to run next: commands that run from any directory (the binary and every file by
/// absolute path), for what this demo was started with.
pub fn next_steps(demo: &RunningDemo) -> String {
    let exe = quoted(&demo.exe);
    let handle = quoted(&demo.handle_path);
    let mut out = String::from("next:\n");
    let otlp = &demo.handle.collector.otlp_http;
    out += &format!(
        "  load it      {exe} load run {} --var gateway={} --otlp {otlp}\n",
        repo_file("loadgen/scenarios/demo.toml"),
        demo.handle.gateway
    );
    if demo.handle.chaos.is_some() {
        out += &format!(
            "  break it     {exe} chaos run {} --demo {handle}\n",
            repo_file("chaos/experiments/payments-slow.toml")
        );
    } else {
        out += "  break it     start the demo with --chaos: every edge gets a fault proxy\n";
    }
    if demo.provider_states {
        let orders = demo
            .handle
            .services
            .get("orders")
            .and_then(|u| u.first())
            .cloned()
            .unwrap_or_default();
        out += &format!(
            "  contracts    {exe} contracts verify --provider orders --base-url {orders} --pacts {}\n               (the provider-state routes are on: /_pact/provider-states)\n",
            repo_file("contracts/pacts")
        );
    } else {
        out += "  contracts    start the demo with --provider-states to verify its providers\n";
    }
    out += &format!(
        "  the handle   {handle} (every URL of this demo; `export GAUNTLET_DEMO={handle}` makes it chaos run's default)\n`cargo install --path .` puts gauntlet on your PATH. Press Ctrl-C to stop everything.\n"
    );
    out
}

/// A file of the repository this binary was built from, by absolute path when it is still
/// there (else as the repository names it).
fn repo_file(relative: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match root.join(relative).canonicalize() {
        Ok(path) => quoted(&path),
        Err(_) => relative.to_string(),
    }
}

/// A path as a shell reads it: quoted when it holds anything but plain characters.
fn quoted(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
