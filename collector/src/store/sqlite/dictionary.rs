//! The interned names (services, operations, resources, scopes) in memory, shared by the
//! writer, which adds each name it interns once the catalog has committed it, and by every
//! reader, which turns a row's small integers back into names without a join: segment files
//! hold only the integers.
//!
//! Attribute keys (`packed.rs`) are numbered differently: by the encoding of a request, on
//! its own task, before its batch reaches the writer, so a key gets its ID here, in memory,
//! and the writer saves every key not yet in the catalog before it commits the rows that use
//! it. A key numbered but never saved (its batch failed, the process stopped) is in no row.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rusqlite::Connection;

use super::packed::MAX_ATTRIBUTE_KEYS;
use crate::model::{Attributes, Key, Resource, SpanKind};
use crate::store::{Operation, StoreError};

/// An operation as interned: its service, name and kind.
#[derive(Debug, Clone)]
pub(super) struct OperationName {
    pub(super) service_id: i64,
    pub(super) name: String,
    pub(super) kind: SpanKind,
}

#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) services: HashMap<i64, String>,
    pub(super) service_ids: HashMap<String, i64>,
    pub(super) operations: HashMap<i64, OperationName>,
    pub(super) resources: HashMap<i64, Arc<Resource>>,
    pub(super) scopes: HashMap<i64, (Arc<str>, Arc<str>)>,
    /// Attribute keys by ID (dense from 0), their IDs, and how many the catalog holds.
    attribute_keys: Vec<Key>,
    attribute_key_ids: foldhash::HashMap<Key, u32>,
    saved_keys: usize,
}

/// A name the writer interned, to add once its catalog transaction committed.
pub(super) enum NewName {
    Service(i64, String),
    Operation(i64, OperationName),
    Resource(i64, Arc<Resource>),
    Scope(i64, String, String),
}

#[derive(Debug, Default)]
pub(super) struct Dictionary(RwLock<Names>);

impl Dictionary {
    /// Reads every interned name from the catalog.
    pub(super) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut names = Names::default();
        let mut stmt = conn.prepare("SELECT id, name FROM services")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, name) = row?;
            names.service_ids.insert(name.clone(), id);
            names.services.insert(id, name);
        }
        let mut stmt = conn.prepare("SELECT id, service_id, name, kind FROM operations")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                OperationName {
                    service_id: r.get(1)?,
                    name: r.get(2)?,
                    kind: SpanKind::from_i32(r.get(3)?),
                },
            ))
        })? {
            let (id, op) = row?;
            names.operations.insert(id, op);
        }
        let mut stmt = conn.prepare("SELECT id, service_id, attributes FROM resources")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (id, service_id, json) = row?;
            let service = names.services.get(&service_id).cloned().unwrap_or_default();
            // A damaged resource row must not keep the store from opening: its spans read
            // with no resource attributes, and the log says which row it was.
            let attributes = Attributes::from_json(&json).unwrap_or_else(|e| {
                tracing::warn!(resource = id, error = %e, "stored resource attributes do not parse");
                Attributes::new()
            });
            names.resources.insert(
                id,
                Arc::new(Resource {
                    service,
                    attributes,
                }),
            );
        }
        let mut stmt = conn.prepare("SELECT id, name, version FROM scopes")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (id, name, version) = row?;
            names.scopes.insert(id, (name.into(), version.into()));
        }
        let mut stmt = conn.prepare("SELECT id, name FROM attribute_keys ORDER BY id")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, name) = row?;
            // IDs are written dense from 0; a gap (a damaged catalog) leaves its IDs unnamed,
            // and rows naming them say so when read.
            let Ok(id) = usize::try_from(id) else {
                continue;
            };
            if id >= MAX_ATTRIBUTE_KEYS || id < names.attribute_keys.len() {
                continue;
            }
            names.attribute_keys.resize(id, Key::from(""));
            let key: Key = name.into();
            names.attribute_key_ids.insert(key.clone(), id as u32);
            names.attribute_keys.push(key);
        }
        names.saved_keys = names.attribute_keys.len();
        Ok(Self(RwLock::new(names)))
    }

    /// The ID of an attribute key, numbering it if it is new; `None` when the dictionary
    /// holds [`MAX_ATTRIBUTE_KEYS`] already, or when the lock is not free at once. Called
    /// while a request is encoded, on the async runtime, where waiting is not allowed: a
    /// query holds the names for as long as it reads, so a span whose key cannot be looked
    /// up now is stored as JSON instead (readers take both).
    pub(super) fn attribute_key_id(&self, key: &Key) -> Option<u32> {
        use std::sync::TryLockError;
        let read = match self.0.try_read() {
            Ok(names) => names,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        if let Some(id) = read.attribute_key_ids.get(key) {
            return Some(*id);
        }
        drop(read);
        let mut names = match self.0.try_write() {
            Ok(names) => names,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        if let Some(id) = names.attribute_key_ids.get(key) {
            return Some(*id);
        }
        if names.attribute_keys.len() >= MAX_ATTRIBUTE_KEYS {
            return None;
        }
        let id = names.attribute_keys.len() as u32;
        names.attribute_keys.push(key.clone());
        names.attribute_key_ids.insert(key.clone(), id);
        Some(id)
    }

    /// Attribute keys numbered but not yet in the catalog, with their IDs.
    pub(super) fn unsaved_keys(&self) -> Vec<(u32, Key)> {
        let names = self.read();
        (names.saved_keys..names.attribute_keys.len())
            .map(|id| (id as u32, names.attribute_keys[id].clone()))
            .collect()
    }

    /// The catalog committed the keys up to `count`.
    pub(super) fn keys_saved(&self, count: usize) {
        let mut names = self.0.write().unwrap_or_else(|p| p.into_inner());
        names.saved_keys = names.saved_keys.max(count);
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, Names> {
        // A panic while holding the lock leaves plain maps behind, still usable.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn add(&self, new: Vec<NewName>) {
        if new.is_empty() {
            return;
        }
        let mut names = self.0.write().unwrap_or_else(|p| p.into_inner());
        for n in new {
            match n {
                NewName::Service(id, name) => {
                    names.service_ids.insert(name.clone(), id);
                    names.services.insert(id, name);
                }
                NewName::Operation(id, op) => {
                    names.operations.insert(id, op);
                }
                NewName::Resource(id, r) => {
                    names.resources.insert(id, r);
                }
                NewName::Scope(id, name, version) => {
                    names.scopes.insert(id, (name.into(), version.into()));
                }
            }
        }
    }
}

impl Names {
    /// Attribute keys by ID.
    pub(super) fn attribute_keys(&self) -> &[Key] {
        &self.attribute_keys
    }

    pub(super) fn service_id(&self, name: &str) -> Option<i64> {
        self.service_ids.get(name).copied()
    }

    pub(super) fn service(&self, id: i64) -> &str {
        self.services.get(&id).map(String::as_str).unwrap_or("")
    }

    /// Operations of a service, optionally of one kind, sorted by name then kind.
    pub(super) fn operations_of(&self, service_id: i64, kind: Option<SpanKind>) -> Vec<Operation> {
        let mut ops: Vec<Operation> = self
            .operations
            .values()
            .filter(|o| o.service_id == service_id && kind.is_none_or(|k| o.kind == k))
            .map(|o| Operation {
                name: o.name.clone(),
                kind: o.kind,
            })
            .collect();
        ops.sort();
        ops
    }

    /// The IDs of every kind of one operation name of a service.
    pub(super) fn operation_ids(&self, service_id: i64, name: &str) -> Vec<i64> {
        self.operations
            .iter()
            .filter(|(_, o)| o.service_id == service_id && o.name == name)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn operation(&self, id: i64) -> &str {
        self.operations
            .get(&id)
            .map(|o| o.name.as_str())
            .unwrap_or("")
    }

    pub(super) fn resource(&self, id: i64) -> Arc<Resource> {
        self.resources.get(&id).cloned().unwrap_or_else(|| {
            Arc::new(Resource {
                service: String::new(),
                attributes: Attributes::new(),
            })
        })
    }

    /// A scope's name and version, shared by every span read of it.
    pub(super) fn scope(&self, id: i64) -> (Arc<str>, Arc<str>) {
        self.scopes
            .get(&id)
            .map(|(n, v)| (n.clone(), v.clone()))
            .unwrap_or_else(|| ("".into(), "".into()))
    }
}
