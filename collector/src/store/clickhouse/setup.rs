//! Making the tables ready: the database and the layout's tables created if missing, and the
//! columns of what exists checked against what the store reads and writes (a table another
//! writer made with other types is reported, never altered).

use std::collections::HashMap;

use super::backend;
use super::schema::{Layout, REQUIRED_COLUMNS};
use crate::store::StoreError;

/// What it takes to make the tables ready: the server (no default database), the layout.
#[derive(Clone)]
pub(super) struct Schema {
    pub(super) client: ::clickhouse::Client,
    pub(super) layout: Layout,
    pub(super) location: String,
}

impl Schema {
    /// Reaches ClickHouse, creates what is missing, checks what exists, adds the views.
    pub(super) async fn prepare(&self) -> Result<(), StoreError> {
        self.client
            .query("SELECT 1")
            .execute()
            .await
            .map_err(|e| StoreError::Unavailable {
                location: self.location.clone(),
                reason: e.to_string(),
            })?;
        let (tables, views) = self.layout.ddl_parts();
        self.run(tables).await?;
        // Tables that existed already (another collector's, or a user's) are checked before
        // anything is built on them.
        self.check().await?;
        self.run(views).await
    }

    pub(super) async fn run(&self, statements: Vec<String>) -> Result<(), StoreError> {
        for statement in statements {
            self.client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| match e {
                    ::clickhouse::error::Error::Network(source) => StoreError::Unavailable {
                        location: self.location.clone(),
                        reason: source.to_string(),
                    },
                    e => StoreError::Incompatible {
                        location: self.location.clone(),
                        reason: format!(
                            "creating the schema failed ({e}) at: {}",
                            first_line(&statement)
                        ),
                    },
                })?;
        }
        Ok(())
    }

    pub(super) async fn check(&self) -> Result<(), StoreError> {
        #[derive(::clickhouse::Row, serde::Deserialize)]
        struct Column {
            table: String,
            name: String,
            r#type: String,
        }
        let columns: Vec<Column> = self
            .client
            .query("SELECT table, name, type FROM system.columns WHERE database = ?")
            .bind(&self.layout.database)
            .fetch_all()
            .await
            .map_err(backend)?;
        let have: HashMap<(&str, &str), &str> = columns
            .iter()
            .map(|c| ((c.table.as_str(), c.name.as_str()), c.r#type.as_str()))
            .collect();
        let mut problems = Vec::new();
        for (table, required) in REQUIRED_COLUMNS.iter().chain(super::metrics::REQUIRED) {
            for (name, ty) in *required {
                match have.get(&(*table, *name)) {
                    None => problems.push(format!("{table}.{name} is missing (want {ty})")),
                    Some(got) if !same_type(got, ty) => {
                        problems.push(format!("{table}.{name} is {got}, want {ty}"))
                    }
                    Some(_) => {}
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Incompatible {
                location: self.location.clone(),
                reason: format!(
                    "the tables in database {} are not the OpenTelemetry schema Gauntlet reads \
                     and writes (nothing was changed): {}",
                    self.layout.database,
                    problems.join("; ")
                ),
            })
        }
    }
}

pub(super) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Types as `system.columns` prints them: the same modulo spaces.
pub(super) fn same_type(got: &str, want: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    norm(got) == norm(want)
}
