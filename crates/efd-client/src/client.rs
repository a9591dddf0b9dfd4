//! The source chosen by the connection options: HTTP or a line-protocol file.

use transform_core::Frame;

use crate::error::EfdError;
use crate::file::FileSource;
use crate::http::HttpSource;
use crate::options::{EfdLocation, EfdOptions};
use crate::source::{EfdSource, FieldKey, Select};

/// Either EFD back end, picked from [`EfdOptions::location`].
#[derive(Debug)]
pub enum EfdClient {
    /// InfluxQL over HTTP (boxed: the client and its cache are large).
    Http(Box<HttpSource>),
    /// A line-protocol file loaded in memory.
    File(FileSource),
}

impl EfdClient {
    /// Opens the source: builds the HTTP client (no request yet), or loads and indexes the file.
    pub async fn open(options: EfdOptions) -> Result<EfdClient, EfdError> {
        match &options.location {
            EfdLocation::Http(_) => Ok(EfdClient::Http(Box::new(HttpSource::new(options)?))),
            EfdLocation::File(path) => {
                let path = path.clone();
                let shown = path.display().to_string();
                let source = tokio::task::spawn_blocking(move || FileSource::open(&path))
                    .await
                    .map_err(|e| EfdError::File {
                        path: shown,
                        line: 0,
                        message: format!("loading stopped: {e}"),
                    })??;
                Ok(EfdClient::File(source))
            }
        }
    }
}

impl EfdClient {
    /// What the source has cost so far (statements, requests, bytes, time in flight).
    pub fn stats(&self) -> crate::stats::EfdStats {
        match self {
            EfdClient::Http(s) => s.stats(),
            EfdClient::File(s) => s.stats(),
        }
    }
}

impl EfdSource for EfdClient {
    async fn select(&self, select: Select<'_>) -> Result<Frame, EfdError> {
        match self {
            EfdClient::Http(s) => s.select(select).await,
            EfdClient::File(s) => s.select(select).await,
        }
    }

    async fn field_keys(&self, topic: &str) -> Result<Vec<FieldKey>, EfdError> {
        match self {
            EfdClient::Http(s) => s.field_keys(topic).await,
            EfdClient::File(s) => s.field_keys(topic).await,
        }
    }

    async fn prefetch_field_keys(&self, topics: &[&str]) -> Result<(), EfdError> {
        match self {
            EfdClient::Http(s) => s.prefetch_field_keys(topics).await,
            EfdClient::File(_) => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self {
            EfdClient::Http(s) => s.describe(),
            EfdClient::File(s) => s.describe(),
        }
    }
}
