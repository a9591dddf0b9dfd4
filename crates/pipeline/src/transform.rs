//! One task's transformation: the items it covers, the EFD queries, the per-item values, the rows.
//!
//! Given the exposures and visits that overlap a task's padded interval, [`Transformer::transform`]
//! decides the topic interval (default: the union of every item's timespan; reference: only items
//! fully inside the padded interval, BEHAVIOUR.md §5.3), runs every planned topic query once
//! (concurrently; the source bounds requests in flight), prepares each column from its group's frame
//! and evaluates it for every item, and returns the four batches for ConsDB. A group without data
//! leaves its columns out of the wide batches, so stored values are kept (as the reference does).

use std::sync::Arc;

use consdb_writer::{ItemKey, UnpivotedBatch, WideBatch};
use efd_client::{EfdSource, TopicQuery, run_query};
use futures::future::join_all;
use transform_core::{
    Config, DataIssue, Frame, Item, ItemKind, PreparedColumn, QueryPlan, Semantics, Table,
    TimeRange,
};

use crate::error::PipelineError;

/// The rows one task writes, and what happened on the way.
#[derive(Debug)]
pub struct TaskRows {
    /// `exposure_efd` rows (columns of groups that had data).
    pub exposures: WideBatch,
    /// `visit1_efd` rows.
    pub visits: WideBatch,
    /// `exposure_efd_unpivoted` rows.
    pub exposures_unpivoted: UnpivotedBatch,
    /// `visit1_efd_unpivoted` rows.
    pub visits_unpivoted: UnpivotedBatch,
    /// Query groups run.
    pub queries: usize,
    /// Groups whose query returned no rows (their columns are left untouched).
    pub empty_groups: usize,
    /// Groups whose query failed and were treated as empty (reference semantics only).
    pub failed_groups: usize,
    /// Columns whose data could not be aggregated, with why.
    pub data_issues: Vec<(String, DataIssue)>,
    /// Wall time waiting for the EFD's answers.
    pub efd_time: std::time::Duration,
    /// Time preparing columns and computing values.
    pub transform_time: std::time::Duration,
}

/// Turns telemetry into rows for one config, instrument and semantics.
#[derive(Debug, Clone)]
pub struct Transformer {
    config: Arc<Config>,
    plan: Arc<QueryPlan>,
    semantics: Semantics,
}

impl Transformer {
    /// A transformer for `config`, planning its queries once.
    pub fn new(config: Arc<Config>, semantics: Semantics) -> Transformer {
        let plan = Arc::new(QueryPlan::new(&config, semantics));
        Transformer {
            config,
            plan,
            semantics,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &QueryPlan {
        &self.plan
    }

    /// The interval whose telemetry the items need: the union of their timespans, or (reference)
    /// of those fully inside `padded`; `None` when there is none.
    pub fn topic_interval(&self, padded: TimeRange, items: &[&Item]) -> Option<TimeRange> {
        let chosen = items.iter().filter(|i| match self.semantics {
            Semantics::Default => true,
            Semantics::Reference => {
                i.timespan.start() >= padded.start() && i.timespan.end() <= padded.end()
            }
        });
        chosen.fold(None, |acc: Option<TimeRange>, i| {
            Some(acc.map_or(i.timespan, |a| a.union(&i.timespan)))
        })
    }

    /// Computes the rows for `exposures` and `visits` from `source`.
    pub async fn transform<S: EfdSource + ?Sized>(
        &self,
        source: &S,
        padded: TimeRange,
        exposures: &[Item],
        visits: &[Item],
    ) -> Result<TaskRows, PipelineError> {
        let all: Vec<&Item> = exposures.iter().chain(visits).collect();
        let interval = self.topic_interval(padded, &all);
        let querying = std::time::Instant::now();
        let frames: Vec<Option<Frame>> = match interval {
            None => vec![None; self.plan.groups.len()],
            Some(interval) => {
                // Field types for every topic in one statement (cached for the process).
                let topics: Vec<&str> = self.plan.groups.iter().map(|g| g.topic.as_str()).collect();
                match source.prefetch_field_keys(&topics).await {
                    Ok(()) => {}
                    Err(e) if self.semantics == Semantics::Reference => {
                        tracing::error!(message = "EFD field keys failed; topics are queried one by one.", event = "influx_topic_fields_fetch_failed", error = %e);
                    }
                    Err(e) => return Err(e.into()),
                }
                let queries: Vec<TopicQuery> = self
                    .plan
                    .groups
                    .iter()
                    .map(|g| TopicQuery::for_group(g, interval))
                    .collect();
                let results =
                    join_all(queries.iter().map(|q| run_query(source, q, self.semantics))).await;
                let mut frames = Vec::with_capacity(results.len());
                for (q, result) in queries.iter().zip(results) {
                    match result {
                        Ok(frame) => frames.push(Some(frame)),
                        Err(e) if self.semantics == Semantics::Reference => {
                            tracing::error!(message = "EFD query failed; topic treated as empty (reference semantics).", event = "efd_query_failed", topic = %q.topic, error = %e);
                            frames.push(None);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                frames
            }
        };
        let efd_time = querying.elapsed();
        let computing = std::time::Instant::now();
        let failed_groups = match interval {
            Some(_) => frames.iter().filter(|f| f.is_none()).count(),
            None => 0,
        };

        // Columns of groups with data, per pivoted table, in config order.
        let mut present = vec![false; self.config.columns.len()];
        let mut prepared: Vec<Option<PreparedColumn>> = vec![None; self.config.columns.len()];
        let mut empty_groups = 0;
        let mut data_issues = Vec::new();
        for (group, frame) in self.plan.groups.iter().zip(&frames) {
            let Some(frame) = frame.as_ref().filter(|f| !f.is_empty()) else {
                empty_groups += 1;
                if let Some(topic) = interval.map(|_| &group.topic) {
                    tracing::warn!(message = "No EFD data for topic.", event = "topic_no_data", topic = %topic);
                }
                continue;
            };
            for &c in &group.columns {
                let column = &self.config.columns[c];
                let p = PreparedColumn::new(column, frame, self.semantics);
                if let Some(issue) = p.issue() {
                    data_issues.push((column.name.clone(), issue.clone()));
                }
                present[c] = true;
                prepared[c] = Some(p);
            }
        }

        let wide = |table: Table, items: &[Item]| {
            let columns: Vec<usize> = (0..self.config.columns.len())
                .filter(|&c| {
                    let col = &self.config.columns[c];
                    present[c] && col.writes_to(table) && !col.store_unpivoted
                })
                .collect();
            let mut batch = WideBatch::new(
                table,
                columns.iter().map(|&c| self.config.columns[c].name.clone()),
            );
            for item in items {
                let values = columns
                    .iter()
                    .map(|&c| prepared[c].as_ref().and_then(|p| p.value(item)))
                    .collect();
                batch.push(key(item), values);
            }
            batch
        };
        let unpivoted = |table: Table, kind: ItemKind, items: &[Item]| {
            let mut batch = UnpivotedBatch::new(table);
            for (c, column) in self.config.columns.iter().enumerate() {
                let Some(p) = prepared[c].as_ref().filter(|_| column.writes_to(table)) else {
                    continue;
                };
                for item in items {
                    for u in p.unpivoted(item, kind) {
                        batch.push(key(item), column.name.clone(), u.field, u.value);
                    }
                }
            }
            batch
        };
        let exposures_wide = wide(Table::ExposureEfd, exposures);
        let visits_wide = wide(Table::VisitEfd, visits);
        let exposures_unpivoted =
            unpivoted(Table::ExposureEfdUnpivoted, ItemKind::Exposure, exposures);
        let visits_unpivoted = unpivoted(Table::VisitEfdUnpivoted, ItemKind::Visit, visits);
        Ok(TaskRows {
            exposures: exposures_wide,
            visits: visits_wide,
            exposures_unpivoted,
            visits_unpivoted,
            efd_time,
            transform_time: computing.elapsed(),
            queries: if interval.is_some() {
                self.plan.groups.len()
            } else {
                0
            },
            empty_groups,
            failed_groups,
            data_issues,
        })
    }
}

fn key(item: &Item) -> ItemKey {
    ItemKey {
        day_obs: item.day_obs,
        seq_num: item.seq_num,
        id: item.id,
    }
}
