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
                "traffic: {} product views, orders {}\n",
                r.product_views,
                r.summary()
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

/// What to run next.
pub fn next_steps(demo: &RunningDemo) -> String {
    // The scenario reads the gateway from <data-dir>/demo.json; from elsewhere, say where.
    format!(
        "load it:  gauntlet load run loadgen/scenarios/demo.toml --var gateway={}\nPress Ctrl-C to stop everything.\n",
        demo.handle.gateway
    )
}
