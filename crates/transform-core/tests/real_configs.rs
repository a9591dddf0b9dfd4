//! The three shipped configs (`shared/reference/consdb/config/`) load and validate unchanged, with the
//! counts of BEHAVIOUR.md §4.3 and §6, and plan into the documented number of queries.

mod common;

use std::collections::BTreeMap;

use transform_core::{Config, QueryPlan, Semantics, Table};

fn load(instrument: &str) -> Config {
    let path =
        common::shared_dir().join(format!("reference/consdb/config/config_{instrument}.yaml"));
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn function_counts(config: &Config) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> = transform_core::Function::NAMES
        .iter()
        .map(|&n| (n, 0))
        .collect();
    for c in &config.columns {
        *counts.entry(c.function.name()).or_insert(0) += 1;
    }
    counts
}

struct Expected {
    instrument: &'static str,
    version: &'static str,
    columns: usize,
    functions: [(&'static str, usize); 6],
    exposure_efd: usize,
    visit1_efd: usize,
    unpivoted: usize,
    packed: usize,
    pre_aggregated: usize,
    start_offset: usize,
    subset: usize,
    groups: usize,
    topics: usize,
    plain_queries: usize,
    packed_groups: usize,
}

const EXPECTED: [Expected; 3] = [
    Expected {
        instrument: "latiss",
        version: "1.0.0",
        columns: 267,
        functions: [
            ("max", 61),
            ("mean", 80),
            ("min", 61),
            ("most_recent_value", 0),
            ("rms_from_polynomial_fit", 3),
            ("stddev", 62),
        ],
        exposure_efd: 267,
        visit1_efd: 264,
        unpivoted: 0,
        packed: 5,
        pre_aggregated: 0,
        start_offset: 0,
        subset: 235,
        groups: 14,
        topics: 13,
        plain_queries: 30,
        packed_groups: 2,
    },
    Expected {
        instrument: "lsstcam",
        version: "1.1.0",
        columns: 491,
        functions: [
            ("max", 99),
            ("mean", 153),
            ("min", 99),
            ("most_recent_value", 33),
            ("rms_from_polynomial_fit", 8),
            ("stddev", 99),
        ],
        exposure_efd: 473,
        visit1_efd: 465,
        unpivoted: 18,
        packed: 0,
        pre_aggregated: 19,
        start_offset: 33,
        subset: 353,
        groups: 31,
        topics: 31,
        plain_queries: 60,
        packed_groups: 0,
    },
    Expected {
        instrument: "lsstcomcam",
        version: "1.0.0",
        columns: 489,
        functions: [
            ("max", 99),
            ("mean", 151),
            ("min", 99),
            ("most_recent_value", 33),
            ("rms_from_polynomial_fit", 8),
            ("stddev", 99),
        ],
        exposure_efd: 471,
        visit1_efd: 463,
        unpivoted: 18,
        packed: 0,
        pre_aggregated: 19,
        start_offset: 33,
        subset: 351,
        groups: 31,
        topics: 31,
        plain_queries: 60,
        packed_groups: 0,
    },
];

#[test]
fn shipped_configs_load_with_the_documented_counts() {
    for e in &EXPECTED {
        let config = load(e.instrument);
        let pivoted = |t| config.columns_for(t).filter(|c| !c.store_unpivoted).count();
        assert_eq!(config.version, e.version, "{}", e.instrument);
        assert_eq!(config.columns.len(), e.columns, "{}", e.instrument);
        assert_eq!(
            function_counts(&config),
            BTreeMap::from(e.functions),
            "{}",
            e.instrument
        );
        assert_eq!(
            pivoted(Table::ExposureEfd),
            e.exposure_efd,
            "{}",
            e.instrument
        );
        assert_eq!(pivoted(Table::VisitEfd), e.visit1_efd, "{}", e.instrument);
        let unpivoted = config.columns.iter().filter(|c| c.store_unpivoted).count();
        assert_eq!(unpivoted, e.unpivoted, "{}", e.instrument);
        assert_eq!(
            config.columns_for(Table::ExposureEfdUnpivoted).count(),
            e.unpivoted,
            "{}: unpivoted columns write both unpivoted tables",
            e.instrument
        );
        let count = |f: &dyn Fn(&transform_core::Column) -> bool| {
            config.columns.iter().filter(|c| f(c)).count()
        };
        assert_eq!(count(&|c| c.packed_series), e.packed, "{}", e.instrument);
        assert_eq!(
            count(&|c| c.pre_aggregate_interval.is_some()),
            e.pre_aggregated,
            "{}",
            e.instrument
        );
        assert_eq!(
            count(&|c| c.start_offset_hours.is_some()),
            e.start_offset,
            "{}",
            e.instrument
        );
        assert_eq!(count(&|c| c.subset.is_some()), e.subset, "{}", e.instrument);
        assert!(
            config.columns.iter().all(|c| c.line > 0),
            "every column knows its line"
        );
    }
}

#[test]
fn shipped_configs_plan_into_the_documented_queries() {
    for e in &EXPECTED {
        let config = load(e.instrument);
        for semantics in [Semantics::Reference, Semantics::Default] {
            let plan = QueryPlan::new(&config, semantics);
            let s = plan.summary();
            let what = format!("{} ({semantics})", e.instrument);
            assert_eq!(s.groups, e.groups, "{what}");
            assert_eq!(s.topics, e.topics, "{what}");
            assert_eq!(s.plain_queries, e.plain_queries, "{what}");
            assert_eq!(s.packed_groups, e.packed_groups, "{what}");
            // Every column is computed from exactly one group, and no group exceeds the chunk size
            // after chunking.
            let mut seen = vec![0; config.columns.len()];
            for g in &plan.groups {
                for &c in &g.columns {
                    seen[c] += 1;
                }
                assert!(
                    g.chunks()
                        .all(|chunk| chunk.len() <= transform_core::MAX_FIELDS_PER_QUERY)
                );
            }
            assert!(seen.iter().all(|&n| n == 1), "{what}");
            let offsets = plan
                .groups
                .iter()
                .filter(|g| g.start_offset_nanos != 0)
                .count();
            match semantics {
                Semantics::Reference => assert_eq!(offsets, 0, "{what}: start_offset is ignored"),
                Semantics::Default => {
                    assert_eq!(offsets, if e.start_offset > 0 { 9 } else { 0 }, "{what}");
                }
            }
        }
    }
}

#[test]
fn field_order_is_config_order() {
    let config = load("latiss");
    let plan = QueryPlan::new(&config, Semantics::Default);
    for g in &plan.groups {
        let mut expected: Vec<&str> = Vec::new();
        for &c in &g.columns {
            for f in &config.columns[c].topic().fields {
                if !expected.contains(&f.name.as_str()) {
                    expected.push(&f.name);
                }
            }
        }
        assert_eq!(
            g.fields.iter().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
    }
}
