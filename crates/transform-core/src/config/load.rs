//! Parsing (serde + `serde_norway`, unknown keys rejected) and validation of the column config.
//!
//! Parsing produces the raw shape; validation turns it into the typed model of `config/mod.rs`,
//! collecting every problem with the line of the offending key (via [`LineIndex`]).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{
    Column, Config, Datatype, Field, FitBasis, Function, InfluxDuration, Subset, SubsetScalar,
    SubsetValue, Table, Topic,
};
use crate::error::{CoreError, Problem};
use crate::yaml_lines::LineIndex;

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN − 1).
pub(crate) const MAX_SQL_IDENTIFIER_BYTES: usize = 63;
/// `property` is `VARCHAR(64)` in the unpivoted tables.
pub(crate) const MAX_PROPERTY_CHARS: usize = 64;
/// `field` is `VARCHAR(32)` in the unpivoted tables.
pub(crate) const MAX_UNPIVOTED_FIELD_CHARS: usize = 32;
/// Longest EFD topic or field name accepted (the EFD's longest are well under 100).
const MAX_EFD_NAME_CHARS: usize = 96;
/// Largest `start_offset`, in hours, either way.
const MAX_START_OFFSET_HOURS: f64 = 168.0;
/// Largest polynomial degree for `rms_from_polynomial_fit`.
const MAX_DEGREE: u64 = 20;
/// Key columns of the pivoted tables, which config columns must not shadow.
const RESERVED_NAMES: [&str; 5] = [
    "day_obs",
    "seq_num",
    "exposure_id",
    "visit_id",
    "created_at",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: String,
    columns: Vec<RawColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(default)]
    tables: Option<Vec<String>>,
    #[serde(default)]
    store_unpivoted: Option<bool>,
    function: String,
    #[serde(default)]
    function_args: Option<serde_norway::Mapping>,
    #[serde(default)]
    pre_aggregate_interval: Option<String>,
    datatype: String,
    #[serde(default)]
    ivoa: Option<BTreeMap<String, String>>,
    description: String,
    #[serde(default)]
    packed_series: Option<bool>,
    #[serde(default)]
    subset_field: Option<String>,
    #[serde(default)]
    subset_value: Option<RawSubsetValue>,
    #[serde(default)]
    start_offset: Option<f64>,
    topics: Vec<RawTopic>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSubsetValue {
    Int(i64),
    Str(String),
    List(Vec<RawSubsetScalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSubsetScalar {
    Int(i64),
    Str(String),
}

impl From<RawSubsetScalar> for SubsetScalar {
    fn from(raw: RawSubsetScalar) -> SubsetScalar {
        match raw {
            RawSubsetScalar::Int(v) => SubsetScalar::Int(v),
            RawSubsetScalar::Str(s) => SubsetScalar::Str(s),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: String,
    fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
}

pub(super) fn parse(text: &str, origin: &str) -> Result<Config, CoreError> {
    let raw: RawConfig = match serde_norway::from_str(text) {
        Ok(raw) => raw,
        Err(err) => return Err(syntax_error(text, origin, &err)),
    };
    let index = LineIndex::build(text);
    let mut checker = Checker {
        origin,
        text,
        index: &index,
        problems: Vec::new(),
    };
    if raw.version.trim().is_empty() {
        checker.report(None, "version", "`version` must not be empty".into());
    }
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut columns = Vec::with_capacity(raw.columns.len());
    for (i, raw_column) in raw.columns.into_iter().enumerate() {
        let path = format!("columns.{i}");
        if let Some(&earlier) = first_seen.get(&raw_column.name) {
            let line = index.line(&format!("columns.{earlier}")).unwrap_or(0);
            checker.report(
                Some(&raw_column.name),
                &format!("{path}.name"),
                format!("duplicate column name (first defined on line {line})"),
            );
        } else {
            first_seen.insert(raw_column.name.clone(), i);
        }
        if let Some(column) = checker.column(raw_column, &path) {
            columns.push(column);
        }
    }
    if checker.problems.is_empty() {
        Ok(Config {
            version: raw.version,
            columns,
            origin: origin.to_owned(),
        })
    } else {
        checker.problems.sort_by_key(|p| p.line);
        Err(CoreError::Invalid {
            origin: origin.to_owned(),
            problems: checker.problems,
        })
    }
}

fn syntax_error(text: &str, origin: &str, err: &serde_norway::Error) -> CoreError {
    let (line, col) = err.location().map_or_else(
        || (crate::yaml_lines::trouble_line(text), 0),
        |loc| (loc.line(), loc.column()),
    );
    let mut message = err.to_string();
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    let index = LineIndex::build(text);
    let column = index
        .item_at_line("columns", line)
        .and_then(|i| index.scalar(&format!("columns.{i}.name")))
        .map(str::to_owned);
    CoreError::Syntax {
        origin: origin.to_owned(),
        line,
        col,
        column,
        message,
    }
}

struct Checker<'a> {
    origin: &'a str,
    text: &'a str,
    index: &'a LineIndex,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, column: Option<&str>, path: &str, message: String) {
        self.problems.push(Problem {
            origin: self.origin.to_owned(),
            // A node the line index could not reach (its parser is stricter than serde's in
            // places) is blamed on the line where the index stopped.
            line: self
                .index
                .line_or_ancestor(path)
                .unwrap_or_else(|| crate::yaml_lines::trouble_line(self.text)),
            column: column.map(str::to_owned),
            message,
        });
    }

    /// Validates one column; `None` when it has problems (all of them reported).
    fn column(&mut self, raw: RawColumn, path: &str) -> Option<Column> {
        let before = self.problems.len();
        let name = raw.name.clone();
        let col = Some(name.as_str());
        let at = |key: &str| format!("{path}.{key}");

        let store_unpivoted = raw.store_unpivoted.unwrap_or(false);
        let tables = self.tables(col, path, raw.tables.as_deref(), store_unpivoted);
        let writes_pivoted = tables.iter().any(|t| !t.is_unpivoted());
        let writes_unpivoted = tables.iter().any(|t| t.is_unpivoted());

        self.name(col, &at("name"), &name, writes_pivoted, writes_unpivoted);

        let function = self.function(col, path, &raw.function, raw.function_args.as_ref());

        let pre_aggregate_interval = raw.pre_aggregate_interval.as_deref().and_then(|text| {
            let parsed = InfluxDuration::parse(text);
            if parsed.is_none() {
                self.report(
                    col,
                    &at("pre_aggregate_interval"),
                    format!(
                        "`pre_aggregate_interval: {text}` is not an InfluxQL duration literal (a positive integer and one unit of ns, u, ms, s, m, h, d, w, e.g. `1s`)"
                    ),
                );
            }
            parsed
        });
        if let (Some(_), Some(f)) = (&pre_aggregate_interval, &function)
            && !matches!(f, Function::Mean | Function::Max | Function::Min)
        {
            self.report(
                col,
                &at("pre_aggregate_interval"),
                format!(
                    "pre-aggregation works only with mean, max or min, not `{}`",
                    f.name()
                ),
            );
        }

        let datatype = Datatype::from_name(&raw.datatype);
        if datatype.is_none() {
            self.report(
                col,
                &at("datatype"),
                format!(
                    "unknown datatype `{}` (expected one of {})",
                    raw.datatype,
                    Datatype::NAMES.join(", ")
                ),
            );
        }

        let packed_series = raw.packed_series.unwrap_or(false);
        if packed_series && pre_aggregate_interval.is_some() {
            self.report(
                col,
                &at("pre_aggregate_interval"),
                "packed series cannot be pre-aggregated by the server".into(),
            );
        }

        let topics = self.topics(col, path, raw.topics, writes_unpivoted);

        let subset = self.subset(
            col,
            path,
            raw.subset_field,
            raw.subset_value,
            topics.first(),
        );
        if subset.is_some() && packed_series {
            self.report(
                col,
                &at("subset_field"),
                "packed series carry no subset field; remove `subset_field`".into(),
            );
        }
        if subset.is_some() && pre_aggregate_interval.is_some() {
            self.report(
                col,
                &at("subset_field"),
                "a subset filter cannot be combined with pre-aggregation (the server would aggregate the subset field too)".into(),
            );
        }

        if let Some(topic) = topics.first() {
            let subset_field = subset.as_ref().map(|s| s.field.as_str());
            let value_fields = topic
                .fields
                .iter()
                .filter(|f| Some(f.name.as_str()) != subset_field)
                .count();
            if value_fields == 0 {
                self.report(
                    col,
                    &at("topics"),
                    "no value field: the only field listed is the subset field".into(),
                );
            }
            if value_fields > 1 && matches!(function, Some(Function::RmsFromPolynomialFit { .. })) {
                self.report(
                    col,
                    &at("topics"),
                    format!(
                        "rms_from_polynomial_fit takes exactly one value field, {value_fields} are listed"
                    ),
                );
            }
        }

        if let Some(hours) = raw.start_offset
            && (!hours.is_finite() || hours.abs() > MAX_START_OFFSET_HOURS)
        {
            self.report(
                col,
                &at("start_offset"),
                format!(
                    "`start_offset` is in hours and must lie within ±{MAX_START_OFFSET_HOURS}, not {hours}"
                ),
            );
        }

        if raw.description.trim().is_empty() {
            self.report(
                col,
                &at("description"),
                "`description` must not be empty".into(),
            );
        }

        if self.problems.len() > before {
            return None;
        }
        Some(Column {
            name,
            tables,
            store_unpivoted,
            function: function?,
            pre_aggregate_interval,
            datatype: datatype?,
            ivoa: raw.ivoa.unwrap_or_default(),
            description: raw.description,
            packed_series,
            subset,
            start_offset_hours: raw.start_offset,
            topics,
            line: self.index.line(path).unwrap_or(0),
        })
    }

    fn name(&mut self, col: Option<&str>, path: &str, name: &str, pivoted: bool, unpivoted: bool) {
        if !is_sql_identifier(name) {
            self.report(
                col,
                path,
                "a column name must be a lower-case SQL identifier: a-z or `_` first, then a-z, 0-9 or `_`".into(),
            );
            return;
        }
        if pivoted && name.len() > MAX_SQL_IDENTIFIER_BYTES {
            self.report(
                col,
                path,
                format!(
                    "name is {} bytes; PostgreSQL identifiers hold at most {MAX_SQL_IDENTIFIER_BYTES}",
                    name.len()
                ),
            );
        }
        if unpivoted && name.chars().count() > MAX_PROPERTY_CHARS {
            self.report(
                col,
                path,
                format!(
                    "unpivoted property names hold at most {MAX_PROPERTY_CHARS} characters (VARCHAR({MAX_PROPERTY_CHARS})), this one has {}",
                    name.chars().count()
                ),
            );
        }
        if pivoted && RESERVED_NAMES.contains(&name) {
            self.report(
                col,
                path,
                format!("`{name}` is a key column of the ConsDB tables"),
            );
        }
    }

    fn tables(
        &mut self,
        col: Option<&str>,
        path: &str,
        raw: Option<&[String]>,
        store_unpivoted: bool,
    ) -> Vec<Table> {
        let Some(raw) = raw else {
            // As the reference: all four tables, or the two unpivoted ones when stored unpivoted.
            return if store_unpivoted {
                vec![Table::ExposureEfdUnpivoted, Table::VisitEfdUnpivoted]
            } else {
                Table::ALL.to_vec()
            };
        };
        if raw.is_empty() {
            self.report(
                col,
                &format!("{path}.tables"),
                "`tables` is empty: the column would be computed and never stored".into(),
            );
        }
        let mut tables = Vec::new();
        for (i, name) in raw.iter().enumerate() {
            let item = format!("{path}.tables.{i}");
            match Table::from_name(name) {
                None => self.report(
                    col,
                    &item,
                    format!(
                        "unknown table `{name}` (expected one of {})",
                        Table::ALL.map(Table::as_str).join(", ")
                    ),
                ),
                Some(t) if store_unpivoted && !t.is_unpivoted() => self.report(
                    col,
                    &item,
                    format!(
                        "`store_unpivoted: true` allows only exposure_efd_unpivoted and visit1_efd_unpivoted, not `{name}`"
                    ),
                ),
                Some(t) if tables.contains(&t) => {
                    self.report(col, &item, format!("table `{name}` is listed twice"));
                }
                Some(t) => tables.push(t),
            }
        }
        tables
    }

    fn function(
        &mut self,
        col: Option<&str>,
        path: &str,
        name: &str,
        args: Option<&serde_norway::Mapping>,
    ) -> Option<Function> {
        let args_path = format!("{path}.function_args");
        let mut args_by_name: Vec<(String, &serde_norway::Value)> = Vec::new();
        for (key, value) in args.into_iter().flatten() {
            match key.as_str() {
                Some(k) => args_by_name.push((k.to_owned(), value)),
                None => self.report(
                    col,
                    &args_path,
                    "`function_args` keys must be strings".into(),
                ),
            }
        }
        let allowed: &[&str] = match name {
            "mean" | "max" | "min" | "most_recent_value" => &[],
            "stddev" => &["ddof"],
            "rms_from_polynomial_fit" => &["degree", "fit_basis"],
            _ => {
                self.report(
                    col,
                    &format!("{path}.function"),
                    format!(
                        "unknown function `{name}` (expected one of {})",
                        Function::NAMES.join(", ")
                    ),
                );
                return None;
            }
        };
        let mut ok = true;
        for (key, _) in &args_by_name {
            if !allowed.contains(&key.as_str()) {
                let hint = if key == "start_offset" {
                    " (use the column's top-level `start_offset`, in hours)".to_owned()
                } else if allowed.is_empty() {
                    format!(" (`{name}` takes no arguments)")
                } else {
                    format!(" (`{name}` takes {})", allowed.join(", "))
                };
                self.report(
                    col,
                    &format!("{args_path}.{key}"),
                    format!("unknown argument `{key}` for `{name}`{hint}"),
                );
                ok = false;
            }
        }
        let arg = |key: &str| args_by_name.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        let function = match name {
            "mean" => Function::Mean,
            "max" => Function::Max,
            "min" => Function::Min,
            "most_recent_value" => Function::MostRecentValue,
            "stddev" => {
                let ddof =
                    self.uint_arg(col, &args_path, "ddof", arg("ddof"), 1, u64::from(u32::MAX));
                Function::Stddev {
                    ddof: u32::try_from(ddof?).ok()?,
                }
            }
            _ => {
                let degree = self.uint_arg(col, &args_path, "degree", arg("degree"), 1, MAX_DEGREE);
                let fit_basis = match arg("fit_basis") {
                    None => Some(FitBasis::Index),
                    Some(v) => match v.as_str() {
                        Some("index") => Some(FitBasis::Index),
                        Some("time") => Some(FitBasis::Time),
                        _ => {
                            self.report(
                                col,
                                &format!("{args_path}.fit_basis"),
                                "`fit_basis` must be `index` or `time`".into(),
                            );
                            None
                        }
                    },
                };
                Function::RmsFromPolynomialFit {
                    degree: u32::try_from(degree?).ok()?,
                    fit_basis: fit_basis?,
                }
            }
        };
        ok.then_some(function)
    }

    fn uint_arg(
        &mut self,
        col: Option<&str>,
        args_path: &str,
        key: &str,
        value: Option<&serde_norway::Value>,
        default: u64,
        max: u64,
    ) -> Option<u64> {
        let Some(value) = value else {
            return Some(default);
        };
        match value.as_u64() {
            Some(v) if v <= max => Some(v),
            _ => {
                self.report(
                    col,
                    &format!("{args_path}.{key}"),
                    format!("`{key}` must be an integer from 0 to {max}"),
                );
                None
            }
        }
    }

    fn topics(
        &mut self,
        col: Option<&str>,
        path: &str,
        raw: Vec<RawTopic>,
        writes_unpivoted: bool,
    ) -> Vec<Topic> {
        if raw.len() != 1 {
            self.report(
                col,
                &format!("{path}.topics"),
                format!("a column reads exactly one topic, {} are listed", raw.len()),
            );
        }
        let mut topics = Vec::with_capacity(raw.len());
        for (t, topic) in raw.into_iter().enumerate() {
            let tpath = format!("{path}.topics.{t}");
            if let Err(why) = check_efd_name(&topic.name, true) {
                self.report(col, &format!("{tpath}.name"), format!("topic name {why}"));
            }
            if topic.fields.is_empty() {
                self.report(
                    col,
                    &format!("{tpath}.fields"),
                    "the topic lists no fields".into(),
                );
            }
            let mut fields: Vec<Field> = Vec::with_capacity(topic.fields.len());
            for (f, field) in topic.fields.into_iter().enumerate() {
                let fpath = format!("{tpath}.fields.{f}.name");
                if let Err(why) = check_efd_name(&field.name, false) {
                    self.report(col, &fpath, format!("field name {why}"));
                } else if fields.iter().any(|x| x.name == field.name) {
                    self.report(
                        col,
                        &fpath,
                        format!("field `{}` is listed twice", field.name),
                    );
                } else if writes_unpivoted && field.name.chars().count() > MAX_UNPIVOTED_FIELD_CHARS
                {
                    self.report(
                        col,
                        &fpath,
                        format!(
                            "field `{}` is stored in the unpivoted `field` column, which holds at most {MAX_UNPIVOTED_FIELD_CHARS} characters",
                            field.name
                        ),
                    );
                }
                fields.push(Field { name: field.name });
            }
            topics.push(Topic {
                name: topic.name,
                fields,
            });
        }
        topics
    }

    fn subset(
        &mut self,
        col: Option<&str>,
        path: &str,
        field: Option<String>,
        value: Option<RawSubsetValue>,
        topic: Option<&Topic>,
    ) -> Option<Subset> {
        let (field, value) = match (field, value) {
            (None, None) => return None,
            (Some(_), None) => {
                self.report(
                    col,
                    &format!("{path}.subset_field"),
                    "`subset_field` needs a `subset_value`".into(),
                );
                return None;
            }
            (None, Some(_)) => {
                self.report(
                    col,
                    &format!("{path}.subset_value"),
                    "`subset_value` needs a `subset_field`".into(),
                );
                return None;
            }
            (Some(f), Some(v)) => (f, v),
        };
        if let Some(topic) = topic
            && !topic.fields.iter().any(|f| f.name == field)
        {
            self.report(
                col,
                &format!("{path}.subset_field"),
                format!(
                    "subset field `{field}` is not listed among the fields of topic `{}`",
                    topic.name
                ),
            );
        }
        let value = match value {
            RawSubsetValue::Int(v) => SubsetValue::One(SubsetScalar::Int(v)),
            RawSubsetValue::Str(s) => SubsetValue::One(SubsetScalar::Str(s)),
            RawSubsetValue::List(vs) => {
                if vs.is_empty() {
                    self.report(
                        col,
                        &format!("{path}.subset_value"),
                        "`subset_value` is an empty list: no row could ever match".into(),
                    );
                }
                SubsetValue::Any(vs.into_iter().map(SubsetScalar::from).collect())
            }
        };
        Some(Subset { field, value })
    }
}

/// A lower-case SQL identifier that needs no quoting: `[a-z_][a-z0-9_]*`.
pub(crate) fn is_sql_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Checks a topic (dotted) or field name against the characters the EFD uses: ASCII letters, digits
/// and `_`, with `.` between parts of a topic name. Everything else (quotes, backslashes, spaces,
/// semicolons, dashes, control characters, non-ASCII look-alikes) is rejected before any query is
/// built.
pub(crate) fn check_efd_name(name: &str, dotted: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.chars().count() > MAX_EFD_NAME_CHARS {
        return Err(format!("is longer than {MAX_EFD_NAME_CHARS} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || (dotted && c == '.')))
    {
        return Err(format!(
            "`{}` contains {}, outside what EFD names use (ASCII letters, digits, `_`{})",
            name.escape_debug(),
            describe_char(bad),
            if dotted { ", `.`" } else { "" }
        ));
    }
    if dotted && name.split('.').any(str::is_empty) {
        return Err(format!("`{name}` has an empty part between dots"));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Err(format!("`{name}` starts with a digit"));
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("a control character (U+{:04X})", u32::from(c))
    } else if c.is_ascii() {
        format!("`{c}`")
    } else {
        format!("the non-ASCII character `{c}` (U+{:04X})", u32::from(c))
    }
}
