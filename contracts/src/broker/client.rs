//! The broker's HTTP API from the other side: publishing pacts (with branch and tags),
//! environments, deployments and can-i-deploy, as `gauntlet contracts` calls them. It
//! speaks the Pact Broker's documented API, so it works against a Pact Broker too.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::matrix::Answer;
use crate::{ContractsError, PactFile};

/// How a client proves who it is to a broker: as the Pact CLI does, basic auth or a bearer
/// token (`PACT_BROKER_USERNAME`/`PACT_BROKER_PASSWORD`, `PACT_BROKER_TOKEN`).
#[derive(Clone, Default)]
pub enum BrokerLogin {
    #[default]
    None,
    Basic {
        username: String,
        password: String,
    },
    Token(String),
}

impl std::fmt::Debug for BrokerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: a debug print must not leak it into a log.
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
            Self::Token(_) => f.write_str("Token(..)"),
        }
    }
}

impl BrokerLogin {
    /// From a client's flags: a token wins over a username; a username needs a password.
    pub fn from_parts(
        username: Option<String>,
        password: Option<String>,
        token: Option<String>,
    ) -> Result<Self, ContractsError> {
        match (username, password, token) {
            (_, _, Some(token)) => Ok(Self::Token(token)),
            (Some(username), Some(password), None) => Ok(Self::Basic { username, password }),
            (Some(_), None, None) => Err(ContractsError::Usage(
                "--broker-username needs --broker-password (or PACT_BROKER_PASSWORD)".into(),
            )),
            (None, Some(_), None) => Err(ContractsError::Usage(
                "--broker-password needs --broker-username (or PACT_BROKER_USERNAME)".into(),
            )),
            (None, None, None) => Ok(Self::None),
        }
    }

    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Self::None => req,
            Self::Basic { username, password } => req.basic_auth(username, Some(password)),
            Self::Token(token) => req.bearer_auth(token),
        }
    }

    /// The same login as `pact_verifier` takes it.
    pub fn http_auth(&self) -> Option<pact_models::http_utils::HttpAuth> {
        use pact_models::http_utils::HttpAuth;
        match self {
            Self::None => None,
            Self::Basic { username, password } => {
                Some(HttpAuth::User(username.clone(), Some(password.clone())))
            }
            Self::Token(token) => Some(HttpAuth::Token(token.clone())),
        }
    }
}

/// A broker at `url`.
#[derive(Debug, Clone)]
pub struct BrokerClient {
    url: String,
    http: reqwest::Client,
    login: BrokerLogin,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl BrokerClient {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            login: BrokerLogin::None,
        }
    }

    /// The same client, logging in as `login`.
    pub fn with_login(mut self, login: BrokerLogin) -> Self {
        self.login = login;
        self
    }

    fn failed(&self, what: &str, reason: impl std::fmt::Display) -> ContractsError {
        ContractsError::Broker {
            url: self.url.clone(),
            reason: format!("{what}: {reason}"),
        }
    }

    async fn send(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, ContractsError> {
        let resp = self
            .login
            .apply(req)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.failed(what, e))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| body.to_string(), str::to_string);
            return Err(self.failed(what, format!("{status}: {message}")));
        }
        Ok(body)
    }

    /// Publishes every pact of `pacts` as written by `version` of its consumer, on
    /// `branch` and with `tags` (each consumer version gets them once).
    pub async fn publish(
        &self,
        pacts: &[PactFile],
        version: &str,
        branch: Option<&str>,
        tags: &[String],
    ) -> Result<(), ContractsError> {
        let mut consumers: Vec<&str> = Vec::new();
        for p in pacts {
            let text = std::fs::read(&p.path).map_err(|e| ContractsError::BadPact {
                path: p.path.display().to_string(),
                reason: e.to_string(),
            })?;
            let content: Value =
                serde_json::from_slice(&text).map_err(|e| ContractsError::BadPact {
                    path: p.path.display().to_string(),
                    reason: e.to_string(),
                })?;
            let url = format!(
                "{}/pacts/provider/{}/consumer/{}/version/{}",
                self.url,
                enc(&p.provider),
                enc(&p.consumer),
                enc(version)
            );
            let what = format!("publishing {}", p.path.display());
            self.send(&what, self.http.put(url).json(&content)).await?;
            if !consumers.contains(&p.consumer.as_str()) {
                consumers.push(&p.consumer);
            }
        }
        for c in consumers {
            if let Some(b) = branch {
                let url = format!(
                    "{}/pacticipants/{}/branches/{}/versions/{}",
                    self.url,
                    enc(c),
                    enc(b),
                    enc(version)
                );
                self.send("recording the branch", self.http.put(url).json(&json!({})))
                    .await?;
            }
            for t in tags {
                let url = format!(
                    "{}/pacticipants/{}/versions/{}/tags/{}",
                    self.url,
                    enc(c),
                    enc(version),
                    enc(t)
                );
                self.send("tagging the version", self.http.put(url).json(&json!({})))
                    .await?;
            }
        }
        Ok(())
    }

    /// The UUID of the environment `name`.
    pub async fn environment(&self, name: &str) -> Result<Option<String>, ContractsError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(rename = "_embedded")]
            embedded: Embedded,
        }
        #[derive(Deserialize)]
        struct Embedded {
            environments: Vec<Env>,
        }
        #[derive(Deserialize)]
        struct Env {
            uuid: String,
            name: String,
        }
        let body = self
            .send(
                "listing environments",
                self.http.get(format!("{}/environments", self.url)),
            )
            .await?;
        let list: List =
            serde_json::from_value(body).map_err(|e| self.failed("listing environments", e))?;
        Ok(list
            .embedded
            .environments
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| e.uuid))
    }

    pub async fn create_environment(
        &self,
        name: &str,
        production: bool,
    ) -> Result<(), ContractsError> {
        self.send(
            "creating the environment",
            self.http
                .post(format!("{}/environments", self.url))
                .json(&json!({"name": name, "displayName": name, "production": production})),
        )
        .await?;
        Ok(())
    }

    pub async fn record_deployment(
        &self,
        pacticipant: &str,
        version: &str,
        environment: &str,
    ) -> Result<(), ContractsError> {
        let uuid = self.environment(environment).await?.ok_or_else(|| {
            self.failed(
                "recording the deployment",
                format!("no environment {environment:?}: create it with `gauntlet contracts create-environment`"),
            )
        })?;
        let url = format!(
            "{}/pacticipants/{}/versions/{}/deployed-versions/environment/{}",
            self.url,
            enc(pacticipant),
            enc(version),
            enc(&uuid)
        );
        self.send(
            "recording the deployment",
            self.http.post(url).json(&json!({})),
        )
        .await?;
        Ok(())
    }

    pub async fn can_i_deploy(
        &self,
        pacticipant: &str,
        version: &str,
        environment: Option<&str>,
    ) -> Result<Answer, ContractsError> {
        let mut query = vec![("pacticipant", pacticipant), ("version", version)];
        if let Some(e) = environment {
            query.push(("environment", e));
        }
        let body = self
            .send(
                "asking can-i-deploy",
                self.http
                    .get(format!("{}/can-i-deploy", self.url))
                    .query(&query),
            )
            .await?;
        serde_json::from_value(body).map_err(|e| self.failed("reading can-i-deploy's answer", e))
    }
}

impl Answer {
    /// The answer as a table, then yes or no with the reason.
    pub fn render(&self) -> String {
        let mut out =
            String::from("CONSUMER         C.VERSION  PROVIDER         P.VERSION  VERIFIED\n");
        let number = |s: &super::matrix::Side| {
            s.version
                .as_ref()
                .map_or_else(|| "-".to_string(), |v| v.number.clone())
        };
        for r in &self.matrix {
            out.push_str(&format!(
                "{:<16} {:<10} {:<16} {:<10} {}\n",
                r.consumer.name,
                number(&r.consumer),
                r.provider.name,
                number(&r.provider),
                match r.success() {
                    Some(true) => "yes",
                    Some(false) => "FAILED",
                    None => "no",
                }
            ));
        }
        let verdict = if self.summary.deployable { "yes" } else { "NO" };
        out.push_str(&format!(
            "\ncan I deploy? {verdict}: {}\n",
            self.summary.reason
        ));
        out
    }
}
