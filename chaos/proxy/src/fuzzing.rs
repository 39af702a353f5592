//! The entry point the fuzz target `toxiproxy_api` (`fuzz/`, cargo fuzz on nightly) drives,
//! and `tests/fuzz_corpus.rs` replays on stable: a request body of the Toxiproxy API through
//! the parsing and checks its handlers run before they touch a proxy. Whatever the body,
//! each must answer (a 400 is an answer); a panic, a hang or unbounded memory is a bug.

use crate::model::{
    ApiError, Attributes, HttpMatch, NewProxy, NewToxic, ProxyUpdate, TYPES, Toxic, ToxicUpdate,
};

/// The first byte picks the route (create a proxy, populate, update a proxy, add a toxic,
/// update a toxic); the rest is the body.
pub fn api_body(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    match route % 5 {
        0 => drop(serde_json::from_slice::<NewProxy>(body)),
        1 => drop(serde_json::from_slice::<Vec<NewProxy>>(body)),
        2 => drop(serde_json::from_slice::<ProxyUpdate>(body)),
        3 => {
            if let Ok(Ok(toxic)) =
                serde_json::from_slice::<NewToxic>(body).map(NewToxic::into_toxic)
            {
                shown_as_itself(&toxic);
            }
        }
        _ => {
            if let Ok(update) = serde_json::from_slice::<ToxicUpdate>(body) {
                for kind in TYPES {
                    if let Ok(toxic) = fresh(kind).and_then(|t| t.updated(update.clone())) {
                        shown_as_itself(&toxic);
                    }
                }
            }
        }
    }
}

/// A toxic of `kind` with its attributes' defaults, as `POST .../toxics {"type": kind}`.
fn fresh(kind: &str) -> Result<Toxic, ApiError> {
    NewToxic {
        name: None,
        kind: kind.to_string(),
        stream: None,
        toxicity: None,
        attributes: serde_json::Value::Null,
    }
    .into_toxic()
}

/// What the API shows of an accepted toxic reads back as the same toxic (clients `GET` a
/// toxic, change a field and send it back), and an HTTP fault's matching answers.
fn shown_as_itself(toxic: &Toxic) {
    let shown = serde_json::to_string(toxic).expect("a toxic serializes");
    let back: Toxic = serde_json::from_str(&shown)
        .unwrap_or_else(|e| panic!("{shown} was accepted but does not read back: {e}"));
    assert_eq!(&back, toxic, "{shown} reads back as another toxic");
    if let Attributes::HttpAbort { matching, .. } | Attributes::HttpDelay { matching, .. } =
        &toxic.attributes
    {
        let _ = matches(matching);
    }
}

fn matches(m: &HttpMatch) -> bool {
    m.matches("POST", "/payments/authorize", |name| {
        name.eq_ignore_ascii_case("x-chaos")
            .then(|| "on".to_string())
    })
}
