//! Evaluation of one column over the items (exposures or visits) of a task.
//!
//! A [`PreparedColumn`] is built once per column and task from the topic's [`Frame`] (BEHAVIOUR.md
//! §5.8): rows are filtered by the subset value (compared as strings), the subset field is set aside,
//! rows with a missing value among the remaining fields are dropped, and the fields are converted to
//! `f64` (booleans as 0/1). Each item then costs two binary searches for its inclusive window
//! `[begin (+ start_offset), end]` plus the kernel over the rows inside (§5.9–5.11).

use std::collections::HashSet;
use std::ops::Range;

use crate::config::{Column, Function, Subset};
use crate::frame::{ColumnData, Frame};
use crate::kernels;
use crate::semantics::Semantics;
use crate::time::{TimeRange, UtcNanos, hours_to_nanos, round_to_micros};

/// An exposure or a visit: its keys and its timespan (UTC, inclusive bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// `exposure_id` or `visit_id`.
    pub id: i64,
    /// Observing day, `YYYYMMDD`.
    pub day_obs: i32,
    /// Sequence number within the day.
    pub seq_num: i32,
    /// The timespan, UTC.
    pub timespan: TimeRange,
}

/// Whether items are exposures or visits (the reference treats their unpivoted zeros differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// Rows of `exposure_efd` / `exposure_efd_unpivoted`.
    Exposure,
    /// Rows of `visit1_efd` / `visit1_efd_unpivoted`.
    Visit,
}

/// Why a column that has data yields no values; reported per task, never an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataIssue {
    /// A value field holds strings, which no function can aggregate.
    NonNumericField {
        /// The field.
        field: String,
    },
}

impl std::fmt::Display for DataIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataIssue::NonNumericField { field } => {
                write!(
                    f,
                    "field `{field}` holds strings, which cannot be aggregated"
                )
            }
        }
    }
}

/// One unpivoted value: the field it was computed from and the value (`None` is stored as NULL,
/// which only reference semantics produces).
#[derive(Debug, Clone, PartialEq)]
pub struct UnpivotedValue {
    /// The field name (`field` column).
    pub field: String,
    /// The value (`value` column).
    pub value: Option<f64>,
}

/// A column's data for one task, ready for per-item evaluation.
#[derive(Debug, Clone)]
pub struct PreparedColumn {
    function: Function,
    semantics: Semantics,
    start_offset_nanos: i64,
    timestamps: Vec<i64>,
    fields: Vec<(String, Vec<f64>)>,
    issue: Option<DataIssue>,
}

impl PreparedColumn {
    /// Prepares `column` from its topic's frame.
    pub fn new(column: &Column, frame: &Frame, semantics: Semantics) -> PreparedColumn {
        let start_offset_nanos = match column.start_offset_hours {
            Some(h) if semantics.honours_start_offset() => hours_to_nanos(h),
            _ => 0,
        };
        let mut prepared = PreparedColumn {
            function: column.function,
            semantics,
            start_offset_nanos,
            timestamps: Vec::new(),
            fields: Vec::new(),
            issue: None,
        };
        // Rows kept by the subset filter; without a subset every row is kept.
        let keep: Option<Vec<bool>> = match &column.subset {
            None => None,
            Some(subset) => match frame.column(&subset.field) {
                // The reference: a subset field absent from the data gives no values.
                None => return prepared,
                Some(data) => Some(subset_mask(subset, data, semantics)),
            },
        };
        // Value fields present in the data; absent ones are skipped, as the reference's subset path
        // does (a source always returns every requested field, so this only matters for odd data).
        let present: Vec<(&str, &ColumnData)> = column
            .value_fields()
            .filter_map(|name| frame.column(name).map(|data| (name, data)))
            .collect();
        if present.is_empty() {
            return prepared;
        }
        if let Some((name, _)) = present.iter().find(|(_, data)| !data.is_numeric()) {
            prepared.issue = Some(DataIssue::NonNumericField {
                field: (*name).to_owned(),
            });
            return prepared;
        }
        let rows: Vec<usize> = (0..frame.len())
            .filter(|&i| keep.as_ref().is_none_or(|k| k[i]))
            .filter(|&i| present.iter().all(|(_, data)| data.is_present(i)))
            .collect();
        let ts = frame.timestamps();
        // Sample times are used as the source gives them; the reference's µs truncation of `/query`
        // times happens where it happened there, in the source (`time::truncate_to_micros`).
        prepared.timestamps = rows.iter().map(|&i| ts[i]).collect();
        prepared.fields = present
            .iter()
            .map(|(name, data)| {
                let values = match data {
                    ColumnData::Float(v) => rows.iter().map(|&i| v[i]).collect(),
                    _ => rows
                        .iter()
                        .map(|&i| data.number(i).unwrap_or(f64::NAN))
                        .collect(),
                };
                ((*name).to_owned(), values)
            })
            .collect();
        prepared
    }

    /// Why the column yields nothing despite having data, if that is the case.
    pub fn issue(&self) -> Option<&DataIssue> {
        self.issue.as_ref()
    }

    /// Number of rows left after filtering.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether no rows are left after filtering.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The names of the value fields, in config order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(name, _)| name.as_str())
    }

    /// The window of an item: `[begin + start_offset, end]` (reference: bounds rounded to µs, no
    /// offset). `None` when the offset moves the start past the end.
    pub fn window(&self, item: &Item) -> Option<(i64, i64)> {
        let UtcNanos(begin) = item.timespan.start();
        let UtcNanos(end) = item.timespan.end();
        let (begin, end) = match self.semantics {
            Semantics::Default => (begin.saturating_add(self.start_offset_nanos), end),
            Semantics::Reference => (round_to_micros(begin), round_to_micros(end)),
        };
        (begin <= end).then_some((begin, end))
    }

    /// Rows whose timestamp lies in `[begin, end]` (inclusive), by binary search.
    pub fn rows(&self, (begin, end): (i64, i64)) -> Range<usize> {
        let lo = self.timestamps.partition_point(|&t| t < begin);
        let hi = self.timestamps.partition_point(|&t| t <= end);
        lo..hi.max(lo)
    }

    /// The pivoted value for one item: the function over every value field in its window. NaN and
    /// infinities become `None` (NULL).
    pub fn value(&self, item: &Item) -> Option<f64> {
        let rows = self.item_rows(item)?;
        let parts: Vec<&[f64]> = self.fields.iter().map(|(_, v)| &v[rows.clone()]).collect();
        self.apply(&parts, rows).filter(|v| v.is_finite())
    }

    /// The unpivoted values for one item: the function over each value field alone. Fields without a
    /// value are omitted; in reference semantics a visit's zeros are omitted too, and NaN results are
    /// kept as NULL rows, as the Python service stores them.
    pub fn unpivoted(&self, item: &Item, kind: ItemKind) -> Vec<UnpivotedValue> {
        let Some(rows) = self.item_rows(item) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.fields.len());
        for (name, values) in &self.fields {
            let value = self.apply(&[&values[rows.clone()]], rows.clone());
            let stored = match (self.semantics, value) {
                (_, None) => None,
                (Semantics::Default, Some(v)) => v.is_finite().then_some(Some(v)),
                (Semantics::Reference, Some(v)) if v.is_nan() => Some(None),
                (Semantics::Reference, Some(v)) => {
                    let dropped_zero = kind == ItemKind::Visit
                        && !self.semantics.stores_zero_visit_unpivoted()
                        && v == 0.0;
                    (!dropped_zero).then_some(Some(v))
                }
            };
            if let Some(value) = stored {
                out.push(UnpivotedValue {
                    field: name.clone(),
                    value,
                });
            }
        }
        out
    }

    fn item_rows(&self, item: &Item) -> Option<Range<usize>> {
        if self.fields.is_empty() {
            return None;
        }
        let rows = self.rows(self.window(item)?);
        (!rows.is_empty()).then_some(rows)
    }

    fn apply(&self, parts: &[&[f64]], rows: Range<usize>) -> Option<f64> {
        match self.function {
            Function::Mean => kernels::mean(parts),
            Function::Stddev { ddof } => kernels::stddev(parts, ddof),
            Function::Max => kernels::max(parts),
            Function::Min => kernels::min(parts),
            Function::MostRecentValue => kernels::most_recent_value(parts),
            Function::RmsFromPolynomialFit { degree, fit_basis } => {
                // Validation allows one value field only.
                let y = parts.first()?;
                let t = &self.timestamps[rows];
                let first = t.first().copied().unwrap_or_default();
                // Exact integer differences first: ns epochs do not fit an f64 mantissa.
                #[allow(clippy::cast_precision_loss)]
                let x: Vec<f64> = t.iter().map(|&ti| (ti - first) as f64).collect();
                kernels::rms_from_polynomial_fit(
                    y,
                    &x,
                    degree,
                    fit_basis,
                    self.semantics.rms_formula(),
                    self.semantics.rms_underdetermined(),
                )
            }
        }
    }
}

/// Which rows of the subset field match the subset value, comparing string forms as the reference
/// does (`astype(str)` after `fillna("")`).
fn subset_mask(subset: &Subset, data: &ColumnData, semantics: Semantics) -> Vec<bool> {
    let accepted: HashSet<String> = subset.value.strings().into_iter().collect();
    match data {
        ColumnData::Int(values) => {
            // Compare integers directly: an accepted string matches an integer only if it is that
            // integer's canonical decimal form.
            let ints: HashSet<i64> = accepted
                .iter()
                .filter_map(|s| s.parse::<i64>().ok().filter(|v| v.to_string() == *s))
                .collect();
            let empty_ok = accepted.contains("");
            values
                .iter()
                .map(|v| v.map_or(empty_ok, |v| ints.contains(&v)))
                .collect()
        }
        _ => (0..data.len())
            .map(|i| accepted.contains(&subset_string(data, i, semantics)))
            .collect(),
    }
}

/// The string a subset comparison sees for row `i`.
fn subset_string(data: &ColumnData, i: usize, semantics: Semantics) -> String {
    match data {
        ColumnData::Float(v) => {
            let x = v[i];
            if x.is_nan() {
                String::new()
            } else if x.fract() == 0.0 && x.abs() < 1e15 {
                // Python's str(104.0) is "104.0", which never equals "104" (BEHAVIOUR.md §5.6); the
                // default compares the integral value instead.
                #[allow(clippy::cast_possible_truncation)] // |x| < 1e15 and integral.
                let int = x as i64;
                match semantics {
                    Semantics::Default => int.to_string(),
                    Semantics::Reference => format!("{int}.0"),
                }
            } else {
                x.to_string()
            }
        }
        ColumnData::Int(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
        ColumnData::Bool(v) => match v[i] {
            Some(true) => "True".to_owned(),
            Some(false) => "False".to_owned(),
            None => String::new(),
        },
        ColumnData::Str(v) => v[i].clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::frame::FrameColumn;

    fn config(column_yaml: &str) -> Column {
        let text = format!("version: \"1\"\ncolumns:\n{column_yaml}");
        Config::parse(&text, "test.yaml").unwrap().columns.remove(0)
    }

    fn item(begin: i64, end: i64) -> Item {
        Item {
            id: 1,
            day_obs: 20250101,
            seq_num: 1,
            timespan: TimeRange::new(UtcNanos(begin), UtcNanos(end)).unwrap(),
        }
    }

    const SUBSET_MEAN: &str = "- name: c\n  function: mean\n  datatype: float\n  description: d\n  subset_field: salIndex\n  subset_value: [1, 2]\n  topics:\n  - name: lsst.sal.T.t\n    fields:\n    - name: a\n    - name: b\n    - name: salIndex\n";

    #[test]
    fn subset_filter_drop_missing_and_pool() {
        let column = config(SUBSET_MEAN);
        let frame = Frame::new(
            vec![10, 20, 30, 40],
            vec![
                FrameColumn::new("a", ColumnData::Float(vec![1.0, 2.0, f64::NAN, 4.0])),
                FrameColumn::new(
                    "b",
                    ColumnData::Int(vec![Some(10), Some(20), Some(30), Some(40)]),
                ),
                FrameColumn::new(
                    "salIndex",
                    ColumnData::Int(vec![Some(1), Some(3), Some(2), Some(2)]),
                ),
            ],
        )
        .unwrap();
        let p = PreparedColumn::new(&column, &frame, Semantics::Default);
        // Row 20 fails the subset, row 30 has a missing `a`.
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.value(&item(0, 100)),
            Some((1.0 + 10.0 + 4.0 + 40.0) / 4.0)
        );
        // Inclusive bounds on both ends.
        assert_eq!(p.value(&item(10, 10)), Some(5.5));
        assert_eq!(p.value(&item(40, 50)), Some(22.0));
        assert_eq!(p.value(&item(11, 39)), None);
        let unpivoted = p.unpivoted(&item(0, 100), ItemKind::Visit);
        assert_eq!(unpivoted.len(), 2);
        assert_eq!(unpivoted[1].field, "b");
        assert_eq!(unpivoted[1].value, Some(25.0));
    }

    #[test]
    fn float_subset_field_matches_integral_values_by_default_only() {
        let column = config(SUBSET_MEAN);
        let frame = Frame::new(
            vec![10],
            vec![
                FrameColumn::new("a", ColumnData::Float(vec![1.0])),
                FrameColumn::new("b", ColumnData::Float(vec![3.0])),
                FrameColumn::new("salIndex", ColumnData::Float(vec![2.0])),
            ],
        )
        .unwrap();
        let default = PreparedColumn::new(&column, &frame, Semantics::Default);
        assert_eq!(default.value(&item(0, 20)), Some(2.0));
        let reference = PreparedColumn::new(&column, &frame, Semantics::Reference);
        assert_eq!(reference.value(&item(0, 20)), None);
    }

    #[test]
    fn start_offset_widens_the_window_in_default_semantics_only() {
        let column = config(
            "- name: c\n  function: most_recent_value\n  start_offset: -1\n  datatype: float\n  description: d\n  topics:\n  - name: lsst.sal.T.t\n    fields:\n    - name: a\n",
        );
        let hour = 3_600_000_000_000;
        let frame = Frame::new(
            vec![10, 2 * hour],
            vec![FrameColumn::new("a", ColumnData::Float(vec![7.0, 8.0]))],
        )
        .unwrap();
        let it = item(hour + 10, hour + 20);
        assert_eq!(
            PreparedColumn::new(&column, &frame, Semantics::Default).value(&it),
            Some(7.0)
        );
        assert_eq!(
            PreparedColumn::new(&column, &frame, Semantics::Reference).value(&it),
            None
        );
    }

    #[test]
    fn strings_are_an_issue_not_an_error() {
        let column = config(
            "- name: c\n  function: mean\n  datatype: float\n  description: d\n  topics:\n  - name: lsst.sal.T.t\n    fields:\n    - name: s\n",
        );
        let frame = Frame::new(
            vec![1],
            vec![FrameColumn::new(
                "s",
                ColumnData::Str(vec![Some("x".into())]),
            )],
        )
        .unwrap();
        let p = PreparedColumn::new(&column, &frame, Semantics::Default);
        assert_eq!(p.value(&item(0, 2)), None);
        assert_eq!(
            p.issue(),
            Some(&DataIssue::NonNumericField { field: "s".into() })
        );
    }

    #[test]
    fn reference_drops_zero_visit_unpivoted_values() {
        let column = config(
            "- name: c\n  function: max\n  store_unpivoted: true\n  datatype: float\n  description: d\n  topics:\n  - name: lsst.sal.T.t\n    fields:\n    - name: a\n    - name: b\n",
        );
        let frame = Frame::new(
            vec![1_000],
            vec![
                FrameColumn::new("a", ColumnData::Float(vec![0.0])),
                FrameColumn::new("b", ColumnData::Bool(vec![Some(true)])),
            ],
        )
        .unwrap();
        let it = item(0, 2_000);
        let r = PreparedColumn::new(&column, &frame, Semantics::Reference);
        assert_eq!(r.unpivoted(&it, ItemKind::Visit).len(), 1);
        assert_eq!(r.unpivoted(&it, ItemKind::Exposure).len(), 2);
        let d = PreparedColumn::new(&column, &frame, Semantics::Default);
        assert_eq!(d.unpivoted(&it, ItemKind::Visit).len(), 2);
    }
}
