//! Opening every part of the pipeline from the options the binaries parse.
//!
//! Everything that can be checked before touching data is checked here, in an order that gives the
//! clearest message first: the config (no network), the ConsDB URLs, then the connections. Without
//! `migrate`, a ConsDB schema or task table that lacks something the config needs is a startup
//! error listing what is missing; with it, the additive migrations run first.

use std::path::PathBuf;
use std::sync::Arc;

use butler_reader::ButlerReader;
use consdb_writer::{ConsDb, EfdSchema, MigrateMode};
use db_connect::{DbAuth, DbUrl};
use efd_client::{EfdClient, EfdOptions};
use scheduler_store::{SchedulerStore, SchedulerTable, StoreOptions};
use transform_core::{Config, Instrument, Semantics};

use crate::Pipeline;
use crate::error::PipelineError;

/// Where everything is and how to run.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The instrument.
    pub instrument: Instrument,
    /// The column config.
    pub config_path: PathBuf,
    /// The Butler repository (as `Butler(repo)` takes it).
    pub repo: String,
    /// ConsDB URLs: the primary first, then replicas.
    pub db_urls: Vec<String>,
    /// The EFD.
    pub efd: EfdOptions,
    /// Default or reference semantics.
    pub semantics: Semantics,
    /// Apply the additive ConsDB and task-table migrations before running.
    pub migrate: bool,
}

/// The SQL that `--migrate` would run on the ConsDB primary for `options`, with what the database
/// has beyond the config as `--` comments; connects only to the ConsDB primary and changes nothing.
pub async fn migration_dry_run(
    options: &PipelineOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, PipelineError> {
    let (config, urls, db_auth) = consdb_parts(options, env)?;
    let schema = EfdSchema::new(&config, options.instrument)?;
    let mut consdb = ConsDb::connect(schema, &urls[..1], db_auth).await?;
    let plan = consdb.plan_migration().await?;
    let mut text = format!(
        "-- ConsDB {}: {} statement(s) to add what the config needs.\n",
        plan.database,
        plan.statements.len()
    );
    for extra in &plan.extra {
        text.push_str(&format!("-- kept, not in the config: {extra}\n"));
    }
    text.push_str(&plan.sql());
    Ok(text)
}

/// The config, the parsed ConsDB URLs (primary first) and the db-auth rules.
type ConsDbParts = (Arc<Config>, Vec<DbUrl>, Option<DbAuth>);

/// The config, the parsed ConsDB URLs and db-auth, checked in the order that gives the clearest
/// message first.
fn consdb_parts(
    options: &PipelineOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConsDbParts, PipelineError> {
    let config = Arc::new(Config::load(&options.config_path)?);
    if options.db_urls.is_empty() {
        return Err(PipelineError::Usage(
            "no ConsDB URL: give -d/--db or set CONSDB_URL".to_owned(),
        ));
    }
    let urls = options
        .db_urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            DbUrl::parse(u).map_err(|e| {
                PipelineError::Usage(format!("ConsDB URL number {} is unusable: {e}", i + 1))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let db_auth = DbAuth::load(env).map_err(|e| PipelineError::Usage(e.to_string()))?;
    Ok((config, urls, db_auth))
}

/// Opens what `efd-monitor coverage` reads: the config, ConsDB (no migration, no schema check),
/// the Butler registry and the task table (migrated with `--migrate`); not the EFD.
pub(crate) async fn open_coverage(
    options: &PipelineOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Arc<Config>, ConsDb, ButlerReader, SchedulerStore), PipelineError> {
    let (config, urls, db_auth) = consdb_parts(options, env)?;
    let schema = EfdSchema::new(&config, options.instrument)?;
    let consdb = ConsDb::connect(schema, &urls[..1], db_auth.clone()).await?;
    let mut store_options = StoreOptions::new(SchedulerTable::for_instrument(options.instrument));
    store_options.migrate = options.migrate;
    store_options.db_auth = db_auth;
    let store = SchedulerStore::open(&urls[..1], store_options).await?;
    let butler = ButlerReader::open(&options.repo, env).await?;
    Ok((config, consdb, butler, store))
}

/// Opens only the scheduler store (for `efd-monitor status`): no Butler, EFD or ConsDB schema check.
pub async fn open_store(
    options: &PipelineOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SchedulerStore, PipelineError> {
    let (_, urls, db_auth) = consdb_parts(options, env)?;
    let mut store_options = StoreOptions::new(SchedulerTable::for_instrument(options.instrument));
    store_options.migrate = options.migrate;
    store_options.db_auth = db_auth;
    Ok(SchedulerStore::open(&urls, store_options).await?)
}

impl Pipeline {
    /// Opens every part and returns the pipeline with its scheduler store. `env` is where
    /// environment variables come from.
    pub async fn open(
        options: &PipelineOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Pipeline, SchedulerStore), PipelineError> {
        let (config, urls, db_auth) = consdb_parts(options, env)?;
        let schema = EfdSchema::new(&config, options.instrument)?;
        let mut consdb = ConsDb::connect(schema, &urls, db_auth.clone()).await?;
        if options.migrate {
            let report = consdb.migrate(MigrateMode::Apply).await?;
            tracing::info!(
                message = "ConsDB migration applied.",
                event = "consdb_migration_applied",
                statements = report.primary.statements.len(),
                replica_failures = report.replica_failures.len()
            );
        } else {
            let missing = consdb.missing().await?;
            if !missing.is_empty() {
                let shown: Vec<String> = missing.iter().take(20).map(ToString::to_string).collect();
                let more = missing.len().saturating_sub(shown.len());
                return Err(PipelineError::Usage(format!(
                    "ConsDB lacks {} item(s) the config needs (run with --migrate to add them): {}{}",
                    missing.len(),
                    shown.join("; "),
                    if more > 0 {
                        format!("; and {more} more")
                    } else {
                        String::new()
                    }
                )));
            }
        }
        let mut store_options =
            StoreOptions::new(SchedulerTable::for_instrument(options.instrument));
        store_options.migrate = options.migrate;
        store_options.db_auth = db_auth;
        let store = SchedulerStore::open(&urls, store_options).await?;
        if let Some(warning) = options.efd.auth_warning() {
            tracing::warn!(message = %warning, event = "efd_auth_warning");
        }
        let efd = EfdClient::open(options.efd.clone()).await?;
        let butler = ButlerReader::open(&options.repo, env).await?;
        tracing::info!(
            message = "Pipeline ready.",
            event = "db_targets_configured",
            instrument = %options.instrument,
            databases = ?consdb.databases(),
            registry = %butler.describe(),
            semantics = %options.semantics
        );
        Ok((
            Pipeline::new(
                options.instrument,
                config,
                options.semantics,
                efd,
                butler,
                consdb,
            ),
            store,
        ))
    }
}
