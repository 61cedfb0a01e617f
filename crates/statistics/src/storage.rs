//! The SQLite database: one table per entry kind, timestamps as integer nanoseconds (UTC) with an
//! index each, WAL journal. One connection behind a mutex; every call runs on tokio's blocking
//! pool so a slow disk never stalls the HTTP workers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;
use tracing::warn;

use crate::report::{Range, Report, ReportEntry, StoredEntry};
use crate::timestamp::UnixNanos;

/// The schema this binary writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE service_statistics (
    id                       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    requested_service        TEXT    NOT NULL,
    request_processed_bytes  INTEGER NOT NULL,
    response_processed_bytes INTEGER NOT NULL,
    interval_seconds         INTEGER NOT NULL,
    timestamp                INTEGER NOT NULL
);
CREATE INDEX service_statistics_timestamp ON service_statistics (timestamp);
CREATE TABLE gateway_statistics (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    gateway_id  TEXT    NOT NULL,
    inbox_count INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL
);
CREATE INDEX gateway_statistics_timestamp ON gateway_statistics (timestamp);
";

/// Waiting for a lock held by another process (e.g. an operator's `sqlite3` shell) beats failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A database failure.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The database's folder could not be created.
    #[error("cannot create the database folder {path}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be opened or set up as our database.
    #[error("cannot open the database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The file holds statistics tables this binary did not create (e.g. the original 1.0.2
    /// service's, whose text timestamps would break range queries).
    #[error("the database {path} has statistics tables in an unknown layout (from another statistics service?); pass a new --database path")]
    ForeignSchema {
        /// The database file.
        path: PathBuf,
    },
    /// The file was written by a newer version of this service.
    #[error("the database {path} has schema version {found}; this binary supports version {SCHEMA_VERSION}")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
    /// A query range matches more rows than one answer may carry.
    #[error("More than {limit} entries match; narrow the range between `since` and `until`")]
    TooManyRows {
        /// The row limit.
        limit: usize,
    },
    /// A statement failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running a statement panicked or was cancelled.
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Handle to the database; clones share one connection.
#[derive(Clone)]
pub struct Storage {
    conn: Arc<Mutex<Connection>>,
}

impl Storage {
    /// Opens (creating if needed) the database at `path`, switches it to WAL and checks or
    /// creates the schema.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let open_err = |source| StorageError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // The first statement is where SQLite notices a file that is not a database.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            warn!(journal_mode = %mode, "database does not support WAL; continuing");
        }
        // WAL + NORMAL stays consistent on power loss; at worst the last reports are lost.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        ensure_schema(&mut conn, path)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Stores every entry of `report` in one transaction.
    pub async fn insert(&self, report: Report) -> Result<(), StorageError> {
        self.with_conn(move |conn| insert(conn, &report)).await
    }

    /// All service entries, then all gateway entries, dated within `range` (inclusive), each
    /// kind in time order; fails when more than `limit` rows match.
    pub async fn query(
        &self,
        range: Range,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StorageError> {
        self.with_conn(move |conn| query(conn, range, limit)).await
    }

    /// Closes the connection (checkpointing the WAL) if no other handle is left; otherwise the
    /// last handle to drop closes it.
    pub fn close(self) -> Result<(), StorageError> {
        match Arc::try_unwrap(self.conn) {
            Ok(mutex) => {
                let conn = mutex.into_inner().unwrap_or_else(PoisonError::into_inner);
                conn.close().map_err(|(_, err)| StorageError::Sqlite(err))
            }
            Err(_) => Ok(()),
        }
    }

    async fn with_conn<T, F>(&self, work: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic mid-statement leaves no open transaction (dropping it rolls back), so
            // the connection stays usable.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn)
        })
        .await?
    }
}

fn ensure_schema(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let open_err = |source| StorageError::Open {
        path: path.to_owned(),
        source,
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_err)?;
    match version {
        SCHEMA_VERSION => Ok(()),
        0 => {
            let tx = conn.transaction().map_err(open_err)?;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name IN ('service_statistics', 'gateway_statistics')",
                    [],
                    |row| row.get(0),
                )
                .optional()
                .map_err(open_err)?;
            if existing.is_some() {
                return Err(StorageError::ForeignSchema {
                    path: path.to_owned(),
                });
            }
            tx.execute_batch(SCHEMA).map_err(open_err)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(open_err)?;
            tx.commit().map_err(open_err)
        }
        found => Err(StorageError::NewerSchema {
            path: path.to_owned(),
            found,
        }),
    }
}

fn insert(conn: &mut Connection, report: &Report) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    {
        let mut service = tx.prepare_cached(
            "INSERT INTO service_statistics (requested_service, request_processed_bytes, \
             response_processed_bytes, interval_seconds, timestamp) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut gateway = tx.prepare_cached(
            "INSERT INTO gateway_statistics (gateway_id, inbox_count, timestamp) \
             VALUES (?1, ?2, ?3)",
        )?;
        for entry in &report.entries {
            match entry {
                ReportEntry::Service {
                    requested_service,
                    request_bytes,
                    response_bytes,
                } => service.execute(params![
                    requested_service,
                    request_bytes,
                    response_bytes,
                    report.interval_seconds,
                    report.timestamp.0
                ])?,
                ReportEntry::Gateway {
                    gateway_id,
                    inbox_count,
                } => gateway.execute(params![gateway_id, inbox_count, report.timestamp.0])?,
            };
        }
    }
    tx.commit()?;
    Ok(())
}

fn query(
    conn: &mut Connection,
    range: Range,
    limit: usize,
) -> Result<Vec<StoredEntry>, StorageError> {
    // One read transaction, so both tables are read from the same snapshot.
    let tx = conn.transaction()?;
    // Asking for one row more than allowed tells "exactly at the limit" from "over it".
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut entries = Vec::new();
    {
        let mut services = tx.prepare_cached(
            "SELECT requested_service, request_processed_bytes, response_processed_bytes, \
             interval_seconds, timestamp FROM service_statistics \
             WHERE timestamp BETWEEN ?1 AND ?2 ORDER BY timestamp, id LIMIT ?3",
        )?;
        let rows = services.query_map(params![range.since.0, range.until.0, fetch], |row| {
            Ok(StoredEntry::Service {
                requested_service: row.get(0)?,
                request_processed_bytes: row.get(1)?,
                response_processed_bytes: row.get(2)?,
                interval_seconds: row.get(3)?,
                timestamp: UnixNanos(row.get(4)?).render(),
            })
        })?;
        for row in rows {
            entries.push(row?);
        }
        let remaining = fetch.saturating_sub(i64::try_from(entries.len()).unwrap_or(i64::MAX));
        let mut gateways = tx.prepare_cached(
            "SELECT gateway_id, inbox_count, timestamp FROM gateway_statistics \
             WHERE timestamp BETWEEN ?1 AND ?2 ORDER BY timestamp, id LIMIT ?3",
        )?;
        let rows = gateways.query_map(params![range.since.0, range.until.0, remaining], |row| {
            Ok(StoredEntry::Gateway {
                gateway_id: row.get(0)?,
                inbox_count: row.get(1)?,
                timestamp: UnixNanos(row.get(2)?).render(),
            })
        })?;
        for row in rows {
            entries.push(row?);
        }
    }
    tx.commit()?;
    if entries.len() > limit {
        return Err(StorageError::TooManyRows { limit });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(timestamp: i64, entries: Vec<ReportEntry>) -> Report {
        Report {
            entries,
            interval_seconds: 60,
            timestamp: UnixNanos(timestamp),
        }
    }

    fn gateway(id: &str) -> ReportEntry {
        ReportEntry::Gateway {
            gateway_id: id.into(),
            inbox_count: 3,
        }
    }

    fn range(since: i64, until: i64) -> Range {
        Range {
            since: UnixNanos(since),
            until: UnixNanos(until),
        }
    }

    #[tokio::test]
    async fn bounds_are_inclusive_and_services_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db.sqlite")).unwrap();
        storage
            .insert(report(20, vec![gateway("b")]))
            .await
            .unwrap();
        storage
            .insert(report(
                10,
                vec![
                    gateway("a"),
                    ReportEntry::Service {
                        requested_service: "s:443".into(),
                        request_bytes: 1,
                        response_bytes: 2,
                    },
                ],
            ))
            .await
            .unwrap();
        let all = storage.query(range(10, 20), 100).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(matches!(&all[0], StoredEntry::Service { .. }));
        assert!(matches!(&all[1], StoredEntry::Gateway { gateway_id, .. } if gateway_id == "a"));
        assert!(matches!(&all[2], StoredEntry::Gateway { gateway_id, .. } if gateway_id == "b"));
        assert_eq!(storage.query(range(11, 19), 100).await.unwrap(), vec![]);
        assert_eq!(
            storage.query(range(i64::MIN, 9), 100).await.unwrap(),
            vec![]
        );
    }

    #[tokio::test]
    async fn limit_is_enforced_across_both_tables() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db.sqlite")).unwrap();
        storage
            .insert(report(1, vec![gateway("a"), gateway("b"), gateway("c")]))
            .await
            .unwrap();
        assert_eq!(storage.query(range(0, 2), 3).await.unwrap().len(), 3);
        assert!(matches!(
            storage.query(range(0, 2), 2).await,
            Err(StorageError::TooManyRows { limit: 2 })
        ));
    }

    #[test]
    fn refuses_foreign_and_newer_databases() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.sqlite");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE gateway_statistics (id INTEGER, timestamp DATETIME)")
            .unwrap();
        assert!(matches!(
            Storage::open(&foreign),
            Err(StorageError::ForeignSchema { .. })
        ));

        let newer = dir.path().join("newer.sqlite");
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 7)
            .unwrap();
        assert!(matches!(
            Storage::open(&newer),
            Err(StorageError::NewerSchema { found: 7, .. })
        ));
    }

    #[test]
    fn reopening_keeps_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/db.sqlite");
        Storage::open(&path).unwrap().close().unwrap();
        Storage::open(&path).unwrap().close().unwrap();
    }
}
