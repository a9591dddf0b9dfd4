//! Packed (vector) series: rows holding `N` samples of each base field as `<base>0..<base>N-1`,
//! with `cRIO_timestamp` (unix TAI seconds) the time of the first sample.
//!
//! Default semantics unpack every base, with each row's sample spacing taken from the gap to the
//! next row (`Δ/N`; the last row reuses the previous gap, and a gap over twice the median, a hole in
//! the data, falls back to the median), times converted TAI → UTC with the leap-second table at ns
//! precision. `Semantics::Reference` reproduces the Python service (BEHAVIOUR.md §5.7): only the
//! first three bases, one spacing from the first two rows, times rounded to milliseconds.

use transform_core::time::{NANOS_PER_SECOND, round_to_millis};
use transform_core::{ColumnData, Frame, FrameColumn, Semantics, TaiNanos};

use crate::error::EfdError;
use crate::source::{EfdSource, Select, TopicQuery};

/// The field holding each row's first-sample time.
pub const CRIO_TIMESTAMP: &str = "cRIO_timestamp";

/// The fields `<base><digits>` of `keys`, sorted by their numeric suffix.
fn base_fields<'a>(base: &str, keys: impl Iterator<Item = &'a str>) -> Vec<(u64, String)> {
    let mut found: Vec<(u64, String)> = keys
        .filter_map(|k| {
            let suffix = k.strip_prefix(base)?;
            if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((suffix.parse().ok()?, k.to_owned()))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Runs a packed topic query: `SHOW FIELD KEYS`, a select of every `<base>N` and `cRIO_timestamp`,
/// then [`unpack`].
pub(crate) async fn query<S: EfdSource + ?Sized>(
    source: &S,
    query: &TopicQuery,
    semantics: Semantics,
) -> Result<Frame, EfdError> {
    let keys = source.field_keys(&query.topic).await?;
    let bases: Vec<String> = match semantics {
        Semantics::Default => query.fields.clone(),
        Semantics::Reference => query.fields.iter().take(3).cloned().collect(),
    };
    let mut found: Vec<String> = Vec::new();
    let mut n: Option<usize> = None;
    let mut usable: Vec<String> = Vec::new();
    for base in &bases {
        let fields = base_fields(base, keys.iter().map(|k| k.name.as_str()));
        if fields.is_empty() {
            if semantics == Semantics::Reference {
                // The reference's KeyError empties the whole topic.
                return Ok(Frame::empty());
            }
            tracing::warn!(
                message = "Packed base field not found in the EFD; its columns get no values.",
                event = "influx_packed_base_missing",
                topic = %query.topic,
                base = %base
            );
            continue;
        }
        let contiguous = fields.iter().enumerate().all(|(i, (s, _))| *s == i as u64);
        if !contiguous {
            return Err(EfdError::Packed {
                topic: query.topic.clone(),
                message: format!(
                    "the fields of base `{base}` are not numbered 0..N-1 without gaps"
                ),
            });
        }
        match n {
            Some(m) if m != fields.len() => {
                return Err(EfdError::Packed {
                    topic: query.topic.clone(),
                    message: format!(
                        "field lengths do not agree: `{base}` has {}, the first base has {m}",
                        fields.len()
                    ),
                });
            }
            _ => n = Some(fields.len()),
        }
        found.extend(fields.into_iter().map(|(_, f)| f));
        usable.push(base.clone());
    }
    let Some(n) = n else {
        return Ok(Frame::empty());
    };
    found.push(CRIO_TIMESTAMP.to_owned());
    let frame = source
        .select(Select {
            topic: &query.topic,
            fields: &found,
            range: query.range,
            aggregation: None,
        })
        .await?;
    unpack(&frame, &usable, n, semantics).map_err(|message| EfdError::Packed {
        topic: query.topic.clone(),
        message,
    })
}

/// Expands a frame of packed rows into one row per sample, with one float column per base.
///
/// `frame` holds `<base>0..<base>{n-1}` for every base and `cRIO_timestamp`. Rows without a
/// `cRIO_timestamp` are skipped.
pub fn unpack(
    frame: &Frame,
    bases: &[String],
    n: usize,
    semantics: Semantics,
) -> Result<Frame, String> {
    let Some(crio) = frame.column(CRIO_TIMESTAMP) else {
        return Err(format!("the rows have no `{CRIO_TIMESTAMP}`"));
    };
    // Row start times, TAI ns, for rows that have one.
    let rows: Vec<(usize, i64)> = (0..frame.len())
        .filter_map(|r| crio.number(r).map(|s| (r, seconds_to_nanos(s))))
        .collect();
    if n == 0 || rows.is_empty() {
        return Frame::new(
            Vec::new(),
            bases
                .iter()
                .map(|b| FrameColumn::new(b.clone(), ColumnData::Float(Vec::new())))
                .collect(),
        )
        .map_err(|e| e.to_string());
    }
    let spacing = row_spacings(&rows, n, semantics);
    let mut timestamps = Vec::with_capacity(rows.len() * n);
    for (&(_, start), &dt) in rows.iter().zip(&spacing) {
        for i in 0..n {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            // i < n, ns offsets.
            let offset = (dt * i as f64).round() as i64;
            let utc = TaiNanos(start + offset).to_utc().0;
            timestamps.push(match semantics {
                Semantics::Default => utc,
                Semantics::Reference => round_to_millis(utc),
            });
        }
    }
    let mut columns = Vec::with_capacity(bases.len());
    for base in bases {
        let parts: Vec<&ColumnData> = (0..n)
            .map(|i| {
                frame
                    .column(&format!("{base}{i}"))
                    .ok_or_else(|| format!("field `{base}{i}` is missing from the rows"))
            })
            .collect::<Result<_, _>>()?;
        if parts.iter().any(|p| !p.is_numeric()) {
            return Err(format!("base `{base}` holds strings"));
        }
        let mut values = Vec::with_capacity(rows.len() * n);
        for &(r, _) in &rows {
            values.extend(parts.iter().map(|p| p.number(r).unwrap_or(f64::NAN)));
        }
        columns.push(FrameColumn::new(base.clone(), ColumnData::Float(values)));
    }
    Frame::new(timestamps, columns).map_err(|e| e.to_string())
}

#[allow(clippy::cast_possible_truncation)] // EFD times are far inside i64 ns.
fn seconds_to_nanos(s: f64) -> i64 {
    (s * NANOS_PER_SECOND as f64).round() as i64
}

/// Per-row sample spacing in ns.
fn row_spacings(rows: &[(usize, i64)], n: usize, semantics: Semantics) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)] // Gaps and counts far below 2^53.
    let per_sample = |gap: i64| gap as f64 / n as f64;
    let gaps: Vec<i64> = rows.windows(2).map(|w| w[1].1 - w[0].1).collect();
    match semantics {
        Semantics::Reference => {
            let dt = gaps.first().map_or(0.0, |&g| per_sample(g));
            vec![dt; rows.len()]
        }
        Semantics::Default => {
            if gaps.is_empty() {
                // One row: no way to know the rate; all its samples get the row's time.
                return vec![0.0];
            }
            let mut sorted = gaps.clone();
            sorted.sort_unstable();
            let median = sorted[sorted.len() / 2];
            let guarded = |g: i64| if g > 0 && g <= 2 * median { g } else { median };
            (0..rows.len())
                .map(|r| per_sample(guarded(*gaps.get(r).unwrap_or(&gaps[gaps.len() - 1]))))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed_frame() -> Frame {
        // Two rows of 4 samples of `a` and `b`, cRIO one second apart (BEHAVIOUR.md §5.7's example).
        let crio = vec![1_704_067_237.0, 1_704_067_238.0];
        let mut cols = vec![FrameColumn::new(CRIO_TIMESTAMP, ColumnData::Float(crio))];
        for base in ["a", "b"] {
            for i in 0..4 {
                let v = vec![f64::from(i), f64::from(10 + i)];
                let v = if base == "b" {
                    v.iter().map(|x| -x).collect()
                } else {
                    v
                };
                cols.push(FrameColumn::new(format!("{base}{i}"), ColumnData::Float(v)));
            }
        }
        Frame::new(vec![1, 2], cols).unwrap()
    }

    #[test]
    fn unpacks_every_base_with_tai_to_utc_times() {
        let bases = vec!["a".to_owned(), "b".to_owned()];
        let f = unpack(&packed_frame(), &bases, 4, Semantics::Default).unwrap();
        let s = 1_704_067_200 * NANOS_PER_SECOND; // TAI 1704067237 is UTC 1704067200.
        let q = NANOS_PER_SECOND / 4;
        assert_eq!(
            f.timestamps(),
            &[
                s,
                s + q,
                s + 2 * q,
                s + 3 * q,
                s + 4 * q,
                s + 5 * q,
                s + 6 * q,
                s + 7 * q
            ]
        );
        assert_eq!(
            f.column("a"),
            Some(&ColumnData::Float(vec![
                0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0
            ]))
        );
        assert!(matches!(f.column("b"), Some(ColumnData::Float(v)) if v[7] == -13.0));
    }

    #[test]
    fn base_fields_sort_numerically_and_ignore_lookalikes() {
        let keys = [
            "accelX10", "accelX0", "accelXY3", "accelX1", "accelX2", "accelX",
        ];
        let f = base_fields("accelX", keys.into_iter());
        assert_eq!(
            f.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
            ["accelX0", "accelX1", "accelX2", "accelX10"]
        );
    }

    #[test]
    fn gaps_do_not_stretch_samples() {
        let rows = [(0, 0), (1, 1_000), (2, 2_000), (3, 60_000), (4, 61_000)];
        let s = row_spacings(&rows, 10, Semantics::Default);
        assert_eq!(s, vec![100.0, 100.0, 100.0, 100.0, 100.0]);
        let r = row_spacings(&rows, 10, Semantics::Reference);
        assert_eq!(r, vec![100.0; 5]);
    }
}
