//! `--check-config --efd URL`: every column of a config against what the EFD holds.
//!
//! The EFD's catalogue (its measurements, and the field and tag keys of the config's topics, asked
//! in batches) is compared with each column's topic, value fields and subset field. Each column
//! gets findings: topic missing; field missing (with the closest existing names, and a note when
//! `<field>0..N` exists, i.e. `packed_series: true` was probably meant, or when a packed base has
//! no `<base>0`); a type its function cannot use (a string under `mean`); subset field missing. A
//! column is *dead* when it can never produce a value: its topic or subset field is missing, or
//! none of its value fields exists with a usable type.

use std::collections::BTreeSet;
use std::fmt;

use efd_client::{Catalog, FieldKey, FieldType};
use transform_core::{Column, Config, Function};

/// One problem of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The topic is not a measurement of the EFD.
    TopicMissing {
        /// The topic.
        topic: String,
        /// Measurements with close names.
        suggestions: Vec<String>,
    },
    /// A value field is not a field of the topic.
    FieldMissing {
        /// The field (a base name for packed series).
        field: String,
        /// Existing fields with close names.
        suggestions: Vec<String>,
        /// `Some(n)` when `<field>0..<field>{n-1}` exist: the field is a packed array, so
        /// `packed_series: true` was probably meant.
        packed_elements: Option<usize>,
    },
    /// The field exists with a type the column's function cannot use.
    TypeUnusable {
        /// The field.
        field: String,
        /// Its type in the EFD.
        field_type: FieldType,
    },
    /// The subset field is neither a field nor a tag of the topic.
    SubsetFieldMissing {
        /// The subset field.
        field: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::TopicMissing { topic, suggestions } => {
                write!(f, "topic `{topic}` is not in the EFD")?;
                write_suggestions(f, suggestions)
            }
            Finding::FieldMissing {
                field,
                suggestions,
                packed_elements,
            } => {
                write!(f, "field `{field}` is not in the topic")?;
                if let Some(n) = packed_elements {
                    write!(
                        f,
                        "; `{field}0`..`{field}{}` exist: a packed array (set `packed_series: true`)",
                        n - 1
                    )?;
                }
                write_suggestions(f, suggestions)
            }
            Finding::TypeUnusable { field, field_type } => write!(
                f,
                "field `{field}` holds {} values, which the function cannot use",
                type_name(*field_type)
            ),
            Finding::SubsetFieldMissing { field } => {
                write!(
                    f,
                    "subset field `{field}` is neither a field nor a tag of the topic"
                )
            }
        }
    }
}

fn write_suggestions(f: &mut fmt::Formatter<'_>, suggestions: &[String]) -> fmt::Result {
    if suggestions.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
        write!(f, " (did you mean {}?)", list.join(", "))
    }
}

fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Float => "float",
        FieldType::Integer => "integer",
        FieldType::Unsigned => "unsigned",
        FieldType::Boolean => "boolean",
        FieldType::String => "string",
    }
}

/// The verdict on one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCheck {
    /// The column name.
    pub column: String,
    /// Its line in the config file.
    pub line: usize,
    /// Its topic.
    pub topic: String,
    /// What is wrong (empty: ok).
    pub findings: Vec<Finding>,
    /// Whether the column can never produce a value.
    pub dead: bool,
}

impl ColumnCheck {
    /// `ok`, `partial` (some fields missing, values still possible) or `dead`.
    pub fn verdict(&self) -> &'static str {
        match (self.dead, self.findings.is_empty()) {
            (true, _) => "dead",
            (false, true) => "ok",
            (false, false) => "partial",
        }
    }
}

/// Whether `function` can use values of type `t`.
fn usable(function: &Function, t: FieldType) -> bool {
    match t {
        FieldType::Float | FieldType::Integer | FieldType::Unsigned => true,
        // The last value of any type can be stored; numbers are needed for everything else.
        FieldType::Boolean | FieldType::String => matches!(function, Function::MostRecentValue),
    }
}

/// How many elements `<base>0..` a topic has (consecutive from 0).
fn packed_count(fields: &[FieldKey], base: &str) -> usize {
    let names: BTreeSet<&str> = fields.iter().map(|k| k.name.as_str()).collect();
    (0..)
        .take_while(|i| names.contains(format!("{base}{i}").as_str()))
        .count()
}

/// Up to three of `candidates` closest to `name` (Levenshtein distance at most a third of the
/// name's length, at least 2), closest first.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(2);
    let lower = name.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (strsim::levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_owned())
        .collect()
}

/// Checks one column against the catalogue.
pub fn check_column(column: &Column, catalog: &Catalog) -> ColumnCheck {
    let topic = &column.topic().name;
    let mut out = ColumnCheck {
        column: column.name.clone(),
        line: column.line,
        topic: topic.clone(),
        findings: Vec::new(),
        dead: false,
    };
    if !catalog.measurements.contains(topic) {
        out.findings.push(Finding::TopicMissing {
            topic: topic.clone(),
            suggestions: closest(topic, catalog.measurements.iter().map(String::as_str)),
        });
        out.dead = true;
        return out;
    }
    let fields: &[FieldKey] = catalog.fields.get(topic).map_or(&[], Vec::as_slice);
    let tags: &[String] = catalog.tags.get(topic).map_or(&[], Vec::as_slice);
    let names = || fields.iter().map(|k| k.name.as_str());
    let mut usable_fields = 0;
    for field in column.value_fields() {
        if column.packed_series {
            if packed_count(fields, field) == 0 {
                out.findings.push(Finding::FieldMissing {
                    field: format!("{field}0"),
                    suggestions: closest(&format!("{field}0"), names()),
                    packed_elements: None,
                });
            } else {
                usable_fields += 1;
            }
            continue;
        }
        let types: Vec<FieldType> = fields
            .iter()
            .filter(|k| k.name == field)
            .map(|k| k.field_type)
            .collect();
        if types.is_empty() {
            let n = packed_count(fields, field);
            out.findings.push(Finding::FieldMissing {
                field: field.to_owned(),
                suggestions: if n > 0 {
                    Vec::new()
                } else {
                    closest(field, names())
                },
                packed_elements: (n > 0).then_some(n),
            });
        } else if let Some(bad) = types.iter().find(|t| !usable(&column.function, **t)) {
            out.findings.push(Finding::TypeUnusable {
                field: field.to_owned(),
                field_type: *bad,
            });
        } else {
            usable_fields += 1;
        }
    }
    if let Some(subset) = &column.subset
        && !fields.iter().any(|k| k.name == subset.field)
        && !tags.contains(&subset.field)
    {
        out.findings.push(Finding::SubsetFieldMissing {
            field: subset.field.clone(),
        });
        out.dead = true;
    }
    if usable_fields == 0 {
        out.dead = true;
    }
    out
}

/// Checks every column of `config`, in config order.
pub fn check_config(config: &Config, catalog: &Catalog) -> Vec<ColumnCheck> {
    config
        .columns
        .iter()
        .map(|c| check_column(c, catalog))
        .collect()
}

/// The topics a config reads, each once, in order of first use.
pub fn config_topics(config: &Config) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    config
        .columns
        .iter()
        .map(|c| c.topic().name.as_str())
        .filter(|t| seen.insert(*t))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn key(name: &str, t: FieldType) -> FieldKey {
        FieldKey {
            name: name.to_owned(),
            field_type: t,
        }
    }

    const CONFIG: &str = r#"
version: "t"
columns:
- name: ok_mean
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}]
- name: misspelt
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItme0}]
- name: packed_as_scalar
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ATMCS.mount_AzEl_Encoders
    fields: [{name: azimuthCalculatedAngle}]
- name: no_topic
  tables: [exposure_efd]
  function: max
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temprature
    fields: [{name: temperatureItem0}]
- name: string_mean
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: location}]
- name: subset_gone
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  subset_field: sensorIndex
  subset_value: 3
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: sensorIndex}]
- name: tagged_subset
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  subset_field: salIndex
  subset_value: 301
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: salIndex}]
- name: half_there
  tables: [exposure_efd]
  function: max
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: temperatureItem9}]
"#;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for t in [
            "lsst.sal.ESS.temperature",
            "lsst.sal.ATMCS.mount_AzEl_Encoders",
        ] {
            c.measurements.insert(t.to_owned());
        }
        c.fields.insert(
            "lsst.sal.ESS.temperature".to_owned(),
            vec![
                key("temperatureItem0", FieldType::Float),
                key("temperatureItem1", FieldType::Float),
                key("location", FieldType::String),
            ],
        );
        c.tags.insert(
            "lsst.sal.ESS.temperature".to_owned(),
            vec!["salIndex".to_owned()],
        );
        c.fields.insert(
            "lsst.sal.ATMCS.mount_AzEl_Encoders".to_owned(),
            (0..100)
                .map(|i| key(&format!("azimuthCalculatedAngle{i}"), FieldType::Float))
                .collect(),
        );
        c
    }

    #[test]
    fn each_kind_of_mistake_is_named_and_dead_columns_are_marked() {
        let config = Config::parse(CONFIG, "t.yaml").unwrap();
        let checks = check_config(&config, &catalog());
        let by: BTreeMap<&str, &ColumnCheck> =
            checks.iter().map(|c| (c.column.as_str(), c)).collect();
        assert_eq!(by["ok_mean"].verdict(), "ok");
        assert_eq!(by["tagged_subset"].verdict(), "ok");

        let m = by["misspelt"];
        assert_eq!(m.verdict(), "dead");
        let text = m.findings[0].to_string();
        assert!(text.contains("did you mean `temperatureItem0`"), "{text}");

        let p = by["packed_as_scalar"];
        assert!(p.dead);
        assert_eq!(
            p.findings,
            [Finding::FieldMissing {
                field: "azimuthCalculatedAngle".to_owned(),
                suggestions: Vec::new(),
                packed_elements: Some(100),
            }]
        );
        assert!(p.findings[0].to_string().contains("packed_series: true"));

        let t = by["no_topic"];
        assert!(t.dead);
        assert!(
            t.findings[0]
                .to_string()
                .contains("did you mean `lsst.sal.ESS.temperature`")
        );

        let s = by["string_mean"];
        assert!(s.dead);
        assert!(s.findings[0].to_string().contains("string values"));

        let sub = by["subset_gone"];
        assert!(sub.dead);
        assert!(matches!(
            &sub.findings[..],
            [Finding::SubsetFieldMissing { field }] if field == "sensorIndex"
        ));

        let h = by["half_there"];
        assert_eq!(h.verdict(), "partial");
        assert_eq!(h.line, config.columns[7].line);
    }
}
