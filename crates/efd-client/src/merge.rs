//! Outer join of the frames of one chunked select, on timestamp, losing no row.
//!
//! InfluxDB omits a row from a chunk when all of that chunk's fields are missing, so chunks can have
//! different rows. Rows are matched by timestamp; among rows sharing a timestamp (several series, or
//! several sensors writing at the same instant) by the value of a key field present in every chunk
//! (`salIndex` when the group has it), then by order of appearance. Each distinct (timestamp, key,
//! occurrence) gives one output row, in timestamp order, so nothing is dropped or duplicated.

use std::collections::{BTreeMap, BTreeSet};

use transform_core::{ColumnData, Frame, FrameColumn};

/// Joins `frames`; `key` names a field that, when every frame has it, disambiguates equal
/// timestamps. Columns keep their first occurrence across frames.
pub(crate) fn outer_join(frames: Vec<Frame>, key: Option<&str>) -> Frame {
    if frames.len() == 1 {
        return frames.into_iter().next().unwrap_or_default();
    }
    let key = key.filter(|k| frames.iter().all(|f| f.column(k).is_some()));
    // Row identity per frame, and the union of identities in output order.
    type RowId = (i64, String, usize);
    let ids: Vec<Vec<RowId>> = frames.iter().map(|f| row_ids(f, key)).collect();
    let mut order: BTreeMap<(i64, usize, usize), RowId> = BTreeMap::new();
    let mut seen: BTreeSet<&RowId> = BTreeSet::new();
    for (fi, frame_ids) in ids.iter().enumerate() {
        for (ri, id) in frame_ids.iter().enumerate() {
            if seen.insert(id) {
                order.insert((id.0, fi, ri), id.clone());
            }
        }
    }
    let index: BTreeMap<&RowId, usize> =
        order.values().enumerate().map(|(i, id)| (id, i)).collect();
    let n = index.len();
    let timestamps: Vec<i64> = order.values().map(|id| id.0).collect();
    let mut columns: Vec<FrameColumn> = Vec::new();
    for (frame, frame_ids) in frames.iter().zip(&ids) {
        let target: Vec<usize> = frame_ids.iter().map(|id| index[id]).collect();
        for c in frame.columns() {
            if columns.iter().any(|existing| existing.name == c.name) {
                continue;
            }
            columns.push(FrameColumn::new(
                c.name.clone(),
                scatter(&c.data, &target, n),
            ));
        }
    }
    // Fill the key column from every frame (a row present only in a later chunk has its key there).
    if let Some(k) = key
        && let Some(pos) = columns.iter().position(|c| c.name == k)
    {
        for (frame, frame_ids) in frames.iter().zip(&ids).skip(1) {
            if let Some(data) = frame.column(k) {
                for (ri, id) in frame_ids.iter().enumerate() {
                    fill(&mut columns[pos].data, index[id], data, ri);
                }
            }
        }
    }
    Frame::new(timestamps, columns).unwrap_or_default()
}

fn row_ids(frame: &Frame, key: Option<&str>) -> Vec<(i64, String, usize)> {
    let key_data = key.and_then(|k| frame.column(k));
    let mut counts: BTreeMap<(i64, String), usize> = BTreeMap::new();
    frame
        .timestamps()
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let k = key_data.map(|d| key_string(d, i)).unwrap_or_default();
            let c = counts.entry((t, k.clone())).or_insert(0);
            let id = (t, k, *c);
            *c += 1;
            id
        })
        .collect()
}

fn key_string(data: &ColumnData, i: usize) -> String {
    match data {
        ColumnData::Float(v) if v[i].is_nan() => String::new(),
        ColumnData::Float(v) => v[i].to_string(),
        ColumnData::Int(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
        ColumnData::Bool(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
        ColumnData::Str(v) => v[i].clone().unwrap_or_default(),
    }
}

/// A column of `n` missing values with `data[i]` placed at `target[i]`.
fn scatter(data: &ColumnData, target: &[usize], n: usize) -> ColumnData {
    fn place<T: Clone>(src: &[T], target: &[usize], empty: T, n: usize) -> Vec<T> {
        let mut out = vec![empty; n];
        for (v, &t) in src.iter().zip(target) {
            out[t] = v.clone();
        }
        out
    }
    match data {
        ColumnData::Float(v) => ColumnData::Float(place(v, target, f64::NAN, n)),
        ColumnData::Int(v) => ColumnData::Int(place(v, target, None, n)),
        ColumnData::Bool(v) => ColumnData::Bool(place(v, target, None, n)),
        ColumnData::Str(v) => ColumnData::Str(place(v, target, None, n)),
    }
}

/// Copies `src[i]` into `dst[at]` when `dst[at]` is missing and the types agree.
fn fill(dst: &mut ColumnData, at: usize, src: &ColumnData, i: usize) {
    match (dst, src) {
        (ColumnData::Float(d), ColumnData::Float(s)) if d[at].is_nan() => d[at] = s[i],
        (ColumnData::Int(d), ColumnData::Int(s)) if d[at].is_none() => d[at] = s[i],
        (ColumnData::Bool(d), ColumnData::Bool(s)) if d[at].is_none() => d[at] = s[i],
        (ColumnData::Str(d), ColumnData::Str(s)) if d[at].is_none() => d[at].clone_from(&s[i]),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: &[i64], cols: Vec<FrameColumn>) -> Frame {
        Frame::new(ts.to_vec(), cols).unwrap()
    }

    #[test]
    fn rows_missing_from_one_chunk_are_kept() {
        let a = frame(
            &[1, 2, 3],
            vec![FrameColumn::new(
                "a",
                ColumnData::Float(vec![1.0, 2.0, 3.0]),
            )],
        );
        let b = frame(
            &[2, 4],
            vec![FrameColumn::new(
                "b",
                ColumnData::Int(vec![Some(20), Some(40)]),
            )],
        );
        let j = outer_join(vec![a, b], None);
        assert_eq!(j.timestamps(), &[1, 2, 3, 4]);
        assert_eq!(
            j.column("b"),
            Some(&ColumnData::Int(vec![None, Some(20), None, Some(40)]))
        );
        assert!(
            matches!(j.column("a"), Some(ColumnData::Float(v)) if v[3].is_nan() && v[1] == 2.0)
        );
    }

    #[test]
    fn equal_timestamps_pair_by_key_then_order() {
        let key = |v: Vec<i64>| {
            FrameColumn::new(
                "salIndex",
                ColumnData::Int(v.into_iter().map(Some).collect()),
            )
        };
        // Sensor 302 has no value in chunk b at t=5, so b has only sensor 301's row there.
        let a = frame(
            &[5, 5],
            vec![
                FrameColumn::new("a", ColumnData::Float(vec![1.0, 2.0])),
                key(vec![302, 301]),
            ],
        );
        let b = frame(
            &[5],
            vec![
                FrameColumn::new("b", ColumnData::Float(vec![10.0])),
                key(vec![301]),
            ],
        );
        let j = outer_join(vec![a, b], Some("salIndex"));
        assert_eq!(j.len(), 2);
        assert_eq!(
            j.column("salIndex"),
            Some(&ColumnData::Int(vec![Some(302), Some(301)]))
        );
        assert!(
            matches!(j.column("b"), Some(ColumnData::Float(v)) if v[0].is_nan() && v[1] == 10.0)
        );
    }

    #[test]
    fn duplicate_timestamps_without_key_pair_by_occurrence() {
        let a = frame(
            &[7, 7],
            vec![FrameColumn::new("a", ColumnData::Float(vec![1.0, 2.0]))],
        );
        let b = frame(
            &[7, 7],
            vec![FrameColumn::new("b", ColumnData::Float(vec![3.0, 4.0]))],
        );
        let j = outer_join(vec![a, b], None);
        assert_eq!(j.len(), 2);
        assert_eq!(j.column("b"), Some(&ColumnData::Float(vec![3.0, 4.0])));
    }
}
