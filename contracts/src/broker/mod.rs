//! A Pact Broker: the part of its HTTP API that the Pact tools use, stored in SQLite. The
//! HAL index and its relations; publishing pacts per consumer version; branches and tags;
//! "pacts for verification" with consumer version selectors, pending and WIP pacts;
//! verification results; environments and deployments; can-i-deploy. Links are absolute,
//! built from the request's `Host`, as the Pact clients follow them.
//!
//! [`store`] the database · [`select`] pacts for verification · [`matrix`] can-i-deploy ·
//! [`auth`] who may read and write · [`client`] the same API from a publisher's or
//! deployer's side. Every request's cost is bounded by [`Limits`].

pub mod auth;
pub mod client;
pub mod matrix;
pub mod select;
pub mod store;

use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use store::{Environment, Store};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("broker storage error: {0}")]
    Storage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the broker's limit of {limit} bytes (--max-body)")]
    TooLarge { limit: usize },
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        let status = match &self {
            BrokerError::NotFound(_) => StatusCode::NOT_FOUND,
            BrokerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            BrokerError::Conflict(_) => StatusCode::CONFLICT,
            BrokerError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BrokerError::Db(_) | BrokerError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, hal(json!({"error": self.to_string()}))).into_response()
    }
}

/// What one request may cost the broker.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of a request body (a pact file, most often).
    pub max_body: usize,
    /// Contracts in one `/contracts/publish`.
    pub max_contracts: usize,
    /// Consumer version selectors in one request for pacts to verify.
    pub max_selectors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 4 << 20,
            max_contracts: 100,
            max_selectors: 50,
        }
    }
}

/// The broker's state: its database, used on blocking threads only, and its limits.
#[derive(Clone, Debug)]
pub struct Broker {
    store: Arc<Mutex<Store>>,
    limits: Limits,
}

impl Broker {
    pub fn open(dir: &std::path::Path) -> Result<Self, BrokerError> {
        Ok(Self {
            store: Arc::new(Mutex::new(Store::open(dir)?)),
            limits: Limits::default(),
        })
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A JSON body, or why not: too large (`413`, naming the limit) or not the JSON asked
    /// for (`400`; serde_json refuses nesting past 128 levels too).
    fn body<T>(&self, body: Result<Json<T>, JsonRejection>) -> Result<T, BrokerError> {
        match body {
            Ok(Json(t)) => Ok(t),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(BrokerError::TooLarge {
                limit: self.limits.max_body,
            }),
            Err(e) => Err(BrokerError::BadRequest(e.body_text())),
        }
    }

    /// Runs `f` with the database on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, BrokerError> + Send + 'static,
    ) -> Result<T, BrokerError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| BrokerError::Storage(format!("the database task failed: {e}")))?
    }
}

/// Every route of the broker, open to anyone.
pub fn router(broker: Broker) -> Router {
    guarded_router(broker, auth::Credentials::default())
}

/// Every route of the broker, behind `credentials` (none: open to anyone), each request
/// body within the broker's limit.
pub fn guarded_router(broker: Broker, credentials: auth::Credentials) -> Router {
    let max_body = broker.limits.max_body;
    routes(broker)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(credentials),
            auth::guard,
        ))
}

fn routes(broker: Broker) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/pacts/provider/{provider}/consumer/{consumer}/version/{version}",
            put(publish).get(pact_of_version),
        )
        .route(
            "/pacts/provider/{provider}/consumer/{consumer}/pact-version/{sha}",
            get(pact_of_sha),
        )
        .route(
            "/pacts/provider/{provider}/consumer/{consumer}/pact-version/{sha}/verification-results",
            post(publish_verification),
        )
        .route(
            "/pacts/provider/{provider}/for-verification",
            get(for_verification_links).post(for_verification),
        )
        .route("/contracts/publish", post(publish_contracts))
        .route("/pacticipants/{name}", get(pacticipant))
        .route("/pacticipants/{name}/versions/{version}", get(pacticipant_version))
        .route(
            "/pacticipants/{name}/versions/{version}/tags/{tag}",
            put(tag_version),
        )
        .route(
            "/pacticipants/{name}/branches/{branch}/versions/{version}",
            put(branch_version),
        )
        .route(
            "/pacticipants/{name}/versions/{version}/deployed-versions/environment/{uuid}",
            post(record_deployment),
        )
        .route("/environments", get(environments).post(create_environment))
        .route("/can-i-deploy", get(can_i_deploy))
        .route("/matrix", get(matrix_query))
        .with_state(broker)
}

fn hal(body: Value) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/hal+json")], Json(body))
}

/// `http://HOST` of the request: the base of every link.
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn index(headers: HeaderMap) -> impl IntoResponse {
    let b = base(&headers);
    let link = |href: String, title: &str, templated: bool| json!({"href": href, "title": title, "templated": templated});
    hal(json!({
        "_links": {
            "self": link(b.clone(), "Index", false),
            "pb:publish-contracts": link(format!("{b}/contracts/publish"), "Publish contracts", false),
            "pb:publish-pact": link(format!("{b}/pacts/provider/{{provider}}/consumer/{{consumer}}/version/{{consumerApplicationVersion}}"), "Publish a pact", true),
            "pb:provider-pacts-for-verification": link(format!("{b}/pacts/provider/{{provider}}/for-verification"), "Pacts to be verified by a provider", true),
            "pb:pacticipant": link(format!("{b}/pacticipants/{{pacticipant}}"), "Fetch pacticipant by name", true),
            "pb:pacticipant-version-tag": link(format!("{b}/pacticipants/{{pacticipant}}/versions/{{version}}/tags/{{tag}}"), "Tag a pacticipant version", true),
            "pb:pacticipant-branch-version": link(format!("{b}/pacticipants/{{pacticipant}}/branches/{{branch}}/versions/{{version}}"), "Add a version to a branch", true),
            "pb:environments": link(format!("{b}/environments"), "Environments", false),
            "pb:can-i-deploy-pacticipant-version-to-environment": link(format!("{b}/can-i-deploy?pacticipant={{pacticipant}}&version={{version}}&environment={{environment}}"), "Can a version be deployed to an environment", true),
        }
    }))
}

/// The pact with the links a verifier follows.
fn pact_document(b: &str, provider: &str, consumer: &str, sha: &str, mut content: Value) -> Value {
    let pact_url = format!(
        "{b}/pacts/provider/{}/consumer/{}/pact-version/{sha}",
        enc(provider),
        enc(consumer)
    );
    if let Some(obj) = content.as_object_mut() {
        obj.insert(
            "_links".into(),
            json!({
                "self": {"href": pact_url, "title": format!("Pact between {consumer} and {provider}")},
                "pb:provider": {"href": format!("{b}/pacticipants/{}", enc(provider)), "name": provider},
                "pb:consumer": {"href": format!("{b}/pacticipants/{}", enc(consumer)), "name": consumer},
                "pb:publish-verification-results": {"href": format!("{pact_url}/verification-results"), "title": "Publish verification results"},
            }),
        );
    }
    content
}

#[derive(Deserialize)]
struct PactHeader {
    consumer: Name,
    provider: Name,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

async fn publish(
    State(broker): State<Broker>,
    Path((provider, consumer, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, BrokerError> {
    let content = broker.body(body).map_err(|e| match e {
        BrokerError::BadRequest(m) => BrokerError::BadRequest(format!("the pact is not JSON: {m}")),
        other => other,
    })?;
    let names: PactHeader = serde_json::from_value(content.clone()).map_err(|e| {
        BrokerError::BadRequest(format!("the pact has no consumer and provider names: {e}"))
    })?;
    if names.consumer.name != consumer || names.provider.name != provider {
        return Err(BrokerError::BadRequest(format!(
            "the pact is between {} and {}, but was published as between {consumer} and {provider}",
            names.consumer.name, names.provider.name
        )));
    }
    let b = base(&headers);
    let (p, c) = (provider.clone(), consumer.clone());
    let stored = content.clone();
    let (sha, changed) = broker
        .with(move |s| s.publish(&c, &version, &p, &stored))
        .await?;
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        hal(pact_document(&b, &provider, &consumer, &sha, content)),
    )
        .into_response())
}

async fn pact_of_version(
    State(broker): State<Broker>,
    Path((provider, consumer, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, BrokerError> {
    let (p, c) = (provider.clone(), consumer.clone());
    let found = broker
        .with(move |s| {
            let Some(publication) = s
                .publications(Some(&p))?
                .into_iter()
                .find(|x| x.consumer == c && x.consumer_version == version)
            else {
                return Ok(None);
            };
            Ok(s.content(&publication.sha)?
                .map(|content| (publication.sha, content)))
        })
        .await?;
    let (sha, content) = found.ok_or_else(|| {
        BrokerError::NotFound(format!(
            "no pact between {consumer} and {provider} for that version"
        ))
    })?;
    Ok(hal(pact_document(
        &base(&headers),
        &provider,
        &consumer,
        &sha,
        content,
    ))
    .into_response())
}

async fn pact_of_sha(
    State(broker): State<Broker>,
    Path((provider, consumer, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, BrokerError> {
    let key = sha.clone();
    let content = broker
        .with(move |s| s.content(&key))
        .await?
        .ok_or_else(|| BrokerError::NotFound(format!("no pact version {sha}")))?;
    Ok(hal(pact_document(
        &base(&headers),
        &provider,
        &consumer,
        &sha,
        content,
    ))
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationBody {
    success: bool,
    provider_application_version: String,
}

async fn publish_verification(
    State(broker): State<Broker>,
    Path((provider, consumer, sha)): Path<(String, String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, BrokerError> {
    let raw = broker.body(body)?;
    let v: VerificationBody = serde_json::from_value(raw.clone()).map_err(|e| {
        BrokerError::BadRequest(format!(
            "a verification result needs success and providerApplicationVersion: {e}"
        ))
    })?;
    let key = sha.clone();
    let id = broker
        .with(move |s| {
            if s.content(&key)?.is_none() {
                return Err(BrokerError::NotFound(format!("no pact version {key}")));
            }
            s.verify(
                &key,
                &provider,
                &v.provider_application_version,
                v.success,
                &raw,
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        hal(json!({"id": id, "consumer": consumer, "pactVersion": sha})),
    )
        .into_response())
}

async fn for_verification_links(
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let href = format!(
        "{}/pacts/provider/{}/for-verification",
        base(&headers),
        enc(&provider)
    );
    hal(
        json!({"_links": {"self": {"href": href, "title": format!("Pacts to be verified by {provider}")}}}),
    )
}

async fn for_verification(
    State(broker): State<Broker>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Result<Json<select::ForVerification>, JsonRejection>,
) -> Result<Response, BrokerError> {
    let req = broker.body(body)?;
    if req.consumer_version_selectors.len() > broker.limits.max_selectors {
        return Err(BrokerError::BadRequest(format!(
            "{} consumer version selectors: a request may have {} at most",
            req.consumer_version_selectors.len(),
            broker.limits.max_selectors
        )));
    }
    let b = base(&headers);
    let p = provider.clone();
    let chosen = broker
        .with(move |s| {
            if !s.pacticipant_exists(&p)? {
                return Err(BrokerError::NotFound(format!(
                    "the broker knows no pacticipant {p}"
                )));
            }
            select::for_verification(s, &p, &req)
        })
        .await?;
    let pacts: Vec<Value> = chosen
        .iter()
        .map(|c| {
            let pb = &c.publication;
            let href = format!(
                "{b}/pacts/provider/{}/consumer/{}/pact-version/{}",
                enc(&provider),
                enc(&pb.consumer),
                pb.sha
            );
            let why = c.why.join("; ");
            let mut notices = vec![json!({
                "when": "before_verification",
                "text": format!("The pact at {href} is being verified because it matches: {why}")
            })];
            if c.pending {
                notices.push(json!({
                    "when": "before_verification",
                    "text": "This pact is in pending state: its failure will not fail the verification"
                }));
            }
            json!({
                "shortDescription": why,
                "verificationProperties": {"pending": c.pending, "wip": c.wip, "notices": notices},
                "_links": {"self": {"href": href, "name": format!("Pact between {} ({}) and {provider}", pb.consumer, pb.consumer_version)}}
            })
        })
        .collect();
    Ok(hal(json!({
        "_embedded": {"pacts": pacts},
        "_links": {"self": {"href": format!("{b}/pacts/provider/{}/for-verification", enc(&provider))}}
    }))
    .into_response())
}

async fn pacticipant(
    State(broker): State<Broker>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, BrokerError> {
    let n = name.clone();
    let main = broker
        .with(move |s| {
            if !s.pacticipant_exists(&n)? {
                return Err(BrokerError::NotFound(format!(
                    "the broker knows no pacticipant {n}"
                )));
            }
            s.main_branch(&n)
        })
        .await?;
    let b = format!("{}/pacticipants/{}", base(&headers), enc(&name));
    Ok(hal(json!({
        "name": name,
        "mainBranch": main,
        "_links": {
            "self": {"href": b},
            "pb:version-tag": {"href": format!("{b}/versions/{{version}}/tags/{{tag}}"), "templated": true},
            "pb:branch-version": {"href": format!("{b}/branches/{{branch}}/versions/{{version}}"), "templated": true},
        }
    }))
    .into_response())
}

async fn tag_version(
    State(broker): State<Broker>,
    Path((name, version, tag)): Path<(String, String, String)>,
) -> Result<Response, BrokerError> {
    let (n, v, t) = (name.clone(), version.clone(), tag.clone());
    broker.with(move |s| s.add_tag(&n, &v, &t)).await?;
    Ok((
        StatusCode::CREATED,
        hal(json!({"name": tag, "version": version, "pacticipant": name})),
    )
        .into_response())
}

async fn branch_version(
    State(broker): State<Broker>,
    Path((name, branch, version)): Path<(String, String, String)>,
) -> Result<Response, BrokerError> {
    let (n, b, v) = (name.clone(), branch.clone(), version.clone());
    broker.with(move |s| s.add_branch(&n, &v, &b)).await?;
    Ok((
        StatusCode::CREATED,
        hal(json!({"branch": branch, "version": version, "pacticipant": name})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewEnvironment {
    name: String,
    display_name: Option<String>,
    #[serde(default)]
    production: bool,
}

async fn create_environment(
    State(broker): State<Broker>,
    body: Result<Json<NewEnvironment>, JsonRejection>,
) -> Result<Response, BrokerError> {
    let e = broker.body(body)?;
    if e.name.is_empty() || e.name.contains(char::is_whitespace) {
        return Err(BrokerError::BadRequest(
            "an environment name is one word, e.g. production".into(),
        ));
    }
    let env = Environment {
        uuid: uuid::Uuid::now_v7().to_string(),
        name: e.name,
        display_name: e.display_name,
        production: e.production,
    };
    let stored = env.clone();
    broker.with(move |s| s.create_environment(&stored)).await?;
    Ok((StatusCode::CREATED, hal(environment_json(&env))).into_response())
}

fn environment_json(e: &Environment) -> Value {
    json!({"uuid": e.uuid, "name": e.name, "displayName": e.display_name, "production": e.production})
}

async fn environments(State(broker): State<Broker>) -> Result<Response, BrokerError> {
    let all = broker.with(|s| s.environments()).await?;
    let list: Vec<Value> = all.iter().map(environment_json).collect();
    Ok(hal(json!({"_embedded": {"environments": list}})).into_response())
}

async fn record_deployment(
    State(broker): State<Broker>,
    Path((name, version, uuid)): Path<(String, String, String)>,
) -> Result<Response, BrokerError> {
    let (n, v) = (name.clone(), version.clone());
    let env = broker
        .with(move |s| {
            let env = s
                .environment(&uuid)?
                .ok_or_else(|| BrokerError::NotFound(format!("no environment {uuid}")))?;
            s.deploy(&n, &v, &env.uuid)?;
            Ok(env)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        hal(json!({"pacticipant": name, "version": version, "environment": environment_json(&env), "currentlyDeployed": true})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct CanIDeployQuery {
    pacticipant: String,
    version: String,
    environment: Option<String>,
}

async fn can_i_deploy(
    State(broker): State<Broker>,
    query: Result<Query<CanIDeployQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, BrokerError> {
    let Query(q) = query.map_err(|e| {
        BrokerError::BadRequest(format!(
            "can-i-deploy takes ?pacticipant=NAME&version=V[&environment=ENV]: {}",
            e.body_text()
        ))
    })?;
    let answer = broker
        .with(move |s| {
            matrix::can_i_deploy(
                s,
                &q.pacticipant,
                &q.version,
                q.environment.as_deref().filter(|e| !e.is_empty()),
            )
        })
        .await?;
    Ok(
        hal(serde_json::to_value(answer).map_err(|e| BrokerError::Storage(e.to_string()))?)
            .into_response(),
    )
}

/// `GET /matrix?q[][pacticipant]=NAME&q[][version]=V&latestby=cvp[&environment=ENV]`, as
/// the Pact CLI's can-i-deploy asks it: the same answer as `/can-i-deploy`.
async fn matrix_query(
    State(broker): State<Broker>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, BrokerError> {
    let mut pacticipant = None;
    let mut version = None;
    let mut environment = None;
    for pair in raw.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        match decode(k).as_str() {
            "q[][pacticipant]" if pacticipant.is_none() => pacticipant = Some(decode(v)),
            "q[][version]" if version.is_none() => version = Some(decode(v)),
            "environment" => environment = Some(decode(v)).filter(|e| !e.is_empty()),
            _ => {}
        }
    }
    let (Some(p), Some(v)) = (pacticipant, version) else {
        return Err(BrokerError::BadRequest(
            "the matrix takes q[][pacticipant]=NAME&q[][version]=V[&environment=ENV]".into(),
        ));
    };
    let answer = broker
        .with(move |s| matrix::can_i_deploy(s, &p, &v, environment.as_deref()))
        .await?;
    Ok(
        hal(serde_json::to_value(answer).map_err(|e| BrokerError::Storage(e.to_string()))?)
            .into_response(),
    )
}

/// `POST /contracts/publish`: what the Pact CLI's `publish` sends, a consumer version's
/// pacts (base64 JSON) with its branch and tags.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishContracts {
    pacticipant_name: String,
    pacticipant_version_number: String,
    branch: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    contracts: Vec<Contract>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contract {
    consumer_name: String,
    provider_name: String,
    specification: String,
    content: String,
    /// `overwrite` (the default) or `merge`: add these interactions to the pact already
    /// published for this version (tests split over several CI nodes).
    #[serde(default, alias = "onConflict")]
    write_mode: Option<String>,
}

async fn publish_contracts(
    State(broker): State<Broker>,
    headers: HeaderMap,
    body: Result<Json<PublishContracts>, JsonRejection>,
) -> Result<Response, BrokerError> {
    let req = broker.body(body)?;
    if req.contracts.len() > broker.limits.max_contracts {
        return Err(BrokerError::BadRequest(format!(
            "{} contracts in one publication: a request may have {} at most",
            req.contracts.len(),
            broker.limits.max_contracts
        )));
    }
    let pacts = req
        .contracts
        .iter()
        .map(|c| c.checked(&req.pacticipant_name))
        .collect::<Result<Vec<_>, _>>()?;
    let (c, v) = (
        req.pacticipant_name.clone(),
        req.pacticipant_version_number.clone(),
    );
    let (branch, tags) = (req.branch.clone(), req.tags.clone());
    let published = broker
        .with(move |s| store_publication(s, &c, &v, pacts, branch.as_deref(), &tags))
        .await?;
    Ok(hal(published_answer(&base(&headers), &req, &published)).into_response())
}

/// A pact to publish: its provider, its content and whether it merges into the one already
/// published for this version.
struct Checked {
    provider: String,
    content: Value,
    merge: bool,
}

impl Contract {
    /// The contract decoded and checked: a pact, of the version's pacticipant, base64 JSON,
    /// written in a mode the broker knows.
    fn checked(&self, pacticipant: &str) -> Result<Checked, BrokerError> {
        use base64::Engine;
        if self.specification != "pact" {
            return Err(BrokerError::BadRequest(format!(
                "only pacts can be published here, not {:?}",
                self.specification
            )));
        }
        if self.consumer_name != pacticipant {
            return Err(BrokerError::BadRequest(format!(
                "a contract of {} cannot be published as a version of {pacticipant}",
                self.consumer_name
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.content)
            .map_err(|e| {
                BrokerError::BadRequest(format!("a contract's content is not base64: {e}"))
            })?;
        let content: Value = serde_json::from_slice(&bytes)
            .map_err(|e| BrokerError::BadRequest(format!("a contract is not JSON: {e}")))?;
        let merge = match self.write_mode.as_deref() {
            None | Some("overwrite") => false,
            Some("merge") => true,
            Some(other) => {
                return Err(BrokerError::BadRequest(format!(
                    "writeMode {other:?}: use overwrite or merge"
                )));
            }
        };
        Ok(Checked {
            provider: self.provider_name.clone(),
            content,
            merge,
        })
    }
}

/// Stores the pacts of consumer version `v` (merged where asked) with its branch and tags;
/// returns each provider with its pact's SHA and whether the content changed.
fn store_publication(
    s: &Store,
    c: &str,
    v: &str,
    pacts: Vec<Checked>,
    branch: Option<&str>,
    tags: &[String],
) -> Result<Vec<(String, String, bool)>, BrokerError> {
    let mut out = Vec::new();
    for Checked {
        provider,
        mut content,
        merge,
    } in pacts
    {
        if merge {
            let before = s
                .publications(Some(&provider))?
                .into_iter()
                .find(|p| p.consumer == c && p.consumer_version == v);
            if let Some(before) = before
                && let Some(old) = s.content(&before.sha)?
            {
                content = merged(old, content);
            }
        }
        let (sha, changed) = s.publish(c, v, &provider, &content)?;
        out.push((provider, sha, changed));
    }
    if let Some(branch) = branch {
        s.add_branch(c, v, branch)?;
    }
    for t in tags {
        s.add_tag(c, v, t)?;
    }
    Ok(out)
}

/// The broker's answer to a publication, as the Pact CLI reads it: notices (and the older
/// `logs`), the pacticipant, the version and links to each contract and tag.
fn published_answer(
    b: &str,
    req: &PublishContracts,
    published: &[(String, String, bool)],
) -> Value {
    let (consumer, version) = (&req.pacticipant_name, &req.pacticipant_version_number);
    let said: Vec<String> = published
        .iter()
        .map(|(provider, _, changed)| {
            let what = if *changed {
                "published"
            } else {
                "unchanged (the same content again)"
            };
            format!("Pact for {consumer} version {version} and provider {provider} {what}.")
        })
        .collect();
    // `logs` is the older form of `notices`; clients still read both.
    let logs: Vec<Value> = said
        .iter()
        .map(
            |m| json!({"level": "info", "message": m, "deprecationWarning": "Replaced by notices"}),
        )
        .collect();
    let notices: Vec<Value> = said
        .iter()
        .map(|m| json!({"type": "success", "text": m}))
        .collect();
    let pacticipant = format!("{b}/pacticipants/{}", enc(consumer));
    let version_url = format!("{pacticipant}/versions/{}", enc(version));
    let contracts: Vec<Value> = published
        .iter()
        .map(|(provider, sha, _)| {
            json!({
                "title": "Pact",
                "name": format!("Pact between {consumer} ({version}) and {provider}"),
                "href": format!("{b}/pacts/provider/{}/consumer/{}/pact-version/{sha}", enc(provider), enc(consumer)),
            })
        })
        .collect();
    let tag_links: Vec<Value> = req
        .tags
        .iter()
        .map(|t| json!({"title": "Tag", "name": t, "href": format!("{version_url}/tags/{}", enc(t))}))
        .collect();
    json!({
        "logs": logs,
        "notices": notices,
        "_embedded": {
            "pacticipant": {"name": consumer, "_links": {"self": {"href": pacticipant}}},
            "version": {
                "number": version,
                "branch": req.branch,
                "_links": {"self": {"title": "Version", "name": version, "href": version_url}},
            },
        },
        "_links": {
            "pb:pacticipant": {"title": "Pacticipant", "name": consumer, "href": pacticipant},
            "pb:pacticipant-version": {"title": "Pacticipant version", "name": version, "href": version_url},
            "pb:pacticipant-version-tags": tag_links,
            "pb:contracts": contracts,
        },
    })
}

/// `new`'s interactions added to `old`'s, those with the same description replaced.
fn merged(mut old: Value, new: Value) -> Value {
    let incoming = new
        .get("interactions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(list) = old.get_mut("interactions").and_then(Value::as_array_mut) {
        for i in incoming {
            let same = |x: &Value| x.get("description") == i.get("description");
            match list.iter_mut().find(|x| same(x)) {
                Some(slot) => *slot = i,
                None => list.push(i),
            }
        }
        old
    } else {
        new
    }
}

/// `GET /pacticipants/{name}/versions/{version}`: its branches and tags.
async fn pacticipant_version(
    State(broker): State<Broker>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, BrokerError> {
    let (n, v) = (name.clone(), version.clone());
    let (branches, tags) = broker
        .with(move |s| {
            if !s.version_exists(&n, &v)? {
                return Err(BrokerError::NotFound(format!(
                    "the broker knows no version {v} of {n}"
                )));
            }
            Ok((s.branches(&n, &v)?, s.tags(&n, &v)?))
        })
        .await?;
    let href = format!(
        "{}/pacticipants/{}/versions/{}",
        base(&headers),
        enc(&name),
        enc(&version)
    );
    Ok(hal(json!({
        "number": version,
        "branchVersions": branches.iter().map(|b| json!({"name": b})).collect::<Vec<_>>(),
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "_links": {"self": {"href": href}},
    }))
    .into_response())
}
