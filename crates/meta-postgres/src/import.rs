//! Copying a single-node Berth's SQLite database into a new PostgreSQL database
//! (`berth migrate --from sqlite:PATH --to postgres://…`).
//!
//! The two schemas hold the same tables and columns, so the copy is driven by the
//! target's catalog: each PostgreSQL table that the SQLite file also has is copied
//! column by column, in an order where every row's foreign keys already exist, inside
//! one transaction of the target (all or nothing) and one read transaction of the
//! source (a consistent snapshot, even while a node still writes it). Ids are kept, and
//! each identity sequence continues after the highest id the source ever handed out, so
//! ids are never reused across the move.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use berth_meta::MetaError;
use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Connection, PgConnection};

use crate::{PgConfig, PgMetaStore, db_err};

/// Rows copied per `INSERT` statement.
const BATCH_ROWS: usize = 500;
/// Tables of the target that hold its own bookkeeping, never copied.
const TARGET_ONLY: &[&str] = &["schema_version", "change_mark"];
/// Tables of the target derived from the rows copied, which the source has no part of
/// (the shards of usage counted without a lock): emptied with the tables copied.
const TARGET_DERIVED: &[&str] = &["quota_shards"];
/// Tables of the source whose content the target keeps otherwise: the highest ids ever
/// handed out become the identity sequences' positions.
const SOURCE_ONLY: &[&str] = &["id_sequences"];
/// Triggers that derive rows (quotas, usage) from the rows copied: off during the copy,
/// since the source's derived rows are copied as they are.
const DERIVING_TRIGGERS: &[(&str, &str)] = &[("projects", "projects_quota")];

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The target already holds users or repositories of its own.
    #[error("the target database already holds users or repositories; import into a new one")]
    NotEmpty,
    /// The SQLite file could not be read.
    #[error("reading {path}: {message}")]
    Source {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A column of the source has no place in the target, or a value no type there.
    #[error("{0}")]
    Schema(String),
    /// The target failed.
    #[error(transparent)]
    Target(#[from] MetaError),
}

/// What an import copied: rows per table, in copy order.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// `(table, rows)`.
    pub tables: Vec<(String, u64)>,
}

/// A column of a target table and how its values are bound.
struct Column {
    name: String,
    kind: ColumnKind,
    identity: bool,
}

#[derive(Clone, Copy)]
enum ColumnKind {
    Integer,
    Boolean,
    Real,
    Bytes,
    Text,
}

/// Copies every table of the SQLite database at `source` (already at this Berth's
/// schema) into the database `target` names, which must hold no users or repositories
/// yet; its migrations are applied first.
pub async fn import_sqlite(source: &Path, target: &PgConfig) -> Result<ImportReport, ImportError> {
    let source_err = |e: rusqlite::Error| ImportError::Source {
        path: source.display().to_string(),
        message: e.to_string(),
    };
    let mut sqlite = rusqlite::Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(source_err)?;
    let snapshot = sqlite.transaction().map_err(source_err)?;
    let source_tables = sqlite_tables(&snapshot).map_err(source_err)?;

    let store = PgMetaStore::connect(target).await?;
    let mut conn = store.pool.acquire().await.map_err(db_err)?;
    let mut tx = conn.begin().await.map_err(db_err)?;
    let holds_data: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM repositories)",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db_err)?;
    if holds_data {
        return Err(ImportError::NotEmpty);
    }
    let order = copy_order(&mut tx).await?;
    let unplaced: Vec<&String> = source_tables
        .keys()
        .filter(|t| !order.contains(t) && !SOURCE_ONLY.contains(&t.as_str()))
        .collect();
    if !unplaced.is_empty() {
        return Err(ImportError::Schema(format!(
            "the PostgreSQL schema has no tables {unplaced:?}"
        )));
    }
    let tables: Vec<String> = order
        .into_iter()
        .filter(|t| source_tables.contains_key(t) && !TARGET_ONLY.contains(&t.as_str()))
        .collect();
    let quoted: Vec<String> = (tables.iter().map(String::as_str))
        .chain(TARGET_DERIVED.iter().copied())
        .map(quote)
        .collect();
    sqlx::query(&format!("TRUNCATE {} RESTART IDENTITY", quoted.join(", ")))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    switch_deriving_triggers(&mut tx, "DISABLE").await?;
    let mut report = ImportReport::default();
    // Errors reading the source name the file.
    let named = |e: ImportError| match e {
        ImportError::Source { message, .. } => ImportError::Source {
            path: source.display().to_string(),
            message,
        },
        other => other,
    };
    for table in &tables {
        let columns = target_columns(&mut tx, table).await?;
        let copied = copy_table(&snapshot, &mut tx, table, &columns, &source_tables[table])
            .await
            .map_err(named)?;
        continue_identities(&snapshot, &mut tx, table, &columns)
            .await
            .map_err(named)?;
        report.tables.push((table.clone(), copied));
    }
    switch_deriving_triggers(&mut tx, "ENABLE").await?;
    tx.commit().await.map_err(db_err)?;
    Ok(report)
}

/// Turns the [`DERIVING_TRIGGERS`] off or on (`switch`: `DISABLE` or `ENABLE`) in the
/// import's transaction.
async fn switch_deriving_triggers(c: &mut PgConnection, switch: &str) -> Result<(), MetaError> {
    for (table, trigger) in DERIVING_TRIGGERS {
        sqlx::query(&format!("ALTER TABLE {table} {switch} TRIGGER {trigger}"))
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Every table of the SQLite file with its columns.
fn sqlite_tables(c: &rusqlite::Connection) -> rusqlite::Result<BTreeMap<String, BTreeSet<String>>> {
    let names: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .into_iter()
        .map(|name| {
            let columns = c
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info({})",
                    literal(&name)
                ))?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok((name, columns))
        })
        .collect()
}

/// The target's tables, each after every table its foreign keys point at.
async fn copy_order(c: &mut PgConnection) -> Result<Vec<String>, ImportError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
         ORDER BY table_name",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
         FROM pg_constraint c
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = tables
        .iter()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    for (from, to) in &edges {
        if from != to
            && let Some(set) = needs.get_mut(from.as_str())
        {
            set.insert(to.as_str());
        }
    }
    let mut order = Vec::with_capacity(tables.len());
    while !needs.is_empty() {
        let ready: Vec<&str> = needs
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !needs.contains_key(d)))
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            return Err(ImportError::Schema(format!(
                "the foreign keys of {:?} form a cycle",
                needs.keys().collect::<Vec<_>>()
            )));
        }
        for t in ready {
            needs.remove(t);
            order.push(t.to_owned());
        }
    }
    Ok(order)
}

/// The columns of target table `table`, in order.
async fn target_columns(c: &mut PgConnection, table: &str) -> Result<Vec<Column>, ImportError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_identity::text
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *c)
    .await
    .map_err(db_err)?;
    rows.into_iter()
        .map(|(name, data_type, identity)| {
            let kind = match data_type.as_str() {
                "bigint" | "integer" | "smallint" => ColumnKind::Integer,
                "boolean" => ColumnKind::Boolean,
                "double precision" | "real" => ColumnKind::Real,
                "bytea" => ColumnKind::Bytes,
                "text" | "character varying" => ColumnKind::Text,
                other => {
                    return Err(ImportError::Schema(format!(
                        "{table}.{name} has type {other}, which the import does not know"
                    )));
                }
            };
            Ok(Column {
                name,
                kind,
                identity: identity == "YES",
            })
        })
        .collect()
}

/// Copies the rows of `table`; returns how many.
async fn copy_table(
    sqlite: &rusqlite::Connection,
    tx: &mut PgConnection,
    table: &str,
    target: &[Column],
    source: &BTreeSet<String>,
) -> Result<u64, ImportError> {
    let lost: Vec<&String> = source
        .iter()
        .filter(|s| !target.iter().any(|c| &c.name == *s))
        .collect();
    if !lost.is_empty() {
        return Err(ImportError::Schema(format!(
            "{table} has columns {lost:?} that the PostgreSQL schema lacks"
        )));
    }
    // Columns the source lacks take their defaults in the target.
    let columns: Vec<&Column> = target.iter().filter(|c| source.contains(&c.name)).collect();
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let source_err = |e: rusqlite::Error| ImportError::Source {
        path: String::new(),
        message: e.to_string(),
    };
    let mut select = sqlite
        .prepare(&format!(
            "SELECT {} FROM {}",
            names.join(", "),
            quote(table)
        ))
        .map_err(source_err)?;
    let mut rows = select.query([]).map_err(source_err)?;
    let mut batch = Batch::new(table, &names);
    let mut copied = 0;
    while let Some(row) = rows.next().map_err(source_err)? {
        let mut values = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let raw = row.get_ref(i).map_err(source_err)?;
            values.push(Value::from_sqlite(raw, column.kind).ok_or_else(|| {
                ImportError::Schema(format!(
                    "{table}.{}: {raw:?} does not fit the PostgreSQL column",
                    column.name
                ))
            })?);
        }
        batch.push(values)?;
        copied += 1;
        if batch.rows == BATCH_ROWS {
            batch.flush(tx).await?;
        }
    }
    batch.flush(tx).await?;
    Ok(copied)
}

/// The highest id SQLite ever handed out in `table`, rows since deleted included: the
/// counters of Berth's own `id_sequences` table and of SQLite's AUTOINCREMENT
/// (`sqlite_sequence`, which keeps the jobs' ids).
fn handed_out_ids(sqlite: &rusqlite::Connection, table: &str) -> rusqlite::Result<i64> {
    let autoincrement: bool = sqlite.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence')",
        [],
        |r| r.get(0),
    )?;
    let counters = if autoincrement {
        "SELECT coalesce(max(n), 0) FROM (SELECT last AS n FROM id_sequences WHERE name = ?1
                                          UNION ALL SELECT seq FROM sqlite_sequence WHERE name = ?1)"
    } else {
        "SELECT coalesce(max(last), 0) FROM id_sequences WHERE name = ?1"
    };
    sqlite.query_row(counters, [table], |r| r.get(0))
}

/// Makes each identity column of `table` continue after the highest id in it, or after
/// the highest the source ever handed out ([`handed_out_ids`]), whichever is higher.
async fn continue_identities(
    sqlite: &rusqlite::Connection,
    tx: &mut PgConnection,
    table: &str,
    columns: &[Column],
) -> Result<(), ImportError> {
    for column in columns.iter().filter(|c| c.identity) {
        let handed_out = handed_out_ids(sqlite, table).map_err(|e| ImportError::Source {
            path: String::new(),
            message: e.to_string(),
        })?;
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence($1, $2),
                           GREATEST((SELECT coalesce(max({col}), 0) FROM {tbl}), $3, 1),
                           GREATEST((SELECT coalesce(max({col}), 0) FROM {tbl}), $3) > 0)",
            col = quote(&column.name),
            tbl = quote(table),
        ))
        .bind(table)
        .bind(&column.name)
        .bind(handed_out)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// A value read from SQLite, typed for its PostgreSQL column.
enum Value {
    Integer(Option<i64>),
    Boolean(Option<bool>),
    Real(Option<f64>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

impl Value {
    fn from_sqlite(raw: ValueRef<'_>, kind: ColumnKind) -> Option<Value> {
        Some(match (kind, raw) {
            (ColumnKind::Integer, ValueRef::Null) => Value::Integer(None),
            (ColumnKind::Integer, ValueRef::Integer(i)) => Value::Integer(Some(i)),
            (ColumnKind::Boolean, ValueRef::Null) => Value::Boolean(None),
            (ColumnKind::Boolean, ValueRef::Integer(i)) => Value::Boolean(Some(i != 0)),
            (ColumnKind::Real, ValueRef::Null) => Value::Real(None),
            (ColumnKind::Real, ValueRef::Real(r)) => Value::Real(Some(r)),
            (ColumnKind::Real, ValueRef::Integer(i)) => Value::Real(Some(i as f64)),
            (ColumnKind::Bytes, ValueRef::Null) => Value::Bytes(None),
            (ColumnKind::Bytes, ValueRef::Blob(b) | ValueRef::Text(b)) => {
                Value::Bytes(Some(b.to_vec()))
            }
            (ColumnKind::Text, ValueRef::Null) => Value::Text(None),
            (ColumnKind::Text, ValueRef::Text(t)) => {
                Value::Text(Some(String::from_utf8(t.to_vec()).ok()?))
            }
            (ColumnKind::Text, ValueRef::Integer(i)) => Value::Text(Some(i.to_string())),
            _ => return None,
        })
    }

    fn bind(self, args: &mut PgArguments) -> Result<(), ImportError> {
        match self {
            Value::Integer(v) => args.add(v),
            Value::Boolean(v) => args.add(v),
            Value::Real(v) => args.add(v),
            Value::Bytes(v) => args.add(v),
            Value::Text(v) => args.add(v),
        }
        .map_err(|e| ImportError::Schema(e.to_string()))
    }
}

/// Rows waiting to be inserted with one statement.
struct Batch {
    insert: String,
    width: usize,
    rows: usize,
    args: PgArguments,
    placeholders: Vec<String>,
}

impl Batch {
    fn new(table: &str, names: &[String]) -> Batch {
        Batch {
            insert: format!(
                "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ",
                quote(table),
                names.join(", ")
            ),
            width: names.len(),
            rows: 0,
            args: PgArguments::default(),
            placeholders: Vec::new(),
        }
    }

    fn push(&mut self, values: Vec<Value>) -> Result<(), ImportError> {
        let first = self.rows * self.width;
        let slots: Vec<String> = (1..=self.width)
            .map(|i| format!("${}", first + i))
            .collect();
        self.placeholders.push(format!("({})", slots.join(", ")));
        for value in values {
            value.bind(&mut self.args)?;
        }
        self.rows += 1;
        Ok(())
    }

    async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), ImportError> {
        if self.rows == 0 {
            return Ok(());
        }
        let sql = format!("{}{}", self.insert, self.placeholders.join(", "));
        let args = std::mem::take(&mut self.args);
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.placeholders.clear();
        self.rows = 0;
        Ok(())
    }
}

/// `name` as a quoted identifier (SQLite and PostgreSQL quote alike).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a quoted SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
