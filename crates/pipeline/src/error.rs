//! The crate's one error type: what failed a task or kept the pipeline from starting, each able to
//! say whether retrying later may help.

use butler_reader::ButlerError;
use consdb_writer::WriterError;
use efd_client::EfdError;
use scheduler_store::SchedulerError;
use transform_core::CoreError;

/// What can go wrong running the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The column config is unusable.
    #[error(transparent)]
    Config(#[from] CoreError),
    /// Fetching telemetry failed.
    #[error(transparent)]
    Efd(#[from] EfdError),
    /// Reading the Butler registry failed.
    #[error(transparent)]
    Butler(#[from] ButlerError),
    /// Writing ConsDB failed.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// The task tables failed.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// Options that cannot work together.
    #[error("{0}")]
    Usage(String),
}

impl PipelineError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Config(e) => e.is_transient(),
            PipelineError::Efd(e) => e.is_transient(),
            PipelineError::Butler(e) => e.is_transient(),
            PipelineError::Writer(e) => e.is_transient(),
            PipelineError::Scheduler(e) => e.is_transient(),
            PipelineError::Usage(_) => false,
        }
    }
}
