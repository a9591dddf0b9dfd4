//! DDL text: the statements that create a schema, a table, a column or a key, per backend.
//!
//! The same column definitions serve both backends (`DOUBLE PRECISION`, `BIGINT`, `VARCHAR(64)` are
//! valid SQLite declared types with the right affinities). The differences: PostgreSQL creates
//! schemas and named constraints and carries the Felis descriptions as comments; SQLite attaches a
//! database file as the schema, and names unique keys by creating unique indexes.

use crate::ident::{Ident, literal};
use crate::schema::{Backend, ColumnDefault, ColumnSpec, EfdSchema, TableSpec};

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &Ident, table: &Ident) -> String {
    format!("{}.{}", schema.quoted(), table.quoted())
}

/// A column definition: `"name" TYPE [DEFAULT ..] [NOT NULL]`.
fn column_definition(column: &ColumnSpec) -> String {
    let mut s = format!("{} {}", column.name.quoted(), column.sql_type.sql());
    match &column.default {
        Some(ColumnDefault::CurrentTimestamp) => s.push_str(" DEFAULT CURRENT_TIMESTAMP"),
        Some(ColumnDefault::Text(t)) => {
            s.push_str(" DEFAULT ");
            s.push_str(&literal(t));
        }
        None => {}
    }
    if !column.nullable {
        s.push_str(" NOT NULL");
    }
    s
}

fn column_list(columns: &[Ident]) -> String {
    columns
        .iter()
        .map(Ident::quoted)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE SCHEMA` on PostgreSQL; `ATTACH DATABASE '<file>'` on SQLite (`attach_path`: the file,
/// or `:memory:`).
pub(crate) fn create_schema(backend: Backend, schema: &Ident, attach_path: Option<&str>) -> String {
    match backend {
        Backend::Postgres => format!("CREATE SCHEMA IF NOT EXISTS {}", schema.quoted()),
        Backend::Sqlite => format!(
            "ATTACH DATABASE {} AS {}",
            literal(attach_path.unwrap_or(":memory:")),
            schema.quoted()
        ),
    }
}

/// `CREATE TABLE` with its keys, then (PostgreSQL) its comments or (SQLite) its unique index.
pub(crate) fn create_table(backend: Backend, schema: &Ident, table: &TableSpec) -> Vec<String> {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("    {}", column_definition(c)))
        .collect();
    lines.push(format!(
        "    PRIMARY KEY ({})",
        column_list(&table.primary_key)
    ));
    if backend == Backend::Postgres
        && let Some(u) = &table.unique
    {
        lines.push(format!(
            "    CONSTRAINT {} UNIQUE ({})",
            u.name.quoted(),
            column_list(&u.columns)
        ));
    }
    let mut out = vec![format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n)",
        qualified(schema, &table.name),
        lines.join(",\n")
    )];
    match backend {
        Backend::Postgres => {
            if !table.description.is_empty() {
                out.push(format!(
                    "COMMENT ON TABLE {} IS {}",
                    qualified(schema, &table.name),
                    literal(&table.description)
                ));
            }
            for c in &table.columns {
                out.extend(column_comment(backend, schema, table, c));
            }
        }
        Backend::Sqlite => {
            if let Some(u) = &table.unique {
                out.push(add_unique(backend, schema, table, &u.name, &u.columns));
            }
        }
    }
    out
}

fn column_comment(
    backend: Backend,
    schema: &Ident,
    table: &TableSpec,
    column: &ColumnSpec,
) -> Option<String> {
    (backend == Backend::Postgres && !column.description.is_empty()).then(|| {
        format!(
            "COMMENT ON COLUMN {}.{} IS {}",
            qualified(schema, &table.name),
            column.name.quoted(),
            literal(&column.description)
        )
    })
}

/// `ALTER TABLE .. ADD COLUMN`, with its comment on PostgreSQL.
pub(crate) fn add_column(
    backend: Backend,
    schema: &Ident,
    table: &TableSpec,
    column: &ColumnSpec,
) -> Vec<String> {
    let if_not_exists = match backend {
        Backend::Postgres => "IF NOT EXISTS ",
        Backend::Sqlite => "",
    };
    let mut out = vec![format!(
        "ALTER TABLE {} ADD COLUMN {if_not_exists}{}",
        qualified(schema, &table.name),
        column_definition(column)
    )];
    out.extend(column_comment(backend, schema, table, column));
    out
}

/// The primary key of an existing table that lacks one (SQLite: a unique index, which serves as
/// the conflict target the same way).
pub(crate) fn add_primary_key(backend: Backend, schema: &Ident, table: &TableSpec) -> String {
    let name = format!("{}_pkey", table.name);
    match backend {
        Backend::Postgres => format!(
            "ALTER TABLE {} ADD CONSTRAINT \"{name}\" PRIMARY KEY ({})",
            qualified(schema, &table.name),
            column_list(&table.primary_key)
        ),
        Backend::Sqlite => format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {}.\"{name}\" ON {} ({})",
            schema.quoted(),
            table.name.quoted(),
            column_list(&table.primary_key)
        ),
    }
}

/// A named unique key on an existing table.
pub(crate) fn add_unique(
    backend: Backend,
    schema: &Ident,
    table: &TableSpec,
    name: &Ident,
    columns: &[Ident],
) -> String {
    match backend {
        Backend::Postgres => format!(
            "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})",
            qualified(schema, &table.name),
            name.quoted(),
            column_list(columns)
        ),
        Backend::Sqlite => format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {}.{} ON {} ({})",
            schema.quoted(),
            name.quoted(),
            table.name.quoted(),
            column_list(columns)
        ),
    }
}

impl EfdSchema {
    /// The DDL that creates the whole schema in an empty database: on PostgreSQL `CREATE SCHEMA`,
    /// the four tables and their comments; on SQLite the tables and indexes (the schema itself is
    /// the attached file, see the crate docs).
    pub fn create_statements(&self, backend: Backend) -> Vec<String> {
        let mut out = Vec::new();
        if backend == Backend::Postgres {
            out.push(create_schema(backend, self.name(), None));
        }
        for table in self.tables() {
            out.extend(create_table(backend, self.name(), table));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transform_core::{Config, Instrument, Table};

    fn schema() -> EfdSchema {
        let text = "version: \"1.0.0\"\ncolumns:\n\
            - name: temp_mean\n  tables: [\"exposure_efd\", \"visit1_efd\"]\n  function: mean\n  \
              datatype: float\n  description: Mean temperature.\n  packed_series: false\n  \
              topics:\n  - name: t\n    fields:\n    - name: f\n\
            - name: count\n  tables: [\"exposure_efd\"]\n  function: max\n  datatype: int\n  \
              description: It's a count.\n  packed_series: false\n  topics:\n  - name: t\n    \
              fields:\n    - name: g\n";
        EfdSchema::new(&Config::parse(text, "test").unwrap(), Instrument::Latiss).unwrap()
    }

    #[test]
    fn postgres_ddl_of_a_small_config() {
        let schema = schema();
        let ddl = create_table(
            Backend::Postgres,
            schema.name(),
            schema.table(Table::ExposureEfd),
        );
        assert_eq!(
            ddl.join(";\n"),
            "CREATE TABLE IF NOT EXISTS \"efd_latiss\".\"exposure_efd\" (\n    \
             \"day_obs\" INTEGER NOT NULL,\n    \
             \"seq_num\" INTEGER NOT NULL,\n    \
             \"exposure_id\" BIGINT NOT NULL,\n    \
             \"created_at\" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,\n    \
             \"temp_mean\" DOUBLE PRECISION,\n    \
             \"count\" INTEGER,\n    \
             PRIMARY KEY (\"day_obs\", \"seq_num\"),\n    \
             CONSTRAINT \"un_exposure_efd_exposure_id\" UNIQUE (\"exposure_id\")\n);\n\
             COMMENT ON TABLE \"efd_latiss\".\"exposure_efd\" IS 'Transformed EFD topics by exposure.';\n\
             COMMENT ON COLUMN \"efd_latiss\".\"exposure_efd\".\"day_obs\" IS 'Day of observation in YYYYMMDD format.';\n\
             COMMENT ON COLUMN \"efd_latiss\".\"exposure_efd\".\"seq_num\" IS 'Sequence number for the exposure.';\n\
             COMMENT ON COLUMN \"efd_latiss\".\"exposure_efd\".\"exposure_id\" IS 'Exposure unique ID.';\n\
             COMMENT ON COLUMN \"efd_latiss\".\"exposure_efd\".\"created_at\" IS 'Timestamp when the record was created, default is current timestamp.';\n\
             COMMENT ON COLUMN \"efd_latiss\".\"exposure_efd\".\"temp_mean\" IS 'Mean temperature.';\n\
             COMMENT ON COLUMN \"efd_latiss\".\"exposure_efd\".\"count\" IS 'It''s a count.'"
        );
    }

    #[test]
    fn sqlite_ddl_of_an_unpivoted_table() {
        let schema = schema();
        let ddl = create_table(
            Backend::Sqlite,
            schema.name(),
            schema.table(Table::VisitEfdUnpivoted),
        );
        assert_eq!(
            ddl,
            [
                "CREATE TABLE IF NOT EXISTS \"efd_latiss\".\"visit1_efd_unpivoted\" (\n    \
              \"day_obs\" INTEGER NOT NULL,\n    \
              \"seq_num\" INTEGER NOT NULL,\n    \
              \"visit_id\" BIGINT NOT NULL,\n    \
              \"property\" VARCHAR(64) DEFAULT 'default_property' NOT NULL,\n    \
              \"field\" VARCHAR(32) DEFAULT 'default_field' NOT NULL,\n    \
              \"value\" DOUBLE PRECISION,\n    \
              \"created_at\" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,\n    \
              PRIMARY KEY (\"day_obs\", \"seq_num\", \"visit_id\", \"property\", \"field\")\n)"
            ]
        );
    }
}
