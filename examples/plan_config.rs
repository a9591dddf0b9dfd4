//! Loads a column config, validates it and prints its query plan.
//!
//! `cargo run -p transformed-efd-examples --example plan_config -- path/to/config.yaml [reference]`

#![allow(clippy::print_stdout)] // Printing the plan is this example's purpose.

use std::path::PathBuf;

use anyhow::Context as _;
use transform_core::{Config, QueryPlan, Semantics, Table};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .context("usage: plan_config CONFIG.yaml [default|reference]")?,
    );
    let semantics: Semantics = args
        .next()
        .map_or(Ok(Semantics::Default), |s| s.parse())
        .map_err(anyhow::Error::msg)?;
    let config = Config::load(&path)?;
    println!(
        "{}: version {}, {} columns",
        path.display(),
        config.version,
        config.columns.len()
    );
    for table in Table::ALL {
        println!(
            "  {:<24} {} columns",
            table.as_str(),
            config.columns_for(table).count()
        );
    }
    let plan = QueryPlan::new(&config, semantics);
    let s = plan.summary();
    println!(
        "plan ({semantics}): {} groups over {} topics, {} packed, {} pre-aggregated, {} plain SELECTs per task",
        s.groups, s.topics, s.packed_groups, s.pre_aggregated_groups, s.plain_queries
    );
    for g in &plan.groups {
        println!(
            "  {:<55} {:>4} fields {:>3} columns{}{}",
            g.topic,
            g.fields.len(),
            g.columns.len(),
            if g.packed { " packed" } else { "" },
            g.pre_aggregation
                .as_ref()
                .map(|p| format!(" {}({})", p.function.influxql(), p.interval))
                .unwrap_or_default()
        );
    }
    Ok(())
}
