//! What to run: a scenario file (`gauntlet load run FILE.toml`) or a quick command line
//! (`gauntlet load URL ...`), checked and compiled into a [`Plan`] before any request is
//! sent. Every mistake is reported with the scenario and step it is in.

//!
//! # Layout
//! - [`file`]: the file's types, as written; [`schedule`]: the executors and their maths;
//! - [`plan`]: the checked, compiled run; [`compile`]: file or flags → plan, every check.

mod compile;
pub mod file;
pub mod plan;
pub mod schedule;

pub use compile::{Quick, check_url};
pub use file::*;
pub use http::Method as HttpMethod;
pub use plan::*;
pub use schedule::*;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid scenario file: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid(msg.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn plan(toml_text: &str) -> Result<Plan, ScenarioError> {
        Plan::compile(
            toml::from_str(toml_text).map_err(|e| invalid(e.to_string()))?,
            &[],
        )
    }

    #[test]
    fn a_source_address_must_be_an_address() {
        let file = |a: &str| {
            format!(
                "[[scenarios]]\nname = \"s\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nsource_address = \"{a}\"\n[[scenarios.flows]]\n[[scenarios.flows.steps]]\nurl = \"http://127.0.0.1:1/\"\n"
            )
        };
        let ok = plan(&file("127.0.0.2")).expect("an address");
        let one = ok.scenarios[0].source.expect("a source");
        assert_eq!(one.for_vu(7), std::net::IpAddr::from([127, 0, 0, 2]));
        let crowd = plan(&file("127.0.0.254-127.0.1.1")).expect("a range");
        let crowd = crowd.scenarios[0].source.expect("a source");
        let vus: Vec<std::net::IpAddr> = (0..5).map(|i| crowd.for_vu(i)).collect();
        let ip = |d: u8, e: u8| std::net::IpAddr::from([127, 0, d, e]);
        assert_eq!(
            vus,
            [ip(0, 254), ip(0, 255), ip(1, 0), ip(1, 1), ip(0, 254)]
        );
        for (bad, says) in [
            (
                "localhost",
                "source_address \"localhost\" is not an IP address",
            ),
            ("127.0.0.9-127.0.0.2", "first address is above its last"),
            ("::1-::2", "a range is of IPv4 addresses"),
            ("127.0.0.1-127.2.0.0", "at most 65536"),
        ] {
            let err = plan(&file(bad)).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn open_model_schedules_follow_the_rate_and_the_ramp() {
        let c = Executor::ConstantArrivalRate {
            per_second: 200.0,
            duration: Duration::from_secs(1),
            max_vus: 4,
        };
        assert_eq!(c.intended_start(100), Some(Duration::from_millis(500)));
        assert_eq!(c.intended_start(200), None, "past the end");
        // 0 → 100/s over 10 s: 500 iterations in all; the 125th starts at 5 s.
        let r = Executor::RampingArrivalRate {
            start_per_second: 0.0,
            stages: vec![Stage {
                duration: Duration::from_secs(10),
                target: 100.0,
            }],
            max_vus: 10,
        };
        let t = r.intended_start(125).expect("within").as_secs_f64();
        assert!((t - 5.0).abs() < 1e-6, "{t}");
        assert_eq!(r.intended_start(500), None);
        let ramp = Executor::RampingVus {
            start_vus: 0,
            stages: vec![
                Stage {
                    duration: Duration::from_secs(10),
                    target: 10.0,
                },
                Stage {
                    duration: Duration::from_secs(10),
                    target: 0.0,
                },
            ],
        };
        assert_eq!(ramp.active_vus(Duration::from_secs(5)), 5);
        assert_eq!(ramp.active_vus(Duration::from_secs(15)), 5);
        assert_eq!(ramp.max_vus(), 10);
    }

    #[test]
    fn a_scenario_file_compiles_and_mistakes_name_their_place() {
        let good = r#"
            [vars]
            base = "http://127.0.0.1:9"
            [thresholds]
            all = ["p99 < 300ms"]
            "request:login" = ["error_rate < 0.01"]
            [[scenarios]]
            name = "shop"
            executor = "constant-arrival-rate"
            rate = 10
            duration = "2s"
            [[scenarios.setup]]
            name = "login"
            method = "POST"
            url = "{{base}}/token"
            capture = { token = "/access_token" }
            [[scenarios.flows]]
            weight = 3
            [[scenarios.flows.steps]]
            url = "{{base}}/products"
            headers = { authorization = "Bearer {{token}}" }
            checks = [{ status = 200 }, { json = "/0/sku", exists = true }]
        "#;
        let p = plan(good).expect("compiles");
        assert_eq!(p.names, ["login", "GET {{base}}/products"]);
        assert_eq!(p.thresholds.len(), 2);
        assert!(p.scenarios[0].executor.is_open());
        assert_eq!(p.duration(), Some(Duration::from_secs(2)));

        let cases = [
            (good.replace("{{token}}", "{{tokn}}"), "tokn"),
            (good.replace("rate = 10\n", ""), "needs `rate`"),
            (good.replace("\"2s\"", "\"two seconds\""), "not a duration"),
            (
                good.replace("\"request:login\"", "\"request:logout\""),
                "request:NAME",
            ),
            (good.replace("p99 < 300ms", "p99 300ms"), "METRIC OP VALUE"),
            (
                good.replace("status = 200", "status = 200, body_contains = \"x\""),
                "exactly one",
            ),
            (
                good.replace("\"/access_token\"", "\"access_token\""),
                "JSON pointer",
            ),
            (
                good.replace("{{base}}/token", "https://example.com/token"),
                "https",
            ),
        ];
        for (text, needle) in cases {
            let err = plan(&text).expect_err(needle).to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn quick_mode_refuses_what_cannot_be_run() {
        let q = Quick {
            url: "http://127.0.0.1:1/".into(),
            method: http::Method::GET,
            headers: vec![],
            body: None,
            connections: 2,
            rate: None,
            duration: Duration::from_secs(1),
            requests: None,
            timeout: Duration::from_secs(1),
            http2: false,
            thresholds: vec![],
        };
        assert!(Plan::quick(q.clone()).is_ok());
        let bad = |q: Quick| Plan::quick(q).expect_err("refused").to_string();
        assert!(
            bad(Quick {
                url: "127.0.0.1:1".into(),
                ..q.clone()
            })
            .contains("http://")
        );
        assert!(
            bad(Quick {
                rate: Some(0.0),
                ..q.clone()
            })
            .contains("-r")
        );
        assert!(
            bad(Quick {
                rate: Some(5.0),
                requests: Some(3),
                ..q.clone()
            })
            .contains("-n")
        );
        assert!(
            bad(Quick {
                connections: 0,
                ..q
            })
            .contains("-c")
        );
    }
}
