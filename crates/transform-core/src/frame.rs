//! The columnar result of one EFD query: sorted UTC timestamps and typed nullable columns.
//!
//! A [`Frame`] is what a source (InfluxQL, line-protocol file) returns for one topic query and what
//! evaluation reads. Timestamps are `i64` nanoseconds UTC, sorted ascending on construction (stable, so
//! rows with equal timestamps keep their order); duplicates are allowed. Missing values are `None`,
//! except in float columns, where they are NaN: InfluxDB cannot store NaN, so NaN only ever means
//! missing, and a float column stays a plain `Vec<f64>` for the kernels.

use crate::error::CoreError;

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Float field; NaN is missing.
    Float(Vec<f64>),
    /// Integer field.
    Int(Vec<Option<i64>>),
    /// Boolean field.
    Bool(Vec<Option<bool>>),
    /// String field.
    Str(Vec<Option<String>>),
}

impl ColumnData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Float(v) => v.len(),
            ColumnData::Int(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Str(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` holds a value.
    pub fn is_present(&self, i: usize) -> bool {
        match self {
            ColumnData::Float(v) => !v[i].is_nan(),
            ColumnData::Int(v) => v[i].is_some(),
            ColumnData::Bool(v) => v[i].is_some(),
            ColumnData::Str(v) => v[i].is_some(),
        }
    }

    /// Row `i` as a number (booleans as 0/1); `None` when missing or a string.
    pub fn number(&self, i: usize) -> Option<f64> {
        match self {
            ColumnData::Float(v) => Some(v[i]).filter(|x| !x.is_nan()),
            // Precision loss above 2^53 is what numpy's float64 conversion does too.
            #[allow(clippy::cast_precision_loss)]
            ColumnData::Int(v) => v[i].map(|x| x as f64),
            ColumnData::Bool(v) => v[i].map(|b| if b { 1.0 } else { 0.0 }),
            ColumnData::Str(_) => None,
        }
    }

    /// Whether the values are numbers or booleans (the types the kernels accept).
    pub fn is_numeric(&self) -> bool {
        !matches!(self, ColumnData::Str(_))
    }

    /// The InfluxDB type name of the column.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnData::Float(_) => "float",
            ColumnData::Int(_) => "integer",
            ColumnData::Bool(_) => "boolean",
            ColumnData::Str(_) => "string",
        }
    }

    fn permute(&mut self, order: &[usize]) {
        fn apply<T: Clone>(v: &mut Vec<T>, order: &[usize]) {
            *v = order.iter().map(|&i| v[i].clone()).collect();
        }
        match self {
            ColumnData::Float(v) => apply(v, order),
            ColumnData::Int(v) => apply(v, order),
            ColumnData::Bool(v) => apply(v, order),
            ColumnData::Str(v) => apply(v, order),
        }
    }
}

/// A named column of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameColumn {
    /// The field key.
    pub name: String,
    /// Its values, one per timestamp.
    pub data: ColumnData,
}

impl FrameColumn {
    /// A named column.
    pub fn new(name: impl Into<String>, data: ColumnData) -> FrameColumn {
        FrameColumn {
            name: name.into(),
            data,
        }
    }
}

/// One query result: timestamps (ns UTC, ascending) and columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    timestamps: Vec<i64>,
    columns: Vec<FrameColumn>,
}

impl Frame {
    /// Builds a frame, sorting rows by timestamp (stably) if they are not sorted yet.
    pub fn new(timestamps: Vec<i64>, columns: Vec<FrameColumn>) -> Result<Frame, CoreError> {
        for c in &columns {
            if c.data.len() != timestamps.len() {
                return Err(CoreError::FrameShape {
                    column: c.name.clone(),
                    expected: timestamps.len(),
                    found: c.data.len(),
                });
            }
        }
        let mut frame = Frame {
            timestamps,
            columns,
        };
        if !frame.timestamps.is_sorted() {
            let mut order: Vec<usize> = (0..frame.timestamps.len()).collect();
            order.sort_by_key(|&i| frame.timestamps[i]);
            frame.timestamps = order.iter().map(|&i| frame.timestamps[i]).collect();
            for c in &mut frame.columns {
                c.data.permute(&order);
            }
        }
        Ok(frame)
    }

    /// A frame with no rows and no columns (a topic without data).
    pub fn empty() -> Frame {
        Frame::default()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the frame has no rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The timestamps, ns UTC, ascending.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// The columns, in query order.
    pub fn columns(&self) -> &[FrameColumn] {
        &self.columns
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.data)
    }

    /// Takes the frame apart into its timestamps and columns.
    pub fn into_parts(self) -> (Vec<i64>, Vec<FrameColumn>) {
        (self.timestamps, self.columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_unsorted_rows_stably() {
        let frame = Frame::new(
            vec![3, 1, 2, 1],
            vec![
                FrameColumn::new("a", ColumnData::Float(vec![30.0, 10.0, 20.0, 11.0])),
                FrameColumn::new("b", ColumnData::Int(vec![Some(3), None, Some(2), Some(1)])),
            ],
        )
        .unwrap();
        assert_eq!(frame.timestamps(), &[1, 1, 2, 3]);
        assert_eq!(
            frame.column("a"),
            Some(&ColumnData::Float(vec![10.0, 11.0, 20.0, 30.0]))
        );
        assert_eq!(
            frame.column("b"),
            Some(&ColumnData::Int(vec![None, Some(1), Some(2), Some(3)]))
        );
    }

    #[test]
    fn rejects_ragged_columns() {
        let err = Frame::new(
            vec![1, 2],
            vec![FrameColumn::new("a", ColumnData::Bool(vec![Some(true)]))],
        )
        .unwrap_err();
        assert!(err.to_string().contains("`a` has 1 values for 2"), "{err}");
    }

    #[test]
    fn numbers_and_presence() {
        let c = ColumnData::Bool(vec![Some(true), None]);
        assert_eq!(c.number(0), Some(1.0));
        assert!(!c.is_present(1));
        let f = ColumnData::Float(vec![f64::NAN]);
        assert_eq!(f.number(0), None);
        assert!(!ColumnData::Str(vec![]).is_numeric());
    }
}
