//! The line-protocol file source: an export loaded into memory, answering selects as InfluxDB 1.x's
//! `/query` (with `epoch=ns`) would for the same data.
//!
//! **Loading.** The file (gzip-compressed when it ends in `.gz` or starts with the gzip magic) is read
//! in chunks and parsed by [`crate::lineproto`]; a bad line stops loading with
//! [`EfdError::File`] naming the file and line. Points are indexed per measurement: a point's identity
//! is (measurement, tag set, time), and writing an identity twice merges its fields, the later value
//! of a field winning. A field's type is fixed by its first write; a later conflicting write is an
//! error, as InfluxDB rejects it within a shard.
//!
//! **Storage.** Per measurement, rows (one per identity) are sorted by time and then by series key
//! (the measurement and its tags sorted by key, escaped, as InfluxDB orders series); each field is a
//! typed column over those rows (dense, or for a field present in few rows just those rows, so memory
//! stays proportional to the values in the file), and a select binary-searches its time range and
//! reads only the columns it needs.
//!
//! **Selects.** A raw select returns the rows in range where at least one requested field has a
//! value; tag keys can be selected like fields and come back as strings. Rows of several series with
//! one timestamp come out in the order InfluxDB's heap-based merge of the series gives them (which
//! compares string fields and tags in name order, and otherwise leaves ties as Go's heap does), so
//! row order matches the server's, not just the timestamps. An aggregated select emulates
//! `SELECT MEAN("f") AS "f", ... GROUP BY time(<interval>)`: epoch-aligned buckets over all series,
//! each output row stamped with its bucket start; buckets where every field is missing are dropped.
//! `MEAN` is computed as InfluxDB's iterators compute it (per series, then merged per shard, then
//! across shards), so it agrees with the server to the last bit; see `Rows::means` for the one
//! assumption this makes about the server. `MAX` and `MIN` keep the field's type, booleans included.
//!
//! Column types follow the HTTP source: float fields and `MEAN`s are `Float` (NaN missing), integers
//! and unsigned integers `Int`, booleans `Bool`, strings and tags `Str`; a name that is neither a field
//! nor a tag, a tag with no value in any returned row, and every column of an empty result are
//! all-missing `Float` columns.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::Path;

use flate2::read::MultiGzDecoder;
use transform_core::{AggregateFn, ColumnData, Frame, FrameColumn, PreAggregation};

use crate::error::EfdError;
use crate::lineproto::{Field, MIN_TIME, Parser, Point, Value, tag_pairs};
use crate::source::{EfdSource, FieldKey, FieldType, Select};

/// Bytes read from the file per parsing round (more when one point is longer).
const READ_CHUNK: usize = 4 << 20;
/// The first bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Answers selects from a line-protocol file loaded into memory.
pub struct FileSource {
    path: String,
    measurements: HashMap<String, Measurement>,
    stats: crate::stats::StatsCounters,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("measurements", &self.measurements.len())
            .field(
                "rows",
                &self
                    .measurements
                    .values()
                    .map(|m| m.times.len())
                    .sum::<usize>(),
            )
            .finish()
    }
}

impl FileSource {
    /// Statements answered so far (the other counters stay 0: nothing goes over a network).
    pub fn stats(&self) -> crate::stats::EfdStats {
        self.stats.snapshot()
    }

    /// Loads and indexes a line-protocol file (`.gz` is decompressed).
    ///
    /// Fails with [`EfdError::File`] when the file cannot be read, a line is not valid line protocol
    /// (NaN and infinite floats and points without a timestamp included), or a field is written with
    /// two types.
    pub fn open(path: &Path) -> Result<FileSource, EfdError> {
        let shown = path.display().to_string();
        let error = |line: usize, message: String| EfdError::File {
            path: shown.clone(),
            line,
            message,
        };
        let file = File::open(path).map_err(|e| error(0, format!("cannot open: {e}")))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let magic = reader
            .fill_buf()
            .map_err(|e| error(0, format!("cannot read: {e}")))?
            .starts_with(&GZIP_MAGIC);
        let gzip = magic || path.extension().is_some_and(|e| e == "gz");
        let mut reader: Box<dyn Read> = if gzip {
            Box::new(MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let builders = load(&mut reader).map_err(|(line, message)| error(line, message))?;
        let measurements: HashMap<String, Measurement> = builders
            .into_iter()
            .map(|(name, b)| (name, b.finish()))
            .collect();
        tracing::info!(
            message = "Loaded the line-protocol file.",
            event = "efd_file_loaded",
            path = %shown,
            gzip,
            measurements = measurements.len(),
            rows = measurements.values().map(|m| m.times.len()).sum::<usize>()
        );
        Ok(FileSource {
            path: shown,
            measurements,
            stats: crate::stats::StatsCounters::default(),
        })
    }

    /// Runs a select synchronously.
    fn run(&self, select: &Select<'_>) -> Result<Frame, EfdError> {
        let Some(m) = self.measurements.get(select.topic) else {
            return Ok(empty_frame(select.fields));
        };
        let start = select.range.start().0;
        let end = select.range.end().0;
        let lo = m.times.partition_point(|&t| t < start);
        let hi = m.times.partition_point(|&t| t <= end).max(lo);
        let rows = Rows {
            m,
            range: lo..hi,
            times: &m.times[lo..hi],
            series: &m.row_series[lo..hi],
        };
        match select.aggregation {
            None => rows.raw(select.topic, select.fields),
            Some(aggregation) => rows.aggregated(select.topic, select.fields, aggregation),
        }
    }

    /// Every measurement of the file.
    pub fn measurements(&self) -> BTreeSet<String> {
        self.measurements.keys().cloned().collect()
    }

    /// The tag keys of `topic` (none when the file lacks it).
    pub fn tag_keys(&self, topic: &str) -> Vec<String> {
        self.measurements
            .get(topic)
            .map(|m| m.tag_keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn keys(&self, topic: &str) -> Vec<FieldKey> {
        self.measurements
            .get(topic)
            .map(|m| {
                m.fields
                    .iter()
                    .map(|(name, column)| FieldKey {
                        name: name.clone(),
                        field_type: column.field_type(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl EfdSource for FileSource {
    async fn select(&self, select: Select<'_>) -> Result<Frame, EfdError> {
        self.stats.statement();
        self.run(&select)
    }

    async fn field_keys(&self, topic: &str) -> Result<Vec<FieldKey>, EfdError> {
        Ok(self.keys(topic))
    }

    fn describe(&self) -> String {
        format!("file://{}", self.path)
    }
}

/// Reads and indexes the whole input; errors carry their 1-based line (0 for read errors before the
/// first line).
fn load(reader: &mut dyn Read) -> Result<HashMap<String, MeasurementBuilder>, (usize, String)> {
    let mut builders: HashMap<String, MeasurementBuilder> = HashMap::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut line = 1;
    loop {
        // Read at least as much again as is pending, so a long point costs linear time overall.
        let want = READ_CHUNK.max(buf.len());
        let read = Read::take(&mut *reader, want as u64)
            .read_to_end(&mut buf)
            .map_err(|e| (line, format!("cannot read: {e}")))?;
        let eof = read < want;
        let mut parser = Parser::new(&buf, line, eof);
        let mut fields: Vec<Field<'_>> = Vec::new();
        while let Some(point) = parser
            .next_point(&mut fields)
            .map_err(|e| (e.line, e.message))?
        {
            let builder = match builders.get_mut(&*point.measurement) {
                Some(b) => b,
                None => builders.entry(point.measurement.to_string()).or_default(),
            };
            builder
                .add(&point, &fields)
                .map_err(|message| (point.line, message))?;
        }
        let consumed = parser.consumed();
        line = parser.line();
        buf.drain(..consumed);
        if eof {
            return Ok(builders);
        }
    }
}

/// Typed values, one slot per row (missing: NaN for floats, `false` presence or `None` otherwise).
#[derive(Debug)]
enum Values {
    /// NaN is missing (InfluxDB cannot store NaN).
    Float(Vec<f64>),
    /// Values, and whether each is present.
    Integer(Vec<i64>, Vec<bool>),
    /// Values, and whether each is present.
    Unsigned(Vec<u64>, Vec<bool>),
    Boolean(Vec<Option<bool>>),
    String(Vec<Option<Box<str>>>),
}

impl Values {
    fn new(field_type: FieldType) -> Values {
        match field_type {
            FieldType::Float => Values::Float(Vec::new()),
            FieldType::Integer => Values::Integer(Vec::new(), Vec::new()),
            FieldType::Unsigned => Values::Unsigned(Vec::new(), Vec::new()),
            FieldType::Boolean => Values::Boolean(Vec::new()),
            FieldType::String => Values::String(Vec::new()),
        }
    }

    fn field_type(&self) -> FieldType {
        match self {
            Values::Float(_) => FieldType::Float,
            Values::Integer(..) => FieldType::Integer,
            Values::Unsigned(..) => FieldType::Unsigned,
            Values::Boolean(_) => FieldType::Boolean,
            Values::String(_) => FieldType::String,
        }
    }

    fn present(&self, row: usize) -> bool {
        match self {
            Values::Float(v) => v.get(row).is_some_and(|x| !x.is_nan()),
            Values::Integer(_, p) | Values::Unsigned(_, p) => p.get(row).copied().unwrap_or(false),
            Values::Boolean(v) => v.get(row).is_some_and(Option::is_some),
            Values::String(v) => v.get(row).is_some_and(Option::is_some),
        }
    }

    /// Appends a value; the type was checked by the caller.
    fn push(&mut self, value: &Value<'_>) {
        match (self, value) {
            (Values::Float(v), Value::Float(x)) => v.push(*x),
            (Values::Integer(v, p), Value::Integer(x)) => {
                v.push(*x);
                p.push(true);
            }
            (Values::Unsigned(v, p), Value::Unsigned(x)) => {
                v.push(*x);
                p.push(true);
            }
            (Values::Boolean(v), Value::Boolean(x)) => v.push(Some(*x)),
            (Values::String(v), Value::String(x)) => v.push(Some(Box::from(&**x))),
            (values, _) => values.push_missing(),
        }
    }

    fn push_missing(&mut self) {
        match self {
            Values::Float(v) => v.push(f64::NAN),
            Values::Integer(v, p) => {
                v.push(0);
                p.push(false);
            }
            Values::Unsigned(v, p) => {
                v.push(0);
                p.push(false);
            }
            Values::Boolean(v) => v.push(None),
            Values::String(v) => v.push(None),
        }
    }

    fn pop(&mut self) {
        match self {
            Values::Float(v) => {
                v.pop();
            }
            Values::Integer(v, p) => {
                v.pop();
                p.pop();
            }
            Values::Unsigned(v, p) => {
                v.pop();
                p.pop();
            }
            Values::Boolean(v) => {
                v.pop();
            }
            Values::String(v) => {
                v.pop();
            }
        }
    }

    /// The values at `picks` (each source slot at most once; `None` is missing), moving strings
    /// out.
    fn take(&mut self, picks: &[Option<usize>]) -> Values {
        fn gather<T: Copy>(v: &[T], picks: &[Option<usize>], missing: T) -> Vec<T> {
            picks
                .iter()
                .map(|p| p.and_then(|r| v.get(r).copied()).unwrap_or(missing))
                .collect()
        }
        match self {
            Values::Float(v) => Values::Float(gather(v, picks, f64::NAN)),
            Values::Integer(v, p) => Values::Integer(gather(v, picks, 0), gather(p, picks, false)),
            Values::Unsigned(v, p) => {
                Values::Unsigned(gather(v, picks, 0), gather(p, picks, false))
            }
            Values::Boolean(v) => Values::Boolean(gather(v, picks, None)),
            Values::String(v) => Values::String(
                picks
                    .iter()
                    .map(|p| p.and_then(|r| v.get_mut(r).and_then(Option::take)))
                    .collect(),
            ),
        }
    }

    /// A copy of slots `range`.
    fn slice(&self, range: Range<usize>) -> Values {
        fn copy<T: Clone>(v: &[T], range: &Range<usize>) -> Vec<T> {
            v.get(range.clone()).unwrap_or_default().to_vec()
        }
        match self {
            Values::Float(v) => Values::Float(copy(v, &range)),
            Values::Integer(v, p) => Values::Integer(copy(v, &range), copy(p, &range)),
            Values::Unsigned(v, p) => Values::Unsigned(copy(v, &range), copy(p, &range)),
            Values::Boolean(v) => Values::Boolean(copy(v, &range)),
            Values::String(v) => Values::String(copy(v, &range)),
        }
    }

    /// `n` slots holding `values[k]` at `rows[k] - offset` (rows ascending, within the window).
    fn scatter(&self, rows: &[u32], offset: usize, n: usize) -> Values {
        let mut picks: Vec<Option<usize>> = vec![None; n];
        for (k, &row) in rows.iter().enumerate() {
            if let Some(slot) = (row as usize)
                .checked_sub(offset)
                .and_then(|i| picks.get_mut(i))
            {
                *slot = Some(k);
            }
        }
        fn gather<T: Clone>(v: &[T], picks: &[Option<usize>], missing: T) -> Vec<T> {
            picks
                .iter()
                .map(|p| {
                    p.and_then(|k| v.get(k).cloned())
                        .unwrap_or_else(|| missing.clone())
                })
                .collect()
        }
        match self {
            Values::Float(v) => Values::Float(gather(v, &picks, f64::NAN)),
            Values::Integer(v, p) => {
                Values::Integer(gather(v, &picks, 0), gather(p, &picks, false))
            }
            Values::Unsigned(v, p) => {
                Values::Unsigned(gather(v, &picks, 0), gather(p, &picks, false))
            }
            Values::Boolean(v) => Values::Boolean(gather(v, &picks, None)),
            Values::String(v) => Values::String(gather(v, &picks, None)),
        }
    }

    /// The column of a raw select over `rows`; unsigned values above `i64::MAX` are an error.
    fn column(&self, rows: &[usize], topic: &str, name: &str) -> Result<ColumnData, EfdError> {
        Ok(match self {
            Values::Float(v) => ColumnData::Float(rows.iter().map(|&r| v[r]).collect()),
            Values::Integer(v, p) => {
                ColumnData::Int(rows.iter().map(|&r| p[r].then_some(v[r])).collect())
            }
            Values::Unsigned(v, p) => ColumnData::Int(
                rows.iter()
                    .map(|&r| match p[r] {
                        true => unsigned_to_int(v[r], topic, name).map(Some),
                        false => Ok(None),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Values::Boolean(v) => ColumnData::Bool(rows.iter().map(|&r| v[r]).collect()),
            Values::String(v) => ColumnData::Str(
                rows.iter()
                    .map(|&r| v[r].as_deref().map(str::to_owned))
                    .collect(),
            ),
        })
    }
}

fn unsigned_to_int(value: u64, topic: &str, name: &str) -> Result<i64, EfdError> {
    i64::try_from(value).map_err(|_| {
        EfdError::response(
            topic,
            format!("unsigned value {value} of field \"{name}\" exceeds the integer range"),
        )
    })
}

/// A field's values over the rows of a measurement.
#[derive(Debug)]
enum Column {
    /// One slot per row.
    Dense(Values),
    /// A field present in few rows: those rows (ascending) and their values, one slot each.
    Sparse(Vec<u32>, Values),
}

impl Column {
    fn field_type(&self) -> FieldType {
        match self {
            Column::Dense(v) | Column::Sparse(_, v) => v.field_type(),
        }
    }

    /// The values of rows `range`, one slot per row.
    fn window(&self, range: Range<usize>) -> Values {
        match self {
            Column::Dense(values) => values.slice(range),
            Column::Sparse(rows, values) => {
                let from = rows.partition_point(|&r| (r as usize) < range.start);
                let to = rows.partition_point(|&r| (r as usize) < range.end);
                values
                    .slice(from..to)
                    .scatter(&rows[from..to], range.start, range.len())
            }
        }
    }
}

/// A field being loaded: the rows that have it (ascending, in file order) and their values.
#[derive(Debug)]
struct ColumnBuilder {
    rows: Vec<u32>,
    values: Values,
}

/// A measurement being loaded: rows in file order.
#[derive(Debug, Default)]
struct MeasurementBuilder {
    series_index: HashMap<Box<[u8]>, u32>,
    series_keys: Vec<Box<[u8]>>,
    times: Vec<i64>,
    row_series: Vec<u32>,
    fields: Vec<(String, ColumnBuilder)>,
    field_index: HashMap<String, usize>,
}

impl MeasurementBuilder {
    fn add(&mut self, point: &Point<'_>, fields: &[Field<'_>]) -> Result<(), String> {
        let series = match self.series_index.get(&*point.tags) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.series_keys.len())
                    .map_err(|_| "more than 2^32 series in one measurement".to_owned())?;
                let key: Box<[u8]> = Box::from(&*point.tags);
                self.series_index.insert(key.clone(), id);
                self.series_keys.push(key);
                id
            }
        };
        let row = u32::try_from(self.times.len())
            .map_err(|_| "more than 2^32 points in one measurement".to_owned())?;
        self.times.push(point.time);
        self.row_series.push(series);
        for field in fields {
            let value_type = field.value.field_type();
            let index = match self.field_index.get(&*field.key) {
                Some(&i) => {
                    let existing = self.fields[i].1.values.field_type();
                    if existing != value_type {
                        return Err(format!(
                            "field type conflict: input field \"{}\" on measurement \"{}\" is \
                             type {}, already exists as type {}",
                            field.key,
                            point.measurement,
                            value_type.as_str(),
                            existing.as_str()
                        ));
                    }
                    i
                }
                None => {
                    let column = ColumnBuilder {
                        rows: Vec::new(),
                        values: Values::new(value_type),
                    };
                    self.fields.push((field.key.to_string(), column));
                    self.field_index
                        .insert(field.key.to_string(), self.fields.len() - 1);
                    self.fields.len() - 1
                }
            };
            let column = &mut self.fields[index].1;
            if column.rows.last() == Some(&row) {
                // The same field twice in one point: the later value wins.
                column.values.pop();
            } else {
                column.rows.push(row);
            }
            column.values.push(&field.value);
        }
        Ok(())
    }

    /// Sorts the rows by (time, series key), merges rows with the same identity (for each field
    /// the value written last wins) and freezes the measurement.
    fn finish(self) -> Measurement {
        let MeasurementBuilder {
            series_keys,
            times,
            row_series,
            fields,
            ..
        } = self;
        let n = times.len();
        let mut by_key: Vec<usize> = (0..series_keys.len()).collect();
        by_key.sort_unstable_by(|&a, &b| series_keys[a].cmp(&series_keys[b]));
        let mut series_rank = vec![0u32; series_keys.len()];
        for (rank, &id) in by_key.iter().enumerate() {
            // Fewer than 2^32 series (checked while loading).
            series_rank[id] = u32::try_from(rank).unwrap_or(u32::MAX);
        }
        let key = |r: usize| (times[r], series_rank[row_series[r] as usize]);
        let mut order: Vec<usize> = (0..n).collect();
        if !(1..n).all(|r| key(r - 1) <= key(r)) {
            order.sort_unstable_by_key(|&r| (key(r), r));
        }
        // Runs of rows with one identity, in file order within each run; each run is one row.
        let mut runs: Vec<Range<usize>> = Vec::new();
        let mut start = 0;
        for k in 1..=n {
            if k == n || key(order[k]) != key(order[start]) {
                runs.push(start..k);
                start = k;
            }
        }
        let mut row_of = vec![0u32; n];
        for (i, run) in runs.iter().enumerate() {
            for &old in &order[run.clone()] {
                // Fewer than 2^32 rows (checked while loading).
                row_of[old] = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        let rows = runs.len();
        let mut columns: Vec<(String, Column)> = fields
            .into_iter()
            .map(|(name, builder)| (name, freeze(builder, &row_of, rows)))
            .collect();
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        let series_tags: Vec<Vec<(String, String)>> =
            series_keys.iter().map(|k| tag_pairs(k)).collect();
        let tag_keys: BTreeSet<String> = series_tags
            .iter()
            .flat_map(|tags| tags.iter().map(|(k, _)| k.clone()))
            .collect();
        Measurement {
            times: runs.iter().map(|run| times[order[run.start]]).collect(),
            row_series: runs
                .iter()
                .map(|run| row_series[order[run.start]])
                .collect(),
            series_tags,
            series_rank,
            tag_keys,
            fields: columns,
        }
    }
}

/// A loaded field over the final rows (`row_of` maps a loaded row to its final row): the value
/// written last wins per final row; dense when at least a quarter of the rows have a value.
fn freeze(builder: ColumnBuilder, row_of: &[u32], rows: usize) -> Column {
    let ColumnBuilder {
        rows: loaded,
        mut values,
    } = builder;
    // (final row, slot), in file order within a final row.
    let mut entries: Vec<(u32, usize)> = loaded
        .iter()
        .enumerate()
        .map(|(k, &r)| (row_of.get(r as usize).copied().unwrap_or(0), k))
        .collect();
    if !entries.is_sorted() {
        entries.sort_unstable();
    }
    let mut kept: Vec<(u32, usize)> = Vec::with_capacity(entries.len());
    for entry in entries {
        match kept.last_mut() {
            Some(last) if last.0 == entry.0 => *last = entry,
            _ => kept.push(entry),
        }
    }
    if kept.len().saturating_mul(4) >= rows {
        let mut picks: Vec<Option<usize>> = vec![None; rows];
        for &(row, k) in &kept {
            if let Some(slot) = picks.get_mut(row as usize) {
                *slot = Some(k);
            }
        }
        Column::Dense(values.take(&picks))
    } else {
        let picks: Vec<Option<usize>> = kept.iter().map(|&(_, k)| Some(k)).collect();
        let rows = kept.iter().map(|&(row, _)| row).collect();
        Column::Sparse(rows, values.take(&picks))
    }
}

/// A loaded measurement: rows sorted by (time, series key), one per identity.
#[derive(Debug)]
struct Measurement {
    times: Vec<i64>,
    row_series: Vec<u32>,
    /// Unescaped tags of each series.
    series_tags: Vec<Vec<(String, String)>>,
    /// Each series' position in series-key order.
    series_rank: Vec<u32>,
    tag_keys: BTreeSet<String>,
    /// Field columns, sorted by name.
    fields: Vec<(String, Column)>,
}

/// The rows of a measurement in one select's time range; row indices below are relative to it.
struct Rows<'m> {
    m: &'m Measurement,
    range: Range<usize>,
    times: &'m [i64],
    series: &'m [u32],
}

/// Where a requested column comes from.
enum Source {
    /// A field, its values over the selected rows.
    Field(Values),
    Tag,
    Missing,
}

/// A requested name whose values InfluxDB's merge compares: a string field or a tag.
enum AuxKey<'a> {
    Field(&'a [Option<Box<str>>]),
    Tag(&'a str),
}

impl Rows<'_> {
    fn len(&self) -> usize {
        self.times.len()
    }

    fn source(&self, name: &str) -> Source {
        let m = self.m;
        // A field shadows a tag of the same name, as in InfluxQL.
        if let Ok(i) = m.fields.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            return Source::Field(m.fields[i].1.window(self.range.clone()));
        }
        if m.tag_keys.contains(name) {
            Source::Tag
        } else {
            Source::Missing
        }
    }

    fn rank(&self, row: usize) -> usize {
        self.m.series_rank[self.series[row] as usize] as usize
    }

    /// The series (by rank, ascending) having rows among `rows`: per-series buffers are indexed by
    /// position in this list, so their number follows the selection, not the measurement.
    fn ranks(&self, rows: impl Iterator<Item = usize>) -> Vec<usize> {
        let mut ranks: Vec<usize> = rows.map(|r| self.rank(r)).collect();
        ranks.sort_unstable();
        ranks.dedup();
        ranks
    }

    fn tag_value(&self, row: usize, key: &str) -> Option<&str> {
        self.m
            .series_tags
            .get(*self.series.get(row)? as usize)?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `SELECT <names> ... WHERE time in range`: rows where some requested field has a value.
    fn raw(&self, topic: &str, names: &[String]) -> Result<Frame, EfdError> {
        let sources: Vec<Source> = names.iter().map(|n| self.source(n)).collect();
        let fields: Vec<&Values> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Field(v) => Some(v),
                _ => None,
            })
            .collect();
        let rows: Vec<usize> = (0..self.len())
            .filter(|&r| fields.iter().any(|v| v.present(r)))
            .collect();
        if rows.is_empty() {
            return Ok(empty_frame(names));
        }
        let rows = self.merge_order(rows, names, &sources);
        let mut columns = Vec::with_capacity(names.len());
        for (name, source) in names.iter().zip(&sources) {
            let data = match source {
                Source::Field(values) => values.column(&rows, topic, name)?,
                Source::Tag => {
                    let values: Vec<Option<String>> = rows
                        .iter()
                        .map(|&r| self.tag_value(r, name).map(str::to_owned))
                        .collect();
                    if values.iter().any(Option::is_some) {
                        ColumnData::Str(values)
                    } else {
                        ColumnData::Float(vec![f64::NAN; rows.len()])
                    }
                }
                Source::Missing => ColumnData::Float(vec![f64::NAN; rows.len()]),
            };
            columns.push(FrameColumn::new(name.clone(), data));
        }
        let timestamps = rows.iter().map(|&r| self.times[r]).collect();
        Frame::new(timestamps, columns).map_err(|e| EfdError::response(topic, e.to_string()))
    }

    /// The order InfluxDB's sorted merge of per-series iterators gives `rows` (sorted by time, then
    /// series key). Rows with distinct times keep their order. Among rows with one time, the merge
    /// heap compares the requested names' values in name order while both are strings (string fields
    /// and tags) and stops, calling them equal, at the first that is not; equal rows come out in the
    /// order Go's heap leaves them. Each shard has its own heap.
    fn merge_order(&self, rows: Vec<usize>, names: &[String], sources: &[Source]) -> Vec<usize> {
        let ties = rows
            .windows(2)
            .any(|w| self.times[w[0]] == self.times[w[1]]);
        if !ties {
            return rows;
        }
        // The comparable prefix of the auxiliary fields, sorted by name as InfluxQL sorts them.
        let mut sorted: Vec<(&String, &Source)> = names.iter().zip(sources).collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut keys: Vec<AuxKey<'_>> = Vec::new();
        for (name, source) in sorted {
            match source {
                Source::Field(Values::String(v)) => keys.push(AuxKey::Field(v)),
                Source::Tag => keys.push(AuxKey::Tag(name)),
                Source::Field(_) | Source::Missing => break,
            }
        }
        let aux_less = |a: usize, b: usize| -> bool {
            for key in &keys {
                let (x, y) = match key {
                    AuxKey::Field(v) => (v[a].as_deref(), v[b].as_deref()),
                    AuxKey::Tag(name) => (self.tag_value(a, name), self.tag_value(b, name)),
                };
                match (x, y) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => return x < y,
                    _ => return false,
                }
            }
            false
        };
        let mut out = Vec::with_capacity(rows.len());
        let ranks = self.ranks(rows.iter().copied());
        let slot = |r: usize| ranks.binary_search(&self.rank(r)).unwrap_or(0);
        let mut streams: Vec<Vec<usize>> = vec![Vec::new(); ranks.len()];
        let same_shard =
            |a: &usize, b: &usize| shard_group(self.times[*a]) == shard_group(self.times[*b]);
        for segment in rows.chunk_by(same_shard) {
            for &r in segment {
                streams[slot(r)].push(r);
            }
            heap_merge(
                &streams,
                |a, b| {
                    let (ta, tb) = (self.times[a], self.times[b]);
                    ta < tb || (ta == tb && aux_less(a, b))
                },
                |_, r| out.push(r),
            );
            streams.iter_mut().for_each(Vec::clear);
        }
        out
    }

    /// `SELECT F("n") AS "n", ... GROUP BY time(interval)` over the rows.
    fn aggregated(
        &self,
        topic: &str,
        names: &[String],
        aggregation: &PreAggregation,
    ) -> Result<Frame, EfdError> {
        let function = aggregation.function;
        let sources: Vec<Source> = names.iter().map(|n| self.source(n)).collect();
        for source in &sources {
            if let Source::Field(values) = source {
                let field_type = values.field_type();
                let supported = match function {
                    AggregateFn::Mean => matches!(
                        field_type,
                        FieldType::Float | FieldType::Integer | FieldType::Unsigned
                    ),
                    AggregateFn::Max | AggregateFn::Min => field_type != FieldType::String,
                };
                if !supported {
                    return Err(EfdError::InfluxQl {
                        topic: topic.to_owned(),
                        message: format!(
                            "unsupported {} iterator type: {}",
                            function.influxql().to_ascii_lowercase(),
                            field_type.as_str()
                        ),
                    });
                }
            }
        }
        let interval = aggregation.interval.nanos();
        if interval <= 0 {
            return Err(EfdError::InfluxQl {
                topic: topic.to_owned(),
                message: format!("invalid GROUP BY interval {}", aggregation.interval),
            });
        }
        // Buckets: (start time, rows); times are sorted, so each bucket is a run of rows.
        let mut buckets: Vec<(i64, Range<usize>)> = Vec::new();
        for (r, &t) in self.times.iter().enumerate() {
            let start = bucket_start(t, interval);
            match buckets.last_mut() {
                Some((s, run)) if *s == start => run.end = r + 1,
                _ => buckets.push((start, r..r + 1)),
            }
        }
        let ranks = self.ranks(0..self.len());
        let mut results: Vec<Option<ColumnData>> = Vec::with_capacity(names.len());
        for (name, source) in names.iter().zip(&sources) {
            results.push(match source {
                Source::Field(values) => Some(match function {
                    AggregateFn::Mean => self.means(values, &buckets, &ranks),
                    AggregateFn::Max | AggregateFn::Min => {
                        extremes(values, &buckets, function == AggregateFn::Max, topic, name)?
                    }
                }),
                // Tags cannot be aggregated; unknown names have no values.
                Source::Tag | Source::Missing => None,
            });
        }
        let keep: Vec<usize> = (0..buckets.len())
            .filter(|&b| results.iter().flatten().any(|c| c.is_present(b)))
            .collect();
        if keep.is_empty() {
            return Ok(empty_frame(names));
        }
        let columns = names
            .iter()
            .zip(results)
            .map(|(name, result)| {
                let data = match result {
                    Some(data) => select_rows(data, &keep),
                    None => ColumnData::Float(vec![f64::NAN; keep.len()]),
                };
                FrameColumn::new(name.clone(), data)
            })
            .collect();
        let timestamps = keep.iter().map(|&b| buckets[b].0).collect();
        Frame::new(timestamps, columns).map_err(|e| EfdError::response(topic, e.to_string()))
    }

    /// `MEAN` per bucket, as InfluxDB computes it. In each shard: per series, the values summed in
    /// time order and divided by their count (integers summed in wrapping `i64`/`u64`); then, in the
    /// order the shard's merge iterator interleaves the series, those partial means added up weighted
    /// by their counts (`mean·count` when the count is at least 2) and divided by the total. Then the
    /// same weighted merge across the shards a bucket spans, and once more, alone, by the statement.
    ///
    /// The interleaving modelled is that of a server with at least as many cores as the measurement
    /// has series (each series its own merge input); with fewer cores InfluxDB groups series
    /// differently, which can change the last bit of buckets holding three or more series. Buckets
    /// spanning several shards merge them in time order.
    fn means(
        &self,
        values: &Values,
        buckets: &[(i64, Range<usize>)],
        ranks: &[usize],
    ) -> ColumnData {
        let mut merged = vec![(0.0_f64, 0_u32); buckets.len()];
        // Per series (in series-key order), its (bucket, partial sum) within the current shard.
        let mut streams: Vec<Vec<(usize, Partial)>> = vec![Vec::new(); ranks.len()];
        let mut shard = None;
        for (b, (_, run)) in buckets.iter().enumerate() {
            for r in run.clone() {
                let group = shard_group(self.times[r]);
                if shard != Some(group) {
                    merge_shard(values, &mut streams, &mut merged);
                    shard = Some(group);
                }
                let Some(stream) = ranks
                    .binary_search(&self.rank(r))
                    .ok()
                    .and_then(|k| streams.get_mut(k))
                else {
                    continue;
                };
                if stream.last().is_none_or(|(bucket, _)| *bucket != b) {
                    stream.push((b, Partial::default()));
                }
                if let Some((_, partial)) = stream.last_mut() {
                    partial.add(values, r);
                }
            }
        }
        merge_shard(values, &mut streams, &mut merged);
        ColumnData::Float(
            merged
                .into_iter()
                .map(|(sum, count)| match count {
                    0 => f64::NAN,
                    _ => remerge(sum / f64::from(count), count),
                })
                .collect(),
        )
    }
}

/// Merges one shard's per-series partial sums into shard means per bucket, and adds those to the
/// cross-shard sums in `merged` (weighted as InfluxDB's mean reducer weighs them); empties `streams`.
fn merge_shard(values: &Values, streams: &mut [Vec<(usize, Partial)>], merged: &mut [(f64, u32)]) {
    for stream in streams.iter_mut() {
        stream.retain(|(_, p)| p.count > 0);
    }
    let buckets =
        streams
            .iter()
            .flatten()
            .map(|(b, _)| *b)
            .fold(None, |span: Option<(usize, usize)>, b| {
                Some(span.map_or((b, b), |(lo, hi)| (lo.min(b), hi.max(b))))
            });
    let Some((first, last)) = buckets else {
        return;
    };
    let mut shard = vec![(0.0_f64, 0_u32); last - first + 1];
    let mut add = |(b, p): (usize, Partial)| {
        let n = f64::from(p.count);
        // Lossy above 2^53, as Go's float64() conversion is.
        #[allow(clippy::cast_precision_loss)]
        let mean = match values {
            Values::Integer(..) => p.int as f64 / n,
            Values::Unsigned(..) => p.uint as f64 / n,
            _ => p.float / n,
        };
        weigh(&mut shard[b - first], mean, p.count);
    };
    if streams.iter().filter(|s| !s.is_empty()).count() <= 2 {
        // Two terms add up the same in either order.
        streams.iter().flatten().for_each(|&item| add(item));
    } else {
        heap_merge(streams, |a, b| a.0 < b.0, |_, item| add(item));
    }
    for (k, (sum, count)) in shard.into_iter().enumerate() {
        if count > 0 {
            weigh(&mut merged[first + k], sum / f64::from(count), count);
        }
    }
    streams.iter_mut().for_each(Vec::clear);
}

/// InfluxDB's mean reducer taking one partial mean of `count` values.
fn weigh((sum, total): &mut (f64, u32), mean: f64, count: u32) {
    *sum += if count >= 2 {
        mean * f64::from(count)
    } else {
        mean
    };
    *total = total.wrapping_add(count);
}

/// The start of the shard group holding `t`: InfluxDB cuts time into groups of a week (the shard
/// duration of a retention policy with infinite retention, as the EFD's) by Go's `Time.Truncate`,
/// which counts from 0001-01-01, so groups start on Mondays at 00:00 UTC.
fn shard_group(t: i64) -> i64 {
    const WEEK: i128 = 7 * 86_400 * 1_000_000_000;
    const FROM_YEAR_ONE: i128 = 62_135_596_800 * 1_000_000_000;
    let offset = (i128::from(t) + FROM_YEAR_ONE).rem_euclid(WEEK);
    // `offset` is below a week, so the difference fits.
    i64::try_from(i128::from(t) - offset).unwrap_or(i64::MIN)
}

/// The running sum and count of one series' values in one bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Partial {
    float: f64,
    int: i64,
    uint: u64,
    count: u32,
}

impl Partial {
    /// Adds row `r` of `values` when present.
    fn add(&mut self, values: &Values, r: usize) {
        let counted = match values {
            Values::Float(v) if !v[r].is_nan() => {
                self.float += v[r];
                true
            }
            Values::Integer(v, present) if present[r] => {
                self.int = self.int.wrapping_add(v[r]);
                true
            }
            Values::Unsigned(v, present) if present[r] => {
                self.uint = self.uint.wrapping_add(v[r]);
                true
            }
            _ => false,
        };
        if counted {
            self.count = self.count.wrapping_add(1);
        }
    }
}

/// Emits the elements of `streams` (each already in order) in the order InfluxDB's heap-based merge
/// iterators do: Go's `container/heap` over the non-empty streams, taken in order, each keyed by its
/// next element; `less` is the heap's ordering, so elements it calls equal come out in whatever order
/// the heap operations leave them, exactly as on the server.
fn heap_merge<T: Copy>(
    streams: &[Vec<T>],
    less: impl Fn(T, T) -> bool,
    mut emit: impl FnMut(usize, T),
) {
    let mut next = vec![0usize; streams.len()];
    let mut heap: Vec<usize> = (0..streams.len())
        .filter(|&s| !streams[s].is_empty())
        .collect();
    {
        let less = |a: usize, b: usize| less(streams[a][next[a]], streams[b][next[b]]);
        let n = heap.len();
        for i in (0..n / 2).rev() {
            sift_down(&mut heap, i, n, &less);
        }
    }
    while !heap.is_empty() {
        // heap.Pop: move the root to the end, restore the heap on the rest, take the end.
        let last = heap.len() - 1;
        heap.swap(0, last);
        {
            let less = |a: usize, b: usize| less(streams[a][next[a]], streams[b][next[b]]);
            sift_down(&mut heap, 0, last, &less);
        }
        let Some(s) = heap.pop() else {
            break;
        };
        emit(s, streams[s][next[s]]);
        next[s] += 1;
        if next[s] < streams[s].len() {
            // heap.Push: append and sift up.
            heap.push(s);
            let less = |a: usize, b: usize| less(streams[a][next[a]], streams[b][next[b]]);
            let end = heap.len() - 1;
            sift_up(&mut heap, end, &less);
        }
    }
}

/// Go's `container/heap` `up`.
fn sift_up(heap: &mut [usize], mut j: usize, less: &dyn Fn(usize, usize) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(heap[j], heap[i]) {
            break;
        }
        heap.swap(i, j);
        j = i;
    }
}

/// Go's `container/heap` `down` over the first `n` elements.
fn sift_down(heap: &mut [usize], i0: usize, n: usize, less: &dyn Fn(usize, usize) -> bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && less(heap[j1 + 1], heap[j1]) {
            j = j1 + 1;
        }
        if !less(heap[j], heap[i]) {
            break;
        }
        heap.swap(i, j);
        i = j;
    }
}

/// One more pass of InfluxDB's mean reducer over a single partial mean of `count` values.
fn remerge(mean: f64, count: u32) -> f64 {
    if count >= 2 {
        let n = f64::from(count);
        (mean * n) / n
    } else {
        mean
    }
}

/// `MAX` or `MIN` per bucket; the result keeps the field's type (unsigned as integers).
fn extremes(
    values: &Values,
    buckets: &[(i64, Range<usize>)],
    max: bool,
    topic: &str,
    name: &str,
) -> Result<ColumnData, EfdError> {
    fn pick<T: PartialOrd + Copy>(
        run: Range<usize>,
        max: bool,
        get: impl Fn(usize) -> Option<T>,
    ) -> Option<T> {
        run.filter_map(get).fold(None, |best, x| match best {
            Some(b) if (max && b >= x) || (!max && b <= x) => Some(b),
            _ => Some(x),
        })
    }
    Ok(match values {
        Values::Float(v) => ColumnData::Float(
            buckets
                .iter()
                .map(|(_, run)| {
                    pick(run.clone(), max, |r| Some(v[r]).filter(|x| !x.is_nan()))
                        .unwrap_or(f64::NAN)
                })
                .collect(),
        ),
        Values::Integer(v, p) => ColumnData::Int(
            buckets
                .iter()
                .map(|(_, run)| pick(run.clone(), max, |r| p[r].then_some(v[r])))
                .collect(),
        ),
        Values::Unsigned(v, p) => ColumnData::Int(
            buckets
                .iter()
                .map(|(_, run)| {
                    pick(run.clone(), max, |r| p[r].then_some(v[r]))
                        .map(|x| unsigned_to_int(x, topic, name))
                        .transpose()
                })
                .collect::<Result<_, _>>()?,
        ),
        Values::Boolean(v) => ColumnData::Bool(
            buckets
                .iter()
                .map(|(_, run)| pick(run.clone(), max, |r| v[r]))
                .collect(),
        ),
        // Rejected before aggregating.
        Values::String(_) => ColumnData::Float(vec![f64::NAN; buckets.len()]),
    })
}

/// The start of the epoch-aligned bucket holding `t`, as InfluxDB's `IteratorOptions.Window`
/// computes it (clamped at the earliest representable time).
fn bucket_start(t: i64, interval: i64) -> i64 {
    let offset = t.rem_euclid(interval);
    if MIN_TIME + offset >= t {
        MIN_TIME
    } else {
        t - offset
    }
}

fn select_rows(data: ColumnData, rows: &[usize]) -> ColumnData {
    if rows.len() == data.len() {
        return data;
    }
    match data {
        ColumnData::Float(v) => ColumnData::Float(rows.iter().map(|&i| v[i]).collect()),
        ColumnData::Int(v) => ColumnData::Int(rows.iter().map(|&i| v[i]).collect()),
        ColumnData::Bool(v) => ColumnData::Bool(rows.iter().map(|&i| v[i]).collect()),
        ColumnData::Str(mut v) => ColumnData::Str(rows.iter().map(|&i| v[i].take()).collect()),
    }
}

/// A result without rows: every requested column, as all-missing floats (what the HTTP source
/// returns when InfluxDB sends no series).
fn empty_frame(names: &[String]) -> Frame {
    let columns = names
        .iter()
        .map(|n| FrameColumn::new(n.clone(), ColumnData::Float(Vec::new())))
        .collect();
    Frame::new(Vec::new(), columns).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use transform_core::{InfluxDuration, TimeRange, UtcNanos};

    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(text: &str) -> FileSource {
        let dir = tempfile::tempdir().unwrap();
        FileSource::open(&write(&dir, "data.lp", text)).unwrap()
    }

    fn load_err(text: &str) -> EfdError {
        let dir = tempfile::tempdir().unwrap();
        FileSource::open(&write(&dir, "data.lp", text)).unwrap_err()
    }

    fn names(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|s| (*s).to_owned()).collect()
    }

    fn range(start: i64, end: i64) -> TimeRange {
        TimeRange::new(UtcNanos(start), UtcNanos(end)).unwrap()
    }

    fn select(
        source: &FileSource,
        topic: &str,
        fields: &[&str],
        (start, end): (i64, i64),
        aggregation: Option<(&str, AggregateFn)>,
    ) -> Result<Frame, EfdError> {
        let fields = names(fields);
        let aggregation = aggregation.map(|(interval, function)| PreAggregation {
            interval: InfluxDuration::parse(interval).unwrap(),
            function,
        });
        source.run(&Select {
            topic,
            fields: &fields,
            range: range(start, end),
            aggregation: aggregation.as_ref(),
        })
    }

    fn floats(frame: &Frame, name: &str) -> Vec<f64> {
        match frame.column(name) {
            Some(ColumnData::Float(v)) => v.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    /// Floats with NaN shown as `None`, for comparisons.
    fn opt_floats(frame: &Frame, name: &str) -> Vec<Option<f64>> {
        floats(frame, name)
            .into_iter()
            .map(|x| (!x.is_nan()).then_some(x))
            .collect()
    }

    const TYPED: &str = "\
# a comment
CREATE DATABASE efd
m,salIndex=301 f=1.5,i=2i,u=3u,b=true,s=\"one\" 10
m,salIndex=302 f=2.5 10
m,salIndex=301 i=4i 20
m,salIndex=302 s=\"two\" 30
other f=9 15
";

    #[test]
    fn raw_select_types_order_and_missing_names() {
        let source = load(TYPED);
        let frame = select(
            &source,
            "m",
            &["s", "salIndex", "f", "i", "u", "b", "nope"],
            (0, 100),
            None,
        )
        .unwrap();
        assert_eq!(frame.timestamps(), &[10, 10, 20, 30]);
        let columns: Vec<&str> = frame.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, ["s", "salIndex", "f", "i", "u", "b", "nope"]);
        assert_eq!(
            frame.column("s"),
            Some(&ColumnData::Str(vec![
                Some("one".into()),
                None,
                None,
                Some("two".into())
            ]))
        );
        assert_eq!(
            frame.column("salIndex"),
            Some(&ColumnData::Str(
                ["301", "302", "301", "302"]
                    .map(|s| Some(s.to_owned()))
                    .to_vec()
            ))
        );
        assert_eq!(opt_floats(&frame, "f"), [Some(1.5), Some(2.5), None, None]);
        assert_eq!(
            frame.column("i"),
            Some(&ColumnData::Int(vec![Some(2), None, Some(4), None]))
        );
        assert_eq!(
            frame.column("u"),
            Some(&ColumnData::Int(vec![Some(3), None, None, None]))
        );
        assert_eq!(
            frame.column("b"),
            Some(&ColumnData::Bool(vec![Some(true), None, None, None]))
        );
        assert!(floats(&frame, "nope").iter().all(|x| x.is_nan()));
    }

    #[test]
    fn rows_without_any_requested_field_are_omitted() {
        let source = load(TYPED);
        // Only the rows holding `i`; the tag does not make a row.
        let frame = select(&source, "m", &["i", "salIndex"], (0, 100), None).unwrap();
        assert_eq!(frame.timestamps(), &[10, 20]);
        // No requested field exists: no rows, every column an empty float column.
        for fields in [&["salIndex"][..], &["nope"], &[]] {
            let frame = select(&source, "m", fields, (0, 100), None).unwrap();
            assert!(frame.is_empty());
            assert_eq!(frame.columns().len(), fields.len());
            assert!(
                frame
                    .columns()
                    .iter()
                    .all(|c| c.data == ColumnData::Float(vec![]))
            );
        }
        let frame = select(&source, "nope", &["f"], (0, 100), None).unwrap();
        assert!(frame.is_empty());
        assert_eq!(frame.column("f"), Some(&ColumnData::Float(vec![])));
    }

    #[test]
    fn time_range_is_inclusive_at_both_ends() {
        let source = load(TYPED);
        let ts = |a, b| {
            select(&source, "m", &["f", "i", "s"], (a, b), None)
                .unwrap()
                .timestamps()
                .to_vec()
        };
        assert_eq!(ts(10, 20), [10, 10, 20]);
        assert_eq!(ts(11, 29), [20]);
        assert_eq!(ts(20, 20), [20]);
        assert_eq!(ts(31, 40), Vec::<i64>::new());
        assert_eq!(ts(i64::MIN, i64::MAX), [10, 10, 20, 30]);
    }

    #[test]
    fn same_identity_merges_fields_and_the_later_value_wins() {
        let source = load(
            "m,t=a f=1,g=10 5\n\
             m,t=b f=7 5\n\
             m,t=a f=2 5\n\
             m,t=a h=\"x\",h=\"y\" 5\n\
             m,t=a f=3,f=4 6\n",
        );
        let frame = select(&source, "m", &["f", "g", "h", "t"], (0, 10), None).unwrap();
        assert_eq!(frame.timestamps(), &[5, 5, 6]);
        assert_eq!(opt_floats(&frame, "f"), [Some(2.0), Some(7.0), Some(4.0)]);
        assert_eq!(opt_floats(&frame, "g"), [Some(10.0), None, None]);
        assert_eq!(
            frame.column("h"),
            Some(&ColumnData::Str(vec![Some("y".into()), None, None]))
        );
    }

    #[test]
    fn equal_times_follow_influxdb_merge_order() {
        // Expected orders as influxd 1.6 returns them for these lines: with a float first in name
        // order, ties come out as Go's heap leaves them; when a string (here the tag `s`) comes first
        // in name order, ties are broken by its values.
        let source = load(
            "m,s=c v=3 1\n\
             m,s=a v=1,x=\"a,b\" 1\n\
             m,s=b v=2 1\n\
             m,s=b v=0 0\n",
        );
        let frame = select(&source, "m", &["x", "v"], (0, 1), None).unwrap();
        assert_eq!(frame.timestamps(), &[0, 1, 1, 1]);
        assert_eq!(floats(&frame, "v"), [0.0, 3.0, 2.0, 1.0]);
        let frame = select(&source, "m", &["v", "s"], (0, 1), None).unwrap();
        assert_eq!(floats(&frame, "v"), [0.0, 1.0, 2.0, 3.0]);
        // The heap's inputs are the series in key order (escaped, tags sorted by key).
        let source = load(
            "m,z=1,a=2 f=1,s=\"k\" 1\n\
             m f=2,s=\"k\" 1\n\
             m,a=1 f=3,s=\"j\" 1\n",
        );
        let frame = select(&source, "m", &["s", "f"], (0, 1), None).unwrap();
        assert_eq!(floats(&frame, "f"), [2.0, 1.0, 3.0]);
    }

    #[test]
    fn tag_values_missing_in_a_series_are_null_and_fields_shadow_tags() {
        let source = load("m,a=x f=1 1\nm,b=y f=2 2\nm,f=tag f=3 3\n");
        let frame = select(&source, "m", &["a", "b", "f"], (0, 9), None).unwrap();
        assert_eq!(
            frame.column("a"),
            Some(&ColumnData::Str(vec![Some("x".into()), None, None]))
        );
        assert_eq!(floats(&frame, "f"), [1.0, 2.0, 3.0]);
        // A tag with no value in any returned row is an all-missing float column.
        let frame = select(&source, "m", &["f", "a"], (2, 3), None).unwrap();
        assert!(floats(&frame, "a").iter().all(|x| x.is_nan()));
    }

    #[test]
    fn conflicting_field_types_are_rejected_with_their_line() {
        let err = load_err("m f=1 1\nother f=1i 1\n\nm f=2i 2\n");
        match err {
            EfdError::File { line, message, .. } => {
                assert_eq!(line, 4);
                assert!(message.contains("type integer, already exists as type float"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            load_err("m f=1,f=\"x\" 1\n"),
            EfdError::File { line: 1, .. }
        ));
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bad.lp", "m f=1 1\n# c\nm f=NaN 2\n");
        let err = FileSource::open(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:3: ", path.display())),
            "{text}"
        );
        assert!(!err.is_transient());
        let missing = FileSource::open(&dir.path().join("absent.lp")).unwrap_err();
        assert!(matches!(missing, EfdError::File { line: 0, .. }));
    }

    #[test]
    fn unsigned_values_above_i64_are_an_error_when_selected() {
        let source = load("m u=18446744073709551615u 1\nm u=5u 2\n");
        assert!(matches!(
            select(&source, "m", &["u"], (2, 2), None).unwrap().column("u"),
            Some(ColumnData::Int(v)) if v == &[Some(5)]
        ));
        let err = select(&source, "m", &["u"], (0, 2), None).unwrap_err();
        assert!(
            err.to_string().contains("exceeds the integer range"),
            "{err}"
        );
    }

    #[test]
    fn field_keys_are_sorted_and_typed() {
        let source = load(TYPED);
        let keys: Vec<(String, FieldType)> = source
            .keys("m")
            .into_iter()
            .map(|k| (k.name, k.field_type))
            .collect();
        assert_eq!(
            keys,
            [
                ("b".to_owned(), FieldType::Boolean),
                ("f".to_owned(), FieldType::Float),
                ("i".to_owned(), FieldType::Integer),
                ("s".to_owned(), FieldType::String),
                ("u".to_owned(), FieldType::Unsigned),
            ]
        );
        assert!(source.keys("nope").is_empty());
        assert!(source.describe().starts_with("file://"));
        assert!(source.describe().ends_with("data.lp"));
    }

    #[test]
    fn gzip_files_load_by_extension_or_magic() {
        let dir = tempfile::tempdir().unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(TYPED.as_bytes()).unwrap();
        let gz = encoder.finish().unwrap();
        for name in ["data.lp.gz", "data.lp"] {
            let path = dir.path().join(name);
            std::fs::write(&path, &gz).unwrap();
            let source = FileSource::open(&path).unwrap();
            assert_eq!(
                select(&source, "m", &["f", "i", "s"], (0, 100), None)
                    .unwrap()
                    .len(),
                4
            );
        }
        let path = write(&dir, "broken.lp.gz", "not gzip at all");
        assert!(matches!(
            FileSource::open(&path),
            Err(EfdError::File { .. })
        ));
    }

    #[test]
    fn loading_in_chunks_keeps_points_that_straddle_them() {
        // Lines well past one read chunk, with a multi-line string across the boundary.
        let mut text = String::new();
        let mut k = 0;
        while text.len() < READ_CHUNK + 1000 {
            text.push_str(&format!("m f={k},s=\"line\nbreak {k}\" {k}\n"));
            k += 1;
        }
        let long = "x".repeat(READ_CHUNK + 10);
        text.push_str(&format!("m s=\"{long}\" {k}\n"));
        let source = load(&text);
        let frame = select(&source, "m", &["s"], (0, i64::MAX - 1), None).unwrap();
        assert_eq!(frame.len(), k + 1);
        match frame.column("s") {
            Some(ColumnData::Str(v)) => {
                assert_eq!(v[7].as_deref(), Some("line\nbreak 7"));
                assert_eq!(v[k].as_deref().map(str::len), Some(long.len()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mean_per_epoch_aligned_bucket_over_all_series() {
        let source = load(
            "m,t=a f=1,i=1i,s=\"x\",b=t 0\n\
             m,t=b f=2,i=2i 500\n\
             m,t=a f=4 999\n\
             m,t=a f=10 1000\n\
             m,t=b i=7i 2500\n\
             m,t=a f=-1 -1\n\
             m,t=a f=-3 -1000\n\
             m,t=a f=-5 -1001\n",
        );
        let frame = select(
            &source,
            "m",
            &["f", "i", "t", "nope"],
            (-1001, 3000),
            Some(("1000ns", AggregateFn::Mean)),
        )
        .unwrap();
        assert_eq!(frame.timestamps(), &[-2000, -1000, 0, 1000, 2000]);
        assert_eq!(
            opt_floats(&frame, "f"),
            [Some(-5.0), Some(-2.0), Some(7.0 / 3.0), Some(10.0), None]
        );
        assert_eq!(
            opt_floats(&frame, "i"),
            [None, None, Some(1.5), None, Some(7.0)]
        );
        assert!(floats(&frame, "t").iter().all(|x| x.is_nan()));
        assert!(floats(&frame, "nope").iter().all(|x| x.is_nan()));
        // The first bucket starts before the range; only points inside the range count.
        let frame = select(
            &source,
            "m",
            &["f"],
            (500, 999),
            Some(("1000ns", AggregateFn::Mean)),
        )
        .unwrap();
        assert_eq!(frame.timestamps(), &[0]);
        assert_eq!(floats(&frame, "f"), [3.0]);
        // Buckets with no value in any requested field are dropped.
        let frame = select(
            &source,
            "m",
            &["i"],
            (0, 3000),
            Some(("1000ns", AggregateFn::Mean)),
        )
        .unwrap();
        assert_eq!(frame.timestamps(), &[0, 2000]);
    }

    #[test]
    fn mean_merges_partial_means_per_series_like_influxdb() {
        // Three series of 2, 3 and 1 values in one bucket: InfluxDB averages per series, then
        // merges mean·count; for these values that differs from a plain sum in the last bit.
        let values = [[0.1, 0.7, 0.0], [0.2, 0.3, 0.9], [0.6, 0.0, 0.0]];
        let counts = [2, 3, 1];
        let mut text = String::new();
        let mut plain = 0.0;
        for (s, (vals, &n)) in values.iter().zip(&counts).enumerate() {
            for (k, v) in vals.iter().take(n).enumerate() {
                text.push_str(&format!("m,s={s} f={v} {k}\n"));
            }
        }
        // The plain mean sums in time-then-series order.
        for k in 0..3 {
            for (vals, &n) in values.iter().zip(&counts) {
                if k < n {
                    plain += vals[k];
                }
            }
        }
        plain /= 6.0;
        let mut merged = 0.0;
        for (vals, &n) in values.iter().zip(&counts) {
            let mut sum = 0.0;
            for v in vals.iter().take(n) {
                sum += v;
            }
            let c = f64::from(u32::try_from(n).unwrap());
            let mean = sum / c;
            merged += if n >= 2 { mean * c } else { mean };
        }
        let merged = remerge(remerge(merged / 6.0, 6), 6);
        let source = load(&text);
        let frame = select(
            &source,
            "m",
            &["f"],
            (0, 10),
            Some(("1s", AggregateFn::Mean)),
        )
        .unwrap();
        assert_eq!(floats(&frame, "f"), [merged]);
        assert!((merged - plain).abs() < 1e-15);
    }

    #[test]
    fn integer_means_sum_exactly() {
        // 2^53 + 1 is not a float; the integer sum keeps it, as InfluxDB's int64 sum does.
        let source = load("m i=9007199254740993i 0\nm i=-9007199254740992i 1\n");
        let frame = select(
            &source,
            "m",
            &["i"],
            (0, 10),
            Some(("1s", AggregateFn::Mean)),
        )
        .unwrap();
        assert_eq!(floats(&frame, "i"), [0.5]);
    }

    #[test]
    fn max_and_min_keep_the_field_type() {
        let source = load(
            "m f=1.5,i=3i,u=4u,b=false 0\n\
             m f=-2,i=-7i,u=9u,b=true 1\n\
             m f=0.5 1000000000\n",
        );
        let fields = ["f", "i", "u", "b"];
        let max = select(
            &source,
            "m",
            &fields,
            (0, 2_000_000_000),
            Some(("1s", AggregateFn::Max)),
        )
        .unwrap();
        assert_eq!(max.timestamps(), &[0, 1_000_000_000]);
        assert_eq!(floats(&max, "f"), [1.5, 0.5]);
        assert_eq!(max.column("i"), Some(&ColumnData::Int(vec![Some(3), None])));
        assert_eq!(max.column("u"), Some(&ColumnData::Int(vec![Some(9), None])));
        assert_eq!(
            max.column("b"),
            Some(&ColumnData::Bool(vec![Some(true), None]))
        );
        let min = select(
            &source,
            "m",
            &fields,
            (0, 2_000_000_000),
            Some(("1s", AggregateFn::Min)),
        )
        .unwrap();
        assert_eq!(floats(&min, "f"), [-2.0, 0.5]);
        assert_eq!(
            min.column("i"),
            Some(&ColumnData::Int(vec![Some(-7), None]))
        );
        assert_eq!(min.column("u"), Some(&ColumnData::Int(vec![Some(4), None])));
        assert_eq!(
            min.column("b"),
            Some(&ColumnData::Bool(vec![Some(false), None]))
        );
    }

    #[test]
    fn unsupported_aggregations_are_influxql_errors() {
        let source = load("m b=t,s=\"x\",f=1 0\n");
        for (field, function, expected) in [
            (
                "b",
                AggregateFn::Mean,
                "unsupported mean iterator type: boolean",
            ),
            (
                "s",
                AggregateFn::Mean,
                "unsupported mean iterator type: string",
            ),
            (
                "s",
                AggregateFn::Max,
                "unsupported max iterator type: string",
            ),
            (
                "s",
                AggregateFn::Min,
                "unsupported min iterator type: string",
            ),
        ] {
            match select(&source, "m", &["f", field], (0, 10), Some(("1s", function))) {
                Err(EfdError::InfluxQl { topic, message }) => {
                    assert_eq!(topic, "m");
                    assert_eq!(message, expected);
                }
                other => panic!("{field} {function:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn buckets_clamp_at_the_earliest_time() {
        assert_eq!(bucket_start(0, 10), 0);
        assert_eq!(bucket_start(-1, 10), -10);
        assert_eq!(bucket_start(19, 10), 10);
        assert_eq!(bucket_start(MIN_TIME, 10), MIN_TIME);
        assert_eq!(bucket_start(MIN_TIME + 5, i64::MAX), MIN_TIME);
        assert_eq!(bucket_start(i64::MAX - 1, i64::MAX), 0);
    }

    #[test]
    fn a_new_field_on_every_line_stays_sparse() {
        // Padding every column to every row would need 20 000² slots here.
        let mut text = String::new();
        for k in 0..20_000 {
            text.push_str(&format!("m f{k}={k}i,common={k} {k}\n"));
        }
        text.push_str("m f7=70i 7\nm f7=71i 8\n");
        let source = load(&text);
        let m = &source.measurements["m"];
        assert_eq!(m.fields.len(), 20_001);
        let sparse = m
            .fields
            .iter()
            .filter(|(_, c)| matches!(c, Column::Sparse(..)))
            .count();
        assert_eq!(sparse, 20_000);
        let frame = select(&source, "m", &["f7", "f9", "common"], (5, 9), None).unwrap();
        assert_eq!(frame.timestamps(), &[5, 6, 7, 8, 9]);
        assert_eq!(
            frame.column("f7"),
            Some(&ColumnData::Int(vec![None, None, Some(70), Some(71), None]))
        );
        assert_eq!(
            frame.column("f9"),
            Some(&ColumnData::Int(vec![None, None, None, None, Some(9)]))
        );
        // Only rows with a requested field.
        let frame = select(&source, "m", &["f7", "f9"], (0, 100), None).unwrap();
        assert_eq!(frame.timestamps(), &[7, 8, 9]);
        let frame = select(
            &source,
            "m",
            &["f7"],
            (0, 100),
            Some(("2ns", AggregateFn::Max)),
        );
        assert_eq!(
            frame.unwrap().column("f7"),
            Some(&ColumnData::Int(vec![Some(70), Some(71)]))
        );
    }

    #[test]
    fn shard_groups_are_weeks_starting_on_mondays() {
        const S: i64 = 1_000_000_000;
        // 1970-01-05 and 2023-11-13 were Mondays.
        for monday in [345_600 * S, 1_699_833_600 * S] {
            assert_eq!(shard_group(monday), monday);
            assert_eq!(shard_group(monday + 604_800 * S - 1), monday);
            assert_eq!(shard_group(monday - 1), monday - 604_800 * S);
        }
        assert_eq!(shard_group(0), (345_600 - 604_800) * S);
        assert!(shard_group(MIN_TIME) <= MIN_TIME);
    }

    #[test]
    fn debug_shows_counts_not_data() {
        let text = format!("{:?}", load(TYPED));
        assert!(text.contains("measurements: 2"), "{text}");
        assert!(text.contains("rows: 5"), "{text}");
    }
}
