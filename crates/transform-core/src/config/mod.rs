//! The column config: what to compute, from which EFD topic, into which ConsDB table.
//!
//! [`Config::load`] reads the YAML the Python service reads (`config_<instrument>.yaml`) into typed
//! values and validates it as a whole before anything connects anywhere: every problem found is
//! reported at once, each naming the file, the line and the column at fault (see [`CoreError`]).
//! Unknown keys are errors. The model is the reference's (BEHAVIOUR.md §4) plus the top-level
//! `start_offset` (hours) that the shipped configs already carry.

mod load;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use crate::error::{CoreError, Problem};

/// A validated column config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config's `version` string, copied into the Felis schema.
    pub version: String,
    /// The columns, in file order.
    pub columns: Vec<Column>,
    /// Where the config came from (a path, or a label for configs parsed from memory).
    pub origin: String,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, CoreError> {
        load::parse(text, origin)
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns written to `table`, in config order.
    pub fn columns_for(&self, table: Table) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(move |c| c.writes_to(table))
    }
}

/// One output column (pivoted) or property (unpivoted).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// SQL column name (pivoted tables) or `property` value (unpivoted tables).
    pub name: String,
    /// Tables that receive values of this column.
    pub tables: Vec<Table>,
    /// Whether the column is stored only in the unpivoted tables (one row per field).
    pub store_unpivoted: bool,
    /// The aggregation, with its typed arguments.
    pub function: Function,
    /// Server-side pre-aggregation (`GROUP BY time(<interval>)`) with the column's function.
    pub pre_aggregate_interval: Option<InfluxDuration>,
    /// Felis datatype of the column.
    pub datatype: Datatype,
    /// IVOA annotations (`unit`, `ucd`, ...), written to the Felis schema.
    pub ivoa: BTreeMap<String, String>,
    /// Human description, written to the Felis schema.
    pub description: String,
    /// Whether the fields are packed (vector) series `<base>0..<base>N-1` with `cRIO_timestamp`.
    pub packed_series: bool,
    /// Row filter on a field of the topic (usually `salIndex`).
    pub subset: Option<Subset>,
    /// Hours added to each item's window start (negative looks back), and to the query start.
    pub start_offset_hours: Option<f64>,
    /// EFD topics (exactly one after validation).
    pub topics: Vec<Topic>,
    /// 1-based line of the column in its file (0 when unknown).
    pub line: usize,
}

impl Column {
    /// The column's topic (validation guarantees exactly one).
    pub fn topic(&self) -> &Topic {
        &self.topics[0]
    }

    /// Whether values of this column go to `table`.
    pub fn writes_to(&self, table: Table) -> bool {
        self.tables.contains(&table)
    }

    /// The fields whose values are aggregated: the topic's fields without the subset field.
    pub fn value_fields(&self) -> impl Iterator<Item = &str> {
        let subset = self.subset.as_ref().map(|s| s.field.as_str());
        self.topic()
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .filter(move |f| Some(*f) != subset)
    }

    /// The server-side aggregation of this column, if it is pre-aggregated.
    pub fn pre_aggregation(&self) -> Option<PreAggregation> {
        let interval = self.pre_aggregate_interval.clone()?;
        let function = AggregateFn::of(&self.function)?;
        Some(PreAggregation { interval, function })
    }
}

/// An EFD topic (InfluxDB measurement) and the fields a column reads from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// Measurement name, e.g. `lsst.sal.ESS.temperature`.
    pub name: String,
    /// Field keys; for packed series, the base names without the numeric suffix.
    pub fields: Vec<Field>,
}

/// One field of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// InfluxDB field key.
    pub name: String,
}

/// A row filter: keep rows whose `field`, compared as a string, equals the value or one of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// The filtered field, e.g. `salIndex`.
    pub field: String,
    /// The accepted value(s).
    pub value: SubsetValue,
}

/// `subset_value`: one scalar or a list of scalars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubsetValue {
    /// `subset_value: 301`
    One(SubsetScalar),
    /// `subset_value: [101, 111]`
    Any(Vec<SubsetScalar>),
}

impl SubsetValue {
    /// The accepted values as the strings they are compared with.
    pub fn strings(&self) -> Vec<String> {
        match self {
            SubsetValue::One(v) => vec![v.to_string()],
            SubsetValue::Any(vs) => vs.iter().map(ToString::to_string).collect(),
        }
    }
}

/// An integer or string subset value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubsetScalar {
    /// An integer, compared by its decimal form.
    Int(i64),
    /// A string, compared as is.
    Str(String),
}

impl fmt::Display for SubsetScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubsetScalar::Int(v) => write!(f, "{v}"),
            SubsetScalar::Str(s) => f.write_str(s),
        }
    }
}

/// The four ConsDB tables of an `efd_<instrument>` schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `exposure_efd`: one wide row per exposure.
    ExposureEfd,
    /// `visit1_efd`: one wide row per visit.
    VisitEfd,
    /// `exposure_efd_unpivoted`: one row per exposure, property and field.
    ExposureEfdUnpivoted,
    /// `visit1_efd_unpivoted`: one row per visit, property and field.
    VisitEfdUnpivoted,
}

impl Table {
    /// All tables, in the order the reference stores them.
    pub const ALL: [Table; 4] = [
        Table::ExposureEfd,
        Table::VisitEfd,
        Table::ExposureEfdUnpivoted,
        Table::VisitEfdUnpivoted,
    ];

    /// The SQL table name.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::ExposureEfd => "exposure_efd",
            Table::VisitEfd => "visit1_efd",
            Table::ExposureEfdUnpivoted => "exposure_efd_unpivoted",
            Table::VisitEfdUnpivoted => "visit1_efd_unpivoted",
        }
    }

    /// Parses a table name as written in configs.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether the table holds one row per (item, property, field).
    pub fn is_unpivoted(self) -> bool {
        matches!(self, Table::ExposureEfdUnpivoted | Table::VisitEfdUnpivoted)
    }

    /// Whether the table's items are visits (else exposures).
    pub fn is_visit(self) -> bool {
        matches!(self, Table::VisitEfd | Table::VisitEfdUnpivoted)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The aggregation of a column, with typed arguments (`function` + `function_args`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Function {
    /// Mean of all values of all fields.
    Mean,
    /// Standard deviation with `ddof` delta degrees of freedom; none for one value or fewer.
    Stddev {
        /// Delta degrees of freedom (default 1).
        ddof: u32,
    },
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// First field of the last row in the window.
    MostRecentValue,
    /// RMS of the residuals of a polynomial fit (see `Semantics` for the reference's formula).
    RmsFromPolynomialFit {
        /// Polynomial degree (default 1).
        degree: u32,
        /// The abscissa: sample index or time.
        fit_basis: FitBasis,
    },
}

impl Function {
    /// Every function name, as written in configs.
    pub const NAMES: [&'static str; 6] = [
        "mean",
        "stddev",
        "max",
        "min",
        "most_recent_value",
        "rms_from_polynomial_fit",
    ];

    /// The name as written in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Function::Mean => "mean",
            Function::Stddev { .. } => "stddev",
            Function::Max => "max",
            Function::Min => "min",
            Function::MostRecentValue => "most_recent_value",
            Function::RmsFromPolynomialFit { .. } => "rms_from_polynomial_fit",
        }
    }
}

/// The abscissa of `rms_from_polynomial_fit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitBasis {
    /// `0, 1, ..., n-1`.
    Index,
    /// Sample time in nanoseconds since the first sample of the window.
    Time,
}

/// The functions InfluxQL can pre-aggregate with (`GROUP BY time(..)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateFn {
    /// `MEAN(..)`
    Mean,
    /// `MAX(..)`
    Max,
    /// `MIN(..)`
    Min,
}

impl AggregateFn {
    /// The server-side counterpart of a column function, if there is one.
    pub fn of(function: &Function) -> Option<AggregateFn> {
        match function {
            Function::Mean => Some(AggregateFn::Mean),
            Function::Max => Some(AggregateFn::Max),
            Function::Min => Some(AggregateFn::Min),
            _ => None,
        }
    }

    /// The InfluxQL function name.
    pub fn influxql(self) -> &'static str {
        match self {
            AggregateFn::Mean => "MEAN",
            AggregateFn::Max => "MAX",
            AggregateFn::Min => "MIN",
        }
    }
}

/// Server-side pre-aggregation of a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PreAggregation {
    /// Bucket width.
    pub interval: InfluxDuration,
    /// Bucket function.
    pub function: AggregateFn,
}

/// An InfluxQL duration literal with one unit (`1s`, `500ms`, `5m`), validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfluxDuration {
    text: String,
    nanos: i64,
}

impl InfluxDuration {
    /// Parses an InfluxQL duration literal: a positive integer and one of the units `ns`, `u`, `µ`,
    /// `ms`, `s`, `m`, `h`, `d`, `w`.
    pub fn parse(text: &str) -> Option<InfluxDuration> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let scale: i64 = match unit {
            "ns" => 1,
            "u" | "µ" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return None,
        };
        let n: i64 = number.parse().ok()?;
        let nanos = n.checked_mul(scale).filter(|&v| v > 0)?;
        Some(InfluxDuration {
            text: text.to_owned(),
            nanos,
        })
    }

    /// The literal as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The duration in nanoseconds.
    pub fn nanos(&self) -> i64 {
        self.nanos
    }
}

impl fmt::Display for InfluxDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The numeric Felis datatypes a computed column may have (all shipped columns are `float`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    /// Felis `boolean`.
    Boolean,
    /// Felis `byte`.
    Byte,
    /// Felis `short`.
    Short,
    /// Felis `int`.
    Int,
    /// Felis `long`.
    Long,
    /// Felis `float` (PostgreSQL double precision, as the reference's migrations create it).
    Float,
    /// Felis `double`.
    Double,
}

impl Datatype {
    /// Every accepted name, as written in configs.
    pub const NAMES: [&'static str; 7] =
        ["boolean", "byte", "short", "int", "long", "float", "double"];

    /// Parses a Felis datatype name.
    pub fn from_name(name: &str) -> Option<Datatype> {
        Some(match name {
            "boolean" => Datatype::Boolean,
            "byte" => Datatype::Byte,
            "short" => Datatype::Short,
            "int" => Datatype::Int,
            "long" => Datatype::Long,
            "float" => Datatype::Float,
            "double" => Datatype::Double,
            _ => return None,
        })
    }

    /// The Felis name.
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Boolean => "boolean",
            Datatype::Byte => "byte",
            Datatype::Short => "short",
            Datatype::Int => "int",
            Datatype::Long => "long",
            Datatype::Float => "float",
            Datatype::Double => "double",
        }
    }
}
