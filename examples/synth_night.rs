//! Generates a synthetic observing night with [`transformed_efd_examples::synth`]: `efd.lp`,
//! `butler/` (a SQLite Butler registry) and `night.json`, and prints a one-line summary.
//!
//! ```text
//! cargo run -p transformed-efd-examples --example synth_night -- --out DIR \
//!     [--instrument latiss|lsstcam] [--config PATH] [--minutes N] [--exposures N] \
//!     [--rate realistic|HZ] [--seed N] [--lookback-hours N] [--start UNIX_NS]
//! ```

#![allow(clippy::print_stdout)] // The summary line is this example's output.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use transform_core::{Instrument, UtcNanos};
use transformed_efd_examples::synth::{Night, Rates, SynthOptions};

const USAGE: &str = "usage: synth_night --out DIR [--instrument latiss|lsstcam] [--config PATH] \
                     [--minutes N] [--exposures N] [--rate realistic|HZ] [--seed N] \
                     [--lookback-hours N] [--start UNIX_NS]";

fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<SynthOptions> {
    let mut out: Option<PathBuf> = None;
    let mut options = SynthOptions::new("");
    let mut args = args;
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            bail!("{USAGE}");
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |what: &str| -> anyhow::Result<u64> {
            value
                .parse()
                .with_context(|| format!("{what}: not a number: {value}"))
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(&value)),
            "--instrument" => {
                options.instrument = value
                    .parse::<Instrument>()
                    .map_err(|e| anyhow::anyhow!("--instrument: {e}"))?;
            }
            "--config" => options.config = PathBuf::from(&value),
            "--minutes" => options.minutes = u32::try_from(number("--minutes")?)?,
            "--exposures" => options.exposures = u32::try_from(number("--exposures")?)?,
            "--lookback-hours" => {
                options.lookback_hours = u32::try_from(number("--lookback-hours")?)?;
            }
            "--seed" => options.seed = number("--seed")?,
            "--start" => options.night_start = UtcNanos(i64::try_from(number("--start")?)?),
            "--rate" => {
                if value == "realistic" {
                    options = options.realistic();
                } else {
                    let hz: f64 = value
                        .parse()
                        .with_context(|| format!("--rate: neither `realistic` nor Hz: {value}"))?;
                    options.rates = Rates::Uniform(hz);
                }
            }
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    options.out = out.with_context(|| format!("--out is required\n{USAGE}"))?;
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = parse(std::env::args().skip(1))?;
    let night = Night::generate(&options)?;
    let m = &night.manifest;
    let exposures = m.items.iter().filter(|i| !i.is_visit).count();
    let visits = m.items.len() - exposures;
    let rows: u64 = m.topics.iter().map(|t| t.rows).sum();
    println!(
        "{}: {} {exposures} exposures, {visits} visits, day_obs {}; efd.lp {:.1} MB, {} topics, {rows} rows; config {}",
        night.dir.display(),
        m.instrument,
        m.items.first().map_or(0, |i| i.day_obs),
        m.efd_bytes as f64 / 1e6,
        m.topics.len(),
        m.config
    );
    Ok(())
}
