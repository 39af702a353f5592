//! The broker's SQLite database: pacticipants and their versions, branches and tags, pact
//! contents (by SHA-256 of their canonical JSON) and who published them, verification
//! results, environments and deployments. Synchronous: the HTTP layer calls it on blocking
//! threads.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::BrokerError;

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS pacticipants (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        main_branch TEXT
    );
    CREATE TABLE IF NOT EXISTS versions (
        id INTEGER PRIMARY KEY,
        pacticipant_id INTEGER NOT NULL REFERENCES pacticipants (id),
        number TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (pacticipant_id, number)
    );
    CREATE TABLE IF NOT EXISTS branch_versions (
        version_id INTEGER NOT NULL REFERENCES versions (id),
        branch TEXT NOT NULL,
        PRIMARY KEY (version_id, branch)
    );
    CREATE TABLE IF NOT EXISTS tags (
        version_id INTEGER NOT NULL REFERENCES versions (id),
        name TEXT NOT NULL,
        PRIMARY KEY (version_id, name)
    );
    CREATE TABLE IF NOT EXISTS pact_contents (
        sha TEXT PRIMARY KEY,
        content TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS publications (
        consumer_version_id INTEGER NOT NULL REFERENCES versions (id),
        provider_id INTEGER NOT NULL REFERENCES pacticipants (id),
        sha TEXT NOT NULL REFERENCES pact_contents (sha),
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (consumer_version_id, provider_id)
    );
    CREATE TABLE IF NOT EXISTS verifications (
        id INTEGER PRIMARY KEY,
        sha TEXT NOT NULL REFERENCES pact_contents (sha),
        provider_version_id INTEGER NOT NULL REFERENCES versions (id),
        success INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS environments (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        display_name TEXT,
        production INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS deployments (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES versions (id),
        environment TEXT NOT NULL REFERENCES environments (uuid),
        created_ms INTEGER NOT NULL,
        undeployed_ms INTEGER
    );
";

/// Branch names the broker takes as a pacticipant's main branch when it first sees one.
const MAIN_BRANCHES: [&str; 3] = ["main", "master", "develop"];

/// One pact as published: consumer version → provider, and its content.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub consumer: String,
    pub consumer_version: String,
    pub consumer_version_order: i64,
    pub provider: String,
    pub sha: String,
    pub created_ms: i64,
}

/// A verification result of one pact content by one provider version.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub id: i64,
    pub sha: String,
    pub provider: String,
    pub provider_version: String,
    pub success: bool,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub uuid: String,
    pub name: String,
    pub display_name: Option<String>,
    pub production: bool,
}

pub struct Store {
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The pact's identity: SHA-256 of its canonical JSON (keys sorted).
pub fn content_sha(content: &serde_json::Value) -> String {
    const_hex_lower(&Sha256::digest(content.to_string().as_bytes()))
}

fn const_hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::Storage(e.to_string()))?;
        let conn = Connection::open(dir.join("broker.sqlite"))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    fn pacticipant(&self, name: &str) -> Result<i64, BrokerError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO pacticipants (name) VALUES (?1)",
            [name],
        )?;
        Ok(self
            .conn
            .query_row("SELECT id FROM pacticipants WHERE name = ?1", [name], |r| {
                r.get(0)
            })?)
    }

    pub fn pacticipant_exists(&self, name: &str) -> Result<bool, BrokerError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM pacticipants WHERE name = ?1", [name], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    /// The version, created if new.
    pub fn version(&self, pacticipant: &str, number: &str) -> Result<i64, BrokerError> {
        let p = self.pacticipant(pacticipant)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO versions (pacticipant_id, number, created_ms) VALUES (?1, ?2, ?3)",
            params![p, number, now_ms()],
        )?;
        Ok(self.conn.query_row(
            "SELECT id FROM versions WHERE pacticipant_id = ?1 AND number = ?2",
            params![p, number],
            |r| r.get(0),
        )?)
    }

    pub fn version_exists(&self, pacticipant: &str, number: &str) -> Result<bool, BrokerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM versions v JOIN pacticipants p ON p.id = v.pacticipant_id
                 WHERE p.name = ?1 AND v.number = ?2",
                params![pacticipant, number],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn add_branch(
        &self,
        pacticipant: &str,
        number: &str,
        branch: &str,
    ) -> Result<(), BrokerError> {
        let v = self.version(pacticipant, number)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO branch_versions (version_id, branch) VALUES (?1, ?2)",
            params![v, branch],
        )?;
        if MAIN_BRANCHES.contains(&branch) {
            self.conn.execute(
                "UPDATE pacticipants SET main_branch = ?2 WHERE name = ?1 AND main_branch IS NULL",
                params![pacticipant, branch],
            )?;
        }
        Ok(())
    }

    pub fn add_tag(&self, pacticipant: &str, number: &str, tag: &str) -> Result<(), BrokerError> {
        let v = self.version(pacticipant, number)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO tags (version_id, name) VALUES (?1, ?2)",
            params![v, tag],
        )?;
        Ok(())
    }

    /// Stores a pact for `consumer` at `version` with `provider`; `true` if it is new or
    /// changed (a republication of the same content is no change).
    pub fn publish(
        &self,
        consumer: &str,
        version: &str,
        provider: &str,
        content: &serde_json::Value,
    ) -> Result<(String, bool), BrokerError> {
        let sha = content_sha(content);
        let cv = self.version(consumer, version)?;
        let p = self.pacticipant(provider)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO pact_contents (sha, content) VALUES (?1, ?2)",
            params![sha, content.to_string()],
        )?;
        let before: Option<String> = self
            .conn
            .query_row(
                "SELECT sha FROM publications WHERE consumer_version_id = ?1 AND provider_id = ?2",
                params![cv, p],
                |r| r.get(0),
            )
            .optional()?;
        self.conn.execute(
            "INSERT INTO publications (consumer_version_id, provider_id, sha, created_ms)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (consumer_version_id, provider_id) DO UPDATE SET sha = excluded.sha",
            params![cv, p, sha, now_ms()],
        )?;
        let changed = before.as_deref() != Some(sha.as_str());
        Ok((sha, changed))
    }

    /// Every publication naming `provider` (all of them if `None`), oldest version first.
    pub fn publications(&self, provider: Option<&str>) -> Result<Vec<Publication>, BrokerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.name, v.number, v.id, p.name, pub.sha, pub.created_ms
             FROM publications pub
             JOIN versions v ON v.id = pub.consumer_version_id
             JOIN pacticipants c ON c.id = v.pacticipant_id
             JOIN pacticipants p ON p.id = pub.provider_id
             WHERE ?1 IS NULL OR p.name = ?1
             ORDER BY v.id",
        )?;
        let rows = stmt
            .query_map([provider], |r| {
                Ok(Publication {
                    consumer: r.get(0)?,
                    consumer_version: r.get(1)?,
                    consumer_version_order: r.get(2)?,
                    provider: r.get(3)?,
                    sha: r.get(4)?,
                    created_ms: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn content(&self, sha: &str) -> Result<Option<serde_json::Value>, BrokerError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT content FROM pact_contents WHERE sha = ?1",
                [sha],
                |r| r.get(0),
            )
            .optional()?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| BrokerError::Storage(e.to_string())))
            .transpose()
    }

    pub fn branches(&self, pacticipant: &str, number: &str) -> Result<Vec<String>, BrokerError> {
        self.strings(
            "SELECT b.branch FROM branch_versions b JOIN versions v ON v.id = b.version_id
             JOIN pacticipants p ON p.id = v.pacticipant_id WHERE p.name = ?1 AND v.number = ?2
             ORDER BY b.branch",
            pacticipant,
            number,
        )
    }

    pub fn tags(&self, pacticipant: &str, number: &str) -> Result<Vec<String>, BrokerError> {
        self.strings(
            "SELECT t.name FROM tags t JOIN versions v ON v.id = t.version_id
             JOIN pacticipants p ON p.id = v.pacticipant_id WHERE p.name = ?1 AND v.number = ?2
             ORDER BY t.name",
            pacticipant,
            number,
        )
    }

    fn strings(&self, sql: &str, a: &str, b: &str) -> Result<Vec<String>, BrokerError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params![a, b], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn main_branch(&self, pacticipant: &str) -> Result<Option<String>, BrokerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT main_branch FROM pacticipants WHERE name = ?1",
                [pacticipant],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn verify(
        &self,
        sha: &str,
        provider: &str,
        provider_version: &str,
        success: bool,
        body: &serde_json::Value,
    ) -> Result<i64, BrokerError> {
        let pv = self.version(provider, provider_version)?;
        self.conn.execute(
            "INSERT INTO verifications (sha, provider_version_id, success, body, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sha, pv, success, body.to_string(), now_ms()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Verification results of the content `sha`, newest first.
    pub fn verifications(&self, sha: &str) -> Result<Vec<Verification>, BrokerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ver.id, ver.sha, p.name, v.number, ver.success, ver.created_ms
             FROM verifications ver JOIN versions v ON v.id = ver.provider_version_id
             JOIN pacticipants p ON p.id = v.pacticipant_id
             WHERE ver.sha = ?1 ORDER BY ver.id DESC",
        )?;
        let rows = stmt
            .query_map([sha], |r| {
                Ok(Verification {
                    id: r.get(0)?,
                    sha: r.get(1)?,
                    provider: r.get(2)?,
                    provider_version: r.get(3)?,
                    success: r.get(4)?,
                    created_ms: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn create_environment(&self, env: &Environment) -> Result<(), BrokerError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO environments (uuid, name, display_name, production) VALUES (?1, ?2, ?3, ?4)",
            params![env.uuid, env.name, env.display_name, env.production],
        )?;
        if n == 0 {
            return Err(BrokerError::Conflict(format!(
                "an environment named {:?} exists already",
                env.name
            )));
        }
        Ok(())
    }

    pub fn environments(&self) -> Result<Vec<Environment>, BrokerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT uuid, name, display_name, production FROM environments ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Environment {
                    uuid: r.get(0)?,
                    name: r.get(1)?,
                    display_name: r.get(2)?,
                    production: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn environment(&self, uuid_or_name: &str) -> Result<Option<Environment>, BrokerError> {
        Ok(self
            .environments()?
            .into_iter()
            .find(|e| e.uuid == uuid_or_name || e.name == uuid_or_name))
    }

    /// Records that `pacticipant` `number` is deployed to `environment`, replacing the
    /// version deployed there before.
    pub fn deploy(
        &self,
        pacticipant: &str,
        number: &str,
        environment: &str,
    ) -> Result<(), BrokerError> {
        let v = self.version(pacticipant, number)?;
        let p = self.pacticipant(pacticipant)?;
        self.conn.execute(
            "UPDATE deployments SET undeployed_ms = ?3 WHERE environment = ?2 AND undeployed_ms IS NULL
             AND version_id IN (SELECT id FROM versions WHERE pacticipant_id = ?1)",
            params![p, environment, now_ms()],
        )?;
        self.conn.execute(
            "INSERT INTO deployments (version_id, environment, created_ms) VALUES (?1, ?2, ?3)",
            params![v, environment, now_ms()],
        )?;
        Ok(())
    }

    /// The version of `pacticipant` currently deployed to `environment`.
    pub fn deployed(
        &self,
        pacticipant: &str,
        environment: &str,
    ) -> Result<Option<String>, BrokerError> {
        Ok(self
            .conn
            .query_row(
                "SELECT v.number FROM deployments d JOIN versions v ON v.id = d.version_id
                 JOIN pacticipants p ON p.id = v.pacticipant_id
                 WHERE p.name = ?1 AND d.environment = ?2 AND d.undeployed_ms IS NULL
                 ORDER BY d.id DESC LIMIT 1",
                params![pacticipant, environment],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every version currently deployed anywhere, as (pacticipant, version).
    pub fn deployed_anywhere(&self) -> Result<Vec<(String, String)>, BrokerError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT p.name, v.number FROM deployments d JOIN versions v ON v.id = d.version_id
             JOIN pacticipants p ON p.id = v.pacticipant_id WHERE d.undeployed_ms IS NULL",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
