//! Hostile names (quotes, semicolons, `--`, backslashes, control characters, Unicode look-alikes,
//! over-long names) in every place a config puts a name that later reaches SQL or InfluxQL: the
//! loader rejects each, naming the line, so no `Config` (and hence no query plan, no SQL and no
//! InfluxQL) is ever built from it. Hostile YAML (block nesting as deep as the text is long) is an
//! error with a line, not a crash.

use transform_core::{Config, CoreError, Problem};

/// A valid one-column config; the line of each key: 3 name, 4 tables, 5 function, 6 datatype,
/// 7 description, 8 subset_field, 9 subset_value, 10 topics, 11 topic name, 12 fields, 13 field,
/// 14 salIndex.
fn config(name: &str, tables: &str, topic: &str, field: &str, subset_field: &str) -> String {
    format!(
        "version: 1.0.0
columns:
- name: {name}
  tables: {tables}
  function: mean
  datatype: float
  description: A column.
  subset_field: {subset_field}
  subset_value: 301
  topics:
  - name: {topic}
    fields:
    - name: {field}
    - name: salIndex
"
    )
}

const TOPIC: &str = "lsst.sal.ESS.temperature";

/// `s` as a YAML double-quoted scalar: quotes and backslashes escaped, everything outside
/// printable ASCII as `\uXXXX` (`\UXXXXXXXX`), so the loader sees exactly `s`.
fn yaml_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// `text` with `bad` (YAML-quoted) in place of the valid name on `line`.
fn with_bad(line: usize, bad: &str) -> String {
    let quoted = yaml_quoted(bad);
    let pivoted = "[exposure_efd]";
    match line {
        3 => config(&quoted, pivoted, TOPIC, "temperatureItem0", "salIndex"),
        11 => config("c", pivoted, &quoted, "temperatureItem0", "salIndex"),
        13 => config("c", pivoted, TOPIC, &quoted, "salIndex"),
        _ => unreachable!("no name on line {line}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, "cfg.yaml") {
        Err(CoreError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got: {other}\n{text}"),
        Ok(config) => panic!("accepted a hostile name: {:?}\n{text}", config.columns),
    }
}

/// Names no SQL identifier or EFD name may be; each must be rejected wherever a name goes.
const HOSTILE: &[&str] = &[
    "c\"",
    "\"; DROP TABLE exposure_efd; --",
    "c' OR '1'='1",
    "c;drop",
    "c--",
    "c -- x",
    "c\\",
    "c\\\"",
    "c/*x*/",
    "c d",
    "c\td",
    "c\nd",
    "c\u{0}",
    "c\u{7f}",
    "\u{441}ol",  // Cyrillic с
    "c\u{430}",   // Cyrillic а
    "ｃ",         // fullwidth c
    "c\u{200b}",  // zero-width space
    "c\u{202e}",  // right-to-left override
    "c\u{ff1b}",  // fullwidth semicolon
    "c\u{2010}d", // hyphen look-alike
    "c\u{fffd}",
    "c`",
    "c$1",
    "c)",
    "(c",
    "c,d",
    "",
];

#[test]
fn the_base_config_is_valid() {
    // Every rejection below is the hostile name's doing, not the template's.
    let text = config("c", "[exposure_efd]", TOPIC, "temperatureItem0", "salIndex");
    let config = Config::parse(&text, "cfg.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.columns[0].topic().fields[0].name, "temperatureItem0");
    assert_eq!(config.columns[0].line, 3);
}

#[test]
fn hostile_names_are_rejected_in_every_place_with_their_line() {
    let mut checked = 0;
    for &bad in HOSTILE {
        for line in [3, 11, 13] {
            let text = with_bad(line, bad);
            let found = problems(&text);
            assert!(
                found.iter().any(|p| p.line == line),
                "{bad:?} on line {line}: {found:#?}"
            );
            assert!(found.iter().all(|p| p.line > 0), "{found:#?}");
            checked += 1;
        }
    }
    assert_eq!(checked, HOSTILE.len() * 3);
}

#[test]
fn a_hostile_subset_field_is_rejected() {
    // The subset field must be one of the topic's (validated) fields.
    for &bad in HOSTILE {
        let text = config(
            "c",
            "[exposure_efd]",
            TOPIC,
            "temperatureItem0",
            &yaml_quoted(bad),
        );
        let found = problems(&text);
        assert!(found.iter().any(|p| p.line == 8), "{bad:?}: {found:#?}");
    }
}

#[test]
fn hostile_table_names_and_intervals_are_rejected() {
    for bad in [
        "exposure_efd; DROP TABLE x",
        "\"exposure_efd\"",
        "EXPOSURE_EFD",
        "exposure_efd--",
    ] {
        let tables = format!("[{}]", yaml_quoted(bad));
        let found = problems(&config("c", &tables, TOPIC, "temperatureItem0", "salIndex"));
        assert!(found.iter().any(|p| p.line == 4), "{bad}: {found:#?}");
    }
    for bad in ["1s) ; DROP", "1s--", "1\u{73}\u{200b}", "1ｓ"] {
        let text = config("c", "[exposure_efd]", TOPIC, "temperatureItem0", "salIndex").replace(
            "  datatype: float\n",
            &format!(
                "  datatype: float\n  pre_aggregate_interval: {}\n",
                yaml_quoted(bad)
            ),
        );
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.message.contains("not an InfluxQL duration literal")),
            "{bad}: {found:#?}"
        );
    }
}

#[test]
fn hundred_character_names_are_rejected() {
    let long = "a".repeat(100);
    // A column name: longer than PostgreSQL's 63-byte identifiers (pivoted) and than the
    // unpivoted tables' VARCHAR(64) `property`.
    let found = problems(&config(
        &long,
        "[exposure_efd]",
        TOPIC,
        "temperatureItem0",
        "salIndex",
    ));
    assert!(
        found
            .iter()
            .any(|p| p.line == 3 && p.message.contains("100 bytes")),
        "{found:#?}"
    );
    let unpivoted = config(
        &long,
        "[exposure_efd_unpivoted]",
        TOPIC,
        "temperatureItem0",
        "salIndex",
    )
    .replace("  tables:", "  store_unpivoted: true\n  tables:");
    let found = problems(&unpivoted);
    assert!(
        found
            .iter()
            .any(|p| p.message.contains("at most 64 characters")),
        "{found:#?}"
    );
    // A field stored in the unpivoted `field` column (VARCHAR(32)).
    let unpivoted_field = config("c", "[exposure_efd_unpivoted]", TOPIC, &long, "salIndex")
        .replace("  tables:", "  store_unpivoted: true\n  tables:");
    let found = problems(&unpivoted_field);
    assert!(
        found.iter().any(|p| p.line == 14
            && (p.message.contains("at most 32 characters")
                || p.message.contains("longer than 96"))),
        "{found:#?}"
    );
}

#[test]
fn over_long_efd_names_are_rejected() {
    // 100 characters: the example of a runaway name.
    let long = "a".repeat(100);
    for line in [11, 13] {
        let found = problems(&with_bad(line, &long));
        assert!(
            found
                .iter()
                .any(|p| p.line == line && p.message.contains("longer than")),
            "{found:#?}"
        );
    }
}

/// Asserts `text` is a syntax error located on a line of the text.
fn syntax_error_with_a_line(text: &str) {
    match Config::parse(text, "cfg.yaml") {
        Err(CoreError::Syntax { line, .. }) => {
            assert!(
                (1..=text.lines().count() + 1).contains(&line),
                "line {line}"
            );
        }
        Err(CoreError::Invalid { problems, .. }) => {
            assert!(problems.iter().all(|p| p.line > 0), "{problems:#?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn deep_nesting_is_an_error_with_a_line_not_a_stack_overflow() {
    let depth = 100_000;
    // Block sequences nested on one line (`- - - ...`): no flow-level limit applies to these.
    syntax_error_with_a_line(&format!("version: 1\ncolumns:\n{}x\n", "- ".repeat(depth)));
    // Block mappings nested by indentation.
    let mut nested = String::from("version: 1\ncolumns:\n- name:\n");
    for k in 1..300 {
        nested.push_str(&" ".repeat(k + 2));
        nested.push_str("a:\n");
    }
    syntax_error_with_a_line(&nested);
    // Flow collections past both parsers' limits (128 and 256 levels; libyaml takes time quadratic
    // in flow depth, so not 100 000 here) and a complex key.
    let flow = 300;
    syntax_error_with_a_line(&format!(
        "version: {}1{}\ncolumns: []\n",
        "[".repeat(flow),
        "]".repeat(flow)
    ));
    syntax_error_with_a_line(&format!("? {}x\n: 1\n", "- ".repeat(depth)));
}

#[test]
fn errors_the_line_index_cannot_reach_still_name_a_line() {
    // Found by the fuzzing (`faults_fuzz_config`): serde gives no location for a second document,
    // and the line index's parser stops (where serde reads on) at a U+FEFF inside a scalar and at
    // `...` inside a multi-line quoted scalar; each error used to say line 0.
    let base = config("c", "[exposure_efd]", TOPIC, "temperatureItem0", "salIndex");
    syntax_error_with_a_line(&base.replace("columns:\n", "...\ncolumns:\n"));
    let bom = base.replace("function: mean", "function: me\u{feff}an");
    let found = problems(&bom);
    assert!(
        found.iter().any(|p| p.message.contains("unknown function")),
        "{found:#?}"
    );
    syntax_error_with_a_line(&bom);
    let quoted = base
        .replace("version: 1.0.0", "version: 'day_obs...\n'")
        .replace(
            "    - name: temperatureItem0",
            "    - name: \\temperatureItem0",
        );
    let found = problems(&quoted);
    assert!(
        found.iter().any(|p| p.message.contains("field name")),
        "{found:#?}"
    );
    syntax_error_with_a_line(&quoted);
}
