//! A synthetic observing night: EFD line protocol, a SQLite Butler registry and a JSON manifest,
//! made deterministically from a column config and a seed.
//!
//! [`Night::generate`] writes into [`SynthOptions::out`]:
//!
//! - `efd.lp`: line protocol (ns timestamps) with every field of every topic the config's
//!   [`QueryPlan`] names. Plain fields are floats (a slow sine per field plus noise); a subset field
//!   (`salIndex`) is an integer field written once per tick for each value the config filters on plus
//!   one other value, the rows a millisecond apart. Packed topics get one row per second holding
//!   [`PACKED_SAMPLES`] samples of each base (`<base>0..9`) and `cRIO_timestamp` (unix TAI seconds of
//!   the first sample), stamped one second after that sample. Topics of columns with a
//!   `start_offset` are events: one row every [`EVENT_PERIOD_MINUTES`] minutes, the first 25 minutes
//!   before the night, so only a look-back finds a value for the first exposures.
//! - Coverage: full rate from [`MARGIN_MINUTES`] before the night to as long after it; one row every
//!   [`LOOKBACK_PERIOD_MINUTES`] over the look-back hours before that
//!   ([`SynthOptions::lookback_hours`], default 2).
//! - `butler/butler.yaml` and `butler/gen3.sqlite3`: a registry with the real column layout
//!   ([`registry::DDL`]) holding the night's exposures and visits.
//! - `night.json`: the [`Manifest`], so tests can compute expected values independently.
//!
//! Rates ([`Rates`]): `Uniform(hz)` writes every plain topic at `hz`; `Realistic` writes mount,
//! encoder and pointing topics at 50 Hz, M1M3/M2/hexapod/rotator/ATAOS topics at 10 Hz, `logevent_`
//! topics once every 10 s, and everything else (ESS, temperatures) at 1 Hz. Either way a topic is
//! slowed so that it writes at most [`SynthOptions::max_values_per_second`] values a second (wide
//! topics of the real configs have hundreds of fields), but never below one row every
//! [`MAX_INTERVAL_SECONDS`]. Values are written with 4 decimals.
//!
//! Sizes (debug build, this machine): the default demo night (demo config, 40 minutes, 40
//! exposures, 1 Hz) is ~4 MB and takes ~0.1 s; 2 hours at realistic rates ~23 MB; the real LSSTCam
//! config over 10 minutes ~29 MB at 1 Hz (wide topics: `ESS.accelerometer` has 1,200 fields).

pub mod registry;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use transform_core::time::tai_minus_utc_seconds;
use transform_core::{
    Config, Instrument, QueryPlan, Semantics, SubsetScalar, SubsetValue, TimeRange, UtcNanos,
};

/// Nanoseconds per second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds per minute.
pub const NANOS_PER_MINUTE: i64 = 60 * NANOS_PER_SECOND;
/// Nanoseconds per hour.
pub const NANOS_PER_HOUR: i64 = 60 * NANOS_PER_MINUTE;
/// The packed-series row time field (as `efd_client::CRIO_TIMESTAMP`).
pub const CRIO_TIMESTAMP: &str = "cRIO_timestamp";
/// Samples per packed row and base.
pub const PACKED_SAMPLES: usize = 10;
/// Minutes between two rows of an event topic.
pub const EVENT_PERIOD_MINUTES: i64 = 10;
/// Minutes between two rows of a plain topic over the look-back hours.
pub const LOOKBACK_PERIOD_MINUTES: i64 = 10;
/// The longest interval [`SynthOptions::max_values_per_second`] slows a topic to, in seconds.
pub const MAX_INTERVAL_SECONDS: i64 = 10;
/// Minutes of full-rate data on each side of the night.
pub const MARGIN_MINUTES: i64 = 5;
/// The default night start: 2025-10-02T01:00:00Z (day_obs 20251001).
pub const DEFAULT_NIGHT_START: UtcNanos = UtcNanos(1_759_366_800 * NANOS_PER_SECOND);

/// How often plain topics are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rates {
    /// Every plain topic at this many rows per second.
    Uniform(f64),
    /// Per kind of topic (see the module documentation).
    Realistic,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Output directory (created if missing; files in it are replaced).
    pub out: PathBuf,
    /// The camera of the exposures.
    pub instrument: Instrument,
    /// The column config whose topics and fields are written.
    pub config: PathBuf,
    /// Start of the night (UTC); the first exposure starts a few seconds later.
    pub night_start: UtcNanos,
    /// Length of the night in minutes.
    pub minutes: u32,
    /// Exposures, spread evenly over the night, 30 s each (shorter if they would not fit).
    pub exposures: u32,
    /// Sample rates of plain topics.
    pub rates: Rates,
    /// Most values (rows × fields) one topic writes per second; slower topics are kept as they are
    /// (64 by default, 1,000 with [`SynthOptions::realistic`]).
    pub max_values_per_second: f64,
    /// Hours of sparse data before the night.
    pub lookback_hours: u32,
    /// Seed of every random choice; the same options give byte-identical files.
    pub seed: u64,
}

impl SynthOptions {
    /// The defaults of the demo: LATISS, `examples/data/demo-config.yaml`, 40 minutes from
    /// [`DEFAULT_NIGHT_START`], 40 exposures, 1 Hz, 2 hours of look-back, seed 1.
    pub fn new(out: impl Into<PathBuf>) -> SynthOptions {
        SynthOptions {
            out: out.into(),
            instrument: Instrument::Latiss,
            config: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-config.yaml"),
            night_start: DEFAULT_NIGHT_START,
            minutes: 40,
            exposures: 40,
            rates: Rates::Uniform(1.0),
            max_values_per_second: 64.0,
            lookback_hours: 2,
            seed: 1,
        }
    }

    /// These options with [`Rates::Realistic`] and a cap of 1,000 values per topic and second.
    pub fn realistic(self) -> SynthOptions {
        SynthOptions {
            rates: Rates::Realistic,
            max_values_per_second: 1000.0,
            ..self
        }
    }
}

/// One exposure or visit of the night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Exposure or visit id (`day_obs * 100000 + seq_num`; a visit has its exposure's id).
    pub id: i64,
    /// The observing day (`YYYYMMDD`, rolling over at 12:00 UTC).
    pub day_obs: i64,
    /// Sequence number within the day, from 1.
    pub seq_num: i64,
    /// Timespan start, UTC ns.
    pub begin_utc_ns: i64,
    /// Timespan end (exclusive), UTC ns.
    pub end_utc_ns: i64,
    /// Whether this is a `visit` record (else `exposure`).
    pub is_visit: bool,
    /// The physical filter.
    pub physical_filter: String,
    /// `science` or `bias` for exposures; `None` for visits.
    pub observation_type: Option<String>,
    /// Seconds.
    pub exposure_time: f64,
}

/// One topic of `efd.lp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTopic {
    /// The measurement.
    pub name: String,
    /// Plain fields (floats; the subset field, if any, is an integer).
    pub fields: Vec<String>,
    /// Packed bases (each written as `<base>0..<base>9`).
    pub packed_bases: Vec<String>,
    /// The subset field and the values written for it (the config's and one other).
    pub subset: Option<(String, Vec<i64>)>,
    /// Whether the topic is a sparse event topic.
    pub event: bool,
    /// Nanoseconds between ticks at full rate (per subset value).
    pub interval_ns: i64,
    /// Rows (lines) written.
    pub rows: u64,
}

/// `night.json`: what was generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The Butler instrument name.
    pub instrument: String,
    /// The config path, as given.
    pub config: String,
    /// The seed.
    pub seed: u64,
    /// Night start, UTC ns.
    pub night_start_utc_ns: i64,
    /// Night end, UTC ns.
    pub night_end_utc_ns: i64,
    /// First timestamp of any data (start of the look-back), UTC ns.
    pub data_start_utc_ns: i64,
    /// Last timestamp bound of any data, UTC ns.
    pub data_end_utc_ns: i64,
    /// Exposures, then visits, each in time order.
    pub items: Vec<ManifestItem>,
    /// Topics in plan order.
    pub topics: Vec<ManifestTopic>,
    /// Size of `efd.lp` in bytes.
    pub efd_bytes: u64,
}

impl Manifest {
    /// Reads a `night.json`.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a manifest", path.display()))
    }

    /// The night as a time range.
    pub fn night(&self) -> TimeRange {
        TimeRange::new(
            UtcNanos(self.night_start_utc_ns),
            UtcNanos(self.night_end_utc_ns),
        )
        .expect("the night has a positive length")
    }
}

/// The files of a generated night.
#[derive(Debug, Clone, PartialEq)]
pub struct NightFiles {
    /// The output directory.
    pub dir: PathBuf,
    /// `efd.lp`.
    pub efd: PathBuf,
    /// The Butler repository directory (holds `butler.yaml`).
    pub butler: PathBuf,
    /// `butler/gen3.sqlite3`.
    pub registry: PathBuf,
    /// `night.json`.
    pub manifest_path: PathBuf,
    /// The manifest written there.
    pub manifest: Manifest,
}

/// The synthetic-night generator.
#[derive(Debug, Clone, Copy)]
pub struct Night;

impl Night {
    /// Generates a night as `options` describe (see the module documentation).
    pub fn generate(options: &SynthOptions) -> anyhow::Result<NightFiles> {
        anyhow::ensure!(options.minutes > 0, "the night must last at least a minute");
        anyhow::ensure!(
            options.max_values_per_second > 0.0,
            "max_values_per_second must be positive"
        );
        if let Rates::Uniform(hz) = options.rates {
            anyhow::ensure!(hz > 0.0 && hz <= 1000.0, "the rate must be in (0, 1000] Hz");
        }
        let config = Config::load(&options.config)?;
        let plan = QueryPlan::new(&config, Semantics::Default);
        let topics = plan_topics(&config, &plan, options);

        let night_start = options.night_start.0;
        let night_end = night_start + i64::from(options.minutes) * NANOS_PER_MINUTE;
        let data_start = night_start
            - i64::from(options.lookback_hours) * NANOS_PER_HOUR
            - MARGIN_MINUTES * NANOS_PER_MINUTE;
        let data_end = night_end + MARGIN_MINUTES * NANOS_PER_MINUTE;

        std::fs::create_dir_all(&options.out)
            .with_context(|| format!("cannot create {}", options.out.display()))?;
        let butler = options.out.join("butler");
        std::fs::create_dir_all(&butler)
            .with_context(|| format!("cannot create {}", butler.display()))?;

        let items = items(options, night_start, night_end);
        let efd = options.out.join("efd.lp");
        let topics = write_efd(&efd, &topics, options, data_start, data_end)?;
        let efd_bytes = std::fs::metadata(&efd)?.len();
        let manifest = Manifest {
            instrument: options.instrument.butler_name().to_owned(),
            config: options.config.display().to_string(),
            seed: options.seed,
            night_start_utc_ns: night_start,
            night_end_utc_ns: night_end,
            data_start_utc_ns: data_start,
            data_end_utc_ns: data_end,
            items,
            topics,
            efd_bytes,
        };

        let registry = butler.join("gen3.sqlite3");
        registry::write(&registry, options.instrument, &manifest)?;
        std::fs::write(
            butler.join("butler.yaml"),
            "# A synthetic Butler repository made by transformed-efd's synth_night example.\n\
             registry:\n  db: \"sqlite:///<butlerRoot>/gen3.sqlite3\"\n",
        )?;
        let manifest_path = options.out.join("night.json");
        let mut json = serde_json::to_string_pretty(&manifest)?;
        json.push('\n');
        std::fs::write(&manifest_path, json)
            .with_context(|| format!("cannot write {}", manifest_path.display()))?;
        Ok(NightFiles {
            dir: options.out.clone(),
            efd,
            butler,
            registry,
            manifest_path,
            manifest,
        })
    }
}

/// Unix UTC nanoseconds of 00:00 UTC on the calendar date `day_obs` (`YYYYMMDD`); 0 for an
/// invalid date.
pub fn day_obs_start_utc(day_obs: i64) -> i64 {
    i32::try_from(day_obs)
        .ok()
        .and_then(transform_core::time::date_start)
        .map_or(0, |t| t.0)
}

/// The observing day of a UTC instant: the UTC date 12 hours earlier, as `YYYYMMDD`.
pub fn day_obs_of(utc: UtcNanos) -> i64 {
    i64::from(transform_core::time::day_obs_of(utc))
}

/// The exposures and visits: evenly spaced slots, each exposure starting 2–5 s into its slot and
/// lasting 30 s (or 3/4 of the slot when shorter). Every seventh exposure (seq 4, 11, ...) is a
/// `bias` without a visit; the others are `science` exposures with a visit of the same id and
/// timespan.
fn items(options: &SynthOptions, night_start: i64, night_end: i64) -> Vec<ManifestItem> {
    let n = i64::from(options.exposures);
    if n == 0 {
        return Vec::new();
    }
    let slot = (night_end - night_start) / n;
    let length = (30 * NANOS_PER_SECOND).min(slot * 3 / 4);
    let mut rng = Rng::new(options.seed ^ 0x5eed_0001);
    let filters = registry::filters(options.instrument);
    let mut exposures = Vec::new();
    let mut visits = Vec::new();
    for i in 0..n {
        let jitter = 2 * NANOS_PER_SECOND + (rng.next_f64() * 3e9) as i64;
        let begin = night_start + i * slot + jitter.min(slot / 8);
        let end = begin + length;
        let day_obs = day_obs_of(UtcNanos(begin));
        let seq_num = i + 1;
        let filter = filters[((i / 10) % 2) as usize].0.to_owned();
        let science = i % 7 != 3;
        let item = ManifestItem {
            id: day_obs * 100_000 + seq_num,
            day_obs,
            seq_num,
            begin_utc_ns: begin,
            end_utc_ns: end,
            is_visit: false,
            physical_filter: filter,
            observation_type: Some(if science { "science" } else { "bias" }.to_owned()),
            exposure_time: length as f64 / 1e9,
        };
        if science {
            visits.push(ManifestItem {
                is_visit: true,
                observation_type: None,
                ..item.clone()
            });
        }
        exposures.push(item);
    }
    exposures.extend(visits);
    exposures
}

/// What is written for one topic.
#[derive(Debug, Clone)]
struct TopicSpec {
    name: String,
    fields: Vec<String>,
    packed_bases: Vec<String>,
    subset_field: Option<String>,
    subset_values: Vec<SubsetScalar>,
    event: bool,
    interval_ns: i64,
}

/// The topics of the plan, merged by name, in plan order.
fn plan_topics(config: &Config, plan: &QueryPlan, options: &SynthOptions) -> Vec<TopicSpec> {
    let mut specs: Vec<TopicSpec> = Vec::new();
    for group in &plan.groups {
        let i = match specs.iter().position(|s| s.name == group.topic) {
            Some(i) => i,
            None => {
                specs.push(TopicSpec {
                    name: group.topic.clone(),
                    fields: Vec::new(),
                    packed_bases: Vec::new(),
                    subset_field: None,
                    subset_values: Vec::new(),
                    event: false,
                    interval_ns: 0,
                });
                specs.len() - 1
            }
        };
        let spec = &mut specs[i];
        for field in &group.fields {
            let list = if group.packed {
                &mut spec.packed_bases
            } else {
                &mut spec.fields
            };
            if !list.contains(field) {
                list.push(field.clone());
            }
        }
        for &c in &group.columns {
            let column = &config.columns[c];
            if column.start_offset_hours.is_some() {
                spec.event = true;
            }
            if let Some(subset) = &column.subset {
                spec.subset_field
                    .get_or_insert_with(|| subset.field.clone());
                let values = match &subset.value {
                    SubsetValue::One(v) => std::slice::from_ref(v),
                    SubsetValue::Any(vs) => vs.as_slice(),
                };
                for v in values {
                    if !spec.subset_values.contains(v) {
                        spec.subset_values.push(v.clone());
                    }
                }
            }
        }
    }
    for spec in &mut specs {
        if let Some(field) = &spec.subset_field {
            spec.fields.retain(|f| f != field);
            // One value no column selects.
            let other = spec
                .subset_values
                .iter()
                .filter_map(|v| match v {
                    SubsetScalar::Int(i) => Some(*i),
                    SubsetScalar::Str(_) => None,
                })
                .max()
                .map_or(SubsetScalar::Str("other".to_owned()), |m| {
                    SubsetScalar::Int(m + 1000)
                });
            spec.subset_values.push(other);
        }
        let hz = match options.rates {
            _ if !spec.packed_bases.is_empty() => 1.0,
            Rates::Uniform(hz) => hz,
            Rates::Realistic => realistic_rate(&spec.name),
        };
        let values_per_tick = (spec.fields.len() + spec.packed_bases.len() * PACKED_SAMPLES).max(1)
            * spec.subset_values.len().max(1);
        let requested = (1e9 / hz).round() as i64;
        let capped = (1e9 * values_per_tick as f64 / options.max_values_per_second).round() as i64;
        // The cap never slows a topic below one row per MAX_INTERVAL_SECONDS (a few per exposure).
        let interval = requested.max(capped.min(MAX_INTERVAL_SECONDS * NANOS_PER_SECOND));
        spec.interval_ns = if spec.packed_bases.is_empty() {
            // Whole milliseconds, longer than the subset rows of one tick (1 ms apart).
            let least = (spec.subset_values.len() as i64 + 1).max(10);
            (interval / 1_000_000).max(least) * 1_000_000
        } else {
            // Packed rows stay one second apart; wide ones every whole number of seconds.
            ((interval + NANOS_PER_SECOND - 1) / NANOS_PER_SECOND).max(1) * NANOS_PER_SECOND
        };
    }
    specs
}

/// The realistic row rate of a topic, by name.
fn realistic_rate(topic: &str) -> f64 {
    let has = |s: &str| topic.contains(s);
    if has("logevent_") {
        0.1
    } else if has("MTMount") || has("ATMCS") || has("Encoder") || has("ATPtg") || has("MTPtg") {
        50.0
    } else if has("MTM1M3") || has("MTM2") || has("Hexapod") || has("Rotator") || has("ATAOS") {
        10.0
    } else {
        1.0
    }
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of four uniforms, centred, unit variance).
    fn noise(&mut self) -> f64 {
        let s: f64 = (0..4).map(|_| self.next_f64()).sum();
        (s - 2.0) * 3f64.sqrt()
    }
}

/// FNV-1a of a string, for per-name constants independent of order.
fn hash(text: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A smooth signal plus noise, its constants drawn from the field name and seed.
#[derive(Debug, Clone, Copy)]
struct Signal {
    offset: f64,
    amplitude: f64,
    period_s: f64,
    phase: f64,
    noise: f64,
}

impl Signal {
    fn new(topic: &str, field: &str, seed: u64) -> Signal {
        let mut rng = Rng::new(hash(&format!("{topic}.{field}"), seed));
        let lower = field.to_ascii_lowercase();
        let (offset, amplitude) = if lower.contains("temperature") || lower.starts_with("ring") {
            (5.0 + 10.0 * rng.next_f64(), 1.0 + rng.next_f64())
        } else if lower.contains("azimuth") {
            (180.0 * rng.next_f64(), 60.0)
        } else if lower.contains("elevation") {
            (60.0, 15.0)
        } else if lower.contains("force") {
            (500.0 * rng.next_f64() - 250.0, 20.0)
        } else {
            (100.0 * rng.next_f64() - 50.0, 1.0 + 4.0 * rng.next_f64())
        };
        Signal {
            offset,
            amplitude,
            period_s: 600.0 + 3000.0 * rng.next_f64(),
            phase: std::f64::consts::TAU * rng.next_f64(),
            noise: amplitude * 0.01,
        }
    }

    fn at(&self, t_ns: i64, rng: &mut Rng) -> f64 {
        let t = (t_ns % (1_000_000 * NANOS_PER_SECOND)) as f64 / 1e9;
        self.offset
            + self.amplitude * (std::f64::consts::TAU * t / self.period_s + self.phase).sin()
            + self.noise * rng.noise()
    }
}

/// Escapes a measurement name for line protocol.
fn escape_measurement(name: &str) -> String {
    name.replace(',', "\\,").replace(' ', "\\ ")
}

/// Escapes a field key for line protocol.
fn escape_key(name: &str) -> String {
    name.replace(',', "\\,")
        .replace('=', "\\=")
        .replace(' ', "\\ ")
}

/// Appends `key=value` (float with 4 decimals) to a line.
fn push_float(line: &mut String, key: &str, value: f64) {
    if !line.ends_with(' ') {
        line.push(',');
    }
    let _ = write!(line, "{key}={value:.4}");
}

/// The tick times of a topic: full rate over `[dense_start, end)`, one every
/// [`LOOKBACK_PERIOD_MINUTES`] from `data_start` to `dense_start`; events as the module says.
fn ticks(spec: &TopicSpec, phase: i64, data_start: i64, dense_start: i64, end: i64) -> Vec<i64> {
    let mut out = Vec::new();
    if spec.event {
        // Sparse events from 25 minutes before the night.
        let first = dense_start + MARGIN_MINUTES * NANOS_PER_MINUTE - 25 * NANOS_PER_MINUTE;
        let mut t = first + phase % NANOS_PER_SECOND;
        while t < end {
            out.push(t);
            t += EVENT_PERIOD_MINUTES * NANOS_PER_MINUTE;
        }
        return out;
    }
    let mut t = data_start + phase % NANOS_PER_MINUTE;
    while t < dense_start {
        out.push(t);
        t += LOOKBACK_PERIOD_MINUTES * NANOS_PER_MINUTE;
    }
    let mut t = dense_start + phase % spec.interval_ns;
    while t < end {
        out.push(t);
        t += spec.interval_ns;
    }
    out
}

/// Writes `efd.lp` and returns the manifest's topics.
fn write_efd(
    path: &Path,
    specs: &[TopicSpec],
    options: &SynthOptions,
    data_start: i64,
    data_end: i64,
) -> anyhow::Result<Vec<ManifestTopic>> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let dense_start = options.night_start.0 - MARGIN_MINUTES * NANOS_PER_MINUTE;
    let mut topics = Vec::new();
    let mut line = String::new();
    for spec in specs {
        let measurement = escape_measurement(&spec.name);
        let mut rng = Rng::new(hash(&spec.name, options.seed ^ 0x0e0f_d000));
        let phase = (rng.next_u64() % 1_000_000_000) as i64;
        let signals: BTreeMap<&str, Signal> = spec
            .fields
            .iter()
            .chain(&spec.packed_bases)
            .map(|f| (f.as_str(), Signal::new(&spec.name, f, options.seed)))
            .collect();
        let fields: Vec<(String, Signal)> = spec
            .fields
            .iter()
            .map(|f| (escape_key(f), signals[f.as_str()]))
            .collect();
        let bases: Vec<(Vec<String>, Signal)> = spec
            .packed_bases
            .iter()
            .map(|b| {
                let keys = (0..PACKED_SAMPLES)
                    .map(|k| escape_key(&format!("{b}{k}")))
                    .collect();
                (keys, signals[b.as_str()])
            })
            .collect();
        let subset: Vec<Option<&SubsetScalar>> = if spec.subset_values.is_empty() {
            vec![None]
        } else {
            spec.subset_values.iter().map(Some).collect()
        };
        let mut rows = 0u64;
        for t in ticks(spec, phase, data_start, dense_start, data_end) {
            for (j, value) in subset.iter().enumerate() {
                line.clear();
                line.push_str(&measurement);
                line.push(' ');
                let mut stamp = t + j as i64 * 1_000_000;
                if let (Some(field), Some(value)) = (&spec.subset_field, value) {
                    match value {
                        SubsetScalar::Int(v) => {
                            let _ = write!(line, "{}={v}i", escape_key(field));
                        }
                        SubsetScalar::Str(s) => {
                            let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
                            let _ = write!(line, "{}=\"{escaped}\"", escape_key(field));
                        }
                    }
                }
                for (key, signal) in &fields {
                    push_float(&mut line, key, signal.at(t, &mut rng));
                }
                if !bases.is_empty() {
                    // Samples from t, 1/N s apart; the row is published a second later.
                    let spacing = NANOS_PER_SECOND / PACKED_SAMPLES as i64;
                    for (keys, signal) in &bases {
                        for (k, key) in keys.iter().enumerate() {
                            let v = signal.at(t + k as i64 * spacing, &mut rng);
                            push_float(&mut line, key, v);
                        }
                    }
                    let tai = t as f64 / 1e9 + tai_minus_utc_seconds(UtcNanos(t)) as f64;
                    let _ = write!(line, ",{CRIO_TIMESTAMP}={tai:.6}");
                    stamp = t + NANOS_PER_SECOND + (rng.next_f64() * 2e7) as i64;
                }
                let _ = writeln!(line, " {stamp}");
                out.write_all(line.as_bytes())?;
                rows += 1;
            }
        }
        topics.push(ManifestTopic {
            name: spec.name.clone(),
            fields: spec.fields.clone(),
            packed_bases: spec.packed_bases.clone(),
            subset: spec.subset_field.clone().map(|f| {
                let ints = spec
                    .subset_values
                    .iter()
                    .filter_map(|v| match v {
                        SubsetScalar::Int(i) => Some(*i),
                        SubsetScalar::Str(_) => None,
                    })
                    .collect();
                (f, ints)
            }),
            event: spec.event,
            interval_ns: spec.interval_ns,
            rows,
        });
    }
    out.flush()?;
    Ok(topics)
}
