//! `efd-monitor coverage`: what landed in ConsDB for a range of nights, and why a value is NULL.
//!
//! The Butler says which exposures and visits exist; ConsDB which of their cells hold values (the
//! wide tables' columns and the unpivoted tables' properties); the task table which tasks covered
//! each item (their interval, padded by their time window, overlaps its timespan) and how they
//! ended. The report gives, per table: the share of items with a value per column, the columns
//! NULL everywhere and nowhere, and per item its NULL count and tasks. It renders as text, JSON,
//! and a self-contained HTML page with an SVG heatmap of columns × items.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use butler_reader::{ButlerReader, Element};
use consdb_writer::ConsDb;
use scheduler_store::SchedulerStore;

use transform_core::{Config, Instrument, Table, UtcNanos};

use crate::error::PipelineError;

/// One exposure or visit.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemCoverage {
    /// `exposure_id` or `visit_id`.
    pub id: i64,
    /// Observing day.
    pub day_obs: i32,
    /// Sequence number.
    pub seq_num: i32,
    /// Whether the Butler has it.
    pub in_butler: bool,
    /// Whether ConsDB has a wide row (or unpivoted rows) for it.
    pub in_consdb: bool,
    /// Per column of the table: whether it holds a value.
    pub present: Vec<bool>,
    /// Columns without a value.
    pub nulls: usize,
    /// The tasks that covered it: `(id, status)`, by start.
    pub tasks: Vec<(i32, String)>,
}

/// One table's coverage: exposures (`exposure_efd` and `exposure_efd_unpivoted`) or visits.
#[derive(Debug, Clone, PartialEq)]
pub struct TableCoverage {
    /// `exposure` or `visit`.
    pub element: &'static str,
    /// The columns: the wide table's, then the unpivoted properties (suffixed ` (unpivoted)`).
    pub columns: Vec<String>,
    /// Per column: items with a value.
    pub filled: Vec<usize>,
    /// The items, by `(day_obs, seq_num)`.
    pub items: Vec<ItemCoverage>,
}

impl TableCoverage {
    /// Share of the items with a value in column `i` (0 without items).
    pub fn share(&self, i: usize) -> f64 {
        if self.items.is_empty() {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
            {
                self.filled[i] as f64 / self.items.len() as f64
            }
        }
    }

    /// Columns with no value in any item.
    pub fn null_everywhere(&self) -> Vec<&str> {
        self.columns
            .iter()
            .zip(&self.filled)
            .filter(|(_, n)| **n == 0)
            .map(|(c, _)| c.as_str())
            .collect()
    }

    /// Columns with a value in every item.
    pub fn null_nowhere(&self) -> Vec<&str> {
        self.columns
            .iter()
            .zip(&self.filled)
            .filter(|(_, n)| **n == self.items.len() && !self.items.is_empty())
            .map(|(c, _)| c.as_str())
            .collect()
    }
}

/// The report.
#[derive(Debug, Clone, PartialEq)]
pub struct CoverageReport {
    /// First and last day_obs.
    pub day_obs: (i32, i32),
    /// Exposures, then visits.
    pub tables: Vec<TableCoverage>,
}

/// What coverage needs: ConsDB, the Butler, the task table, the config and the repository.
#[allow(missing_debug_implementations)] // Borrowed connections; nothing worth printing.
pub struct CoverageSources<'a> {
    /// ConsDB (read from the primary).
    pub consdb: &'a mut ConsDb,
    /// The Butler registry.
    pub butler: &'a mut ButlerReader,
    /// The task table.
    pub store: &'a SchedulerStore,
    /// The config (which columns are unpivoted).
    pub config: &'a Config,
    /// The camera.
    pub instrument: Instrument,
    /// The Butler repository the tasks name.
    pub repo: &'a str,
}

/// Gathers the coverage of `[first, last]` (day_obs).
pub async fn gather(
    sources: CoverageSources<'_>,
    first: i32,
    last: i32,
) -> Result<CoverageReport, PipelineError> {
    let mut tables = Vec::new();
    for (element, wide, unpivoted) in [
        (
            Element::Exposure,
            Table::ExposureEfd,
            Table::ExposureEfdUnpivoted,
        ),
        (Element::Visit, Table::VisitEfd, Table::VisitEfdUnpivoted),
    ] {
        let records = sources
            .butler
            .by_day_obs(element, sources.instrument, first, last)
            .await?
            .records;
        let presence = sources.consdb.presence(wide, first..=last).await?;
        let properties: Vec<String> = sources
            .config
            .columns_for(unpivoted)
            .map(|c| c.name.clone())
            .collect();
        let unpivoted_present: BTreeSet<(i64, String)> = if properties.is_empty() {
            BTreeSet::new()
        } else {
            sources
                .consdb
                .unpivoted_presence(unpivoted, first..=last)
                .await?
                .into_iter()
                .collect()
        };
        let mut columns = presence.columns.clone();
        columns.extend(properties.iter().map(|p| format!("{p} (unpivoted)")));

        // Items: the Butler's, and any ConsDB row the Butler lacks.
        let mut items: BTreeMap<i64, ItemCoverage> = BTreeMap::new();
        let mut spans: HashMap<i64, (UtcNanos, UtcNanos)> = HashMap::new();
        for r in &records {
            spans.insert(r.id, (r.timespan.start(), r.timespan.end()));
            items.insert(
                r.id,
                ItemCoverage {
                    id: r.id,
                    day_obs: r.day_obs,
                    seq_num: r.seq_num,
                    in_butler: true,
                    in_consdb: false,
                    present: vec![false; columns.len()],
                    nulls: 0,
                    tasks: Vec::new(),
                },
            );
        }
        for row in &presence.rows {
            let item = items.entry(row.id).or_insert_with(|| ItemCoverage {
                id: row.id,
                day_obs: row.day_obs,
                seq_num: row.seq_num,
                in_butler: false,
                in_consdb: false,
                present: vec![false; columns.len()],
                nulls: 0,
                tasks: Vec::new(),
            });
            item.in_consdb = true;
            item.present[..row.present.len()].copy_from_slice(&row.present);
        }
        let offset = presence.columns.len();
        for (id, property) in &unpivoted_present {
            if let (Some(item), Some(k)) = (
                items.get_mut(id),
                properties.iter().position(|p| p == property),
            ) {
                item.in_consdb = true;
                item.present[offset + k] = true;
            }
        }

        // Tasks over the items' timespans.
        if let (Some(from), Some(to)) = (
            spans.values().map(|s| s.0).min(),
            spans.values().map(|s| s.1).max(),
        ) {
            let day = 24 * 3_600 * transform_core::time::NANOS_PER_SECOND;
            let tasks = sources
                .store
                .tasks_overlapping(sources.repo, from.offset(-day), to.offset(day))
                .await?;
            for item in items.values_mut() {
                let Some(&(begin, end)) = spans.get(&item.id) else {
                    continue;
                };
                for t in &tasks {
                    let pad = i64::from(t.timewindow.unwrap_or(0).max(0))
                        * 60
                        * transform_core::time::NANOS_PER_SECOND;
                    if t.start.offset(-pad) <= end && begin < t.end.offset(pad) {
                        item.tasks.push((t.id.0, t.status.to_string()));
                    }
                }
            }
        }
        let mut items: Vec<ItemCoverage> = items.into_values().collect();
        items.sort_by_key(|i| (i.day_obs, i.seq_num, i.id));
        let mut filled = vec![0usize; columns.len()];
        for item in &mut items {
            item.nulls = item.present.iter().filter(|p| !**p).count();
            for (n, p) in filled.iter_mut().zip(&item.present) {
                *n += usize::from(*p);
            }
        }
        tables.push(TableCoverage {
            element: match element {
                Element::Exposure => "exposure",
                Element::Visit => "visit",
            },
            columns,
            filled,
            items,
        });
    }
    Ok(CoverageReport {
        day_obs: (first, last),
        tables,
    })
}

/// The report as text: per table, the totals, the columns NULL everywhere, the share per column
/// below 100 %, and per item its NULL count and tasks.
pub fn render_text(report: &CoverageReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Coverage of day_obs {}..={}",
        report.day_obs.0, report.day_obs.1
    );
    for t in &report.tables {
        let in_consdb = t.items.iter().filter(|i| i.in_consdb).count();
        let _ = writeln!(
            out,
            "\n{}s: {} ({} in ConsDB), {} columns; {} with a value in every {}, {} NULL everywhere",
            t.element,
            t.items.len(),
            in_consdb,
            t.columns.len(),
            t.null_nowhere().len(),
            t.element,
            t.null_everywhere().len()
        );
        let everywhere = t.null_everywhere();
        if !everywhere.is_empty() {
            let _ = writeln!(out, "  NULL everywhere: {}", everywhere.join(", "));
        }
        if t.filled.iter().any(|n| *n < t.items.len()) {
            let _ = writeln!(out, "  {:<48} {:>8}", "column", "filled");
        }
        for (i, c) in t.columns.iter().enumerate() {
            if t.filled[i] < t.items.len() {
                let _ = writeln!(
                    out,
                    "  {c:<48} {:>7.1}%  ({}/{})",
                    t.share(i) * 100.0,
                    t.filled[i],
                    t.items.len()
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<16} {:>9} {:>7} {:>6}  tasks",
            t.element, "day_obs", "seq", "NULLs"
        );
        for item in &t.items {
            let tasks: Vec<String> = item
                .tasks
                .iter()
                .map(|(id, status)| format!("{id}:{status}"))
                .collect();
            let _ = writeln!(
                out,
                "  {:<16} {:>9} {:>7} {:>6}  {}{}",
                item.id,
                item.day_obs,
                item.seq_num,
                item.nulls,
                if item.in_consdb { "" } else { "(no row) " },
                if tasks.is_empty() {
                    "none".to_owned()
                } else {
                    tasks.join(" ")
                }
            );
        }
    }
    out
}

/// The report as JSON: per table, columns with their filled count and share, the columns NULL
/// everywhere and nowhere, and the items (without their per-column flags).
pub fn render_json(report: &CoverageReport) -> serde_json::Value {
    let tables: Vec<serde_json::Value> = report
        .tables
        .iter()
        .map(|t| {
            serde_json::json!({
                "element": t.element,
                "items": t.items.len(),
                "in_consdb": t.items.iter().filter(|i| i.in_consdb).count(),
                "columns": t.columns.iter().enumerate().map(|(i, c)| serde_json::json!({
                    "name": c,
                    "filled": t.filled[i],
                    "share": t.share(i),
                })).collect::<Vec<_>>(),
                "null_everywhere": t.null_everywhere(),
                "null_nowhere": t.null_nowhere(),
                "per_item": t.items.iter().map(|i| serde_json::json!({
                    "id": i.id,
                    "day_obs": i.day_obs,
                    "seq_num": i.seq_num,
                    "in_butler": i.in_butler,
                    "in_consdb": i.in_consdb,
                    "nulls": i.nulls,
                    "tasks": i.tasks.iter().map(|(id, s)| serde_json::json!({"id": id, "status": s})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "day_obs_start": report.day_obs.0,
        "day_obs_end": report.day_obs.1,
        "tables": tables,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Heatmap cell size in px.
const CELL_W: usize = 14;
const CELL_H: usize = 13;
/// Width of the column-name gutter in px.
const LABEL_W: usize = 300;

fn heatmap(t: &TableCoverage) -> String {
    let width = LABEL_W + CELL_W * t.items.len().max(1) + 10;
    let height = 40 + CELL_H * t.columns.len().max(1);
    let mut svg = format!(
        "<svg width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{} coverage heatmap\">",
        t.element
    );
    for (j, item) in t.items.iter().enumerate() {
        if j % 5 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"30\" class=\"tick\" transform=\"rotate(-45 {} 30)\">{}</text>",
                LABEL_W + j * CELL_W,
                LABEL_W + j * CELL_W,
                item.seq_num
            );
        }
    }
    for (i, column) in t.columns.iter().enumerate() {
        let y = 40 + i * CELL_H;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" class=\"label\">{}</text>",
            LABEL_W - 4,
            y + CELL_H - 2,
            escape(column)
        );
        for (j, item) in t.items.iter().enumerate() {
            let (class, state) = match (item.in_consdb, item.present[i]) {
                (false, _) => ("norow", "no ConsDB row"),
                (true, true) => ("ok", "value"),
                (true, false) => ("null", "NULL"),
            };
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\" class=\"{class}\"><title>{} {} (seq {}): {state}</title></rect>",
                LABEL_W + j * CELL_W,
                CELL_W - 1,
                CELL_H - 1,
                escape(column),
                item.id,
                item.seq_num
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The report as one self-contained HTML page (inline CSS and SVG, no script, no external asset):
/// per table a summary, the heatmap of columns × items, the columns below 100 %, and the items
/// with their NULL counts and tasks.
pub fn render_html(report: &CoverageReport) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    );
    let _ = write!(
        out,
        "<title>ConsDB EFD coverage, day_obs {}..{}</title>",
        report.day_obs.0, report.day_obs.1
    );
    out.push_str(
        "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
         h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}\
         table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
         td.n{text-align:right}.ok{fill:#2e7d32}.null{fill:#ef9a9a}.norow{fill:#bdbdbd}\
         .label{font:11px monospace;text-anchor:end}.tick{font:10px monospace}\
         .legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}\
         .scroll{overflow-x:auto;border:1px solid #eee}</style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>ConsDB EFD coverage, day_obs {} to {}</h1>",
        report.day_obs.0, report.day_obs.1
    );
    out.push_str(
        "<p class=\"legend\">Legend:<span style=\"background:#2e7d32\"></span>value\
         <span style=\"background:#ef9a9a\"></span>NULL<span style=\"background:#bdbdbd\"></span>\
         no ConsDB row</p>",
    );
    for t in &report.tables {
        let in_consdb = t.items.iter().filter(|i| i.in_consdb).count();
        let _ = write!(
            out,
            "<h2>{}s</h2><p>{} {}s ({} in ConsDB), {} columns: {} with a value for every {}, {} \
             NULL everywhere.</p>",
            t.element,
            t.items.len(),
            t.element,
            in_consdb,
            t.columns.len(),
            t.null_nowhere().len(),
            t.element,
            t.null_everywhere().len()
        );
        let everywhere = t.null_everywhere();
        if !everywhere.is_empty() {
            let _ = write!(
                out,
                "<p><strong>NULL everywhere:</strong> {}</p>",
                escape(&everywhere.join(", "))
            );
        }
        let _ = write!(out, "<div class=\"scroll\">{}</div>", heatmap(t));
        out.push_str("<h3>Columns not always filled</h3><table><tr><th>column</th><th>filled</th><th>share</th></tr>");
        for (i, c) in t.columns.iter().enumerate() {
            if t.filled[i] < t.items.len() {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{:.1}%</td></tr>",
                    escape(c),
                    t.filled[i],
                    t.items.len(),
                    t.share(i) * 100.0
                );
            }
        }
        out.push_str("</table>");
        let _ = write!(
            out,
            "<h3>{}s</h3><table><tr><th>id</th><th>day_obs</th><th>seq_num</th><th>NULL columns</th><th>tasks</th></tr>",
            t.element
        );
        for item in &t.items {
            let tasks: Vec<String> = item
                .tasks
                .iter()
                .map(|(id, s)| format!("{id} {}", escape(s)))
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}{}</td><td>{}</td></tr>",
                item.id,
                item.day_obs,
                item.seq_num,
                item.nulls,
                if item.in_consdb { "" } else { " (no row)" },
                if tasks.is_empty() {
                    "none".to_owned()
                } else {
                    tasks.join(", ")
                }
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<p><small>Generated by efd-monitor coverage.</small></p></body></html>\n");
    out
}

/// Options of `efd-monitor coverage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageArgs {
    /// First day_obs (default: the last complete night).
    pub day_obs_start: Option<i32>,
    /// Last day_obs (default: the first, or the last complete night).
    pub day_obs_end: Option<i32>,
    /// Print JSON instead of text.
    pub json: bool,
    /// Also write the HTML page here.
    pub html: Option<std::path::PathBuf>,
}

/// Runs `efd-monitor coverage`: gathers, prints text or JSON, writes the HTML page if asked.
#[allow(clippy::print_stdout)] // The report is the output.
pub async fn run(
    common: &crate::cli::CommonArgs,
    args: &CoverageArgs,
) -> Result<(), PipelineError> {
    let env = |k: &str| std::env::var(k).ok();
    let options = common.pipeline_options(&env)?;
    let (config, mut consdb, mut butler, store) =
        crate::open::open_coverage(&options, &env).await?;
    let (first, last) = match (args.day_obs_start, args.day_obs_end) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, a),
        (None, end) => {
            let night = crate::reconcile::day_obs_window(
                store.clock().now(),
                &crate::ReconcileOptions {
                    window_days: 1,
                    include_current_night: false,
                    interval_minutes: 5,
                    timewindow_minutes: 1,
                },
            );
            (night.0, end.unwrap_or(night.1))
        }
    };
    if first > last {
        return Err(PipelineError::Usage(format!(
            "--day-obs-start {first} is after --day-obs-end {last}"
        )));
    }
    let report = gather(
        CoverageSources {
            consdb: &mut consdb,
            butler: &mut butler,
            store: &store,
            config: &config,
            instrument: options.instrument,
            repo: &options.repo,
        },
        first,
        last,
    )
    .await?;
    if args.json {
        println!("{}", render_json(&report));
    } else {
        print!("{}", render_text(&report));
    }
    if let Some(path) = &args.html {
        std::fs::write(path, render_html(&report)).map_err(|e| {
            PipelineError::Usage(format!("--html {}: cannot write: {e}", path.display()))
        })?;
    }
    Ok(())
}
