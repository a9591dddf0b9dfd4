//! Every config rule rejects what it should, naming the file, the line and the column at fault.

use transform_core::{Config, CoreError, Function, Problem};

/// A valid column whose lines are: 3 `- name`, 4 tables, 5 function, 6 function_args, 7 datatype,
/// 8 description, 9 subset_field, 10 subset_value, 11 topics, 12 topic name, 13 fields, 14 f, 15 salIndex.
fn column(name: &str, edits: &[(&str, &str)]) -> String {
    let mut lines = vec![
        ("name", format!("- name: {name}")),
        ("tables", "  tables: [exposure_efd, visit1_efd]".to_owned()),
        ("function", "  function: stddev".to_owned()),
        ("function_args", "  function_args: {ddof: 1}".to_owned()),
        ("datatype", "  datatype: float".to_owned()),
        ("description", "  description: A column.".to_owned()),
        ("subset_field", "  subset_field: salIndex".to_owned()),
        ("subset_value", "  subset_value: 301".to_owned()),
        ("topics", "  topics:".to_owned()),
        ("topic", "  - name: lsst.sal.ESS.temperature".to_owned()),
        ("fields", "    fields:".to_owned()),
        ("f", "    - name: temperatureItem4".to_owned()),
        ("salIndex", "    - name: salIndex".to_owned()),
    ];
    for (key, replacement) in edits {
        let line = lines
            .iter_mut()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no line {key}"));
        line.1 = (*replacement).to_owned();
    }
    lines.into_iter().map(|(_, l)| l + "\n").collect()
}

fn config(columns: &[String]) -> String {
    format!("version: 1.0.0\ncolumns:\n{}", columns.concat())
}

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, "cfg.yaml") {
        Err(CoreError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got: {other}"),
        Ok(_) => panic!("expected validation problems, the config was accepted:\n{text}"),
    }
}

/// Asserts exactly one problem, on `line`, in column `c`, whose message contains `needle`.
fn rejects(edits: &[(&str, &str)], line: usize, needle: &str) {
    let text = config(&[column("c", edits)]);
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = &found[0];
    assert_eq!(p.column.as_deref(), Some("c"), "{p}");
    assert_eq!(p.line, line, "{p}");
    assert!(
        p.message.contains(needle),
        "`{}` lacks `{needle}`",
        p.message
    );
    let shown = p.to_string();
    assert!(
        shown.starts_with(&format!("cfg.yaml:{line}: column `c`: ")),
        "{shown}"
    );
}

#[test]
fn the_base_column_is_valid() {
    let config = Config::parse(&config(&[column("c", &[])]), "cfg.yaml").unwrap();
    assert_eq!(config.columns[0].function, Function::Stddev { ddof: 1 });
    assert_eq!(config.columns[0].line, 3);
    assert_eq!(
        config.columns[0].value_fields().collect::<Vec<_>>(),
        ["temperatureItem4"]
    );
}

#[test]
fn unknown_function_table_and_argument() {
    rejects(
        &[("function", "  function: sum")],
        5,
        "unknown function `sum`",
    );
    rejects(
        &[("tables", "  tables: [exposure_efd, visits]")],
        4,
        "unknown table `visits`",
    );
    rejects(
        &[("function_args", "  function_args: {ddof: 1, bias: 2}")],
        6,
        "unknown argument `bias`",
    );
    rejects(
        &[("function", "  function: mean")],
        6,
        "`mean` takes no arguments",
    );
    rejects(
        &[
            ("function", "  function: most_recent_value"),
            ("function_args", "  function_args: {start_offset: -1}"),
        ],
        6,
        "top-level `start_offset`",
    );
    rejects(
        &[("function_args", "  function_args: {ddof: -1}")],
        6,
        "`ddof` must be an integer",
    );
    rejects(
        &[
            ("function", "  function: rms_from_polynomial_fit"),
            (
                "function_args",
                "  function_args: {degree: 4, fit_basis: seconds}",
            ),
        ],
        6,
        "`fit_basis` must be `index` or `time`",
    );
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    let text = config(&[column(
        "c",
        &[("datatype", "  datatype: float\n  unit: deg")],
    )]);
    match Config::parse(&text, "cfg.yaml") {
        Err(e @ CoreError::Syntax { line: 8, .. }) => {
            let shown = e.to_string();
            assert!(shown.contains("unknown field `unit`"), "{shown}");
            assert!(shown.starts_with("cfg.yaml:8:"), "{shown}");
            assert!(shown.contains("column `c`"), "{shown}");
        }
        other => panic!("{other:?}"),
    }
    let top = "version: 1.0.0\nextra: 1\ncolumns: []\n";
    assert!(matches!(
        Config::parse(top, "cfg.yaml"),
        Err(CoreError::Syntax { line: 2, .. })
    ));
    let nested = config(&[column(
        "c",
        &[("f", "    - name: temperatureItem4\n      type: float")],
    )]);
    assert!(matches!(
        Config::parse(&nested, "cfg.yaml"),
        Err(CoreError::Syntax { line: 15, .. })
    ));
}

#[test]
fn unpivoted_with_pivoted_table() {
    rejects(
        &[(
            "tables",
            "  tables: [exposure_efd_unpivoted, visit1_efd]\n  store_unpivoted: true",
        )],
        4,
        "`store_unpivoted: true` allows only",
    );
}

#[test]
fn subset_field_must_be_listed() {
    rejects(
        &[("subset_field", "  subset_field: index")],
        9,
        "subset field `index` is not listed",
    );
    rejects(
        &[("subset_value", "")],
        9,
        "`subset_field` needs a `subset_value`",
    );
}

#[test]
fn duplicate_names_name_the_first_definition() {
    let text = config(&[column("c", &[]), column("c", &[])]);
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].line, 16);
    assert!(
        found[0].message.contains("first defined on line 3"),
        "{}",
        found[0]
    );
}

#[test]
fn names_must_be_safe_sql_identifiers() {
    for bad in ["C", "1c", "c-d", "c;drop", "\"c d\"", "day_obs", "cé"] {
        let text = config(&[column(bad, &[])]);
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{bad}: {found:#?}");
        assert_eq!(found[0].line, 3, "{bad}");
    }
    let long = "a".repeat(64);
    let found = problems(&config(&[column(&long, &[])]));
    assert!(found[0].message.contains("64 bytes"), "{}", found[0]);
    // 63 bytes is fine for a pivoted column; an unpivoted property may have 64 but not 65.
    Config::parse(&config(&[column(&"a".repeat(63), &[])]), "cfg.yaml").unwrap();
    let unpivoted = |n: usize| {
        config(&[column(
            &"a".repeat(n),
            &[
                (
                    "tables",
                    "  tables: [exposure_efd_unpivoted]\n  store_unpivoted: true",
                ),
                ("function_args", ""),
                ("function", "  function: mean"),
            ],
        )])
    };
    Config::parse(&unpivoted(64), "cfg.yaml").unwrap();
    assert!(
        problems(&unpivoted(65))[0]
            .message
            .contains("at most 64 characters")
    );
}

#[test]
fn unpivoted_field_names_fit_varchar_32() {
    let edits = [
        (
            "tables",
            "  tables: [exposure_efd_unpivoted]\n  store_unpivoted: true",
        ),
        ("f", "    - name: aVeryLongFieldNameThatIsOver32Chars"),
    ];
    rejects(&edits, 15, "at most 32 characters");
}

#[test]
fn pre_aggregation_rules() {
    let mean = [
        ("function", "  function: mean"),
        ("function_args", ""),
        ("subset_field", ""),
        ("subset_value", ""),
    ];
    fn with<'a>(mean: &[(&'a str, &'a str)], interval: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut e = mean.to_vec();
        e.push(("datatype", interval));
        e
    }
    Config::parse(
        &config(&[column(
            "c",
            &with(&mean, "  datatype: float\n  pre_aggregate_interval: 500ms"),
        )]),
        "cfg.yaml",
    )
    .unwrap();
    for bad in [
        "1",
        "1 s",
        "1s); SHOW USERS; --",
        "0s",
        "-1s",
        "1.5s",
        "1h30m",
    ] {
        let line = format!("  datatype: float\n  pre_aggregate_interval: \"{bad}\"");
        let text = config(&[column("c", &with(&mean, &line))]);
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{bad}");
        assert!(
            found[0]
                .message
                .contains("not an InfluxQL duration literal"),
            "{bad}: {}",
            found[0]
        );
        assert_eq!(found[0].line, 8);
    }
    rejects(
        &[
            (
                "datatype",
                "  datatype: float\n  pre_aggregate_interval: 1s",
            ),
            ("subset_field", ""),
            ("subset_value", ""),
        ],
        8,
        "pre-aggregation works only with mean, max or min, not `stddev`",
    );
}

#[test]
fn rms_takes_one_value_field() {
    rejects(
        &[
            ("function", "  function: rms_from_polynomial_fit"),
            (
                "function_args",
                "  function_args: {degree: 4, fit_basis: index}",
            ),
            (
                "salIndex",
                "    - name: salIndex\n    - name: temperatureItem5",
            ),
        ],
        11,
        "exactly one value field, 2 are listed",
    );
}

#[test]
fn efd_names_reject_hostile_characters() {
    for (bad, needle) in [
        ("lsst.sal.ESS.\"temp\"", "`\"`"),
        ("lsst.sal.ESS.te\\\\mp", "`\\`"),
        ("lsst.sal.ESS.t;DROP", "`;`"),
        ("lsst.sal.ESS.t--x", "`-`"),
        ("lsst.sal.ЕSS.temperature", "non-ASCII"),
        ("lsst.sal..temperature", "empty part"),
    ] {
        let text = config(&[column("c", &[("topic", &format!("  - name: '{bad}'"))])]);
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{bad}: {found:#?}");
        assert_eq!(found[0].line, 12, "{bad}");
        assert!(found[0].message.contains(needle), "{bad}: {}", found[0]);
    }
    rejects(
        &[("f", "    - name: \"temp\\ttab\"")],
        14,
        "control character",
    );
    let long = "f".repeat(97);
    rejects(
        &[("f", &format!("    - name: {long}"))],
        14,
        "longer than 96",
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let text = config(&[
        column("a", &[("function", "  function: sum")]),
        column("b", &[("tables", "  tables: [nowhere]")]),
    ]);
    let found = problems(&text);
    assert_eq!(found.iter().map(|p| p.line).collect::<Vec<_>>(), [5, 17]);
    let all = Config::parse(&text, "cfg.yaml").unwrap_err().to_string();
    assert!(all.starts_with("cfg.yaml: 2 problems found:"), "{all}");
}

#[test]
fn a_missing_file_names_its_path() {
    let err = Config::load(std::path::Path::new("/nonexistent/config.yaml")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/config.yaml"),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[test]
fn subset_values_are_ints_strings_or_lists() {
    let ok = |v: &str| Config::parse(&config(&[column("c", &[("subset_value", v)])]), "cfg.yaml");
    ok("  subset_value: [101, \"111\"]").unwrap();
    ok("  subset_value: abc").unwrap();
    assert!(ok("  subset_value: 1.5").is_err());
    assert!(ok("  subset_value: []").is_err());
}
