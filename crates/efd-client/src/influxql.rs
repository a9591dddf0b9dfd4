//! InfluxQL statement text. The only place statements are built.
//!
//! Identifiers are always double-quoted with `\` and `"` escaped, so no topic or field name can end
//! the identifier early (names are validated by the config loader too; this is the second line).
//! Times are integer nanosecond literals, which InfluxQL compares with `time` directly. Durations come
//! from the validated `InfluxDuration` type only.

use std::fmt::Write as _;

use transform_core::{PreAggregation, TimeRange};

/// Quotes an identifier: `"` + name with `\` → `\\` and `"` → `\"` + `"`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The fully qualified measurement: `"db"."rp"."topic"`.
pub fn measurement(database: &str, retention_policy: &str, topic: &str) -> String {
    format!(
        "{}.{}.{}",
        quote_ident(database),
        quote_ident(retention_policy),
        quote_ident(topic)
    )
}

/// `SELECT "f1", "f2" FROM <m> WHERE time >= <start> AND time <= <end>`, or with an aggregation
/// `SELECT MEAN("f1") AS "f1", ... GROUP BY time(<interval>)`.
pub fn select(
    measurement: &str,
    fields: &[String],
    range: TimeRange,
    aggregation: Option<&PreAggregation>,
) -> String {
    let mut q = String::from("SELECT ");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            q.push_str(", ");
        }
        let quoted = quote_ident(f);
        match aggregation {
            None => q.push_str(&quoted),
            Some(a) => {
                let _ = write!(q, "{}({quoted}) AS {quoted}", a.function.influxql());
            }
        }
    }
    let _ = write!(
        q,
        " FROM {measurement} WHERE time >= {} AND time <= {}",
        range.start().0,
        range.end().0
    );
    if let Some(a) = aggregation {
        let _ = write!(q, " GROUP BY time({})", a.interval.as_str());
    }
    q
}

/// `SHOW FIELD KEYS FROM <m>`.
pub fn show_field_keys(measurement: &str) -> String {
    format!("SHOW FIELD KEYS FROM {measurement}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use transform_core::{AggregateFn, InfluxDuration, UtcNanos};

    fn range() -> TimeRange {
        TimeRange::new(UtcNanos(1), UtcNanos(2)).unwrap()
    }

    #[test]
    fn plain_and_aggregated_selects() {
        let m = measurement("efd", "autogen", "lsst.sal.ESS.temperature");
        assert_eq!(m, r#""efd"."autogen"."lsst.sal.ESS.temperature""#);
        let fields = vec!["a".to_owned(), "salIndex".to_owned()];
        assert_eq!(
            select(&m, &fields, range(), None),
            r#"SELECT "a", "salIndex" FROM "efd"."autogen"."lsst.sal.ESS.temperature" WHERE time >= 1 AND time <= 2"#
        );
        let agg = PreAggregation {
            interval: InfluxDuration::parse("1s").unwrap(),
            function: AggregateFn::Mean,
        };
        assert_eq!(
            select(&m, &fields[..1], range(), Some(&agg)),
            r#"SELECT MEAN("a") AS "a" FROM "efd"."autogen"."lsst.sal.ESS.temperature" WHERE time >= 1 AND time <= 2 GROUP BY time(1s)"#
        );
    }

    #[test]
    fn identifiers_cannot_escape_their_quotes() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote_ident(r"a\"), r#""a\\""#);
        assert_eq!(quote_ident(r#"x" FROM y; DROP"#), r#""x\" FROM y; DROP""#);
    }
}
