//! Prints the Felis schema (YAML) of ConsDB's `efd_<instrument>` for a column config: the first step
//! of a schema change (config → Felis YAML for the sdm_schemas review → `--dry-run`/`--migrate`).
//!
//! `cargo run -p transformed-efd-examples --example felis_schema -- CONFIG.yaml INSTRUMENT > efd_<instrument>.yaml`

#![allow(clippy::print_stdout)] // Printing the schema is this example's purpose.

use std::path::PathBuf;

use anyhow::Context as _;
use consdb_writer::EfdSchema;
use transform_core::{Config, Instrument};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: felis_schema CONFIG.yaml INSTRUMENT (latiss, lsstcam, lsstcomcam)";
    let path = PathBuf::from(args.next().context(usage)?);
    let instrument: Instrument = args
        .next()
        .context(usage)?
        .parse()
        .map_err(anyhow::Error::msg)?;
    let config = Config::load(&path)?;
    let schema = EfdSchema::new(&config, instrument)?;
    print!("{}", schema.felis_yaml()?);
    Ok(())
}
