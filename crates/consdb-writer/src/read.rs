//! Reads: the ids of the exposures or visits ConsDB holds for a `day_obs` range (what the monitor
//! compares with the Butler), and whole rows of a table for some ids, as [`Value`]s by column name
//! (tests and tools).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use db_connect::AnyConnection;
use diesel::deserialize::{self, FromSql, QueryableByName};
use diesel::pg::Pg;
use diesel::pg::data_types::PgTimestamp;
use diesel::row::{Field, NamedRow, Row as DieselRow};
use diesel::sql_types::{Array, BigInt, Bool, Double, Float, Integer, SmallInt, Text, Timestamp};
use diesel::sqlite::{Sqlite, SqliteType};
use diesel_async::RunQueryDsl;
use transform_core::{Table, UtcNanos};

use crate::connection::Connection;
use crate::ddl::qualified;
use crate::error::WriterError;
use crate::schema::EfdSchema;

/// A value read from ConsDB.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer type.
    Int(i64),
    /// A floating-point value.
    Float(f64),
    /// A boolean (PostgreSQL; SQLite stores booleans as integers).
    Bool(bool),
    /// Text (and SQLite timestamps, which are text).
    Text(String),
    /// A PostgreSQL `TIMESTAMP`, read as UTC.
    Timestamp(UtcNanos),
}

impl Value {
    /// The value as a float, if it is a number (`Null` and text give `None`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss)] // Test helper: ids and keys are far below 2^53.
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        *self == Value::Null
    }
}

/// One row, by column name.
pub type Row = BTreeMap<String, Value>;

/// A row of any shape, decoded column by column from the type the database reports.
struct DynRow(Row);

impl QueryableByName<Pg> for DynRow {
    fn build<'a>(row: &impl NamedRow<'a, Pg>) -> deserialize::Result<Self> {
        let mut out = Row::new();
        for i in 0..row.field_count() {
            let Some(field) = DieselRow::get(row, i) else {
                continue;
            };
            let name = field.field_name().unwrap_or_default().to_owned();
            let value = match field.value() {
                None => Value::Null,
                Some(raw) => match raw.get_oid().get() {
                    16 => Value::Bool(<bool as FromSql<Bool, Pg>>::from_sql(raw)?),
                    20 => Value::Int(<i64 as FromSql<BigInt, Pg>>::from_sql(raw)?),
                    21 => Value::Int(i64::from(<i16 as FromSql<SmallInt, Pg>>::from_sql(raw)?)),
                    23 => Value::Int(i64::from(<i32 as FromSql<Integer, Pg>>::from_sql(raw)?)),
                    700 => Value::Float(f64::from(<f32 as FromSql<Float, Pg>>::from_sql(raw)?)),
                    701 => Value::Float(<f64 as FromSql<Double, Pg>>::from_sql(raw)?),
                    25 | 1042 | 1043 => Value::Text(<String as FromSql<Text, Pg>>::from_sql(raw)?),
                    1114 => {
                        let PgTimestamp(micros) =
                            <PgTimestamp as FromSql<Timestamp, Pg>>::from_sql(raw)?;
                        // Microseconds since 2000-01-01.
                        Value::Timestamp(UtcNanos((micros + 946_684_800_000_000) * 1_000))
                    }
                    oid => {
                        return Err(
                            format!("column `{name}` has unsupported type oid {oid}").into()
                        );
                    }
                },
            };
            out.insert(name, value);
        }
        Ok(DynRow(out))
    }
}

impl QueryableByName<Sqlite> for DynRow {
    fn build<'a>(row: &impl NamedRow<'a, Sqlite>) -> deserialize::Result<Self> {
        let mut out = Row::new();
        for i in 0..row.field_count() {
            let Some(field) = DieselRow::get(row, i) else {
                continue;
            };
            let name = field.field_name().unwrap_or_default().to_owned();
            let value = match field.value() {
                None => Value::Null,
                Some(raw) => match raw.value_type() {
                    None => Value::Null,
                    Some(SqliteType::Double | SqliteType::Float) => {
                        Value::Float(<f64 as FromSql<Double, Sqlite>>::from_sql(raw)?)
                    }
                    Some(SqliteType::Text) => {
                        Value::Text(<String as FromSql<Text, Sqlite>>::from_sql(raw)?)
                    }
                    Some(SqliteType::Binary) => {
                        return Err(format!("column `{name}` holds a blob").into());
                    }
                    Some(SqliteType::SmallInt | SqliteType::Integer | SqliteType::Long) => {
                        Value::Int(<i64 as FromSql<BigInt, Sqlite>>::from_sql(raw)?)
                    }
                },
            };
            out.insert(name, value);
        }
        Ok(DynRow(out))
    }
}

#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The ids in `table` (any of the four) whose `day_obs` is in the range, ascending, each once.
pub(crate) async fn ids_for_day_obs(
    conn: &mut Connection,
    schema: &EfdSchema,
    table: Table,
    day_obs: RangeInclusive<i32>,
) -> Result<Vec<i64>, WriterError> {
    let spec = schema.table(table);
    let label = conn.label().to_owned();
    let operation = format!("reading ids of {}", spec.qualified(schema.name()));
    let (first, last) = (*day_obs.start(), *day_obs.end());
    let select = format!(
        "SELECT DISTINCT {id} AS id FROM {t} WHERE \"day_obs\" BETWEEN",
        id = spec.id_column.quoted(),
        t = qualified(schema.name(), &spec.name),
    );
    let rows: Result<Vec<IdRow>, _> = match conn.inner() {
        AnyConnection::Postgres(c) => {
            diesel::sql_query(format!("{select} $1 AND $2 ORDER BY 1"))
                .bind::<Integer, _>(first)
                .bind::<Integer, _>(last)
                .load(c)
                .await
        }
        AnyConnection::Sqlite(c) => {
            diesel::sql_query(format!("{select} ?1 AND ?2 ORDER BY 1"))
                .bind::<Integer, _>(first)
                .bind::<Integer, _>(last)
                .load(c)
                .await
        }
    };
    rows.map(|r| r.into_iter().map(|r| r.id).collect())
        .map_err(|e| WriterError::database(&operation, &label, &e))
}

/// Every row of `table` whose id is one of `ids`, the schema's columns only, in primary-key order.
pub(crate) async fn select_rows(
    conn: &mut Connection,
    schema: &EfdSchema,
    table: Table,
    ids: &[i64],
) -> Result<Vec<Row>, WriterError> {
    let spec = schema.table(table);
    let label = conn.label().to_owned();
    let operation = format!("reading rows of {}", spec.qualified(schema.name()));
    let columns: Vec<String> = spec.columns.iter().map(|c| c.name.quoted()).collect();
    let order: Vec<String> = spec.primary_key.iter().map(|c| c.quoted()).collect();
    let select = format!(
        "SELECT {} FROM {} WHERE {} ",
        columns.join(", "),
        qualified(schema.name(), &spec.name),
        spec.id_column.quoted()
    );
    let order = format!(" ORDER BY {}", order.join(", "));
    let rows: Result<Vec<DynRow>, _> = match conn.inner() {
        AnyConnection::Postgres(c) => {
            diesel::sql_query(format!("{select}= ANY($1){order}"))
                .bind::<Array<BigInt>, _>(ids.to_vec())
                .load(c)
                .await
        }
        AnyConnection::Sqlite(c) => {
            let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
            diesel::sql_query(format!(
                "{select}IN (SELECT value FROM json_each(?1)){order}"
            ))
            .bind::<Text, _>(format!("[{}]", list.join(",")))
            .load(c)
            .await
        }
    };
    rows.map(|r| r.into_iter().map(|r| r.0).collect())
        .map_err(|e| WriterError::database(&operation, &label, &e))
}

/// Which cells of a pivoted table hold values, for coverage reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// The columns reported (the table's value columns, in table order).
    pub columns: Vec<String>,
    /// One row per exposure or visit, by `(day_obs, seq_num)`.
    pub rows: Vec<PresenceRow>,
}

/// One row of a [`Presence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    /// `exposure_id` or `visit_id`.
    pub id: i64,
    /// Observing day.
    pub day_obs: i32,
    /// Sequence number.
    pub seq_num: i32,
    /// Per column of [`Presence::columns`]: whether it holds a value (not NULL).
    pub present: Vec<bool>,
}

/// Aliases of the key columns in the presence query: `#` is in no config column name.
const KEY_ALIASES: [&str; 3] = ["#id", "#day_obs", "#seq_num"];

/// Which value columns of `table` (a pivoted one) are NULL in each row whose `day_obs` is in the
/// range.
pub(crate) async fn presence(
    conn: &mut Connection,
    schema: &EfdSchema,
    table: Table,
    day_obs: RangeInclusive<i32>,
) -> Result<Presence, WriterError> {
    let spec = schema.table(table);
    let label = conn.label().to_owned();
    let operation = format!("reading the coverage of {}", spec.qualified(schema.name()));
    let keys: Vec<&str> = spec
        .primary_key
        .iter()
        .chain(std::iter::once(&spec.id_column))
        .map(|c| c.as_str())
        .chain(std::iter::once("created_at"))
        .collect();
    let columns: Vec<String> = spec
        .columns
        .iter()
        .map(|c| c.name.as_str().to_owned())
        .filter(|c| !keys.contains(&c.as_str()))
        .collect();
    let mut select = format!(
        "SELECT {} AS \"{}\", \"day_obs\" AS \"{}\", \"seq_num\" AS \"{}\"",
        spec.id_column.quoted(),
        KEY_ALIASES[0],
        KEY_ALIASES[1],
        KEY_ALIASES[2]
    );
    for c in &columns {
        // Validated identifiers, quoted.
        select.push_str(&format!(", (\"{c}\" IS NOT NULL) AS \"{c}\""));
    }
    select.push_str(&format!(
        " FROM {} WHERE \"day_obs\" BETWEEN",
        qualified(schema.name(), &spec.name)
    ));
    let (first, last) = (*day_obs.start(), *day_obs.end());
    let order = " ORDER BY \"day_obs\", \"seq_num\"";
    let rows: Result<Vec<DynRow>, _> = match conn.inner() {
        AnyConnection::Postgres(c) => {
            diesel::sql_query(format!("{select} $1 AND $2{order}"))
                .bind::<Integer, _>(first)
                .bind::<Integer, _>(last)
                .load(c)
                .await
        }
        AnyConnection::Sqlite(c) => {
            diesel::sql_query(format!("{select} ?1 AND ?2{order}"))
                .bind::<Integer, _>(first)
                .bind::<Integer, _>(last)
                .load(c)
                .await
        }
    };
    let rows = rows.map_err(|e| WriterError::database(&operation, &label, &e))?;
    let int = |row: &Row, key: &str| row.get(key).and_then(Value::as_i64).unwrap_or_default();
    let rows = rows
        .into_iter()
        .map(|DynRow(row)| PresenceRow {
            id: int(&row, KEY_ALIASES[0]),
            day_obs: i32::try_from(int(&row, KEY_ALIASES[1])).unwrap_or_default(),
            seq_num: i32::try_from(int(&row, KEY_ALIASES[2])).unwrap_or_default(),
            present: columns
                .iter()
                .map(|c| match row.get(c) {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::Int(i)) => *i != 0,
                    _ => false,
                })
                .collect(),
        })
        .collect();
    Ok(Presence { columns, rows })
}

#[derive(diesel::QueryableByName)]
struct IdProperty {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    property: String,
}

/// The `(id, property)` pairs of `table` (an unpivoted one) with at least one value, for rows
/// whose `day_obs` is in the range.
pub(crate) async fn unpivoted_presence(
    conn: &mut Connection,
    schema: &EfdSchema,
    table: Table,
    day_obs: RangeInclusive<i32>,
) -> Result<Vec<(i64, String)>, WriterError> {
    let spec = schema.table(table);
    let label = conn.label().to_owned();
    let operation = format!("reading the coverage of {}", spec.qualified(schema.name()));
    let select = format!(
        "SELECT {id} AS id, \"property\" AS property FROM {t} WHERE \"value\" IS NOT NULL AND \
         \"day_obs\" BETWEEN",
        id = spec.id_column.quoted(),
        t = qualified(schema.name(), &spec.name),
    );
    let (first, last) = (*day_obs.start(), *day_obs.end());
    let group = " GROUP BY 1, 2 ORDER BY 1, 2";
    let rows: Result<Vec<IdProperty>, _> = match conn.inner() {
        AnyConnection::Postgres(c) => {
            diesel::sql_query(format!("{select} $1 AND $2{group}"))
                .bind::<Integer, _>(first)
                .bind::<Integer, _>(last)
                .load(c)
                .await
        }
        AnyConnection::Sqlite(c) => {
            diesel::sql_query(format!("{select} ?1 AND ?2{group}"))
                .bind::<Integer, _>(first)
                .bind::<Integer, _>(last)
                .load(c)
                .await
        }
    };
    rows.map(|r| r.into_iter().map(|r| (r.id, r.property)).collect())
        .map_err(|e| WriterError::database(&operation, &label, &e))
}
