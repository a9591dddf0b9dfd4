//! The InfluxQL-over-HTTP source: `POST {base}/query` with `db`, `epoch=ns` and `chunked=true`.
//!
//! Each statement is retried with exponential backoff and full jitter on connection errors,
//! timeouts, truncated streams, HTTP 429 and 5xx, up to `max_attempts`; InfluxQL errors and other 4xx
//! are permanent at once. At most `concurrency` requests are in flight per source. Responses are
//! streamed and parsed document by document, so memory holds the frame being built and one chunk.
//! Selects of more than [`MAX_FIELDS_PER_QUERY`] fields run as concurrent chunks joined on
//! timestamp ([`crate::merge`]). Field types come from `SHOW FIELD KEYS`, cached per topic.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::try_join_all;
use tokio::sync::Semaphore;
use transform_core::{AggregateFn, ColumnData, Frame, FrameColumn, MAX_FIELDS_PER_QUERY, redact};
use url::Url;

use crate::error::EfdError;

/// A topic's field keys, filled by the first `SHOW FIELD KEYS` that succeeds.
type FieldKeysCell = tokio::sync::OnceCell<Arc<Vec<FieldKey>>>;
use crate::influxql;
use crate::json::{Accumulator, ColumnKind};
use crate::merge::outer_join;
use crate::msgpack;
use crate::options::{EfdLocation, EfdOptions, ResponseFormat};
use crate::source::{EfdSource, FieldKey, FieldType, Select};

/// The field used to tell apart rows with equal timestamps across chunks, when a select has it.
const CHUNK_KEY_FIELD: &str = "salIndex";
/// The longest response-body excerpt kept in an error.
const BODY_EXCERPT: usize = 300;

/// An InfluxDB reached over HTTP(S).
#[derive(Debug)]
pub struct HttpSource {
    client: reqwest::Client,
    query_url: Url,
    endpoint: String,
    options: EfdOptions,
    permits: Semaphore,
    /// Field keys per topic, fetched once: concurrent askers wait for the first fetch.
    field_keys: Mutex<HashMap<String, Arc<FieldKeysCell>>>,
    /// Held by a prefetch, so tasks starting together send one `SHOW FIELD KEYS`, not one each.
    prefetching: tokio::sync::Mutex<()>,
    stats: crate::stats::StatsCounters,
}

impl HttpSource {
    /// A source for `options` (whose location must be HTTP). No request is made yet.
    pub fn new(options: EfdOptions) -> Result<HttpSource, EfdError> {
        let EfdLocation::Http(base) = &options.location else {
            return Err(EfdError::Config {
                message: format!("{} is not an HTTP location", options.location),
            });
        };
        let query_url = Url::parse(&format!("{}/query", base.as_str().trim_end_matches('/')))
            .map_err(|e| EfdError::Config {
                message: format!("cannot form the /query URL: {e}"),
            })?;
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("transformed-efd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EfdError::Config {
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpSource {
            client,
            query_url,
            endpoint: base.to_string(),
            permits: Semaphore::new(options.concurrency.max(1)),
            options,
            field_keys: Mutex::new(HashMap::new()),
            prefetching: tokio::sync::Mutex::new(()),
            stats: crate::stats::StatsCounters::default(),
        })
    }

    fn measurement(&self, topic: &str) -> String {
        influxql::measurement(
            &self.options.database,
            &self.options.retention_policy,
            topic,
        )
    }

    fn secrets(&self) -> Vec<&str> {
        self.options.password.iter().map(|p| p.expose()).collect()
    }

    /// Runs one statement with retries; `make` builds a fresh accumulator for each attempt.
    async fn run(
        &self,
        topic: &str,
        statement: &str,
        make: &(dyn Fn() -> Accumulator + Sync),
    ) -> Result<Frame, EfdError> {
        self.with_retries(topic, |attempt| {
            self.attempt(topic, statement, make(), attempt)
        })
        .await?
        .finish()
    }

    /// Counts one statement and runs `attempt_fn` (given the attempt number, from 1) until it succeeds,
    /// fails permanently, or the attempts allowed are spent, backing off between transient failures.
    async fn with_retries<T, F, Fut>(&self, topic: &str, mut attempt_fn: F) -> Result<T, EfdError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, EfdError>>,
    {
        let attempts = self.options.max_attempts.max(1);
        let mut attempt = 1;
        self.stats.statement();
        loop {
            match attempt_fn(attempt).await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_transient() && attempt < attempts => {
                    let delay = self.backoff(attempt);
                    tracing::warn!(
                        message = "EFD request failed; retrying.",
                        event = "influx_request_retry",
                        topic,
                        attempt,
                        max_attempts = attempts,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %e
                    );
                    self.stats.retry();
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Exponential backoff with full jitter: uniform in `[d/2, d]`, `d = base · 2^(attempt−1)`
    /// capped at `backoff_max`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .options
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.options.backoff_max);
        #[allow(clippy::cast_precision_loss)] // A fraction from 53 random bits.
        let jitter = (RandomState::new().hash_one(attempt) >> 11) as f64 / (1u64 << 53) as f64;
        exp.mul_f64(0.5 + 0.5 * jitter)
    }

    async fn attempt(
        &self,
        topic: &str,
        statement: &str,
        mut acc: Accumulator,
        attempt: u32,
    ) -> Result<Accumulator, EfdError> {
        let _permit = self.acquire(topic, statement, attempt).await?;
        let mut request = self.request(statement, true);
        if self.options.response_format == ResponseFormat::Msgpack {
            request = request.header(reqwest::header::ACCEPT, msgpack::MEDIA_TYPE);
        }
        let sent = std::time::Instant::now();
        let result = self.exchange(topic, request, &mut acc, attempt).await;
        self.stats.in_flight(sent.elapsed());
        result.map(|()| acc)
    }

    /// Waits for a request slot (at most `concurrency` in flight) and logs the statement.
    async fn acquire(
        &self,
        topic: &str,
        statement: &str,
        attempt: u32,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, EfdError> {
        let permit = self.permits.acquire().await.map_err(|_| EfdError::Config {
            message: "the EFD source was shut down".to_owned(),
        })?;
        tracing::debug!(
            message = "EFD query.",
            event = "efd_query",
            topic,
            attempt,
            statement
        );
        Ok(permit)
    }

    /// A `/query` POST of `statement` (streamed in chunks when `chunked`), with the credentials,
    /// counted as one request.
    fn request(&self, statement: &str, chunked: bool) -> reqwest::RequestBuilder {
        let chunk_size = self.options.chunk_size.to_string();
        let mut params = vec![("db", self.options.database.as_str()), ("epoch", "ns")];
        if chunked {
            params.extend([("chunked", "true"), ("chunk_size", chunk_size.as_str())]);
        }
        let mut request = self
            .client
            .post(self.query_url.clone())
            .query(&params)
            .form(&[("q", statement)]);
        if let Some((user, password)) = self.options.credentials() {
            request = request.basic_auth(user, Some(password.expose()));
        }
        self.stats.request();
        request
    }

    /// Sends `request` and feeds the streamed response to `acc`.
    async fn exchange(
        &self,
        topic: &str,
        request: reqwest::RequestBuilder,
        acc: &mut Accumulator,
        attempt: u32,
    ) -> Result<(), EfdError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(topic, attempt, &e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(EfdError::Http {
                topic: topic.to_owned(),
                status: status.as_u16(),
                attempts: attempt,
                body: self.body_excerpt(&body),
            });
        }
        // Parsed as what the server says it sent, whatever was asked for.
        let is_msgpack = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(msgpack::MEDIA_TYPE));
        let mut buffer: Vec<u8> = Vec::new();
        let mut splitter = msgpack::Splitter::default();
        // Bytes at the front of `buffer` already searched for a newline (a JSON document in
        // progress is searched once, not again at every piece of it).
        let mut searched = 0;
        while let Some(bytes) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(topic, attempt, &e))?
        {
            self.stats.bytes(bytes.len());
            buffer.extend_from_slice(&bytes);
            let mut start = 0;
            if is_msgpack {
                start = splitter.feed(acc, &buffer)?;
            } else {
                while let Some(pos) = buffer[searched..].iter().position(|&b| b == b'\n') {
                    let end = searched + pos;
                    let line = &buffer[start..end];
                    if line.iter().any(|b| !b.is_ascii_whitespace()) {
                        acc.feed(line)?;
                    }
                    start = end + 1;
                    searched = start;
                }
            }
            buffer.drain(..start);
            searched = buffer.len();
        }
        if is_msgpack && !buffer.is_empty() {
            // The stream ended inside a document.
            return Err(self.truncated(topic, attempt));
        }
        if !is_msgpack && buffer.iter().any(|b| !b.is_ascii_whitespace()) {
            // A last document without its newline: complete if it parses; cut short if it does not.
            acc.feed(&buffer).map_err(|e| match e {
                EfdError::Response { .. } => self.truncated(topic, attempt),
                other => other,
            })?;
        }
        if acc.expects_more() {
            return Err(self.truncated(topic, attempt));
        }
        Ok(())
    }

    /// Statements, requests, bytes and time in flight so far.
    pub fn stats(&self) -> crate::stats::EfdStats {
        self.stats.snapshot()
    }

    fn truncated(&self, topic: &str, attempt: u32) -> EfdError {
        EfdError::Connect {
            endpoint: self.endpoint.clone(),
            topic: topic.to_owned(),
            attempts: attempt,
            message: "the response stream ended before its last chunk".to_owned(),
        }
    }

    fn transport_error(&self, topic: &str, attempt: u32, e: &reqwest::Error) -> EfdError {
        if e.is_timeout() {
            return EfdError::Timeout {
                topic: topic.to_owned(),
                attempts: attempt,
                timeout_secs: self.options.request_timeout.as_secs(),
            };
        }
        // reqwest's message names the URL, which never holds credentials here; redact anyway.
        let message = transform_core::error_chain(e);
        EfdError::Connect {
            endpoint: self.endpoint.clone(),
            topic: topic.to_owned(),
            attempts: attempt,
            message: redact(&message, &self.secrets()),
        }
    }

    fn body_excerpt(&self, body: &[u8]) -> String {
        // InfluxDB puts its message in {"error": "..."}, in JSON or in the MessagePack asked for;
        // show that when it does.
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let text = serde_json::from_slice::<ErrorBody>(body)
            .or_else(|_| rmp_serde::from_slice::<ErrorBody>(body))
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_owned());
        let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
        redact(&excerpt, &self.secrets())
    }

    /// The field keys of a topic, from the cache or one `SHOW FIELD KEYS` per topic and process
    /// (tasks asking at once wait for the same statement; a failed fetch is tried again later).
    async fn cached_field_keys(&self, topic: &str) -> Result<Arc<Vec<FieldKey>>, EfdError> {
        let cell = Arc::clone(self.lock_cache().entry(topic.to_owned()).or_default());
        let keys = cell
            .get_or_try_init(|| async {
                let statement = influxql::show_field_keys(&self.measurement(topic));
                let frame = self
                    .run(topic, &statement, &|| {
                        Accumulator::new(topic, HashMap::new(), ColumnKind::Str)
                    })
                    .await?;
                Ok::<_, EfdError>(Arc::new(field_keys_from(topic, &frame)?))
            })
            .await?;
        Ok(Arc::clone(keys))
    }

    /// Fills the field-key cache for the `topics` not cached yet with one `SHOW FIELD KEYS FROM a,
    /// b, ...` per 50 topics, instead of one statement per topic at first use. A
    /// topic the EFD does not have gets no field keys (as its own `SHOW FIELD KEYS` would).
    pub async fn prefetch_field_keys(&self, topics: &[&str]) -> Result<(), EfdError> {
        // A second task arriving meanwhile waits, then finds the topics cached.
        let _prefetching = self.prefetching.lock().await;
        let missing: Vec<&str> = {
            let cache = self.lock_cache();
            let mut seen = std::collections::HashSet::new();
            topics
                .iter()
                .copied()
                .filter(|t| seen.insert(*t))
                .filter(|t| cache.get(*t).is_none_or(|c| !c.initialized()))
                .collect()
        };
        for chunk in missing.chunks(PREFETCH_TOPICS) {
            let list: Vec<String> = chunk.iter().map(|t| self.measurement(t)).collect();
            let statement = format!("SHOW FIELD KEYS FROM {}", list.join(", "));
            let body = self.run_whole(chunk[0], &statement).await?;
            let mut by_topic = field_keys_by_measurement(chunk[0], &body)?;
            for topic in chunk {
                let keys = by_topic.remove(*topic).unwrap_or_default();
                let cell = Arc::clone(self.lock_cache().entry((*topic).to_owned()).or_default());
                // Another task may have filled it meanwhile: its answer stands.
                let _ = cell.set(Arc::new(keys));
            }
        }
        Ok(())
    }

    /// Every measurement of the database (`SHOW MEASUREMENTS`).
    pub async fn measurements(&self) -> Result<BTreeSet<String>, EfdError> {
        let body = self
            .run_whole("SHOW MEASUREMENTS", "SHOW MEASUREMENTS")
            .await?;
        Ok(
            rows_by_series("SHOW MEASUREMENTS", &body, "SHOW MEASUREMENTS")?
                .into_values()
                .flatten()
                .filter_map(|row| row.into_iter().next())
                .collect(),
        )
    }

    /// The tag keys of each of `topics` (none for a topic without tags or not in the EFD), with
    /// one `SHOW TAG KEYS FROM a, b, ...` per 50 topics.
    pub async fn tag_keys(
        &self,
        topics: &[&str],
    ) -> Result<HashMap<String, Vec<String>>, EfdError> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for chunk in topics.chunks(PREFETCH_TOPICS) {
            let list: Vec<String> = chunk.iter().map(|t| self.measurement(t)).collect();
            let statement = format!("SHOW TAG KEYS FROM {}", list.join(", "));
            let body = self.run_whole(chunk[0], &statement).await?;
            for (name, rows) in rows_by_series(chunk[0], &body, "SHOW TAG KEYS")? {
                out.entry(name)
                    .or_default()
                    .extend(rows.into_iter().filter_map(|r| r.into_iter().next()));
            }
        }
        Ok(out)
    }

    /// Runs one small statement with retries and returns its whole (unchunked) response body.
    async fn run_whole(&self, topic: &str, statement: &str) -> Result<Vec<u8>, EfdError> {
        self.with_retries(topic, |attempt| {
            self.whole_attempt(topic, statement, attempt)
        })
        .await
    }

    async fn whole_attempt(
        &self,
        topic: &str,
        statement: &str,
        attempt: u32,
    ) -> Result<Vec<u8>, EfdError> {
        let _permit = self.acquire(topic, statement, attempt).await?;
        let request = self.request(statement, false);
        let sent = std::time::Instant::now();
        let result = async {
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(topic, attempt, &e))?;
            let status = response.status();
            let body = response
                .bytes()
                .await
                .map_err(|e| self.transport_error(topic, attempt, &e))?;
            self.stats.bytes(body.len());
            if !status.is_success() {
                return Err(EfdError::Http {
                    topic: topic.to_owned(),
                    status: status.as_u16(),
                    attempts: attempt,
                    body: self.body_excerpt(&body),
                });
            }
            Ok(body.to_vec())
        }
        .await;
        self.stats.in_flight(sent.elapsed());
        result
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<FieldKeysCell>>> {
        // A poisoned cache only means another query panicked mid-insert; the map is still valid.
        self.field_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Topics per `SHOW FIELD KEYS` of [`HttpSource::prefetch_field_keys`].
pub(crate) const PREFETCH_TOPICS: usize = 50;

/// The rows of each series (by name) of a whole `SHOW ...` answer, as strings; `what` names the
/// statement in errors.
fn rows_by_series(
    topic: &str,
    body: &[u8],
    what: &str,
) -> Result<HashMap<String, Vec<Vec<String>>>, EfdError> {
    let bad = |why: &str| EfdError::response(topic, format!("{what}: {why}"));
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(&format!("not JSON: {e}")))?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(EfdError::InfluxQl {
            topic: topic.to_owned(),
            message: error.to_owned(),
        });
    }
    let mut out: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    let results = value
        .get("results")
        .and_then(|r| r.as_array())
        .ok_or_else(|| bad("no results"))?;
    for result in results {
        if let Some(error) = result.get("error").and_then(|e| e.as_str()) {
            return Err(EfdError::InfluxQl {
                topic: topic.to_owned(),
                message: error.to_owned(),
            });
        }
        let series = result.get("series").and_then(|s| s.as_array());
        for s in series.into_iter().flatten() {
            let name = s
                .get("name")
                .and_then(|n| n.as_str())
                .ok_or_else(|| bad("a series without a name"))?;
            let rows = out.entry(name.to_owned()).or_default();
            for row in s
                .get("values")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let cells = row
                    .as_array()
                    .ok_or_else(|| bad("a row that is not a list"))?
                    .iter()
                    .map(|c| c.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| bad("a row with a value that is not a string"))?;
                rows.push(cells);
            }
        }
    }
    Ok(out)
}

/// The field keys of each measurement in the answer to `SHOW FIELD KEYS FROM a, b, ...`.
fn field_keys_by_measurement(
    topic: &str,
    body: &[u8],
) -> Result<HashMap<String, Vec<FieldKey>>, EfdError> {
    let bad = |what: &str| EfdError::response(topic, format!("SHOW FIELD KEYS: {what}"));
    rows_by_series(topic, body, "SHOW FIELD KEYS")?
        .into_iter()
        .map(|(name, rows)| {
            let keys = rows
                .into_iter()
                .map(|row| {
                    let [key, kind] = <[String; 2]>::try_from(row)
                        .map_err(|_| bad("a row without a field key and type"))?;
                    let field_type = FieldType::from_influx(&kind)
                        .ok_or_else(|| bad(&format!("unknown field type `{kind}`")))?;
                    Ok(FieldKey {
                        name: key,
                        field_type,
                    })
                })
                .collect::<Result<Vec<FieldKey>, EfdError>>()?;
            Ok((name, keys))
        })
        .collect()
}

fn field_keys_from(topic: &str, frame: &Frame) -> Result<Vec<FieldKey>, EfdError> {
    let (Some(ColumnData::Str(names)), Some(ColumnData::Str(types))) =
        (frame.column("fieldKey"), frame.column("fieldType"))
    else {
        return if frame.is_empty() {
            Ok(Vec::new())
        } else {
            Err(EfdError::response(
                topic,
                "SHOW FIELD KEYS without fieldKey/fieldType columns",
            ))
        };
    };
    names
        .iter()
        .zip(types)
        .map(|(name, t)| {
            let (Some(name), Some(t)) = (name, t) else {
                return Err(EfdError::response(topic, "a null field key or type"));
            };
            let field_type = FieldType::from_influx(t)
                .ok_or_else(|| EfdError::response(topic, format!("unknown field type `{t}`")))?;
            Ok(FieldKey {
                name: name.clone(),
                field_type,
            })
        })
        .collect()
}

/// How a requested column's values are stored, given the topic's field keys and the aggregation.
fn column_kind(name: &str, keys: &[FieldKey], aggregation: Option<AggregateFn>) -> ColumnKind {
    let types: Vec<FieldType> = keys
        .iter()
        .filter(|k| k.name == name)
        .map(|k| k.field_type)
        .collect();
    if types.is_empty() {
        // A tag key (strings), or a name that does not exist (all null; made float below).
        return ColumnKind::Str;
    }
    if aggregation == Some(AggregateFn::Mean) {
        return ColumnKind::Float;
    }
    // A field written with several types across shards: float holds them all.
    if types.len() > 1
        && types.iter().all(|t| {
            matches!(
                t,
                FieldType::Float | FieldType::Integer | FieldType::Unsigned
            )
        })
    {
        return ColumnKind::Float;
    }
    ColumnKind::of(types[0])
}

impl EfdSource for HttpSource {
    async fn select(&self, select: Select<'_>) -> Result<Frame, EfdError> {
        let keys = self.cached_field_keys(select.topic).await?;
        let function = select.aggregation.map(|a| a.function);
        let kinds: HashMap<String, ColumnKind> = select
            .fields
            .iter()
            .map(|f| (f.clone(), column_kind(f, &keys, function)))
            .collect();
        let measurement = self.measurement(select.topic);
        let key = select
            .fields
            .iter()
            .any(|f| f == CHUNK_KEY_FIELD)
            .then_some(CHUNK_KEY_FIELD);
        let chunked = select.fields.len() > MAX_FIELDS_PER_QUERY;
        let statements: Vec<String> = select
            .fields
            .chunks(MAX_FIELDS_PER_QUERY)
            .map(|chunk| {
                let mut fields = chunk.to_vec();
                if let Some(k) = key
                    && chunked
                    && !fields.iter().any(|f| f == k)
                {
                    fields.push(k.to_owned());
                }
                influxql::select(&measurement, &fields, select.range, select.aggregation)
            })
            .collect();
        if chunked {
            tracing::debug!(
                message = "Chunked EFD select.",
                event = "influx_chunked_query",
                topic = select.topic,
                fields = select.fields.len(),
                chunks = statements.len()
            );
        }
        let make = || Accumulator::new(select.topic, kinds.clone(), ColumnKind::Str);
        let frames = try_join_all(
            statements
                .iter()
                .map(|statement| self.run(select.topic, statement, &make)),
        )
        .await?;
        let joined = outer_join(frames, key);
        Ok(shape(
            joined,
            select.fields,
            &keys,
            select.aggregation.is_some(),
        ))
    }

    async fn field_keys(&self, topic: &str) -> Result<Vec<FieldKey>, EfdError> {
        Ok(self.cached_field_keys(topic).await?.as_ref().clone())
    }

    async fn prefetch_field_keys(&self, topics: &[&str]) -> Result<(), EfdError> {
        HttpSource::prefetch_field_keys(self, topics).await
    }

    fn describe(&self) -> String {
        self.endpoint.clone()
    }
}

/// The requested columns in request order; names unknown to the topic and absent or all-null become
/// all-missing float columns (as the file source gives them); with aggregation, buckets where every
/// field is missing are dropped.
fn shape(frame: Frame, fields: &[String], keys: &[FieldKey], aggregated: bool) -> Frame {
    let (timestamps, mut columns) = frame.into_parts();
    let n = timestamps.len();
    let mut out: Vec<FrameColumn> = Vec::with_capacity(fields.len());
    for name in fields {
        let taken = columns
            .iter()
            .position(|c| &c.name == name)
            .map(|i| columns.swap_remove(i));
        let known = keys.iter().any(|k| &k.name == name);
        let column = match taken {
            Some(c) if known || (0..n).any(|i| c.data.is_present(i)) => c,
            _ => FrameColumn::new(name.clone(), ColumnData::Float(vec![f64::NAN; n])),
        };
        out.push(column);
    }
    let frame = Frame::new(timestamps, out).unwrap_or_default();
    if aggregated {
        drop_empty_rows(frame)
    } else {
        frame
    }
}

/// The frame without rows where every column is missing.
pub(crate) fn drop_empty_rows(frame: Frame) -> Frame {
    let keep: Vec<usize> = (0..frame.len())
        .filter(|&i| frame.columns().iter().any(|c| c.data.is_present(i)))
        .collect();
    if keep.len() == frame.len() {
        return frame;
    }
    let timestamps = keep.iter().map(|&i| frame.timestamps()[i]).collect();
    let columns = frame
        .columns()
        .iter()
        .map(|c| FrameColumn::new(c.name.clone(), select_rows(&c.data, &keep)))
        .collect();
    Frame::new(timestamps, columns).unwrap_or_default()
}

fn select_rows(data: &ColumnData, rows: &[usize]) -> ColumnData {
    match data {
        ColumnData::Float(v) => ColumnData::Float(rows.iter().map(|&i| v[i]).collect()),
        ColumnData::Int(v) => ColumnData::Int(rows.iter().map(|&i| v[i]).collect()),
        ColumnData::Bool(v) => ColumnData::Bool(rows.iter().map(|&i| v[i]).collect()),
        ColumnData::Str(v) => ColumnData::Str(rows.iter().map(|&i| v[i].clone()).collect()),
    }
}
