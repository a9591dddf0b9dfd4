//! Felis YAML (`schema/efd_<instrument>.yaml`) from the schema, with serde structs rather than the
//! reference's f-string templates, so that descriptions holding `: `, ` #` or quotes stay text.
//!
//! The document has the reference generator's shape (BEHAVIOUR.md §6.5): the schema's name, `@id`,
//! description and `version.current`; the tables in the order `exposure_efd`,
//! `exposure_efd_unpivoted`, `visit1_efd`, `visit1_efd_unpivoted`, each with its `primaryKey`,
//! `constraints` and `columns`; each column with `name`, `@id`, `description`, `datatype`, and
//! `length`, `nullable`, `value` and `ivoa:*` annotations where the reference writes them.
//!
//! One quirk is resolved as the reference's YAML reads: the reference writes IVOA values raw, and the
//! shipped configs rely on it by quoting some (`"unit": "\"\""` for no unit, `"\"%\""` for percent),
//! which its YAML then reads as the empty string and `%`. So a value wrapped in quotes is emitted as the YAML
//! scalar it spells; every other value, and every description, is emitted as the text it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use transform_core::Table;

use crate::error::WriterError;
use crate::schema::{ColumnDefault, EfdSchema, TableSpec};

/// A Felis schema document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FelisSchema {
    /// `efd_<instrument>`.
    pub name: String,
    /// `#efd_<instrument>`.
    #[serde(rename = "@id")]
    pub id: String,
    /// What the schema holds.
    pub description: String,
    /// The config's version.
    pub version: FelisVersion,
    /// The tables.
    pub tables: Vec<FelisTable>,
}

/// `version:` of a Felis schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FelisVersion {
    /// The current version.
    pub current: String,
}

/// A Felis table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FelisTable {
    /// Table name.
    pub name: String,
    /// `#<table>`.
    #[serde(rename = "@id")]
    pub id: String,
    /// What the table holds.
    pub description: String,
    /// Column ids of the primary key.
    #[serde(rename = "primaryKey")]
    pub primary_key: Vec<String>,
    /// Unique constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<FelisConstraint>,
    /// The columns.
    pub columns: Vec<FelisColumn>,
}

/// A Felis constraint (here always `Unique`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FelisConstraint {
    /// Constraint name.
    pub name: String,
    /// `#<table>.<name>`.
    #[serde(rename = "@id")]
    pub id: String,
    /// `Unique`.
    #[serde(rename = "@type")]
    pub kind: String,
    /// What it ensures.
    pub description: String,
    /// Column ids.
    pub columns: Vec<String>,
}

/// A Felis column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FelisColumn {
    /// Column name.
    pub name: String,
    /// `#<table>.<column>`.
    #[serde(rename = "@id")]
    pub id: String,
    /// What the column holds.
    pub description: String,
    /// Felis datatype (`int`, `long`, `float`, `string`, `timestamp`, ...).
    pub datatype: String,
    /// Length of a `string` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Written only as `false`, as the reference writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// Server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `ivoa:ucd`, `ivoa:unit`, ... (keys with their `ivoa:` prefix), sorted.
    #[serde(flatten)]
    pub annotations: BTreeMap<String, String>,
}

/// The value the reference's YAML ends up with for an IVOA annotation (see the module docs): a
/// value wrapped in quotes is read as the YAML scalar it spells, anything else is kept as is.
fn ivoa_value(raw: &str) -> String {
    let quoted = raw.len() >= 2
        && ((raw.starts_with('"') && raw.ends_with('"'))
            || (raw.starts_with('\'') && raw.ends_with('\'')));
    if quoted && let Ok(text) = serde_norway::from_str::<String>(raw) {
        return text;
    }
    raw.to_owned()
}

fn felis_table(spec: &TableSpec) -> FelisTable {
    let t = spec.name.as_str();
    let col_id = |c: &str| format!("#{t}.{c}");
    FelisTable {
        name: t.to_owned(),
        id: format!("#{t}"),
        description: spec.description.clone(),
        primary_key: spec
            .primary_key
            .iter()
            .map(|c| col_id(c.as_str()))
            .collect(),
        constraints: spec
            .unique
            .iter()
            .map(|u| FelisConstraint {
                name: u.name.to_string(),
                id: col_id(u.name.as_str()),
                kind: "Unique".to_owned(),
                description: u.description.clone(),
                columns: u.columns.iter().map(|c| col_id(c.as_str())).collect(),
            })
            .collect(),
        columns: spec
            .columns
            .iter()
            .map(|c| FelisColumn {
                name: c.name.to_string(),
                id: col_id(c.name.as_str()),
                description: c.description.clone(),
                datatype: c.felis_datatype.to_owned(),
                length: c.length(),
                nullable: (!c.nullable).then_some(false),
                value: c.default.as_ref().map(|d| match d {
                    ColumnDefault::CurrentTimestamp => "CURRENT_TIMESTAMP".to_owned(),
                    ColumnDefault::Text(t) => (*t).to_owned(),
                }),
                annotations: c
                    .ivoa
                    .iter()
                    .map(|(k, v)| (format!("ivoa:{k}"), ivoa_value(v)))
                    .collect(),
            })
            .collect(),
    }
}

impl FelisSchema {
    /// The Felis description of a schema.
    pub fn new(schema: &EfdSchema) -> FelisSchema {
        let name = schema.name().to_string();
        let order = [
            Table::ExposureEfd,
            Table::ExposureEfdUnpivoted,
            Table::VisitEfd,
            Table::VisitEfdUnpivoted,
        ];
        FelisSchema {
            id: format!("#{name}"),
            description: format!(
                "Transformed EFD Consolidated Database for {}.",
                schema.instrument()
            ),
            name,
            version: FelisVersion {
                current: schema.version().to_owned(),
            },
            tables: order
                .into_iter()
                .map(|t| felis_table(schema.table(t)))
                .collect(),
        }
    }

    /// The YAML document, starting with `---` as the reference's files do.
    pub fn to_yaml(&self) -> Result<String, WriterError> {
        let body = serde_norway::to_string(self).map_err(|e| WriterError::Usage {
            message: format!("cannot write the Felis YAML: {e}"),
        })?;
        Ok(format!("---\n{body}"))
    }

    /// Reads a Felis document (this crate's or the reference's).
    pub fn from_yaml(text: &str) -> Result<FelisSchema, WriterError> {
        serde_norway::from_str(text).map_err(|e| WriterError::Usage {
            message: format!("not a Felis schema document: {e}"),
        })
    }
}

impl EfdSchema {
    /// The Felis YAML of this schema (`schema/efd_<instrument>.yaml`).
    pub fn felis_yaml(&self) -> Result<String, WriterError> {
        FelisSchema::new(self).to_yaml()
    }
}
