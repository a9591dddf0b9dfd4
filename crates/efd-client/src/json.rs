//! Parsing of InfluxDB 1.x `/query` JSON (with `epoch=ns`) straight into typed columns.
//!
//! The body is one JSON document, or with `chunked=true` one document per line. Each is parsed with a
//! serde visitor (the same visitors parse MessagePack documents, [`crate::msgpack`]) that pushes every cell into a typed column builder, so no intermediate
//! `serde_json::Value` tree is built. InfluxDB's JSON loses the distinction between `21.0` and `21`,
//! so cells are typed by the field types the caller knows (from `SHOW FIELD KEYS`), not by their
//! JSON form. Errors in the body (`error`, `results[i].error`) are InfluxQL errors, never empty data.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use transform_core::{ColumnData, Frame, FrameColumn};

use crate::error::EfdError;
use crate::source::FieldType;

/// Nesting allowed in a MessagePack document: a response's deepest value (a cell, or a tag value)
/// is 8 levels down, and each level skipped costs stack.
const MSGPACK_MAX_DEPTH: usize = 32;

/// How the values of one result column are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    Float,
    Int,
    Bool,
    Str,
}

impl ColumnKind {
    pub(crate) fn of(field_type: FieldType) -> ColumnKind {
        match field_type {
            FieldType::Float => ColumnKind::Float,
            FieldType::Integer | FieldType::Unsigned => ColumnKind::Int,
            FieldType::Boolean => ColumnKind::Bool,
            FieldType::String => ColumnKind::Str,
        }
    }
}

#[derive(Debug)]
enum Builder {
    Float(Vec<f64>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
}

impl Builder {
    fn new(kind: ColumnKind) -> Builder {
        match kind {
            ColumnKind::Float => Builder::Float(Vec::new()),
            ColumnKind::Int => Builder::Int(Vec::new()),
            ColumnKind::Bool => Builder::Bool(Vec::new()),
            ColumnKind::Str => Builder::Str(Vec::new()),
        }
    }

    fn into_data(self) -> ColumnData {
        match self {
            Builder::Float(v) => ColumnData::Float(v),
            Builder::Int(v) => ColumnData::Int(v),
            Builder::Bool(v) => ColumnData::Bool(v),
            Builder::Str(v) => ColumnData::Str(v),
        }
    }

    fn push_null(&mut self) {
        match self {
            Builder::Float(v) => v.push(f64::NAN),
            Builder::Int(v) => v.push(None),
            Builder::Bool(v) => v.push(None),
            Builder::Str(v) => v.push(None),
        }
    }
}

/// Accumulates the rows of one statement's result across the documents of a (chunked) response.
#[derive(Debug)]
pub(crate) struct Accumulator {
    topic: String,
    kinds: HashMap<String, ColumnKind>,
    default_kind: ColumnKind,
    columns: Option<Vec<String>>,
    time: Vec<i64>,
    data: Vec<Builder>,
    error: Option<String>,
    partial: bool,
    has_time: bool,
}

impl Accumulator {
    /// An empty result; columns named in `kinds` get that kind, others `default_kind`.
    pub(crate) fn new(
        topic: &str,
        kinds: HashMap<String, ColumnKind>,
        default_kind: ColumnKind,
    ) -> Accumulator {
        Accumulator {
            topic: topic.to_owned(),
            kinds,
            default_kind,
            columns: None,
            time: Vec::new(),
            data: Vec::new(),
            error: None,
            partial: false,
            has_time: true,
        }
    }

    /// An accumulator for a whole body parsed outside a request (tests, fuzzing, benchmarks):
    /// columns in `field_types` typed by them, others strings (tags).
    pub(crate) fn for_whole_body(field_types: &HashMap<String, FieldType>) -> Accumulator {
        let kinds = field_types
            .iter()
            .map(|(k, t)| (k.clone(), ColumnKind::of(*t)))
            .collect();
        Accumulator::new("response", kinds, ColumnKind::Str)
    }

    /// Parses one JSON document and appends its rows. An InfluxQL error in it is returned.
    pub(crate) fn feed(&mut self, document: &[u8]) -> Result<(), EfdError> {
        self.partial = false;
        let mut de = serde_json::Deserializer::from_slice(document);
        DocumentSeed(self)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| EfdError::response(&self.topic, format!("invalid JSON: {e}")))?;
        self.take_error()
    }

    /// Parses one whole MessagePack document (as split by [`crate::msgpack::Splitter`]) and appends
    /// its rows. An InfluxQL error in it is returned.
    pub(crate) fn feed_msgpack(&mut self, document: &[u8]) -> Result<(), EfdError> {
        self.partial = false;
        let mut de = rmp_serde::Deserializer::from_read_ref(document);
        // rmp_serde's default limit (1024 levels) lets a nest under a skipped key overflow a 2 MiB
        // thread stack before the limit is reached; a response is 8 levels deep.
        de.set_max_depth(MSGPACK_MAX_DEPTH);
        DocumentSeed(self)
            .deserialize(&mut de)
            .map_err(|e| EfdError::response(&self.topic, format!("invalid MessagePack: {e}")))?;
        self.take_error()
    }

    /// A permanent error about the response to this accumulator's statement.
    pub(crate) fn response_error(&self, message: String) -> EfdError {
        EfdError::response(&self.topic, message)
    }

    fn take_error(&mut self) -> Result<(), EfdError> {
        match self.error.take() {
            Some(message) => Err(EfdError::InfluxQl {
                topic: self.topic.clone(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Whether the last document said more was to come (`"partial": true`): a stream that ends
    /// there was cut short.
    pub(crate) fn expects_more(&self) -> bool {
        self.partial
    }

    /// The result as a frame: columns in response order (without `time`), rows as received.
    pub(crate) fn finish(self) -> Result<Frame, EfdError> {
        let columns = self
            .columns
            .unwrap_or_default()
            .into_iter()
            .zip(self.data)
            .map(|(name, b)| FrameColumn::new(name, b.into_data()))
            .collect();
        Frame::new(self.time, columns).map_err(|e| EfdError::response(&self.topic, e.to_string()))
    }

    fn set_columns(&mut self, names: Vec<String>) -> Result<(), String> {
        // Selects lead with `time`; meta queries (`SHOW FIELD KEYS`) have no time column, and their
        // rows get timestamp 0.
        let has_time = names.first().map(String::as_str) == Some("time");
        if self.columns.is_some() && has_time != self.has_time {
            return Err("a later series differs in having a `time` column".to_owned());
        }
        self.has_time = has_time;
        let names: Vec<String> = names.into_iter().skip(usize::from(has_time)).collect();
        match &self.columns {
            Some(existing) if *existing == names => Ok(()),
            Some(existing) => Err(format!(
                "a later series has columns {names:?}, the first had {existing:?}"
            )),
            None => {
                self.data = names
                    .iter()
                    .map(|n| Builder::new(*self.kinds.get(n).unwrap_or(&self.default_kind)))
                    .collect();
                self.columns = Some(names);
                Ok(())
            }
        }
    }
}

/// Parses a whole `/query` body (one document, or one per line) into a frame; for tests, fuzzing and
/// benchmarks. Columns listed in `field_types` are typed by them, others are strings (tags).
pub fn parse_query_response(
    body: &[u8],
    field_types: &HashMap<String, FieldType>,
) -> Result<Frame, EfdError> {
    let mut acc = Accumulator::for_whole_body(field_types);
    for line in body.split(|&b| b == b'\n') {
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            acc.feed(line)?;
        }
    }
    acc.finish()
}

struct DocumentSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a /query response object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "results" => map.next_value_seed(ResultsSeed(&mut *self.0))?,
                "error" => self.0.error = Some(map.next_value::<String>()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A map key, borrowed when possible.
struct KeyName(String);

impl<'de> de::Deserialize<'de> for KeyName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<KeyName, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

struct ResultsSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of statement results")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(ResultSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct ResultSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a statement result")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "series" => map.next_value_seed(SeriesListSeed(&mut *self.0))?,
                "error" => self.0.error = Some(map.next_value::<String>()?),
                "partial" => self.0.partial = map.next_value::<bool>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct SeriesListSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for SeriesListSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SeriesListSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of series")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(SeriesSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct SeriesSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for SeriesSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SeriesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a series")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let acc = self.0;
        let mut have_columns = false;
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "columns" => {
                    let names: Vec<String> = map.next_value()?;
                    acc.set_columns(names).map_err(de::Error::custom)?;
                    have_columns = true;
                }
                "values" => {
                    if !have_columns {
                        return Err(de::Error::custom("`values` before `columns` in a series"));
                    }
                    map.next_value_seed(RowsSeed(&mut *acc))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct RowsSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RowSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct RowSeed<'a>(&'a mut Accumulator);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let acc = self.0;
        let width = acc.data.len();
        let time = if acc.has_time {
            match seq.next_element_seed(TimeSeed)? {
                Some(t) => t,
                None => return Err(de::Error::custom("an empty row")),
            }
        } else {
            0
        };
        acc.time.push(time);
        let mut n = 0;
        while n < width {
            let Some(()) = seq.next_element_seed(CellSeed(&mut acc.data[n]))? else {
                break;
            };
            n += 1;
        }
        let time_columns = usize::from(acc.has_time);
        if n < width {
            return Err(de::Error::custom(format!(
                "a row has {} values for {} columns",
                n + time_columns,
                width + time_columns
            )));
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!(
                "a row has more values than its {} columns",
                width + time_columns
            )));
        }
        Ok(())
    }
}

struct TimeSeed;

impl<'de> DeserializeSeed<'de> for TimeSeed {
    type Value = i64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_i64(self)
    }
}

impl Visitor<'_> for TimeSeed {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer ns timestamp (epoch=ns)")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} out of range")))
    }
}

struct CellSeed<'a>(&'a mut Builder);

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, boolean, string or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push_null();
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.push_null();
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // InfluxDB stores no NaN or infinity and its JSON encoder cannot write them; MessagePack
        // can, and a NaN would read as a missing value, an infinity poison every aggregate.
        if !v.is_finite() {
            return Err(E::custom(format!(
                "number {v} is not finite (InfluxDB stores no NaN or infinity)"
            )));
        }
        match self.0 {
            Builder::Float(b) => b.push(v),
            // MEAN of an integer field, or a float written to an integer column by another shard.
            #[allow(clippy::cast_possible_truncation)] // Checked: integral and in range.
            Builder::Int(b) if v.fract() == 0.0 && v.abs() < 9.2e18 => b.push(Some(v as i64)),
            _ => return Err(E::custom(format!("number {v} in a non-numeric column"))),
        }
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.0 {
            #[allow(clippy::cast_precision_loss)] // JSON integers in float fields are floats.
            Builder::Float(b) => b.push(v as f64),
            Builder::Int(b) => b.push(Some(v)),
            _ => return Err(E::custom(format!("number {v} in a non-numeric column"))),
        }
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match self.0 {
            #[allow(clippy::cast_precision_loss)] // JSON integers in float fields are floats.
            Builder::Float(b) => b.push(v as f64),
            Builder::Int(b) => b.push(Some(
                i64::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))?,
            )),
            _ => return Err(E::custom(format!("number {v} in a non-numeric column"))),
        }
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match self.0 {
            Builder::Bool(b) => b.push(Some(v)),
            _ => return Err(E::custom(format!("boolean {v} in a non-boolean column"))),
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self.0 {
            Builder::Str(b) => b.push(Some(v.to_owned())),
            _ => {
                let shown: String = v.chars().take(40).collect();
                return Err(E::custom(format!(
                    "string \"{shown}\" in a numeric or boolean column"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(pairs: &[(&str, FieldType)]) -> HashMap<String, FieldType> {
        pairs.iter().map(|(k, t)| ((*k).to_owned(), *t)).collect()
    }

    #[test]
    fn parses_typed_columns_from_a_real_response() {
        // Captured from influxd 1.6.7 with epoch=ns: 21.0 comes back as 21, tags as strings.
        let body = br#"{"results":[{"statement_id":0,"series":[{"name":"lsst.sal.ESS.temperature","columns":["time","temperatureItem4","n","b","s","salIndex","missing"],"values":[[1700000000000000000,21,3,true,"x y","301",null],[1700000000500000000,22.5,4,false,null,"302",null],[1700000001000000001,23,null,null,null,"301",null]]}]}]}"#;
        let t = types(&[
            ("temperatureItem4", FieldType::Float),
            ("n", FieldType::Integer),
            ("b", FieldType::Boolean),
            ("s", FieldType::String),
            ("missing", FieldType::Float),
        ]);
        let frame = parse_query_response(body, &t).unwrap();
        assert_eq!(frame.timestamps()[2], 1_700_000_001_000_000_001);
        assert_eq!(
            frame.column("temperatureItem4"),
            Some(&ColumnData::Float(vec![21.0, 22.5, 23.0]))
        );
        assert_eq!(
            frame.column("n"),
            Some(&ColumnData::Int(vec![Some(3), Some(4), None]))
        );
        assert_eq!(
            frame.column("salIndex"),
            Some(&ColumnData::Str(vec![
                Some("301".into()),
                Some("302".into()),
                Some("301".into())
            ]))
        );
        assert!(
            matches!(frame.column("missing"), Some(ColumnData::Float(v)) if v.iter().all(|x| x.is_nan()))
        );
    }

    #[test]
    fn chunked_documents_append() {
        let body = b"{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"m\",\"columns\":[\"time\",\"a\"],\"values\":[[1,1]],\"partial\":true}],\"partial\":true}]}\n{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"m\",\"columns\":[\"time\",\"a\"],\"values\":[[2,2.5]]}]}]}\n";
        let frame = parse_query_response(body, &types(&[("a", FieldType::Float)])).unwrap();
        assert_eq!(frame.timestamps(), &[1, 2]);
        assert_eq!(frame.column("a"), Some(&ColumnData::Float(vec![1.0, 2.5])));
    }

    #[test]
    fn errors_in_the_body_are_errors() {
        let top = br#"{"error":"error parsing query: found FROM, expected identifier"}"#;
        let err = parse_query_response(top, &HashMap::new()).unwrap_err();
        assert!(matches!(err, EfdError::InfluxQl { .. }), "{err}");
        let stmt = br#"{"results":[{"statement_id":0,"error":"database not found: efd"}]}"#;
        let err = parse_query_response(stmt, &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("database not found"), "{err}");
        assert!(!err.is_transient());
    }

    #[test]
    fn empty_results_give_an_empty_frame() {
        let frame =
            parse_query_response(br#"{"results":[{"statement_id":0}]}"#, &HashMap::new()).unwrap();
        assert!(frame.is_empty());
    }

    #[test]
    fn hostile_bodies_are_permanent_errors() {
        let t = types(&[("a", FieldType::Float)]);
        for body in [
            &br#"{"results":[{"series":[{"columns":["time","a"],"values":[[1,2,3]]}]}]}"#[..],
            br#"{"results":[{"series":[{"columns":["time","a"],"values":[[1]]}]}]}"#,
            br#"{"results":[{"series":[{"columns":["time","a"],"values":[[1,"NaN"]]}]}]}"#,
            br#"{"results":[{"series":[{"columns":["time","a"],"values":[["x",1]]}]}]}"#,
            br#"{"results":[{"series":[{"values":[[1,1]],"columns":["time","a"]}]}]}"#,
            br#"{"results":[{"series":[{"columns":["time","a"],"values":[[1,1e999]]}]}]}"#,
            br#"{"results":[{"series":[{"columns":["time","a"],"values":[[1,1]]"#,
            b"\xff\xfe",
            br#"[1,2,3]"#,
        ] {
            let err = parse_query_response(body, &t).unwrap_err();
            assert!(!err.is_transient(), "{err}");
        }
    }
}
