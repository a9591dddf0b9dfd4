//! Fuzzing the config loader: a million near-valid configs (valid ones, mutated line by line and
//! byte by byte with YAML syntax, hostile names and out-of-range values) never make
//! [`Config::parse`] panic; every error it returns names a line of the text; and every config it
//! accepts holds only names from the safe alphabet, so nothing hostile can reach SQL or InfluxQL.
//!
//! A slow test (`faults_*`): `make test-faults` runs it, `make test` does not.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use test_support::Rng;
use transform_core::{Config, CoreError};

/// Inputs tried (`FAULTS_FUZZ_CASES` overrides it for a quick local look).
const CASES: u32 = 1_000_000;

/// [`CASES`], or `FAULTS_FUZZ_CASES`.
fn cases() -> u32 {
    std::env::var("FAULTS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

/// Names and values that must never be accepted where a name goes, plus valid ones.
const NAMES: &[&str] = &[
    "mean_temp",
    "a",
    "_",
    "day_obs",
    "C",
    "1c",
    "c-d",
    "c;drop table x",
    "\"c\"",
    "'c'",
    "c--",
    "c\\d",
    "cé",
    "сol",
    "lsst.sal.ESS.temperature",
    "lsst.sal..x",
    ".lsst",
    "lsst.",
    "temperatureItem4",
    "salIndex",
    "x\" FROM y; DROP",
    "a\u{0}b",
    "a\tb",
    "ａ",
    "a\u{200b}b",
    "",
    " ",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "time",
];

/// YAML and config fragments spliced into the text.
const FRAGMENTS: &[&str] = &[
    ":",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!binary ",
    "!!str ",
    "? ",
    "<<: ",
    "|",
    ">",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\t",
    "\n",
    "  ",
    "#",
    "\u{feff}",
    "\0",
    "~",
    "null",
    "true",
    "no",
    "0x10",
    "1e999",
    ".nan",
    "-.inf",
    "18446744073709551616",
    "-9223372036854775809",
    "1_000",
    "0o17",
    "\\",
    "\r",
    "\u{85}",
    "\u{2028}",
    "é",
    "\u{fffd}",
    "version: 1\n",
    "columns:\n",
    "- name: x\n",
    "  tables: []\n",
    "  function: sum\n",
    "  function_args: {ddof: -1}\n",
    "  function_args: {degree: 99}\n",
    "  pre_aggregate_interval: 0s\n",
    "  pre_aggregate_interval: 1h30m\n",
    "  start_offset: 1e308\n",
    "  subset_value: []\n",
    "  subset_field: salIndex\n",
    "  store_unpivoted: true\n",
    "  packed_series: true\n",
    "  unknown_key: 1\n",
    "  topics: []\n",
    "    fields: []\n",
    "  ivoa: {unit: [1]}\n",
];

/// One valid column, its values drawn from the shipped configs' shapes.
fn column(rng: &mut Rng, i: usize) -> String {
    let name = format!("col_{i}_{}", rng.pick(&["mean", "max", "rms", "x"]));
    let (function, args) = match rng.below(6) {
        0 => ("mean", ""),
        1 => ("max", ""),
        2 => ("min", ""),
        3 => ("most_recent_value", ""),
        4 => ("stddev", "  function_args: {\"ddof\": 1}\n"),
        _ => (
            "rms_from_polynomial_fit",
            "  function_args: {\"degree\": 4, \"fit_basis\": \"index\"}\n",
        ),
    };
    let tables = rng.pick(&[
        "  tables: [\"exposure_efd\", \"visit1_efd\"]\n",
        "  tables: [\"exposure_efd\"]\n",
        "",
        "  tables:\n  - visit1_efd\n",
    ]);
    let aggregate = if rng.chance(20) && matches!(function, "mean" | "max" | "min") {
        "  pre_aggregate_interval: 1s\n"
    } else {
        ""
    };
    let offset = if rng.chance(20) {
        "  start_offset: -0.5\n"
    } else {
        ""
    };
    let subset = rng.chance(30) && aggregate.is_empty() && !function.starts_with("rms");
    let mut text = format!(
        "- name: {name}\n{tables}  function: {function}\n{args}{aggregate}  datatype: float\n  ivoa: {{\"unit\": \"deg_C\", \"ucd\": \"meta\"}}\n  description: Column {i}.\n{offset}"
    );
    if subset {
        text.push_str("  subset_field: salIndex\n  subset_value: [101, 111]\n");
    }
    text.push_str("  topics:\n  - name: lsst.sal.ESS.temperature\n    fields:\n    - name: temperatureItem0\n");
    if subset {
        text.push_str("    - name: salIndex\n");
    }
    text.push('\n');
    text
}

fn valid_config(rng: &mut Rng) -> String {
    let mut text = String::from("version: 1.1.0\ncolumns:\n");
    // Mostly one column (parsing is what costs), sometimes two, for duplicate names.
    for i in 0..1 + usize::from(rng.chance(25)) {
        text.push_str(&column(rng, i));
    }
    text
}

/// `s` as a YAML double-quoted scalar (quotes, backslashes and everything outside printable ASCII
/// escaped), so the loader sees exactly `s`.
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

/// A char boundary of `text` at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Applies one to four mutations: names and scalars replaced, fragments spliced in, lines dropped,
/// duplicated, swapped or re-indented, the text cut, deep nesting.
fn mutate(rng: &mut Rng, text: &mut String) {
    for _ in 0..=rng.below(4) {
        match rng.below(9) {
            0 | 1 => {
                // Replace a `name:` value (or any scalar after `: `) with a name from NAMES, quoted
                // the way YAML needs.
                let spots: Vec<usize> = text.match_indices(": ").map(|(k, _)| k + 2).collect();
                if spots.is_empty() {
                    continue;
                }
                let start = spots[rng.below(spots.len())];
                let end = text[start..].find('\n').map_or(text.len(), |k| start + k);
                let name = rng.pick(NAMES);
                let value = match rng.below(3) {
                    0 => name.to_owned(),
                    1 => format!("'{}'", name.replace('\'', "''")),
                    _ => yaml_quoted(name),
                };
                text.replace_range(start..end, &value);
            }
            2 | 3 => {
                let at = boundary(text, rng.below(text.len() + 1));
                text.insert_str(at, rng.pick(FRAGMENTS));
            }
            4 => {
                let lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let k = rng.below(lines.len());
                let mut out: Vec<&str> = lines.clone();
                match rng.below(4) {
                    0 => {
                        out.remove(k);
                    }
                    1 => out.insert(k, lines[k]),
                    2 => out.swap(k, rng.below(lines.len())),
                    _ => {
                        let other = rng.below(lines.len());
                        out[k] = lines[other];
                    }
                }
                *text = out.join("\n");
            }
            5 => {
                // Re-indent one line.
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(text.match_indices('\n').map(|(k, _)| k + 1))
                    .collect();
                let at = starts[rng.below(starts.len())];
                if rng.chance(50) {
                    text.insert_str(at, rng.pick(&[" ", "  ", "\t", "- "]));
                } else if text[at..].starts_with(' ') {
                    text.remove(at);
                }
            }
            6 => {
                let at = boundary(text, rng.below(text.len() + 1));
                text.truncate(at);
            }
            7 => {
                // Deep nesting: block sequences to 3000 levels; flow collections past the
                // deserializer's limit (128) and the line index's parser's (256) but to 300 only,
                // since libyaml takes quadratic time in flow depth.
                let at = boundary(text, rng.below(text.len() + 1));
                let deep = rng.chance(5);
                let nest = match rng.below(3) {
                    0 => {
                        let depth = 1 + rng.below(if deep { 300 } else { 150 });
                        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
                    }
                    1 => "{a: ".repeat(1 + rng.below(if deep { 300 } else { 150 })),
                    _ => "- ".repeat(1 + rng.below(if deep { 3000 } else { 300 })),
                };
                text.insert_str(at, &nest);
            }
            _ => {
                // Replace one byte-sized char with a random ASCII or special char.
                if text.is_empty() {
                    continue;
                }
                let at = boundary(text, rng.below(text.len()));
                let Some(old) = text[at..].chars().next() else {
                    continue;
                };
                let new = match rng.below(3) {
                    0 => char::from(u8::try_from(rng.below(128)).unwrap_or(b'?')),
                    1 => char::from_u32(u32::try_from(rng.below(0x3000)).unwrap_or(0x41))
                        .unwrap_or('x'),
                    _ => rng
                        .pick(&["\"", "'", ":", "-", "#", "&", "*", "!", "%", "@", "`"])
                        .chars()
                        .next()
                        .unwrap_or('x'),
                };
                text.replace_range(at..at + old.len_utf8(), new.encode_utf8(&mut [0; 4]));
            }
        }
    }
}

/// Lines a located error may name: 1 to one past the last line (end of input), counting every
/// break libyaml counts (`\n`, `\r`, NEL, LS, PS; `\r\n` counted twice here, an upper bound).
fn line_range(text: &str) -> std::ops::RangeInclusive<usize> {
    let breaks = text
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    1..=breaks + 2
}

fn is_column_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 63
        && matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

fn is_efd_name(name: &str, dotted: bool) -> bool {
    !name.is_empty()
        && name.len() <= 96
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.split('.').all(|part| !part.is_empty() || !dotted)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dotted && c == '.'))
}

/// The property: no panic (the runner catches one and fails), errors located, accepted names safe.
fn check(text: &str) -> Result<Outcome, TestCaseError> {
    match Config::parse(text, "fuzz.yaml") {
        Ok(config) => {
            for c in &config.columns {
                prop_assert!(
                    is_column_name(&c.name),
                    "accepted column {:?}\n{text}",
                    c.name
                );
                for t in &c.topics {
                    prop_assert!(
                        is_efd_name(&t.name, true),
                        "accepted topic {:?}\n{text}",
                        t.name
                    );
                    for f in &t.fields {
                        prop_assert!(
                            is_efd_name(&f.name, false),
                            "accepted field {:?}\n{text}",
                            f.name
                        );
                    }
                }
            }
            Ok(Outcome::Accepted)
        }
        Err(CoreError::Syntax { line, .. }) => {
            prop_assert!(
                line_range(text).contains(&line),
                "syntax error on line {line}, outside {:?}:\n{text:?}\n{}",
                line_range(text),
                Config::parse(text, "fuzz.yaml").unwrap_err()
            );
            Ok(Outcome::Syntax)
        }
        Err(CoreError::Invalid { problems, .. }) => {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(
                    line_range(text).contains(&p.line),
                    "problem without a line: {p}\n{text:?}"
                );
            }
            Ok(Outcome::Invalid)
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "unexpected error kind: {other}"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Syntax,
    Invalid,
}

#[test]
fn a_million_mutated_configs_never_panic_and_every_error_names_its_line() {
    let cases = cases();
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let counts = std::cell::Cell::new([0u64; 3]);
    let total_bytes = std::cell::Cell::new(0u64);
    runner
        .run(&any::<u64>(), |seed| {
            let mut rng = Rng(seed);
            let mut text = valid_config(&mut rng);
            // One in eight stays valid, to keep the accepting path (and its name check) exercised.
            if !rng.chance(12) {
                mutate(&mut rng, &mut text);
            }
            total_bytes.set(total_bytes.get() + text.len() as u64);
            let outcome = check(&text)?;
            let mut c = counts.get();
            c[outcome as usize] += 1;
            counts.set(c);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let [accepted, syntax, invalid] = counts.get();
    // The generator must reach every outcome often, or the fuzzing proves little.
    for (what, n) in [
        ("accepted", accepted),
        ("syntax", syntax),
        ("invalid", invalid),
    ] {
        assert!(
            n >= u64::from(cases) / 50,
            "only {n} of {cases} inputs were {what}: the generator is too narrow"
        );
    }
    test_support::report::record(
        "fuzz",
        "config loader",
        "valid configs mutated: hostile names, YAML syntax fragments, dropped/duplicated/re-indented lines, cuts, block nesting to 3000 and flow nesting to 300 levels",
        accepted + syntax + invalid,
        &format!(
            "no panic; {accepted} accepted (every name safe), {syntax} syntax errors and {invalid} invalid configs, each naming a line; mean input {} bytes",
            total_bytes.get() / u64::from(cases)
        ),
        "faults_fuzz_config::a_million_mutated_configs_never_panic_and_every_error_names_its_line",
    );
}
