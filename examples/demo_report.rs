//! Prints what `make demo` stored: a few columns per exposure from the SQLite ConsDB, and the task
//! table's summary.
//!
//! `cargo run -p transformed-efd-examples --example demo_report -- DEMO_DIR`

#![allow(clippy::print_stdout)] // Printing the report is this example's purpose.

use std::path::PathBuf;

use anyhow::Context as _;
use consdb_writer::{ConsDb, EfdSchema, Value};
use db_connect::DbUrl;
use scheduler_store::{SchedulerStore, SchedulerTable, StoreOptions};
use transform_core::{Config, Instrument, Table};
use transformed_efd_examples::synth::Manifest;

/// The columns shown, when the config has them.
const SHOWN: [&str; 6] = [
    "ess_temperature_4_mean",
    "ess_temperature_max",
    "mt_m2_temperature_mean",
    "mt_camera_hexapod_u",
    "at_elevation_mean",
    "at_azimuth_rms_jitter",
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: demo_report DEMO_DIR")?,
    );
    let manifest = Manifest::load(&dir.join("night.json"))?;
    let config = Config::load(std::path::Path::new(&manifest.config))?;
    let instrument: Instrument = manifest.instrument.parse().map_err(anyhow::Error::msg)?;
    let url = DbUrl::parse(&format!("sqlite:///{}", dir.join("consdb.db").display()))?;
    let mut consdb = ConsDb::connect(
        EfdSchema::new(&config, instrument)?,
        std::slice::from_ref(&url),
        None,
    )
    .await?;
    let ids: Vec<i64> = manifest.items.iter().map(|i| i.id).collect();
    let mut rows = consdb.select_rows(Table::ExposureEfd, &ids).await?;
    rows.sort_by_key(|r| match r.get("exposure_id") {
        Some(Value::Int(i)) => *i,
        _ => 0,
    });
    let shown: Vec<&str> = SHOWN
        .into_iter()
        .filter(|c| config.column(c).is_some())
        .collect();
    print!("{:>15}", "exposure_id");
    for c in &shown {
        print!(" {c:>24}");
    }
    println!();
    let mut filled = 0usize;
    for row in &rows {
        let id = match row.get("exposure_id") {
            Some(Value::Int(i)) => *i,
            _ => 0,
        };
        print!("{id:>15}");
        for c in &shown {
            match row.get(*c) {
                Some(Value::Float(v)) => {
                    filled += 1;
                    print!(" {v:>24.6}");
                }
                _ => print!(" {:>24}", "NULL"),
            }
        }
        println!();
    }
    println!(
        "{} exposures stored, {filled} non-NULL values shown",
        rows.len()
    );
    let store = SchedulerStore::open(
        &[url],
        StoreOptions::new(SchedulerTable::for_instrument(instrument)),
    )
    .await?;
    let summary = store.status_summary(None, 5).await?;
    println!("tasks by status: {:?}", summary.counts);
    anyhow::ensure!(filled > 0, "the demo stored no values");
    Ok(())
}
