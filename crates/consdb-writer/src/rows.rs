//! What callers write: wide batches (one row per exposure or visit, the columns computed in this
//! batch) and unpivoted batches (one row per item, property and field).
//!
//! Absent versus NULL: a [`WideBatch`] lists the columns it carries ([`WideBatch::columns`]); each
//! row has one `Option<f64>` per listed column. A listed column whose value is `None` is written as
//! NULL (the value was computed and there is none: it overwrites). A config column that is not
//! listed is absent: the upsert neither inserts nor updates it, so new rows get NULL and existing
//! values are kept (BEHAVIOUR.md §5.14). [`crate::WriteOutcome::absent_columns`] says how many
//! config columns a batch left out.

use transform_core::Table;

/// The keys of one exposure or visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemKey {
    /// `day_obs` (`YYYYMMDD`).
    pub day_obs: i32,
    /// `seq_num`.
    pub seq_num: i32,
    /// `exposure_id` or `visit_id`.
    pub id: i64,
}

/// One wide row: an item's keys and one value per column of its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct WideRow {
    /// The item.
    pub key: ItemKey,
    /// `values[i]` is the value of `columns[i]` of the batch; `None` writes NULL.
    pub values: Vec<Option<f64>>,
}

/// Rows for `exposure_efd` or `visit1_efd` that all carry the same columns.
#[derive(Debug, Clone, PartialEq)]
pub struct WideBatch {
    /// `Table::ExposureEfd` or `Table::VisitEfd`.
    pub table: Table,
    /// The config columns present in this batch, in the order of each row's values.
    pub columns: Vec<String>,
    /// The rows. Rows with the same `(day_obs, seq_num)`: the last one wins.
    pub rows: Vec<WideRow>,
}

impl WideBatch {
    /// An empty batch for `table` carrying `columns`.
    pub fn new(table: Table, columns: impl IntoIterator<Item = impl Into<String>>) -> WideBatch {
        WideBatch {
            table,
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (`values` in the order of [`WideBatch::columns`]).
    pub fn push(&mut self, key: ItemKey, values: Vec<Option<f64>>) {
        self.rows.push(WideRow { key, values });
    }
}

/// One unpivoted row.
#[derive(Debug, Clone, PartialEq)]
pub struct UnpivotedRow {
    /// The item.
    pub key: ItemKey,
    /// The config column's name (at most 64 characters).
    pub property: String,
    /// The EFD field (at most 32 characters).
    pub field: String,
    /// The value; `None` writes NULL.
    pub value: Option<f64>,
}

/// Rows for `exposure_efd_unpivoted` or `visit1_efd_unpivoted`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnpivotedBatch {
    /// `Table::ExposureEfdUnpivoted` or `Table::VisitEfdUnpivoted`.
    pub table: Table,
    /// The rows. Rows with the same key, property and field: the last one wins.
    pub rows: Vec<UnpivotedRow>,
}

impl UnpivotedBatch {
    /// An empty batch for `table`.
    pub fn new(table: Table) -> UnpivotedBatch {
        UnpivotedBatch {
            table,
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(
        &mut self,
        key: ItemKey,
        property: impl Into<String>,
        field: impl Into<String>,
        value: Option<f64>,
    ) {
        self.rows.push(UnpivotedRow {
            key,
            property: property.into(),
            field: field.into(),
            value,
        });
    }
}
