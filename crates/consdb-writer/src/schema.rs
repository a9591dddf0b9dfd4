//! The ConsDB layout of one instrument, derived from its column config: [`EfdSchema`].
//!
//! Schema `efd_<instrument>` with four tables, as the Python service's Felis generator and alembic
//! migrations made them (BEHAVIOUR.md §6):
//!
//! - `exposure_efd` / `visit1_efd`: `day_obs INTEGER NOT NULL`, `seq_num INTEGER NOT NULL`,
//!   `exposure_id`/`visit_id BIGINT NOT NULL`, `created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP`, then
//!   one nullable column per config column whose `tables` hold the table and that is not
//!   `store_unpivoted`; primary key `(day_obs, seq_num)`, unique `un_<table>_<id>`;
//! - `exposure_efd_unpivoted` / `visit1_efd_unpivoted`: the three keys, `property VARCHAR(64)`,
//!   `field VARCHAR(32)`, `value DOUBLE PRECISION`, `created_at`; primary key
//!   `(day_obs, seq_num, <id>, property, field)`.
//!
//! Column types follow the config `datatype` ([`SqlType::of`]). Every name is an [`Ident`], so a
//! config whose names were never validated cannot build a schema.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use transform_core::{Config, Datatype, Instrument, Table};

use crate::error::WriterError;
use crate::ident::Ident;

/// The two database engines ConsDB URLs may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL (production ConsDB).
    Postgres,
    /// SQLite (demos and tests); schemas are attached database files (see the crate docs).
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

/// The SQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `SMALLINT` (config `short` and `byte`).
    SmallInt,
    /// `INTEGER` (config `int`; `day_obs`, `seq_num`).
    Integer,
    /// `BIGINT` (config `long`; `exposure_id`, `visit_id`).
    BigInt,
    /// `BOOLEAN` (config `boolean`).
    Boolean,
    /// `DOUBLE PRECISION` (config `float` and `double`; PostgreSQL's `FLOAT`).
    DoublePrecision,
    /// `TIMESTAMP` without time zone, UTC by convention (`created_at`).
    Timestamp,
    /// `VARCHAR(n)` (`property`, `field`).
    Varchar(u32),
}

impl SqlType {
    /// The type of a config column (BEHAVIOUR.md §6.4).
    pub fn of(datatype: Datatype) -> SqlType {
        match datatype {
            Datatype::Boolean => SqlType::Boolean,
            Datatype::Byte | Datatype::Short => SqlType::SmallInt,
            Datatype::Int => SqlType::Integer,
            Datatype::Long => SqlType::BigInt,
            Datatype::Float | Datatype::Double => SqlType::DoublePrecision,
        }
    }

    /// The type as written in DDL (the same on both backends).
    pub fn sql(self) -> String {
        match self {
            SqlType::SmallInt => "SMALLINT".into(),
            SqlType::Integer => "INTEGER".into(),
            SqlType::BigInt => "BIGINT".into(),
            SqlType::Boolean => "BOOLEAN".into(),
            SqlType::DoublePrecision => "DOUBLE PRECISION".into(),
            SqlType::Timestamp => "TIMESTAMP".into(),
            SqlType::Varchar(n) => format!("VARCHAR({n})"),
        }
    }

    /// The type as PostgreSQL's `format_type` spells it, for comparing with a live database.
    pub fn pg_format_type(self) -> String {
        match self {
            SqlType::SmallInt => "smallint".into(),
            SqlType::Integer => "integer".into(),
            SqlType::BigInt => "bigint".into(),
            SqlType::Boolean => "boolean".into(),
            SqlType::DoublePrecision => "double precision".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::Varchar(n) => format!("character varying({n})"),
        }
    }

    /// The PostgreSQL array type of an `unnest` bind for this type.
    pub(crate) fn pg_array(self) -> &'static str {
        match self {
            SqlType::SmallInt => "int2[]",
            SqlType::Integer => "int4[]",
            SqlType::BigInt => "int8[]",
            SqlType::Boolean => "bool[]",
            SqlType::DoublePrecision => "float8[]",
            SqlType::Timestamp => "timestamp[]",
            SqlType::Varchar(_) => "text[]",
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// A column's server-side default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDefault {
    /// `DEFAULT CURRENT_TIMESTAMP`.
    CurrentTimestamp,
    /// A string default (`'default_property'`), as Felis creates the unpivoted key columns.
    Text(&'static str),
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// `day_obs`.
    DayObs,
    /// `seq_num`.
    SeqNum,
    /// `exposure_id` or `visit_id`.
    Id,
    /// `property` (unpivoted tables).
    Property,
    /// `field` (unpivoted tables).
    Field,
    /// `value` (unpivoted tables).
    Value,
    /// `created_at`.
    CreatedAt,
    /// A config column (pivoted tables).
    Config,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// The name.
    pub name: Ident,
    /// The SQL type.
    pub sql_type: SqlType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Server default.
    pub default: Option<ColumnDefault>,
    /// What the column holds.
    pub role: ColumnRole,
    /// Felis datatype (`int`, `long`, `float`, `string`, `timestamp`, ...).
    pub felis_datatype: &'static str,
    /// Description (Felis `description`, PostgreSQL column comment).
    pub description: String,
    /// IVOA annotations without the `ivoa:` prefix (`ucd`, `unit`), as the config gives them.
    pub ivoa: BTreeMap<String, String>,
}

impl ColumnSpec {
    fn fixed(
        name: &str,
        sql_type: SqlType,
        role: ColumnRole,
        felis_datatype: &'static str,
        description: &str,
    ) -> ColumnSpec {
        let nullable = matches!(role, ColumnRole::Value | ColumnRole::CreatedAt);
        let default = match role {
            ColumnRole::CreatedAt => Some(ColumnDefault::CurrentTimestamp),
            ColumnRole::Property => Some(ColumnDefault::Text("default_property")),
            ColumnRole::Field => Some(ColumnDefault::Text("default_field")),
            _ => None,
        };
        let ucd = match role {
            ColumnRole::DayObs | ColumnRole::SeqNum => Some("meta.id.part"),
            ColumnRole::Id => Some("meta.id"),
            _ => None,
        };
        ColumnSpec {
            name: Ident::new(name).expect("fixed column names are identifiers"),
            sql_type,
            nullable,
            default,
            role,
            felis_datatype,
            description: description.to_owned(),
            ivoa: ucd
                .map(|u| ("ucd".to_owned(), u.to_owned()))
                .into_iter()
                .collect(),
        }
    }

    /// The `VARCHAR` length, if any.
    pub fn length(&self) -> Option<u32> {
        match self.sql_type {
            SqlType::Varchar(n) => Some(n),
            _ => None,
        }
    }
}

/// A unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueSpec {
    /// Constraint name (`un_exposure_efd_exposure_id`).
    pub name: Ident,
    /// Its columns.
    pub columns: Vec<Ident>,
    /// Description (Felis).
    pub description: String,
}

/// One of the four tables.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    /// Which table.
    pub table: Table,
    /// Its name.
    pub name: Ident,
    /// Description (Felis, PostgreSQL table comment).
    pub description: String,
    /// All columns, in creation order.
    pub columns: Vec<ColumnSpec>,
    /// The primary key, which is also the upsert's conflict target.
    pub primary_key: Vec<Ident>,
    /// The unique constraint on the id (pivoted tables).
    pub unique: Option<UniqueSpec>,
    /// `exposure_id` or `visit_id`.
    pub id_column: Ident,
    /// Unpivoted tables: the config columns whose values are stored here (the `property` values).
    pub properties: Vec<String>,
    by_name: HashMap<String, usize>,
}

impl TableSpec {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.by_name.get(name).map(|&i| &self.columns[i])
    }

    /// The config columns (pivoted tables; none for unpivoted ones).
    pub fn config_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.role == ColumnRole::Config)
    }

    /// A display name, `schema.table`.
    pub fn qualified(&self, schema: &Ident) -> String {
        format!("{schema}.{}", self.name)
    }
}

/// The `efd_<instrument>` schema a config describes.
#[derive(Debug, Clone, PartialEq)]
pub struct EfdSchema {
    instrument: Instrument,
    name: Ident,
    version: String,
    tables: Vec<TableSpec>,
}

impl EfdSchema {
    /// Derives the schema from a config. Fails if a name is not a plain identifier (configs built
    /// by hand skip the loader's checks) or a name is used twice in a table.
    pub fn new(config: &Config, instrument: Instrument) -> Result<EfdSchema, WriterError> {
        let name = Ident::new(&instrument.consdb_schema())?;
        let tables = Table::ALL
            .into_iter()
            .map(|t| table_spec(config, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EfdSchema {
            instrument,
            name,
            version: config.version.clone(),
            tables,
        })
    }

    /// The instrument.
    pub fn instrument(&self) -> Instrument {
        self.instrument
    }

    /// The schema name, `efd_<instrument>`.
    pub fn name(&self) -> &Ident {
        &self.name
    }

    /// The config's version (Felis `version.current`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// One table.
    pub fn table(&self, table: Table) -> &TableSpec {
        let index = Table::ALL
            .iter()
            .position(|t| *t == table)
            .expect("Table::ALL holds every table");
        &self.tables[index]
    }

    /// All four tables, in `Table::ALL` order.
    pub fn tables(&self) -> &[TableSpec] {
        &self.tables
    }
}

fn table_spec(config: &Config, table: Table) -> Result<TableSpec, WriterError> {
    use ColumnRole as R;
    let visit = table.is_visit();
    let item = if visit { "visit" } else { "exposure" };
    let id = if visit { "visit_id" } else { "exposure_id" };
    let mut columns = vec![
        ColumnSpec::fixed(
            "day_obs",
            SqlType::Integer,
            R::DayObs,
            "int",
            "Day of observation in YYYYMMDD format.",
        ),
        ColumnSpec::fixed(
            "seq_num",
            SqlType::Integer,
            R::SeqNum,
            "int",
            &format!("Sequence number for the {item}."),
        ),
    ];
    let name = Ident::new(table.as_str())?;
    let id_column = Ident::new(id)?;
    let mut properties = Vec::new();
    let (description, primary_key, unique) = if table.is_unpivoted() {
        // The reference's descriptions, missing periods included.
        let period = if visit { "." } else { "" };
        columns.extend([
            ColumnSpec::fixed(
                id,
                SqlType::BigInt,
                R::Id,
                "long",
                &format!("Unique identifier for the {item}."),
            ),
            ColumnSpec::fixed(
                "property",
                SqlType::Varchar(64),
                R::Property,
                "string",
                &format!("Property name for unpivoted data{period}"),
            ),
            ColumnSpec::fixed(
                "field",
                SqlType::Varchar(32),
                R::Field,
                "string",
                "Field name for unpivoted data.",
            ),
            ColumnSpec::fixed(
                "value",
                SqlType::DoublePrecision,
                R::Value,
                "float",
                &format!("Value corresponding to the parameter{period}"),
            ),
            ColumnSpec::fixed(
                "created_at",
                SqlType::Timestamp,
                R::CreatedAt,
                "timestamp",
                "Timestamp when record was created, default current timestamp.",
            ),
        ]);
        properties = config.columns_for(table).map(|c| c.name.clone()).collect();
        let pk = ["day_obs", "seq_num", id, "property", "field"]
            .iter()
            .map(|c| Ident::new(c))
            .collect::<Result<Vec<_>, _>>()?;
        (format!("Unpivoted EFD {item} data."), pk, None)
    } else {
        let created = if visit {
            "Timestamp when record was created, default current timestamp."
        } else {
            "Timestamp when the record was created, default is current timestamp."
        };
        let id_description = if visit {
            "Visit unique ID."
        } else {
            "Exposure unique ID."
        };
        columns.extend([
            ColumnSpec::fixed(id, SqlType::BigInt, R::Id, "long", id_description),
            ColumnSpec::fixed(
                "created_at",
                SqlType::Timestamp,
                R::CreatedAt,
                "timestamp",
                created,
            ),
        ]);
        for column in config.columns_for(table).filter(|c| !c.store_unpivoted) {
            columns.push(ColumnSpec {
                name: Ident::new(&column.name)?,
                sql_type: SqlType::of(column.datatype),
                nullable: true,
                default: None,
                role: R::Config,
                felis_datatype: column.datatype.as_str(),
                description: column.description.clone(),
                ivoa: column.ivoa.clone(),
            });
        }
        let pk = vec![Ident::new("day_obs")?, Ident::new("seq_num")?];
        let unique = UniqueSpec {
            name: Ident::new(&format!("un_{table}_{id}"))?,
            columns: vec![id_column.clone()],
            description: format!("Ensure {id} is unique."),
        };
        (
            format!("Transformed EFD topics by {item}."),
            pk,
            Some(unique),
        )
    };
    let mut by_name = HashMap::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        if by_name.insert(c.name.as_str().to_owned(), i).is_some() {
            return Err(WriterError::Usage {
                message: format!("column `{}` appears twice in {table}", c.name),
            });
        }
    }
    Ok(TableSpec {
        table,
        name,
        description,
        columns,
        primary_key,
        unique,
        id_column,
        properties,
        by_name,
    })
}
