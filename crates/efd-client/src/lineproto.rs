//! InfluxDB 1.x line protocol, as `influx_inspect export` writes it and `/write?precision=ns` accepts.
//!
//! A [`Parser`] walks a byte buffer point by point, borrowing from it wherever no unescaping is
//! needed. It follows InfluxDB's own scanner (`models/points.go`) rule by rule, so a file parses
//! exactly when `/write` would accept it, into the same points:
//!
//! - blank lines, comments (a first non-blank byte `#`; like InfluxDB, a comment holding `="` runs on
//!   past newlines to the next `"`), and `CREATE DATABASE ...` DDL lines (the header of
//!   `influx_inspect export`) are skipped;
//! - a point is `measurement[,tag=value...] field=value[,field=value...] timestamp`. A delimiter is
//!   escaped when the byte before it is `\`; measurement names unescape `\,` and `\ `, tag keys and
//!   values `\,` `\=` `\ `, field keys also `\"`; string values unescape `\"` and `\\` and may span
//!   lines;
//! - values: float (`1`, `-1.5`, `2e3`), integer (`3i`), unsigned (`3u`), boolean (`t`, `T`, `true`,
//!   `True`, `TRUE` and the `f` forms) and double-quoted string. NaN and infinities are rejected;
//! - tags are sorted by (escaped) key, as InfluxDB stores them; duplicate tag keys, a `time` tag and
//!   keys longer than InfluxDB's 64 KiB limit are rejected; fields named `time` are dropped (InfluxDB
//!   drops them silently) and a point left without fields is rejected.
//!
//! Deviations: the timestamp is required (a file has no "now"); DDL lines and a `\r` before the
//! newline (CRLF files) are accepted, though `/write` rejects both; unsigned values (`3u`) are
//! accepted, though 1.x servers built without unsigned support (the OSS releases) reject them; bytes
//! between a string's closing quote and the next `,` or space are an error (InfluxDB keeps a mangled
//! string); and non-UTF-8 bytes become U+FFFD (as InfluxDB's JSON shows them).
//!
//! The parser never panics and allocates at most in proportion to the point it is parsing. It can
//! work on a buffer that holds only the start of a file: with `eof == false` a point cut off by the
//! end of the buffer is left for the next call instead of being reported as an error.

use std::borrow::Cow;

use crate::source::FieldType;

/// The longest series key (escaped measurement and tags) InfluxDB accepts; a field key plus 4 bytes
/// must fit in it too.
const MAX_KEY_LENGTH: usize = 65_535;
/// The earliest timestamp InfluxDB accepts (the two lowest `i64` are reserved sentinels).
pub(crate) const MIN_TIME: i64 = i64::MIN + 2;
/// The latest timestamp InfluxDB accepts.
pub(crate) const MAX_TIME: i64 = i64::MAX - 1;

/// One field value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    /// A float; never NaN or infinite.
    Float(f64),
    /// An integer (`i` suffix).
    Integer(i64),
    /// An unsigned integer (`u` suffix).
    Unsigned(u64),
    /// A boolean.
    Boolean(bool),
    /// A string, unescaped.
    String(Cow<'a, str>),
}

impl Value<'_> {
    /// The InfluxDB type of the value.
    pub(crate) fn field_type(&self) -> FieldType {
        match self {
            Value::Float(_) => FieldType::Float,
            Value::Integer(_) => FieldType::Integer,
            Value::Unsigned(_) => FieldType::Unsigned,
            Value::Boolean(_) => FieldType::Boolean,
            Value::String(_) => FieldType::String,
        }
    }
}

/// One field of a point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field<'a> {
    /// The field key, unescaped.
    pub(crate) key: Cow<'a, str>,
    /// The value.
    pub(crate) value: Value<'a>,
}

/// A point's measurement, tag set and time; its fields go to the vector passed to
/// [`Parser::next_point`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point<'a> {
    /// The measurement name, unescaped.
    pub(crate) measurement: Cow<'a, str>,
    /// The tag set, escaped and sorted by key, as it follows the measurement in InfluxDB's series key:
    /// `,k1=v1,k2=v2`, or empty without tags. [`tag_pairs`] unescapes it.
    pub(crate) tags: Cow<'a, [u8]>,
    /// Nanoseconds since the Unix epoch.
    pub(crate) time: i64,
    /// The 1-based line the point starts on.
    pub(crate) line: usize,
}

/// A line that is not valid line protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineError {
    /// The 1-based line the point starts on.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

/// Why a point could not be parsed.
enum Stop {
    /// The buffer ends inside the point and more input may follow.
    Incomplete,
    /// The point is invalid.
    Invalid(String),
}

fn invalid<T>(message: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Invalid(message.into()))
}

/// A cursor over line-protocol text; see the module documentation.
#[derive(Debug)]
pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    line: usize,
    eof: bool,
}

impl<'a> Parser<'a> {
    /// A parser over `buf`, whose first byte is on line `first_line`. `eof` says whether `buf` runs
    /// to the end of the input.
    pub(crate) fn new(buf: &'a [u8], first_line: usize, eof: bool) -> Parser<'a> {
        Parser {
            buf,
            pos: 0,
            line: first_line,
            eof,
        }
    }

    /// How many bytes of the buffer have been fully processed; when the input continues, the rest
    /// must be kept and followed by more input.
    pub(crate) fn consumed(&self) -> usize {
        self.pos
    }

    /// The line of the first unprocessed byte.
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// The next point, its fields replacing the contents of `fields`. `None` at the end of the
    /// buffer, or (when `eof` is false) at a point the buffer holds only part of.
    pub(crate) fn next_point(
        &mut self,
        fields: &mut Vec<Field<'a>>,
    ) -> Result<Option<Point<'a>>, LineError> {
        let buf = self.buf;
        loop {
            if self.pos >= buf.len() {
                return Ok(None);
            }
            let start = self.pos;
            let mut p = start;
            while p < buf.len() && is_blank(buf[p]) {
                p += 1;
            }
            let line_end = match find_newline(buf, p) {
                Some(n) => n,
                None if self.eof => buf.len(),
                None => return Ok(None),
            };
            let content_end = strip_cr(buf, p, line_end);
            if p < content_end && buf[p] == b'#' {
                // InfluxDB finds where a comment ends as it finds where any line ends, so a
                // comment holding `="` runs on to the next unescaped `"`.
                match record_end(buf, start, self.eof) {
                    Some(end) => self.advance(start, end),
                    None => return Ok(None),
                }
                continue;
            }
            if p >= content_end || is_ddl(&buf[p..content_end]) {
                self.advance(start, line_end);
                continue;
            }
            fields.clear();
            return match parse_point(buf, p, line_end, self.eof, fields) {
                Ok(head) => {
                    let line = self.line;
                    self.advance(start, head.end);
                    Ok(Some(Point {
                        measurement: head.measurement,
                        tags: head.tags,
                        time: head.time,
                        line,
                    }))
                }
                Err(Stop::Incomplete) => Ok(None),
                Err(Stop::Invalid(message)) => Err(LineError {
                    line: self.line,
                    message,
                }),
            };
        }
    }

    /// Moves past a record that starts at `start` and ends at `end` (its newline, or the buffer end).
    fn advance(&mut self, start: usize, end: usize) {
        let next = if end < self.buf.len() {
            end + 1
        } else {
            self.buf.len()
        };
        self.line += count_newlines(&self.buf[start..next]);
        self.pos = next;
    }
}

/// Unescapes a tag set as [`Point::tags`] holds it into `(key, value)` pairs.
pub(crate) fn tag_pairs(tags: &[u8]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut i = 0;
    // Each tag is `,key=value`; delimiters preceded by `\` are escaped.
    while i < tags.len() {
        let start = i + 1;
        let mut end = start;
        while end < tags.len() && !(tags[end] == b',' && tags[end - 1] != b'\\') {
            end += 1;
        }
        let tag = &tags[start.min(end)..end];
        let eq = (0..tag.len())
            .find(|&k| tag[k] == b'=' && (k == 0 || tag[k - 1] != b'\\'))
            .unwrap_or(tag.len());
        let key = unescape(&tag[..eq], b",= ");
        let value = unescape(tag.get(eq + 1..).unwrap_or_default(), b",= ");
        pairs.push((key.into_owned(), value.into_owned()));
        i = end;
    }
    pairs
}

/// Space, tab and NUL: what InfluxDB skips before a line and between sections.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == 0
}

fn find_newline(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|k| from + k)
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// The end of a line's content: `line_end`, or one less when a `\r` precedes the newline.
fn strip_cr(buf: &[u8], start: usize, line_end: usize) -> usize {
    if line_end > start && buf.get(line_end - 1) == Some(&b'\r') {
        line_end - 1
    } else {
        line_end
    }
}

/// Where the record starting at `start` ends by InfluxDB's `scanLine`: the first newline outside a
/// double-quoted string, a quote opening a string only after a space has been seen and while more
/// `=` than `,` have been counted since (so only in field values). `None` when the buffer ends first
/// and more input follows.
fn record_end(buf: &[u8], start: usize, eof: bool) -> Option<usize> {
    let (mut quoted, mut fields) = (false, false);
    let (mut equals, mut commas) = (0usize, 0usize);
    let mut i = start;
    while let Some(&b) = buf.get(i) {
        if b == b'\\' {
            i += 2;
            continue;
        }
        fields |= b == b' ';
        if fields {
            match b {
                b'=' if !quoted => equals += 1,
                b',' if !quoted => commas += 1,
                b'"' if equals > commas => quoted = !quoted,
                _ => {}
            }
        }
        if b == b'\n' && !quoted {
            return Some(i);
        }
        i += 1;
    }
    eof.then_some(buf.len())
}

/// Whether a line is `CREATE DATABASE ...` (the DDL header of `influx_inspect export`).
fn is_ddl(line: &[u8]) -> bool {
    const DDL: &[u8] = b"CREATE DATABASE";
    line.len() >= DDL.len()
        && line[..DDL.len()].eq_ignore_ascii_case(DDL)
        && line.get(DDL.len()).is_none_or(|&b| is_blank(b))
}

/// A parsed point without its fields, and where it ends.
struct Head<'a> {
    measurement: Cow<'a, str>,
    tags: Cow<'a, [u8]>,
    time: i64,
    /// The point's terminating newline, or the buffer end.
    end: usize,
}

/// Parses the point starting at `p` whose first line ends at `line_end`.
fn parse_point<'a>(
    buf: &'a [u8],
    p: usize,
    mut line_end: usize,
    eof: bool,
    fields: &mut Vec<Field<'a>>,
) -> Result<Head<'a>, Stop> {
    let mut end = strip_cr(buf, p, line_end);

    // Measurement: up to an unescaped `,` (tags follow) or space (fields follow).
    let mut i = p;
    if i >= end || buf[i] == b',' {
        return invalid("missing measurement");
    }
    let has_tags = loop {
        i += 1;
        if i >= end {
            return invalid("missing fields");
        }
        if buf[i - 1] == b'\\' {
            continue;
        }
        match buf[i] {
            b',' => break true,
            b' ' => break false,
            _ => {}
        }
    };
    let measurement_end = i;

    // Tags: `key=value` pairs separated by unescaped commas, up to an unescaped space.
    let mut spans: Vec<(usize, usize, usize)> = Vec::new(); // (key start, `=`, value end)
    if has_tags {
        i += 1;
        loop {
            let key_start = i;
            if i >= end || matches!(buf[i], b' ' | b',' | b'=') {
                return invalid("missing tag key");
            }
            loop {
                i += 1;
                if i >= end || (matches!(buf[i], b' ' | b',') && buf[i - 1] != b'\\') {
                    return invalid("missing tag value");
                }
                if buf[i] == b'=' && buf[i - 1] != b'\\' {
                    break;
                }
            }
            let eq = i;
            i += 1;
            if i >= end || matches!(buf[i], b',' | b' ') {
                return invalid("missing tag value");
            }
            let more = loop {
                i += 1;
                if i >= end {
                    return invalid("missing fields");
                }
                let escaped = buf[i - 1] == b'\\';
                match buf[i] {
                    b'=' if !escaped => return invalid("invalid tag format"),
                    b',' if !escaped => break true,
                    b' ' if !escaped => break false,
                    _ => {}
                }
            };
            spans.push((key_start, eq, i));
            if !more {
                break;
            }
            i += 1;
        }
    }
    let key_end = i;
    let key_len = key_end - p;
    if key_len > MAX_KEY_LENGTH {
        return invalid(format!(
            "max key length exceeded: {key_len} > {MAX_KEY_LENGTH}"
        ));
    }
    let measurement = unescape(&buf[p..measurement_end], b", ");
    let tags = sorted_tags(buf, measurement_end, key_end, &mut spans)?;
    if spans.iter().any(|&(k, eq, _)| &buf[k..eq] == b"time") {
        return invalid(format!(
            "invalid tag key: input tag \"time\" on measurement \"{measurement}\" is invalid"
        ));
    }

    // Fields.
    while i < end && is_blank(buf[i]) {
        i += 1;
    }
    if i >= end {
        return invalid("missing fields");
    }
    loop {
        let field_start = i;
        loop {
            if i >= end {
                return invalid("invalid field format: a field key without `=`");
            }
            match buf[i] {
                b'\\' if i + 1 < end => i += 2,
                b'=' => break,
                b' ' | b',' => return invalid("invalid field format: a field key without `=`"),
                _ => i += 1,
            }
        }
        if i == field_start {
            return invalid("missing field key");
        }
        let raw_key = &buf[field_start..i];
        if key_len + 4 + raw_key.len() > MAX_KEY_LENGTH {
            return invalid(format!(
                "max key length exceeded: {} > {MAX_KEY_LENGTH}",
                key_len + 4 + raw_key.len()
            ));
        }
        i += 1;
        if i >= end || matches!(buf[i], b',' | b' ') {
            return invalid(format!(
                "missing field value for \"{}\"",
                String::from_utf8_lossy(raw_key)
            ));
        }
        let value = if buf[i] == b'"' {
            let (raw, close, crossed) = scan_string(buf, i + 1, eof)?;
            i = close + 1;
            if crossed {
                // The string ran over newlines: the point ends at the first newline after it.
                line_end = match find_newline(buf, i) {
                    Some(n) => n,
                    None if eof => buf.len(),
                    None => return Err(Stop::Incomplete),
                };
                end = strip_cr(buf, i, line_end);
            }
            Value::String(unescape(raw, b"\\\""))
        } else {
            let token_start = i;
            while i < end && !matches!(buf[i], b',' | b' ') {
                i += 1;
            }
            parse_value(&buf[token_start..i])?
        };
        let key = unescape(raw_key, b",\"= ");
        // InfluxDB drops fields named `time` without a word.
        if key != "time" {
            fields.push(Field { key, value });
        }
        if i >= end {
            break;
        }
        match buf[i] {
            b',' => {
                i += 1;
                if i >= end || buf[i] == b' ' {
                    return invalid("missing field key after `,`");
                }
            }
            b' ' => break,
            _ => return invalid("invalid field format: bytes after a string's closing quote"),
        }
    }
    if fields.is_empty() {
        return invalid(format!(
            "invalid field name: input field \"time\" on measurement \"{measurement}\" is invalid"
        ));
    }

    // Timestamp: required here, then nothing but spaces.
    while i < end && is_blank(buf[i]) {
        i += 1;
    }
    if i >= end {
        return invalid("missing timestamp (a file has no \"now\" to default to)");
    }
    let time_start = i;
    if buf[i] == b'-' {
        i += 1;
    }
    while i < end && buf[i] != b' ' {
        if !buf[i].is_ascii_digit() {
            return invalid("bad timestamp");
        }
        i += 1;
    }
    let text = &buf[time_start..i];
    let time = std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Stop::Invalid(format!("bad timestamp {}", String::from_utf8_lossy(text))))?;
    if !(MIN_TIME..=MAX_TIME).contains(&time) {
        return invalid(format!(
            "time {time} outside range [{MIN_TIME}, {MAX_TIME}]"
        ));
    }
    if buf
        .get(i..end)
        .unwrap_or_default()
        .iter()
        .any(|&b| b != b' ')
    {
        return invalid("invalid point: bytes after the timestamp");
    }
    Ok(Head {
        measurement,
        tags,
        time,
        end: line_end,
    })
}

/// The tag set `buf[from..to]` (starting with `,`), sorted by escaped key as InfluxDB sorts it;
/// borrowed when already sorted. Duplicate keys are an error.
fn sorted_tags<'a>(
    buf: &'a [u8],
    from: usize,
    to: usize,
    spans: &mut [(usize, usize, usize)],
) -> Result<Cow<'a, [u8]>, Stop> {
    let key = |span: &(usize, usize, usize)| buf.get(span.0..span.1).unwrap_or_default();
    let sorted = spans.windows(2).all(|w| key(&w[0]) < key(&w[1]));
    if sorted {
        return Ok(Cow::Borrowed(&buf[from..to]));
    }
    spans.sort_by(|a, b| key(a).cmp(key(b)));
    if spans.windows(2).any(|w| key(&w[0]) == key(&w[1])) {
        return invalid("duplicate tags");
    }
    let mut out = Vec::with_capacity(to - from);
    for &(k, _, end) in spans.iter() {
        out.push(b',');
        out.extend_from_slice(&buf[k..end]);
    }
    Ok(Cow::Owned(out))
}

/// Scans a string value whose first byte (after the opening quote) is at `from`. Returns its raw
/// bytes, the index of the closing quote, and whether it contains a newline.
fn scan_string(buf: &[u8], from: usize, eof: bool) -> Result<(&[u8], usize, bool), Stop> {
    let cut = || {
        if eof {
            invalid("unbalanced quotes")
        } else {
            Err(Stop::Incomplete)
        }
    };
    let mut j = from;
    let mut crossed = false;
    loop {
        let Some(&b) = buf.get(j) else {
            return cut();
        };
        match b {
            b'\\' => {
                let Some(&next) = buf.get(j + 1) else {
                    return cut();
                };
                crossed |= next == b'\n';
                j += 2;
            }
            b'"' => return Ok((&buf[from..j], j, crossed)),
            b'\n' => {
                crossed = true;
                j += 1;
            }
            _ => j += 1,
        }
    }
}

/// Parses a number or boolean value token.
fn parse_value(token: &[u8]) -> Result<Value<'static>, Stop> {
    let Some(&first) = token.first() else {
        return invalid("missing field value");
    };
    let shown = || String::from_utf8_lossy(token).into_owned();
    if first.is_ascii_digit() || first == b'.' || first == b'-' {
        return parse_number(token)
            .map_err(|message| Stop::Invalid(format!("{message}: {}", shown())));
    }
    if first == b'N' || first == b'n' {
        return invalid(format!(
            "invalid number (NaN is not supported): {}",
            shown()
        ));
    }
    match token {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" => Ok(Value::Boolean(true)),
        b"f" | b"F" | b"false" | b"False" | b"FALSE" => Ok(Value::Boolean(false)),
        _ => invalid(format!("invalid boolean: {}", shown())),
    }
}

/// Parses `-?digits i`, `digits u` or a finite float without sign prefix `+`, hex or words.
fn parse_number(token: &[u8]) -> Result<Value<'static>, &'static str> {
    let text = std::str::from_utf8(token).map_err(|_| "invalid number")?;
    if let Some(body) = text.strip_suffix('i') {
        let digits = body.strip_prefix('-').unwrap_or(body);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid number");
        }
        return body
            .parse()
            .map(Value::Integer)
            .map_err(|_| "unable to parse integer (out of range)");
    }
    if let Some(body) = text.strip_suffix('u') {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid number");
        }
        return body
            .parse()
            .map(Value::Unsigned)
            .map_err(|_| "unable to parse unsigned (out of range)");
    }
    let allowed = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E');
    if !text.bytes().all(allowed) || !text.bytes().any(|b| b.is_ascii_digit()) {
        return Err("invalid number");
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Value::Float(v)),
        Ok(_) => Err("invalid float (out of range)"),
        Err(_) => Err("invalid number"),
    }
}

/// Unescapes `\c` for every `c` in `codes` (other backslashes stay) and decodes UTF-8 lossily;
/// borrows when nothing changes.
fn unescape<'a>(raw: &'a [u8], codes: &[u8]) -> Cow<'a, str> {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\\'
            && let Some(&next) = raw.get(i + 1)
            && codes.contains(&next)
        {
            out.push(next);
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Cow::Owned(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed point with owned parts, for comparisons.
    #[derive(Debug, Clone, PartialEq)]
    struct Owned {
        measurement: String,
        tags: Vec<(String, String)>,
        fields: Vec<(String, Value<'static>)>,
        time: i64,
        line: usize,
    }

    fn owned_value(v: &Value<'_>) -> Value<'static> {
        match v {
            Value::Float(x) => Value::Float(*x),
            Value::Integer(x) => Value::Integer(*x),
            Value::Unsigned(x) => Value::Unsigned(*x),
            Value::Boolean(x) => Value::Boolean(*x),
            Value::String(s) => Value::String(Cow::Owned(s.to_string())),
        }
    }

    fn own(point: &Point<'_>, fields: &[Field<'_>]) -> Owned {
        Owned {
            measurement: point.measurement.to_string(),
            tags: tag_pairs(&point.tags),
            fields: fields
                .iter()
                .map(|f| (f.key.to_string(), owned_value(&f.value)))
                .collect(),
            time: point.time,
            line: point.line,
        }
    }

    fn parse(input: &str) -> Result<Vec<Owned>, LineError> {
        parse_bytes(input.as_bytes())
    }

    fn parse_bytes(input: &[u8]) -> Result<Vec<Owned>, LineError> {
        let mut parser = Parser::new(input, 1, true);
        let mut fields = Vec::new();
        let mut out = Vec::new();
        while let Some(point) = parser.next_point(&mut fields)? {
            out.push(own(&point, &fields));
        }
        assert_eq!(parser.consumed(), input.len());
        Ok(out)
    }

    /// Parses as the file loader does: the input arrives in pieces of `piece` bytes.
    fn parse_in_pieces(input: &[u8], piece: usize) -> Result<Vec<Owned>, LineError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut line = 1;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let take = piece.min(input.len() - offset);
            buf.extend_from_slice(&input[offset..offset + take]);
            offset += take;
            let eof = offset == input.len();
            let mut parser = Parser::new(&buf, line, eof);
            let mut fields = Vec::new();
            while let Some(point) = parser.next_point(&mut fields)? {
                out.push(own(&point, &fields));
            }
            let consumed = parser.consumed();
            line = parser.line();
            buf.drain(..consumed);
            if eof {
                assert!(buf.is_empty());
                return Ok(out);
            }
        }
    }

    fn one(input: &str) -> Owned {
        let mut points = parse(input).unwrap();
        assert_eq!(points.len(), 1, "{points:?}");
        points.remove(0)
    }

    fn err(input: &str) -> LineError {
        parse(input).expect_err(input)
    }

    fn s(text: &str) -> Value<'static> {
        Value::String(Cow::Owned(text.to_owned()))
    }

    #[test]
    fn every_value_type() {
        let p = one(
            "m a=1,b=-1.5,c=2e3,d=.5,e=3i,f=-4i,g=5u,h=t,i=FALSE,j=\"x\",k=1.E-2,l=0,m=-0 17\n",
        );
        assert_eq!(p.measurement, "m");
        assert!(p.tags.is_empty());
        assert_eq!(p.time, 17);
        assert_eq!(
            p.fields,
            vec![
                ("a".to_owned(), Value::Float(1.0)),
                ("b".to_owned(), Value::Float(-1.5)),
                ("c".to_owned(), Value::Float(2000.0)),
                ("d".to_owned(), Value::Float(0.5)),
                ("e".to_owned(), Value::Integer(3)),
                ("f".to_owned(), Value::Integer(-4)),
                ("g".to_owned(), Value::Unsigned(5)),
                ("h".to_owned(), Value::Boolean(true)),
                ("i".to_owned(), Value::Boolean(false)),
                ("j".to_owned(), s("x")),
                ("k".to_owned(), Value::Float(0.01)),
                ("l".to_owned(), Value::Float(0.0)),
                ("m".to_owned(), Value::Float(-0.0)),
            ]
        );
        assert_eq!(
            one("m i=9223372036854775807i,j=-9223372036854775808i,u=18446744073709551615u 1")
                .fields,
            vec![
                ("i".to_owned(), Value::Integer(i64::MAX)),
                ("j".to_owned(), Value::Integer(i64::MIN)),
                ("u".to_owned(), Value::Unsigned(u64::MAX)),
            ]
        );
    }

    #[test]
    fn every_boolean_spelling() {
        for (text, v) in [
            ("t", true),
            ("T", true),
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("f", false),
            ("F", false),
            ("false", false),
            ("False", false),
            ("FALSE", false),
        ] {
            assert_eq!(
                one(&format!("m b={text} 1")).fields,
                vec![("b".to_owned(), Value::Boolean(v))],
                "{text}"
            );
        }
        for bad in ["tRUE", "yes", "truee", "fals", "x", "tru"] {
            assert!(
                err(&format!("m b={bad} 1"))
                    .message
                    .contains("invalid boolean"),
                "{bad}"
            );
        }
    }

    #[test]
    fn escapes_in_names_tags_fields_and_strings() {
        let p = one(concat!(
            r"my\ meas\,ure\=x,t\ k\,1\==v\ 1\,\=2 ",
            r#"f\ k\,\=\"=1,s="a \"q\" b\\ c\d",back=" \\" 5"#
        ));
        assert_eq!(p.measurement, r"my meas,ure\=x");
        assert_eq!(p.tags, vec![("t k,1=".to_owned(), "v 1,=2".to_owned())]);
        assert_eq!(
            p.fields,
            vec![
                ("f k,=\"".to_owned(), Value::Float(1.0)),
                ("s".to_owned(), s(r#"a "q" b\ c\d"#)),
                ("back".to_owned(), s(r" \")),
            ]
        );
        // Quotes are literal in keys; a string may hold commas, spaces and `=`.
        let p = one(r#"m"q,t"ag=v"al f"k="a, b=c" 1"#);
        assert_eq!(p.measurement, "m\"q");
        assert_eq!(p.tags, vec![("t\"ag".to_owned(), "v\"al".to_owned())]);
        assert_eq!(p.fields, vec![("f\"k".to_owned(), s("a, b=c"))]);
        // Empty string.
        assert_eq!(one(r#"m s="" 1"#).fields, vec![("s".to_owned(), s(""))]);
    }

    #[test]
    fn tags_are_sorted_and_kept_escaped() {
        let input = "m,b=2,a=1,c\\ x=3 f=1 1";
        let mut parser = Parser::new(input.as_bytes(), 1, true);
        let mut fields = Vec::new();
        let point = parser.next_point(&mut fields).unwrap().unwrap();
        assert_eq!(&*point.tags, b",a=1,b=2,c\\ x=3");
        assert!(matches!(point.tags, Cow::Owned(_)));
        let input = "m,a=1,b=2 f=1 1";
        let mut parser = Parser::new(input.as_bytes(), 1, true);
        let point = parser.next_point(&mut fields).unwrap().unwrap();
        assert!(matches!(point.tags, Cow::Borrowed(b",a=1,b=2")));
        assert!(matches!(point.measurement, Cow::Borrowed("m")));
    }

    #[test]
    fn comments_blank_lines_ddl_and_crlf() {
        let input = "# INFLUXDB EXPORT: 1677-09-21T00:12:43Z - 2262-04-11T23:47:16Z\n\
                     # DDL\n\
                     CREATE DATABASE efd WITH NAME autogen\n\
                     # DML\n\
                     # CONTEXT-DATABASE:efd\n\
                     \n   \t\n\
                     m f=1 10\r\n\
                     \r\n\
                       \tm f=2 20   \n\
                     # trailing comment without newline";
        let points = parse(input).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!((points[0].time, points[0].line), (10, 8));
        assert_eq!((points[1].time, points[1].line), (20, 10));
        // `CREATE DATABASE=...` is a point, not DDL.
        let p = one("CREATE DATABASE=1 5");
        assert_eq!(p.measurement, "CREATE");
        assert_eq!(p.fields, vec![("DATABASE".to_owned(), Value::Float(1.0))]);
    }

    #[test]
    fn a_comment_opening_a_string_runs_on_as_in_influxdb() {
        // influxd 1.6 writes nothing for this body: the comment swallows both points.
        assert_eq!(parse("# a=\"b\nm f=1 1\nm f=2 2\n").unwrap(), vec![]);
        // The string closes on line 2; the point after it counts.
        let points = parse("# x=\"b\nm f=1 1\"\nm f=2 4\n").unwrap();
        assert_eq!((points.len(), points[0].time, points[0].line), (1, 4, 3));
        // Quotes alone, or before any `=`, do not open strings.
        assert_eq!(parse("#\"\nm f=1 1\n# \"x=\nm f=1 2\n").unwrap().len(), 2);
    }

    #[test]
    fn strings_may_span_lines_and_line_numbers_follow() {
        let input = "m s=\"one\ntwo\\\"\nthree\" 1\nm f=1 2\nm f=x 3\n";
        let e = err(input);
        assert_eq!(e.line, 5, "{e:?}");
        let points = parse("m s=\"one\ntwo\" 1\nm f=1 2\n").unwrap();
        assert_eq!(points[0].fields, vec![("s".to_owned(), s("one\ntwo"))]);
        assert_eq!((points[1].time, points[1].line), (2, 3));
    }

    #[test]
    fn fields_named_time_are_dropped_and_time_tags_rejected() {
        assert_eq!(
            one("m time=1,f=2 1").fields,
            vec![("f".to_owned(), Value::Float(2.0))]
        );
        assert!(err("m time=1 1").message.contains("invalid field name"));
        assert!(err("m,time=1 f=1 1").message.contains("invalid tag key"));
    }

    #[test]
    fn duplicate_fields_stay_in_order() {
        assert_eq!(
            one("m a=1,a=2 1").fields,
            vec![
                ("a".to_owned(), Value::Float(1.0)),
                ("a".to_owned(), Value::Float(2.0))
            ]
        );
    }

    #[test]
    fn timestamps_negative_bounds_and_errors() {
        assert_eq!(one("m f=1 -5").time, -5);
        assert_eq!(one(&format!("m f=1 {MIN_TIME}")).time, MIN_TIME);
        assert_eq!(one(&format!("m f=1 {MAX_TIME}")).time, MAX_TIME);
        assert!(
            err(&format!("m f=1 {}", i64::MAX))
                .message
                .contains("outside range")
        );
        assert!(
            err(&format!("m f=1 {}", i64::MIN))
                .message
                .contains("outside range")
        );
        assert!(
            err("m f=1 99999999999999999999")
                .message
                .contains("bad timestamp")
        );
        assert!(err("m f=1 12a").message.contains("bad timestamp"));
        assert!(err("m f=1 1.5").message.contains("bad timestamp"));
        assert!(err("m f=1 -").message.contains("bad timestamp"));
        assert!(err("m f=1 1 2").message.contains("after the timestamp"));
        assert!(err("m f=1").message.contains("missing timestamp"));
        assert!(err("m f=1   ").message.contains("missing timestamp"));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, &str)] = &[
            ("m f=NaN 1", "NaN"),
            ("m f=nan 1", "NaN"),
            ("m f=-NaN 1", "invalid number"),
            ("m f=inf 1", "invalid boolean"),
            ("m f=-inf 1", "invalid number"),
            ("m f=1e400 1", "out of range"),
            ("m f=1e 1", "invalid number"),
            ("m f=1.2.3 1", "invalid number"),
            ("m f=+1 1", "invalid boolean"),
            ("m f=0x10 1", "invalid number"),
            ("m f=- 1", "invalid number"),
            ("m f=1.5i 1", "invalid number"),
            ("m f=9223372036854775808i 1", "out of range"),
            ("m f=-1u 1", "invalid number"),
            ("m f=18446744073709551616u 1", "out of range"),
            ("m f= 1", "missing field value"),
            ("m f=,g=1 1", "missing field value"),
            ("m f=1, 1", "missing field key"),
            ("m =1 1", "missing field key"),
            ("m f 1", "invalid field format"),
            ("m f=1,g 1", "invalid field format"),
            ("m f=\"abc 1", "unbalanced quotes"),
            ("m f=\"abc\"x 1", "closing quote"),
            ("m", "missing fields"),
            ("m,t=1", "missing fields"),
            ("m ", "missing fields"),
            (",t=1 f=1 1", "missing measurement"),
            ("m,=1 f=1 1", "missing tag key"),
            ("m,t f=1 1", "missing tag value"),
            ("m,t= f=1 1", "missing tag value"),
            ("m,t=a=b f=1 1", "invalid tag format"),
            ("m,b=1,a=2,b=3 f=1 1", "duplicate tags"),
            ("m,a=1,a=2 f=1 1", "duplicate tags"),
        ];
        for (bad, expected) in cases {
            let input = format!("# header\nm ok=1 1\n{bad}\nm ok=1 2\n");
            let e = parse(&input).expect_err(bad);
            assert_eq!(e.line, 3, "{bad}: {e:?}");
            assert!(
                e.message.contains(expected),
                "{bad}: expected {expected:?} in {:?}",
                e.message
            );
        }
    }

    #[test]
    fn over_long_keys_are_rejected() {
        let long = "k".repeat(MAX_KEY_LENGTH);
        assert!(
            err(&format!("{long} f=1 1"))
                .message
                .contains("max key length")
        );
        let field = "f".repeat(MAX_KEY_LENGTH - 4);
        assert!(
            err(&format!("m {field}=1 1"))
                .message
                .contains("max key length")
        );
        let field = "f".repeat(MAX_KEY_LENGTH - 5);
        assert_eq!(one(&format!("m {field}=1 1")).fields.len(), 1);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let p = parse_bytes(b"m\xff f=\"a\xfeb\" 1").unwrap();
        assert_eq!(p[0].measurement, "m\u{fffd}");
        assert_eq!(p[0].fields, vec![("f".to_owned(), s("a\u{fffd}b"))]);
    }

    #[test]
    fn quirks_kept_from_influxdb() {
        // A tag value may start with `=`; a backslash before a delimiter escapes it even when it is
        // itself escaped (InfluxDB looks only at the byte before).
        assert_eq!(
            one("m,t==x f=1 1").tags,
            vec![("t".to_owned(), "=x".to_owned())]
        );
        assert_eq!(
            one(r"m,t=a\\,u f=1 1").tags,
            vec![("t".to_owned(), r"a\,u".to_owned())]
        );
        assert!(
            err(r"m,t=a\\,u=b f=1 1")
                .message
                .contains("invalid tag format")
        );
        // Several blanks between sections.
        assert_eq!(one("m  \t f=1 \t 7").time, 7);
    }

    #[test]
    fn pieces_parse_like_the_whole() {
        let input = concat!(
            "# comment\n",
            "CREATE DATABASE efd\n",
            "m,b=2,a=1 f=1,s=\"multi\nline \\\" string\" 10\r\n",
            "\n",
            "other\\ m f=2i,g=t 20\n",
            "m,a=1,b=2 s=\"x\" 30"
        )
        .as_bytes();
        let whole = parse_bytes(input).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[2].line, 7);
        for piece in 1..input.len() + 1 {
            assert_eq!(
                parse_in_pieces(input, piece).unwrap(),
                whole,
                "piece {piece}"
            );
        }
        let bad = b"m f=1 1\nm f=\"never closed\n 2\n";
        for piece in 1..bad.len() + 1 {
            let e = parse_in_pieces(bad, piece).unwrap_err();
            assert_eq!(e.line, 2, "piece {piece}");
            assert!(e.message.contains("unbalanced"));
        }
    }

    /// A tiny deterministic generator (xorshift) for the robustness test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let seeds: &[&[u8]] = &[
            b"m,t=a\\ b,u=c f=1,g=\"x\\\"y\",h=3i,k=t 123\n",
            b"# c\nCREATE DATABASE x\nm f=1e5 -1\r\n\n",
            b"m\\,n\\ o,t\\==\\, s=\"a\nb\" 1\n",
        ];
        let alphabet = b"m,=\\\" \n\r\t#0123456789.-+eEiutfTFN\xff\x00xyz";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..20_000 {
            let seed = seeds[round % seeds.len()];
            let mut input = seed.to_vec();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(input.len() + 1);
                match rng.below(3) {
                    0 if at < input.len() => {
                        input.remove(at);
                    }
                    1 if at < input.len() => input[at] = alphabet[rng.below(alphabet.len())],
                    _ => input.insert(at, alphabet[rng.below(alphabet.len())]),
                }
            }
            let whole = parse_bytes(&input);
            let piece = 1 + rng.below(input.len() + 1);
            let pieces = parse_in_pieces(&input, piece);
            match (&whole, &pieces) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("{input:?}: {whole:?} vs {pieces:?}"),
            }
        }
    }
}
