//! Upsert statements: a checked, columnar form of a batch ([`Upsert`]) and the SQL that writes it on
//! each backend.
//!
//! PostgreSQL: one `unnest` array bind per column, so a batch is one statement however many rows it
//! has (up to [`PG_MAX_ROWS`] rows per statement, to bound the message size):
//!
//! ```sql
//! INSERT INTO "efd_latiss"."exposure_efd" ("day_obs", "seq_num", "exposure_id", "c", "created_at")
//! SELECT u.*, CAST($5 AS TIMESTAMP) FROM unnest($1::int4[], $2::int4[], $3::int8[], $4::float8[]) AS u
//! ON CONFLICT ("day_obs", "seq_num") DO UPDATE SET "exposure_id" = EXCLUDED."exposure_id", "c" = EXCLUDED."c"
//! ```
//!
//! SQLite: multi-row `VALUES` with `?` binds, as many rows per statement as fit under
//! [`SQLITE_MAX_BINDS`]. All statements of a batch run in one transaction per database.
//! `created_at` is inserted (UTC, given by the caller) and never updated.

use std::collections::HashSet;

use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, SmallInt, Text};
use transform_core::{Table, UtcNanos};

use crate::connection::Statements;
use crate::ddl::qualified;
use crate::error::WriterError;
use crate::ident::Ident;
use crate::rows::{UnpivotedBatch, WideBatch};
use crate::schema::{Backend, ColumnRole, EfdSchema, SqlType, TableSpec};

/// SQLite's bind limit since 3.32 (`SQLITE_MAX_VARIABLE_NUMBER`); the bundled library has at least
/// this many.
pub const SQLITE_MAX_BINDS: usize = 32_766;
/// Rows per PostgreSQL statement: one statement holds a whole batch up to this size.
pub const PG_MAX_ROWS: usize = 10_000;

/// `property` is `VARCHAR(64)`.
const MAX_PROPERTY_CHARS: usize = 64;
/// `field` is `VARCHAR(32)`.
const MAX_FIELD_CHARS: usize = 32;

/// The values of one column of a batch, typed for its SQL type.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    I16(Vec<Option<i16>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F64(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<String>),
}

impl Data {
    fn slice(&self, range: std::ops::Range<usize>) -> Data {
        match self {
            Data::I16(v) => Data::I16(v[range].to_vec()),
            Data::I32(v) => Data::I32(v[range].to_vec()),
            Data::I64(v) => Data::I64(v[range].to_vec()),
            Data::F64(v) => Data::F64(v[range].to_vec()),
            Data::Bool(v) => Data::Bool(v[range].to_vec()),
            Data::Text(v) => Data::Text(v[range].to_vec()),
        }
    }

    fn pg_array(&self) -> &'static str {
        match self {
            Data::I16(_) => SqlType::SmallInt.pg_array(),
            Data::I32(_) => SqlType::Integer.pg_array(),
            Data::I64(_) => SqlType::BigInt.pg_array(),
            Data::F64(_) => SqlType::DoublePrecision.pg_array(),
            Data::Bool(_) => SqlType::Boolean.pg_array(),
            Data::Text(_) => "text[]",
        }
    }
}

/// A batch checked against the schema and laid out by column, ready to become statements for any
/// backend (as many times as there are databases).
#[derive(Debug, Clone)]
pub(crate) struct Upsert {
    /// `upsert into efd_x.table`, for errors and logs.
    pub(crate) operation: String,
    table_sql: String,
    /// Inserted columns but `created_at`, aligned with `data`.
    columns: Vec<Ident>,
    data: Vec<Data>,
    conflict: Vec<Ident>,
    update: Vec<Ident>,
    /// The table's unqualified name when rows whose updated columns would not change are left
    /// alone (`... DO UPDATE SET ... WHERE <table>.<c> IS DISTINCT FROM EXCLUDED.<c>`).
    skip_unchanged: Option<Ident>,
    created_at: String,
    /// Rows after removing duplicate keys.
    pub(crate) rows: usize,
}

/// Converts computed values to a column's type: NaN is NULL (as the reference's
/// `replace(nan, None)`); integers are rounded half to even, as PostgreSQL casts floats; values out
/// of range are errors.
fn convert(
    sql_type: SqlType,
    values: Vec<Option<f64>>,
    table: Table,
    column: &str,
) -> Result<Data, WriterError> {
    fn ints<T: TryFrom<i64>>(
        values: Vec<Option<f64>>,
        table: Table,
        column: &str,
        type_name: &str,
    ) -> Result<Vec<Option<T>>, WriterError> {
        values
            .into_iter()
            .map(|v| match v {
                None => Ok(None),
                Some(x) if x.is_nan() => Ok(None),
                Some(x) => {
                    let r = x.round_ties_even();
                    // i64::MAX as f64 rounds up to 2^63, so the bounds are checked in f64.
                    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
                    #[allow(clippy::cast_possible_truncation)] // Checked against the range first.
                    let int = (-TWO_POW_63..TWO_POW_63).contains(&r).then_some(r as i64);
                    int.and_then(|i| T::try_from(i).ok())
                        .map(Some)
                        .ok_or_else(|| {
                            WriterError::batch(
                                table,
                                format!("value {x} of column `{column}` does not fit {type_name}"),
                            )
                        })
                }
            })
            .collect()
    }
    let nan_to_null = |v: Option<f64>| v.filter(|x| !x.is_nan());
    Ok(match sql_type {
        SqlType::DoublePrecision => Data::F64(values.into_iter().map(nan_to_null).collect()),
        SqlType::Integer => Data::I32(ints(values, table, column, "INTEGER")?),
        SqlType::BigInt => Data::I64(ints(values, table, column, "BIGINT")?),
        SqlType::SmallInt => Data::I16(ints(values, table, column, "SMALLINT")?),
        SqlType::Boolean => Data::Bool(
            values
                .into_iter()
                .map(|v| nan_to_null(v).map(|x| x != 0.0))
                .collect(),
        ),
        SqlType::Timestamp | SqlType::Varchar(_) => {
            return Err(WriterError::batch(
                table,
                format!("column `{column}` is {sql_type}, which computed values cannot fill"),
            ));
        }
    })
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC, microseconds, rounded down), as both backends read a
/// `TIMESTAMP`.
pub(crate) fn sql_timestamp(t: UtcNanos) -> String {
    transform_core::time::format_timestamp_micros(t)
}

fn table_of(schema: &EfdSchema, table: Table, unpivoted: bool) -> Result<&TableSpec, WriterError> {
    if table.is_unpivoted() != unpivoted {
        let wanted = if unpivoted {
            "an unpivoted table"
        } else {
            "exposure_efd or visit1_efd"
        };
        return Err(WriterError::batch(
            table,
            format!("this batch kind writes to {wanted}"),
        ));
    }
    Ok(schema.table(table))
}

impl Upsert {
    /// Checks a wide batch and lays it out; also returns how many config columns it leaves out.
    pub(crate) fn wide(
        schema: &EfdSchema,
        batch: &WideBatch,
        created_at: UtcNanos,
    ) -> Result<(Upsert, usize), WriterError> {
        let table = batch.table;
        let spec = table_of(schema, table, false)?;
        let mut idents = Vec::with_capacity(batch.columns.len());
        let mut types = Vec::with_capacity(batch.columns.len());
        let mut seen = HashSet::with_capacity(batch.columns.len());
        for name in &batch.columns {
            // Second line of defence: nothing that is not a plain identifier goes further.
            let ident = Ident::new(name)?;
            let column = spec
                .column(name)
                .filter(|c| c.role == ColumnRole::Config)
                .ok_or_else(|| WriterError::UnknownColumn {
                    table: spec.qualified(schema.name()),
                    column: name.clone(),
                })?;
            if !seen.insert(name.as_str()) {
                return Err(WriterError::batch(
                    table,
                    format!("column `{name}` is listed twice"),
                ));
            }
            idents.push(ident);
            types.push(column.sql_type);
        }
        let absent = spec.config_columns().count() - idents.len();
        if let Some((i, row)) = batch
            .rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.values.len() != idents.len())
        {
            return Err(WriterError::batch(
                table,
                format!(
                    "row {i} has {} values for {} columns",
                    row.values.len(),
                    idents.len()
                ),
            ));
        }
        // The last row of each key wins, as later chunks overwrote earlier ones in the reference.
        let mut keys = HashSet::with_capacity(batch.rows.len());
        let mut rows: Vec<_> = batch
            .rows
            .iter()
            .rev()
            .filter(|r| keys.insert((r.key.day_obs, r.key.seq_num)))
            .collect();
        rows.reverse();
        let mut data = vec![
            Data::I32(rows.iter().map(|r| Some(r.key.day_obs)).collect()),
            Data::I32(rows.iter().map(|r| Some(r.key.seq_num)).collect()),
            Data::I64(rows.iter().map(|r| Some(r.key.id)).collect()),
        ];
        for (j, (ident, sql_type)) in idents.iter().zip(&types).enumerate() {
            let values = rows.iter().map(|r| r.values[j]).collect();
            data.push(convert(*sql_type, values, table, ident.as_str())?);
        }
        let mut columns = spec.primary_key.clone();
        columns.push(spec.id_column.clone());
        columns.extend(idents.iter().cloned());
        let mut update = vec![spec.id_column.clone()];
        update.extend(idents);
        let upsert = Upsert {
            operation: format!("upsert into {}", spec.qualified(schema.name())),
            table_sql: qualified(schema.name(), &spec.name),
            columns,
            data,
            conflict: spec.primary_key.clone(),
            update,
            skip_unchanged: None,
            created_at: sql_timestamp(created_at),
            rows: rows.len(),
        };
        Ok((upsert, absent))
    }

    /// Checks an unpivoted batch and lays it out.
    pub(crate) fn unpivoted(
        schema: &EfdSchema,
        batch: &UnpivotedBatch,
        created_at: UtcNanos,
    ) -> Result<Upsert, WriterError> {
        let table = batch.table;
        let spec = table_of(schema, table, true)?;
        for row in &batch.rows {
            if !spec.properties.contains(&row.property) {
                return Err(WriterError::UnknownColumn {
                    table: spec.qualified(schema.name()),
                    column: row.property.clone(),
                });
            }
            if row.field.chars().count() > MAX_FIELD_CHARS {
                return Err(WriterError::batch(
                    table,
                    format!(
                        "field `{}` is longer than {MAX_FIELD_CHARS} characters (field is VARCHAR(32))",
                        row.field
                    ),
                ));
            }
            if row.property.chars().count() > MAX_PROPERTY_CHARS {
                return Err(WriterError::batch(
                    table,
                    format!(
                        "property `{}` is longer than {MAX_PROPERTY_CHARS} characters",
                        row.property
                    ),
                ));
            }
        }
        let mut keys = HashSet::with_capacity(batch.rows.len());
        let mut rows: Vec<_> = batch
            .rows
            .iter()
            .rev()
            .filter(|r| {
                keys.insert((
                    r.key.day_obs,
                    r.key.seq_num,
                    r.key.id,
                    r.property.as_str(),
                    r.field.as_str(),
                ))
            })
            .collect();
        // In primary-key order: the index is then filled page by page instead of item by item for
        // every column (the pipeline produces rows column by column).
        rows.sort_unstable_by(|a, b| {
            (
                a.key.day_obs,
                a.key.seq_num,
                a.key.id,
                &a.property,
                &a.field,
            )
                .cmp(&(
                    b.key.day_obs,
                    b.key.seq_num,
                    b.key.id,
                    &b.property,
                    &b.field,
                ))
        });
        let data = vec![
            Data::I32(rows.iter().map(|r| Some(r.key.day_obs)).collect()),
            Data::I32(rows.iter().map(|r| Some(r.key.seq_num)).collect()),
            Data::I64(rows.iter().map(|r| Some(r.key.id)).collect()),
            Data::Text(rows.iter().map(|r| r.property.clone()).collect()),
            Data::Text(rows.iter().map(|r| r.field.clone()).collect()),
            Data::F64(
                rows.iter()
                    .map(|r| r.value.filter(|v| !v.is_nan()))
                    .collect(),
            ),
        ];
        let value = Ident::new("value")?;
        let mut columns = spec.primary_key.clone();
        columns.push(value.clone());
        Ok(Upsert {
            operation: format!("upsert into {}", spec.qualified(schema.name())),
            table_sql: qualified(schema.name(), &spec.name),
            columns,
            data,
            conflict: spec.primary_key.clone(),
            update: vec![value],
            // A recomputed value is usually the same: no new row version, no index work.
            skip_unchanged: Some(spec.name.clone()),
            created_at: sql_timestamp(created_at),
            rows: rows.len(),
        })
    }

    fn head(&self) -> String {
        let mut cols: Vec<String> = self.columns.iter().map(Ident::quoted).collect();
        cols.push("\"created_at\"".to_owned());
        format!("INSERT INTO {} ({})", self.table_sql, cols.join(", "))
    }

    fn tail(&self) -> String {
        let conflict: Vec<String> = self.conflict.iter().map(Ident::quoted).collect();
        let set: Vec<String> = self
            .update
            .iter()
            .map(|c| format!("{0} = EXCLUDED.{0}", c.quoted()))
            .collect();
        let only_changed = match &self.skip_unchanged {
            None => String::new(),
            Some(table) => {
                let differs: Vec<String> = self
                    .update
                    .iter()
                    .map(|c| {
                        format!(
                            "{}.{1} IS DISTINCT FROM EXCLUDED.{1}",
                            table.quoted(),
                            c.quoted()
                        )
                    })
                    .collect();
                format!(" WHERE {}", differs.join(" OR "))
            }
        };
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}{only_changed}",
            conflict.join(", "),
            set.join(", ")
        )
    }

    /// The PostgreSQL statement text for one chunk.
    fn pg_sql(&self) -> String {
        let arrays: Vec<String> = self
            .data
            .iter()
            .enumerate()
            .map(|(i, d)| format!("${}::{}", i + 1, d.pg_array()))
            .collect();
        format!(
            "{} SELECT u.*, CAST(${} AS TIMESTAMP) FROM unnest({}) AS u{}",
            self.head(),
            self.data.len() + 1,
            arrays.join(", "),
            self.tail()
        )
    }

    /// Rows per SQLite statement: as many as fit under the bind limit.
    pub(crate) fn sqlite_rows_per_statement(&self) -> usize {
        (SQLITE_MAX_BINDS / (self.data.len() + 1)).max(1)
    }

    /// The statements that write this batch on `backend`.
    pub(crate) fn statements(&self, backend: Backend) -> Statements {
        match backend {
            Backend::Postgres => Statements::Pg(self.pg_statements()),
            Backend::Sqlite => Statements::Sqlite(self.sqlite_statements()),
        }
    }

    fn pg_statements(
        &self,
    ) -> Vec<
        diesel::query_builder::BoxedSqlQuery<
            'static,
            diesel::pg::Pg,
            diesel::query_builder::SqlQuery,
        >,
    > {
        let sql = self.pg_sql();
        let mut out = Vec::new();
        let mut start = 0;
        while start < self.rows {
            let end = (start + PG_MAX_ROWS).min(self.rows);
            let mut q = diesel::sql_query(sql.clone()).into_boxed::<diesel::pg::Pg>();
            for d in &self.data {
                q = match d.slice(start..end) {
                    Data::I16(v) => q.bind::<Array<Nullable<SmallInt>>, _>(v),
                    Data::I32(v) => q.bind::<Array<Nullable<Integer>>, _>(v),
                    Data::I64(v) => q.bind::<Array<Nullable<BigInt>>, _>(v),
                    Data::F64(v) => q.bind::<Array<Nullable<Double>>, _>(v),
                    Data::Bool(v) => q.bind::<Array<Nullable<Bool>>, _>(v),
                    Data::Text(v) => q.bind::<Array<Text>, _>(v),
                };
            }
            out.push(q.bind::<Text, _>(self.created_at.clone()));
            start = end;
        }
        out
    }

    fn sqlite_statements(
        &self,
    ) -> Vec<
        diesel::query_builder::BoxedSqlQuery<
            'static,
            diesel::sqlite::Sqlite,
            diesel::query_builder::SqlQuery,
        >,
    > {
        let per = self.sqlite_rows_per_statement();
        let tuple = format!("({})", vec!["?"; self.data.len() + 1].join(", "));
        let mut out = Vec::new();
        let mut start = 0;
        while start < self.rows {
            let end = (start + per).min(self.rows);
            let sql = format!(
                "{} VALUES {}{}",
                self.head(),
                vec![tuple.as_str(); end - start].join(", "),
                self.tail()
            );
            let mut q = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
            for i in start..end {
                for d in &self.data {
                    q = match d {
                        Data::I16(v) => q.bind::<Nullable<SmallInt>, _>(v[i]),
                        Data::I32(v) => q.bind::<Nullable<Integer>, _>(v[i]),
                        Data::I64(v) => q.bind::<Nullable<BigInt>, _>(v[i]),
                        Data::F64(v) => q.bind::<Nullable<Double>, _>(v[i]),
                        Data::Bool(v) => q.bind::<Nullable<Bool>, _>(v[i]),
                        Data::Text(v) => q.bind::<Text, _>(v[i].clone()),
                    };
                }
                q = q.bind::<Text, _>(self.created_at.clone());
            }
            out.push(q);
            start = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_microseconds() {
        assert_eq!(sql_timestamp(UtcNanos(0)), "1970-01-01 00:00:00.000000");
        assert_eq!(
            sql_timestamp(UtcNanos(1_709_251_199_123_456_789)),
            "2024-02-29 23:59:59.123456"
        );
        assert_eq!(sql_timestamp(UtcNanos(-1)), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn converts_to_column_types() {
        let t = Table::ExposureEfd;
        assert_eq!(
            convert(
                SqlType::DoublePrecision,
                vec![Some(f64::NAN), None, Some(1.5)],
                t,
                "c"
            )
            .unwrap(),
            Data::F64(vec![None, None, Some(1.5)])
        );
        assert_eq!(
            convert(
                SqlType::Integer,
                vec![Some(2.5), Some(3.5), Some(-0.4)],
                t,
                "c"
            )
            .unwrap(),
            Data::I32(vec![Some(2), Some(4), Some(0)])
        );
        assert_eq!(
            convert(SqlType::Boolean, vec![Some(0.0), Some(2.0), None], t, "c").unwrap(),
            Data::Bool(vec![Some(false), Some(true), None])
        );
        assert!(convert(SqlType::SmallInt, vec![Some(40_000.0)], t, "c").is_err());
        assert!(convert(SqlType::BigInt, vec![Some(f64::INFINITY)], t, "c").is_err());
        assert!(convert(SqlType::BigInt, vec![Some(9.3e18)], t, "c").is_err());
    }
}

#[cfg(test)]
mod statement_tests {
    use super::*;
    use crate::rows::ItemKey;
    use transform_core::{Config, Instrument};

    /// A config of `n` float columns in both pivoted tables.
    pub(crate) fn schema_of(n: usize) -> EfdSchema {
        let mut text = String::from("version: \"1\"\ncolumns:\n");
        for i in 0..n {
            text.push_str(&format!(
                "- name: c{i}\n  tables: [\"exposure_efd\", \"visit1_efd\"]\n  function: mean\n  \
                 datatype: float\n  description: C.\n  packed_series: false\n  topics:\n  \
                 - name: t\n    fields:\n    - name: f\n"
            ));
        }
        let config = Config::parse(&text, "test").unwrap();
        EfdSchema::new(&config, Instrument::LsstCam).unwrap()
    }

    fn batch(schema: &EfdSchema, rows: usize) -> WideBatch {
        let columns: Vec<String> = schema
            .table(Table::ExposureEfd)
            .config_columns()
            .map(|c| c.name.to_string())
            .collect();
        let mut batch = WideBatch::new(Table::ExposureEfd, columns.clone());
        for i in 0..rows {
            let seq_num = i32::try_from(i).unwrap();
            let key = ItemKey {
                day_obs: 20240601,
                seq_num,
                id: i64::from(seq_num),
            };
            batch.push(key, vec![Some(1.0); columns.len()]);
        }
        batch
    }

    #[test]
    fn postgres_writes_a_batch_in_one_statement() {
        let schema = schema_of(473);
        let (upsert, absent) = Upsert::wide(&schema, &batch(&schema, 1000), UtcNanos(0)).unwrap();
        assert_eq!(absent, 0);
        let Statements::Pg(statements) = upsert.statements(Backend::Postgres) else {
            panic!("PostgreSQL statements")
        };
        assert_eq!(statements.len(), 1);
        let sql = upsert.pg_sql();
        assert!(
            sql.contains("unnest($1::int4[], $2::int4[], $3::int8[], $4::float8[]"),
            "{sql}"
        );
        assert!(sql.contains("$476::float8[]) AS u"), "{sql}");
        assert!(sql.contains("CAST($477 AS TIMESTAMP)"), "{sql}");
        assert!(
            !sql.contains("\"created_at\" = EXCLUDED"),
            "created_at is never updated"
        );
        let Statements::Pg(statements) =
            Upsert::wide(&schema, &batch(&schema, 25_000), UtcNanos(0))
                .unwrap()
                .0
                .statements(Backend::Postgres)
        else {
            panic!("PostgreSQL statements")
        };
        assert_eq!(statements.len(), 3, "10,000 rows a statement");
    }

    #[test]
    fn sqlite_batches_stay_under_the_bind_limit() {
        let schema = schema_of(473);
        let (upsert, _) = Upsert::wide(&schema, &batch(&schema, 1000), UtcNanos(0)).unwrap();
        // 3 keys + 473 values + created_at = 477 binds a row.
        assert_eq!(upsert.sqlite_rows_per_statement(), SQLITE_MAX_BINDS / 477);
        assert_eq!(upsert.sqlite_rows_per_statement(), 68);
        let Statements::Sqlite(statements) = upsert.statements(Backend::Sqlite) else {
            panic!("SQLite statements")
        };
        assert_eq!(statements.len(), 1000_usize.div_ceil(68));
    }

    #[test]
    fn the_statement_for_a_small_batch() {
        let schema = schema_of(2);
        let mut b = WideBatch::new(Table::ExposureEfd, ["c1"]);
        b.push(
            ItemKey {
                day_obs: 20240601,
                seq_num: 1,
                id: 7,
            },
            vec![None],
        );
        let (upsert, absent) = Upsert::wide(&schema, &b, UtcNanos(0)).unwrap();
        assert_eq!(absent, 1);
        assert_eq!(
            upsert.pg_sql(),
            "INSERT INTO \"efd_lsstcam\".\"exposure_efd\" (\"day_obs\", \"seq_num\", \"exposure_id\", \"c1\", \"created_at\") \
             SELECT u.*, CAST($5 AS TIMESTAMP) FROM unnest($1::int4[], $2::int4[], $3::int8[], $4::float8[]) AS u \
             ON CONFLICT (\"day_obs\", \"seq_num\") DO UPDATE SET \"exposure_id\" = EXCLUDED.\"exposure_id\", \"c1\" = EXCLUDED.\"c1\""
        );
    }
}
