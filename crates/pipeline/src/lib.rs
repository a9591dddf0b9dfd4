//! The one pipeline the three binaries share.
//!
//! The principal types and how they connect:
//!
//! - [`Transformer`] (`transform.rs`) turns one task's items and the EFD's answers into ConsDB rows,
//!   with the query plan made once per config.
//! - [`Pipeline`] wires a config, an EFD source (`efd-client`), a Butler registry (`butler-reader`)
//!   and ConsDB (`consdb-writer`): [`Pipeline::process_interval`] reads the exposures and visits
//!   overlapping a padded interval, transforms them and upserts the rows, returning the counts the
//!   task table records.
//!
//! - [`Pipeline::open`] (`open.rs`) opens every part from [`PipelineOptions`], checking the config
//!   first and refusing to start on an incomplete schema unless asked to migrate.
//! - [`Pipeline::run`] (`runner.rs`) is the task loop: workers claim tasks from the scheduler store
//!   with an owner and a lease, heartbeat while processing, complete or fail them as owner, and on
//!   shutdown release what could not finish within the grace period.
//!
//! - [`modes`] holds what `efd-job` and `efd-cronjob` do; the monitor's modes come next.

pub mod check;
pub mod cli;
pub mod coverage;
mod error;
pub mod logging;
pub mod modes;
mod open;
pub mod progress;
mod reconcile;
mod runner;
pub mod signals;
pub mod status;
mod transform;

use std::sync::Arc;

use butler_reader::{ButlerReader, DimensionRecord, Element};
use consdb_writer::ConsDb;
use efd_client::EfdClient;
use tokio::sync::Mutex;
use transform_core::{Config, Instrument, Item, Semantics, TimeRange, UtcNanos};

pub use efd_client::EfdStats;
pub use error::PipelineError;
pub use open::{PipelineOptions, migration_dry_run, open_store};
pub use reconcile::{ReconcileOptions, day_obs_window};
pub use runner::{RunOptions, RunSummary};
pub use scheduler_store::PhaseTimings;
pub use transform::{TaskRows, Transformer};

/// What one interval produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalCounts {
    /// `exposure_efd` rows upserted.
    pub exposures: usize,
    /// `visit1_efd` rows upserted.
    pub visits: usize,
    /// Unpivoted rows upserted (both tables).
    pub unpivoted: usize,
    /// Butler records skipped (no timespan or seq_num).
    pub skipped_records: usize,
    /// Query groups without data (their columns left untouched).
    pub empty_groups: usize,
    /// Replica writes that failed.
    pub replica_failures: usize,
    /// Where the time went (the scheduler's share is added by the task loop).
    pub timings: PhaseTimings,
}

/// The pipeline's components for one instrument.
#[derive(Debug)]
pub struct Pipeline {
    instrument: Instrument,
    transformer: Transformer,
    efd: EfdClient,
    butler: Mutex<ButlerReader>,
    consdb: Mutex<ConsDb>,
    progress: Option<Arc<progress::Progress>>,
}

impl Pipeline {
    /// Assembles a pipeline from its opened parts.
    pub fn new(
        instrument: Instrument,
        config: Arc<Config>,
        semantics: Semantics,
        efd: EfdClient,
        butler: ButlerReader,
        consdb: ConsDb,
    ) -> Pipeline {
        Pipeline {
            instrument,
            transformer: Transformer::new(config, semantics),
            efd,
            butler: Mutex::new(butler),
            consdb: Mutex::new(consdb),
            progress: None,
        }
    }

    /// Reports every finished task to `progress` (job mode's bar or progress lines).
    pub fn set_progress(&mut self, progress: Arc<progress::Progress>) {
        self.progress = Some(progress);
    }

    /// What the EFD source has cost this process so far.
    pub fn efd_stats(&self) -> EfdStats {
        self.efd.stats()
    }

    /// Where finished tasks are reported, if anywhere.
    pub fn progress(&self) -> Option<&Arc<progress::Progress>> {
        self.progress.as_ref()
    }

    /// The transformer (and through it the query plan).
    pub fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    /// Processes `[start − window, end + window]`: items from the Butler, telemetry from the EFD,
    /// rows into ConsDB.
    pub async fn process_interval(
        &self,
        start: UtcNanos,
        end: UtcNanos,
        window_nanos: i64,
        created_at: UtcNanos,
    ) -> Result<IntervalCounts, PipelineError> {
        let padded = TimeRange::new(start.offset(-window_nanos), end.offset(window_nanos))
            .ok_or_else(|| {
                PipelineError::Usage("the task interval ends before it starts".into())
            })?;
        let began = std::time::Instant::now();
        let (exposures, visits) = {
            let mut butler = self.butler.lock().await;
            let e = butler
                .overlapping(Element::Exposure, self.instrument, padded)
                .await?;
            let v = butler
                .overlapping(Element::Visit, self.instrument, padded)
                .await?;
            (e, v)
        };
        let mut counts = IntervalCounts {
            skipped_records: exposures.skipped() + visits.skipped(),
            ..IntervalCounts::default()
        };
        counts.timings.butler = began.elapsed();
        let exposures: Vec<Item> = exposures.records.iter().map(item).collect();
        let visits: Vec<Item> = visits.records.iter().map(item).collect();
        if exposures.is_empty() && visits.is_empty() {
            tracing::debug!(message = "No exposures or visits found for the period.");
            return Ok(counts);
        }
        log_impact_scope(start, end, &exposures, &visits);
        let rows = self
            .transformer
            .transform(&self.efd, padded, &exposures, &visits)
            .await?;
        counts.empty_groups = rows.empty_groups;
        counts.timings.efd = rows.efd_time;
        counts.timings.transform = rows.transform_time;
        let writing = std::time::Instant::now();
        for (column, issue) in &rows.data_issues {
            tracing::warn!(message = "Column data cannot be aggregated.", event = "column_values_unusable", column = %column, issue = %issue);
        }
        let mut consdb = self.consdb.lock().await;
        for batch in [&rows.exposures, &rows.visits] {
            if batch.rows.is_empty() {
                continue;
            }
            let outcome = consdb.upsert_wide(batch, created_at).await?;
            counts.replica_failures += outcome.replica_failure_count();
            if batch.table == transform_core::Table::ExposureEfd {
                counts.exposures = outcome.rows;
            } else {
                counts.visits = outcome.rows;
            }
        }
        for batch in [&rows.exposures_unpivoted, &rows.visits_unpivoted] {
            if batch.rows.is_empty() {
                continue;
            }
            let outcome = consdb.upsert_unpivoted(batch, created_at).await?;
            counts.replica_failures += outcome.replica_failure_count();
            counts.unpivoted += outcome.rows;
        }
        counts.timings.write = writing.elapsed();
        Ok(counts)
    }
}

/// `event=task_impact_scope`: what a task is about to write (the reference's line, which operators
/// use to find the task behind a ConsDB row).
fn log_impact_scope(start: UtcNanos, end: UtcNanos, exposures: &[Item], visits: &[Item]) {
    let day_obs = || exposures.iter().chain(visits).map(|i| i.day_obs);
    let (day_obs_min, day_obs_max) = (day_obs().min(), day_obs().max());
    let span = |items: &[Item]| {
        (
            items.iter().map(|i| i.id).min(),
            items.iter().map(|i| i.id).max(),
        )
    };
    let (exposure_id_min, exposure_id_max) = span(exposures);
    let (visit_id_min, visit_id_max) = span(visits);
    tracing::info!(
        message = "Task impact scope.",
        event = "task_impact_scope",
        start_time = %transform_core::time::format_isot(start),
        end_time = %transform_core::time::format_isot(end),
        day_obs = day_obs_min.filter(|_| day_obs_min == day_obs_max),
        day_obs_min,
        day_obs_max,
        exposure_id_min,
        exposure_id_max,
        visit_id_min,
        visit_id_max,
        exposure_count = exposures.len(),
        visit_count = visits.len()
    );
}

fn item(r: &DimensionRecord) -> Item {
    Item {
        id: r.id,
        day_obs: r.day_obs,
        seq_num: r.seq_num,
        timespan: r.timespan,
    }
}
