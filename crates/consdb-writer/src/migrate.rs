//! Additive migrations: compare a live database with an [`EfdSchema`], list what is missing and
//! what the database has beyond the config, and create only what is missing.
//!
//! Inspection reads the catalogs (`pg_catalog` on PostgreSQL; `sqlite_master` and the
//! `pragma_table_info`/`pragma_index_list` functions on SQLite) and changes nothing. A migration
//! never drops, renames or retypes anything and never touches rows: existing tables only gain
//! columns (nullable, so existing rows read NULL) and missing keys. Extra columns and type
//! differences are reported ([`Extra`]) for a person to decide.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use db_connect::AnyConnection;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::RunQueryDsl;

use crate::connection::{Connection, Statements};
use crate::ddl;
use crate::error::WriterError;
use crate::ident::Ident;
use crate::schema::{Backend, EfdSchema, SqlType, TableSpec};

/// Something the config needs that the database lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The schema itself (on SQLite: its attached file).
    Schema {
        /// `efd_<instrument>`.
        schema: String,
    },
    /// A whole table (its columns and keys are not listed separately).
    Table {
        /// `schema.table`.
        table: String,
    },
    /// A column of an existing table.
    Column {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// Its type.
        sql_type: SqlType,
    },
    /// The primary key (the upserts' conflict target) of an existing table.
    PrimaryKey {
        /// `schema.table`.
        table: String,
        /// Its columns.
        columns: Vec<String>,
    },
    /// A unique key of an existing table.
    Unique {
        /// `schema.table`.
        table: String,
        /// The constraint name.
        name: String,
        /// Its columns.
        columns: Vec<String>,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Schema { schema } => write!(f, "schema {schema}"),
            Missing::Table { table } => write!(f, "table {table}"),
            Missing::Column {
                table,
                column,
                sql_type,
            } => write!(f, "column {table}.{column} ({sql_type})"),
            Missing::PrimaryKey { table, columns } => {
                write!(f, "primary key ({}) of {table}", columns.join(", "))
            }
            Missing::Unique {
                table,
                name,
                columns,
            } => write!(f, "unique key {name} ({}) of {table}", columns.join(", ")),
        }
    }
}

/// Something the database has that the config does not describe, or describes differently. Never
/// changed by a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// A table or view of the schema that is none of the four.
    Table {
        /// `schema.table`.
        table: String,
    },
    /// A column that no config column (and no fixed column) names.
    Column {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// Its type, as the database names it.
        sql_type: String,
    },
    /// A column whose type differs from the config's.
    TypeMismatch {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// The type the config gives.
        expected: SqlType,
        /// The type the database has.
        found: String,
    },
}

impl fmt::Display for Extra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extra::Table { table } => write!(f, "table {table} is not in the config"),
            Extra::Column {
                table,
                column,
                sql_type,
            } => write!(
                f,
                "column {table}.{column} ({sql_type}) is not in the config"
            ),
            Extra::TypeMismatch {
                table,
                column,
                expected,
                found,
            } => write!(
                f,
                "column {table}.{column} is {found}, the config says {expected}"
            ),
        }
    }
}

/// What a database lacks, what it has beyond the config, and the SQL that adds what it lacks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationPlan {
    /// The database, without credentials.
    pub database: String,
    /// What the config needs and the database lacks.
    pub missing: Vec<Missing>,
    /// What the database has beyond (or unlike) the config.
    pub extra: Vec<Extra>,
    /// The statements that add the missing items, in order.
    pub statements: Vec<String>,
}

impl MigrationPlan {
    /// Whether nothing is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The statements as one SQL script (`;` and a newline after each).
    pub fn sql(&self) -> String {
        self.statements.iter().map(|s| format!("{s};\n")).collect()
    }
}

/// One relation of the live schema.
#[derive(Debug, Default)]
struct LiveTable {
    /// Columns and their types as the database spells them, in order.
    columns: Vec<(String, String)>,
    /// Unique indexes: (is primary key, column set).
    unique: Vec<(bool, BTreeSet<String>)>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct RelationRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    sql_type: String,
}

#[derive(QueryableByName)]
struct IndexRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Bool)]
    is_primary: bool,
    #[diesel(sql_type = Text)]
    column_name: String,
}

const PG_SCHEMA: &str = "SELECT count(*) AS n FROM pg_catalog.pg_namespace WHERE nspname = $1";
const PG_RELATIONS: &str = "SELECT c.relname::text AS name FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')";
const PG_COLUMNS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
     pg_catalog.format_type(a.atttypid, a.atttypmod) AS sql_type \
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
     AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum";
const PG_INDEXES: &str = "SELECT c.relname::text AS table_name, ic.relname::text AS index_name, \
     i.indisprimary AS is_primary, a.attname::text AS column_name \
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
     JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) \
     WHERE n.nspname = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL";

fn sqlite_relations(schema: &Ident) -> String {
    format!(
        "SELECT name FROM {}.sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        schema.quoted()
    )
}

fn sqlite_columns(schema: &Ident) -> String {
    format!(
        "SELECT m.name AS table_name, p.name AS column_name, p.type AS sql_type \
         FROM {}.sqlite_master m JOIN pragma_table_info(m.name, ?1) p \
         WHERE m.type IN ('table', 'view') ORDER BY m.name, p.cid",
        schema.quoted()
    )
}

fn sqlite_indexes(schema: &Ident) -> String {
    format!(
        "SELECT m.name AS table_name, il.name AS index_name, il.origin = 'pk' AS is_primary, \
         ii.name AS column_name \
         FROM {}.sqlite_master m JOIN pragma_index_list(m.name, ?1) il \
         JOIN pragma_index_info(il.name, ?1) ii \
         WHERE m.type = 'table' AND il.\"unique\" = 1 AND il.partial = 0",
        schema.quoted()
    )
}

/// Reads what exists of the schema. `None`: the schema does not exist.
async fn live_schema(
    conn: &mut Connection,
    schema: &Ident,
) -> Result<Option<BTreeMap<String, LiveTable>>, WriterError> {
    let label = conn.label().to_owned();
    let fail = |e: diesel::result::Error| WriterError::database("schema inspection", &label, &e);
    let name = schema.as_str().to_owned();
    let attached = conn.sqlite_attached();
    let (relations, columns, indexes) = match conn.inner() {
        AnyConnection::Postgres(c) => {
            let exists: CountRow = diesel::sql_query(PG_SCHEMA)
                .bind::<Text, _>(&name)
                .get_result(c)
                .await
                .map_err(fail)?;
            if exists.n == 0 {
                return Ok(None);
            }
            let relations: Vec<RelationRow> = diesel::sql_query(PG_RELATIONS)
                .bind::<Text, _>(&name)
                .load(c)
                .await
                .map_err(fail)?;
            let columns: Vec<ColumnRow> = diesel::sql_query(PG_COLUMNS)
                .bind::<Text, _>(&name)
                .load(c)
                .await
                .map_err(fail)?;
            let indexes: Vec<IndexRow> = diesel::sql_query(PG_INDEXES)
                .bind::<Text, _>(&name)
                .load(c)
                .await
                .map_err(fail)?;
            (relations, columns, indexes)
        }
        AnyConnection::Sqlite(c) => {
            if attached != Some(true) {
                return Ok(None);
            }
            let relations: Vec<RelationRow> = diesel::sql_query(sqlite_relations(schema))
                .load(c)
                .await
                .map_err(fail)?;
            let columns: Vec<ColumnRow> = diesel::sql_query(sqlite_columns(schema))
                .bind::<Text, _>(name.clone())
                .load(c)
                .await
                .map_err(fail)?;
            let indexes: Vec<IndexRow> = diesel::sql_query(sqlite_indexes(schema))
                .bind::<Text, _>(name.clone())
                .load(c)
                .await
                .map_err(fail)?;
            (relations, columns, indexes)
        }
    };
    let mut tables: BTreeMap<String, LiveTable> = relations
        .into_iter()
        .map(|r| (r.name, LiveTable::default()))
        .collect();
    for c in columns {
        if let Some(t) = tables.get_mut(&c.table_name) {
            t.columns.push((c.column_name, c.sql_type));
        }
    }
    let mut by_index: BTreeMap<(String, String), (bool, BTreeSet<String>)> = BTreeMap::new();
    for i in indexes {
        by_index
            .entry((i.table_name, i.index_name))
            .or_insert_with(|| (i.is_primary, BTreeSet::new()))
            .1
            .insert(i.column_name);
    }
    for ((table, _), key) in by_index {
        if let Some(t) = tables.get_mut(&table) {
            t.unique.push(key);
        }
    }
    Ok(Some(tables))
}

/// SQLite's type affinity of a declared type (the rules of its "Datatypes" page, §3.1).
fn sqlite_affinity(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "TEXT"
    } else if t.contains("BLOB") || t.is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

fn same_type(backend: Backend, expected: SqlType, found: &str) -> bool {
    match backend {
        Backend::Postgres => expected.pg_format_type() == found,
        Backend::Sqlite => sqlite_affinity(&expected.sql()) == sqlite_affinity(found),
    }
}

/// Compares the live schema with the config's; no side effects.
pub(crate) async fn plan(
    conn: &mut Connection,
    schema: &EfdSchema,
) -> Result<MigrationPlan, WriterError> {
    let backend = conn.backend();
    let live = live_schema(conn, schema.name()).await?;
    let name = schema.name();
    let mut plan = MigrationPlan {
        database: conn.label().to_owned(),
        ..MigrationPlan::default()
    };
    let live = match live {
        Some(live) => live,
        None => {
            plan.missing.push(Missing::Schema {
                schema: name.to_string(),
            });
            plan.statements.push(match conn.attach_statement() {
                Some(attach) => attach,
                None => ddl::create_schema(backend, name, None),
            });
            BTreeMap::new()
        }
    };
    for table in schema.tables() {
        let shown = table.qualified(name);
        match live.get(table.name.as_str()) {
            None => {
                plan.missing.push(Missing::Table { table: shown });
                plan.statements
                    .extend(ddl::create_table(backend, name, table));
            }
            Some(existing) => diff_table(backend, name, table, existing, &mut plan),
        }
    }
    for extra in live
        .keys()
        .filter(|t| schema.tables().iter().all(|s| s.name.as_str() != *t))
    {
        plan.extra.push(Extra::Table {
            table: format!("{name}.{extra}"),
        });
    }
    Ok(plan)
}

fn diff_table(
    backend: Backend,
    schema: &Ident,
    table: &TableSpec,
    live: &LiveTable,
    plan: &mut MigrationPlan,
) {
    let shown = table.qualified(schema);
    let live_types: BTreeMap<&str, &str> = live
        .columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    for column in &table.columns {
        match live_types.get(column.name.as_str()) {
            None => {
                plan.missing.push(Missing::Column {
                    table: shown.clone(),
                    column: column.name.to_string(),
                    sql_type: column.sql_type,
                });
                plan.statements
                    .extend(ddl::add_column(backend, schema, table, column));
            }
            Some(found) if !same_type(backend, column.sql_type, found) => {
                plan.extra.push(Extra::TypeMismatch {
                    table: shown.clone(),
                    column: column.name.to_string(),
                    expected: column.sql_type,
                    found: (*found).to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    for (column, sql_type) in &live.columns {
        if table.column(column).is_none() {
            plan.extra.push(Extra::Column {
                table: shown.clone(),
                column: column.clone(),
                sql_type: sql_type.clone(),
            });
        }
    }
    let has_key = |columns: &[Ident]| {
        let wanted: BTreeSet<String> = columns.iter().map(ToString::to_string).collect();
        live.unique.iter().any(|(_, set)| *set == wanted)
    };
    if !has_key(&table.primary_key) {
        plan.missing.push(Missing::PrimaryKey {
            table: shown.clone(),
            columns: table.primary_key.iter().map(ToString::to_string).collect(),
        });
        plan.statements
            .push(ddl::add_primary_key(backend, schema, table));
    }
    if let Some(unique) = &table.unique
        && !has_key(&unique.columns)
    {
        plan.missing.push(Missing::Unique {
            table: shown,
            name: unique.name.to_string(),
            columns: unique.columns.iter().map(ToString::to_string).collect(),
        });
        plan.statements.push(ddl::add_unique(
            backend,
            schema,
            table,
            &unique.name,
            &unique.columns,
        ));
    }
}

/// Executes a plan made on this connection: the SQLite `ATTACH` first (it cannot run in a
/// transaction), then every other statement in one transaction.
pub(crate) async fn apply(conn: &mut Connection, plan: &MigrationPlan) -> Result<(), WriterError> {
    let mut statements = plan.statements.as_slice();
    if let Some(attach) = conn.attach_statement()
        && statements.first() == Some(&attach)
    {
        conn.attach().await?;
        statements = &statements[1..];
    }
    if statements.is_empty() {
        return Ok(());
    }
    let boxed = match conn.backend() {
        Backend::Postgres => Statements::Pg(
            statements
                .iter()
                .map(|s| diesel::sql_query(s.clone()).into_boxed())
                .collect(),
        ),
        Backend::Sqlite => Statements::Sqlite(
            statements
                .iter()
                .map(|s| diesel::sql_query(s.clone()).into_boxed())
                .collect(),
        ),
    };
    conn.execute_all(boxed, "migration").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_affinities() {
        assert_eq!(sqlite_affinity("DOUBLE PRECISION"), "REAL");
        assert_eq!(sqlite_affinity("FLOAT"), "REAL");
        assert_eq!(sqlite_affinity("BIGINT"), "INTEGER");
        assert_eq!(sqlite_affinity("VARCHAR(64)"), "TEXT");
        assert_eq!(sqlite_affinity("BOOLEAN"), "NUMERIC");
        assert_eq!(sqlite_affinity("TIMESTAMP"), "NUMERIC");
        assert!(same_type(
            Backend::Sqlite,
            SqlType::DoublePrecision,
            "float"
        ));
        assert!(!same_type(
            Backend::Sqlite,
            SqlType::DoublePrecision,
            "TEXT"
        ));
        assert!(same_type(
            Backend::Postgres,
            SqlType::Varchar(64),
            "character varying(64)"
        ));
    }
}
