//! What the EFD holds for a config: its measurements, and the field and tag keys of the config's
//! topics, from either source (`--check-config --efd`).

use std::collections::{BTreeMap, BTreeSet};

use crate::client::EfdClient;
use crate::error::EfdError;
use crate::source::{EfdSource, FieldKey};

/// The EFD's catalogue for some topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Every measurement of the database.
    pub measurements: BTreeSet<String>,
    /// Field keys of each asked topic the EFD has.
    pub fields: BTreeMap<String, Vec<FieldKey>>,
    /// Tag keys of each asked topic the EFD has.
    pub tags: BTreeMap<String, Vec<String>>,
}

impl EfdClient {
    /// The catalogue for `topics`: `SHOW MEASUREMENTS`, then `SHOW FIELD KEYS` and `SHOW TAG
    /// KEYS` of the topics the EFD has, 50 topics per statement (the file source answers from its
    /// index).
    pub async fn catalog(&self, topics: &[&str]) -> Result<Catalog, EfdError> {
        let measurements = match self {
            EfdClient::Http(s) => s.measurements().await?,
            EfdClient::File(s) => s.measurements(),
        };
        let mut present: Vec<&str> = topics
            .iter()
            .copied()
            .filter(|t| measurements.contains(*t))
            .collect();
        present.sort_unstable();
        present.dedup();
        self.prefetch_field_keys(&present).await?;
        let mut fields = BTreeMap::new();
        for topic in &present {
            fields.insert((*topic).to_owned(), self.field_keys(topic).await?);
        }
        let tags: BTreeMap<String, Vec<String>> = match self {
            EfdClient::Http(s) => s.tag_keys(&present).await?.into_iter().collect(),
            EfdClient::File(s) => present
                .iter()
                .map(|t| ((*t).to_owned(), s.tag_keys(t)))
                .collect(),
        };
        Ok(Catalog {
            measurements,
            fields,
            tags,
        })
    }
}
