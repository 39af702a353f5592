//! Where the ClickHouse store is and how to reach it: the URL, the database, the account,
//! the cluster (for `ON CLUSTER` tables), the spool, retention by TTL.

use std::path::PathBuf;
use std::time::Duration;

/// Where the ClickHouse store is and how to reach it.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Create replicated tables `ON CLUSTER` with distributed ones in front.
    pub cluster: Option<String>,
    /// Rows older than this (by their own timestamps) are dropped by ClickHouse.
    pub ttl: Option<Duration>,
    /// The write-ahead spool: a batch is acknowledged once written here and inserted into
    /// ClickHouse from here, with others; without one, a write is one INSERT and fails
    /// whenever ClickHouse does.
    pub spool_dir: Option<PathBuf>,
    /// Bytes the spool may hold; past it, writes fail (exporters are told to retry).
    pub spool_max_bytes: u64,
    /// Count the calls between services into the edge rollups a minute at a time, in the
    /// background (on by default; several collectors on one database may all do it).
    pub edge_passes: bool,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .field("cluster", &self.cluster)
            .field("ttl", &self.ttl)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("edge_passes", &self.edge_passes)
            .finish()
    }
}

impl ClickHouseConfig {
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: None,
            password: None,
            cluster: None,
            ttl: None,
            spool_dir: None,
            spool_max_bytes: 1 << 30,
            edge_passes: true,
        }
    }

    pub fn location(&self) -> String {
        format!("{} (database {})", self.url, self.database)
    }
}
