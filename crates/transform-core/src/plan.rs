//! Query planning: which EFD queries one task issues, computed once per config.
//!
//! Columns are grouped as the reference groups them (BEHAVIOUR.md §5.4): by topic, packed flag,
//! `start_offset` and server-side pre-aggregation (interval and function). Each group is one topic
//! query whose fields are the union of its columns' fields in config order (the reference's order is
//! random per process); a group with more than [`MAX_FIELDS_PER_QUERY`] fields is split into chunks
//! that the source merges on timestamp. Groups are in order of first appearance in the config.

use std::collections::HashMap;

use crate::config::{Config, PreAggregation};
use crate::semantics::Semantics;
use crate::time::{TimeRange, hours_to_nanos};

/// The most fields one InfluxQL `SELECT` asks for (the reference's `max_fields_per_query`).
pub const MAX_FIELDS_PER_QUERY: usize = 100;

/// The queries of one config, independent of any task.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    /// The query groups, in order of first appearance in the config.
    pub groups: Vec<QueryGroup>,
}

/// One topic query and the columns computed from its result.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryGroup {
    /// The measurement.
    pub topic: String,
    /// Whether the fields are packed-series base names.
    pub packed: bool,
    /// Nanoseconds added to the task's topic interval start (from `start_offset`; 0 when none or in
    /// reference semantics).
    pub start_offset_nanos: i64,
    /// Server-side aggregation, if any.
    pub pre_aggregation: Option<PreAggregation>,
    /// Fields to select (packed: base names), the union of the columns' fields in config order.
    pub fields: Vec<String>,
    /// Indexes into [`Config::columns`] of the columns computed from this group, in config order.
    pub columns: Vec<usize>,
    /// Whether the query's end is widened so that the samples at a task's edge are complete (see
    /// [`QueryGroup::query_range`]); false in reference semantics.
    pub complete_end: bool,
}

/// How far beyond a task's interval packed-series rows are fetched, on both sides: a row's time is
/// not its samples' (they start at its `cRIO_timestamp` and span up to the next row; the EFD
/// stamps the row when it is written, after them), so samples inside the interval can sit in a row
/// stamped outside it.
pub const PACKED_MARGIN_NANOS: i64 = 10_000_000_000;

/// Counts that describe a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanSummary {
    /// Query groups.
    pub groups: usize,
    /// Groups over packed series (each a `SHOW FIELD KEYS` plus a select of the expanded fields).
    pub packed_groups: usize,
    /// Groups aggregated by the server.
    pub pre_aggregated_groups: usize,
    /// Distinct topics.
    pub topics: usize,
    /// `SELECT` statements per task for the non-packed groups, after chunking.
    pub plain_queries: usize,
}

impl QueryPlan {
    /// Plans the queries of `config`.
    pub fn new(config: &Config, semantics: Semantics) -> QueryPlan {
        type Key = (String, bool, i64, Option<PreAggregation>);
        let mut groups: Vec<QueryGroup> = Vec::new();
        let mut by_key: HashMap<Key, usize> = HashMap::new();
        for (i, column) in config.columns.iter().enumerate() {
            let start_offset_nanos = match column.start_offset_hours {
                Some(h) if semantics.honours_start_offset() => hours_to_nanos(h),
                _ => 0,
            };
            let pre_aggregation = column.pre_aggregation();
            for topic in &column.topics {
                let key = (
                    topic.name.clone(),
                    column.packed_series,
                    start_offset_nanos,
                    pre_aggregation.clone(),
                );
                let g = *by_key.entry(key).or_insert_with(|| {
                    groups.push(QueryGroup {
                        topic: topic.name.clone(),
                        packed: column.packed_series,
                        start_offset_nanos,
                        pre_aggregation: pre_aggregation.clone(),
                        fields: Vec::new(),
                        columns: Vec::new(),
                        complete_end: semantics == Semantics::Default,
                    });
                    groups.len() - 1
                });
                let group = &mut groups[g];
                for field in &topic.fields {
                    if !group.fields.contains(&field.name) {
                        group.fields.push(field.name.clone());
                    }
                }
                group.columns.push(i);
            }
        }
        QueryPlan { groups }
    }

    /// Counts of groups, topics and queries.
    pub fn summary(&self) -> PlanSummary {
        let mut topics: Vec<&str> = self.groups.iter().map(|g| g.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        PlanSummary {
            groups: self.groups.len(),
            packed_groups: self.groups.iter().filter(|g| g.packed).count(),
            pre_aggregated_groups: self
                .groups
                .iter()
                .filter(|g| g.pre_aggregation.is_some())
                .count(),
            topics: topics.len(),
            plain_queries: self
                .groups
                .iter()
                .filter(|g| !g.packed)
                .map(|g| g.chunks().len())
                .sum(),
        }
    }
}

impl QueryGroup {
    /// The fields in chunks of at most [`MAX_FIELDS_PER_QUERY`].
    pub fn chunks(&self) -> std::slice::Chunks<'_, String> {
        self.fields.chunks(MAX_FIELDS_PER_QUERY)
    }

    /// The time range to query for a task whose topic interval is `interval`: its start moved by the
    /// group's `start_offset`, and (default semantics) its end widened so that an item's value does
    /// not depend on which task computes it: to the end of the pre-aggregation bucket holding it
    /// (else that bucket's aggregate covers only part of its width), and for packed series by
    /// [`PACKED_MARGIN_NANOS`] on both sides (else rows holding samples at the edges are missed).
    /// The extra samples lie outside every item's window and change nothing else.
    pub fn query_range(&self, interval: TimeRange) -> TimeRange {
        let range = interval.with_start_offset(self.start_offset_nanos);
        if !self.complete_end {
            return range;
        }
        let mut start = range.start().0;
        let mut end = range.end().0;
        if let Some(p) = &self.pre_aggregation {
            let width = p.interval.nanos();
            if width > 0 {
                // Buckets are aligned to the epoch; the range end is inclusive.
                end = end
                    .div_euclid(width)
                    .saturating_mul(width)
                    .saturating_add(width - 1);
            }
        }
        if self.packed {
            start = start.saturating_sub(PACKED_MARGIN_NANOS);
            end = end.saturating_add(PACKED_MARGIN_NANOS);
        }
        TimeRange::new(crate::UtcNanos(start), crate::UtcNanos(end)).unwrap_or(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UtcNanos;

    const S: i64 = 1_000_000_000;

    fn plan(semantics: Semantics) -> QueryPlan {
        let yaml = r#"
version: "t"
columns:
- name: bucketed
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  pre_aggregate_interval: 2s
  topics: [{name: a.b.c, fields: [{name: x}]}]
- name: packed
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  packed_series: true
  topics: [{name: a.b.d, fields: [{name: y}]}]
- name: plain
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics: [{name: a.b.e, fields: [{name: z}]}]
"#;
        QueryPlan::new(&Config::parse(yaml, "t.yaml").unwrap(), semantics)
    }

    #[test]
    fn query_ends_complete_the_last_bucket_and_packed_row_by_default_only() {
        // [10.5 s, 101.3 s]: the 2 s bucket holding 101.3 s ends at 101.999999999 s.
        let interval =
            TimeRange::new(UtcNanos(10 * S + S / 2), UtcNanos(101 * S + S * 3 / 10)).unwrap();
        let default = plan(Semantics::Default);
        let ends: Vec<i64> = default
            .groups
            .iter()
            .map(|g| g.query_range(interval).end().0)
            .collect();
        assert_eq!(
            ends,
            [
                102 * S - 1,
                101 * S + S * 3 / 10 + PACKED_MARGIN_NANOS,
                101 * S + S * 3 / 10
            ]
        );
        let starts: Vec<i64> = default
            .groups
            .iter()
            .map(|g| g.query_range(interval).start().0)
            .collect();
        assert_eq!(
            starts,
            [
                interval.start().0,
                interval.start().0 - PACKED_MARGIN_NANOS,
                interval.start().0
            ]
        );
        // An end on a bucket boundary opens the bucket that starts there.
        let on_edge = TimeRange::new(UtcNanos(0), UtcNanos(100 * S)).unwrap();
        assert_eq!(default.groups[0].query_range(on_edge).end().0, 102 * S - 1);
        // Reference semantics query exactly the interval, as the Python service.
        for g in &plan(Semantics::Reference).groups {
            assert_eq!(g.query_range(interval), interval);
        }
    }
}
