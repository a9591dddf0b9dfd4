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
