//! The InfluxQL source against a real `influxd` 1.x started by the harness, and the file source
//! against the same data: plain, chunked, pre-aggregated, packed, tagged and untagged salIndex, mixed
//! timestamps, empty ranges, InfluxQL errors, basic auth, a stopped server, identifier escaping and
//! secrets kept out of every output.

mod common;

use common::*;
use efd_client::{
    EfdClient, EfdError, EfdSource, FieldType, ResponseFormat, Select, TopicQuery, run_query,
};
use test_support::Influxd;
use transform_core::{AggregateFn, ColumnData, InfluxDuration, PreAggregation, Semantics};

fn seeded() -> Influxd {
    let influx = Influxd::start();
    influx.create_database("efd");
    influx.write("efd", &seed());
    influx
}

#[tokio::test]
async fn plain_select_keeps_types_rows_and_mixed_timestamps() {
    let influx = seeded();
    let source = http(&influx.url());
    let fields = [
        "temperatureItem0",
        "temperatureItem1",
        "salIndex",
        "count",
        "ok",
        "status",
        "noSuchField",
    ];
    let frame = run_query(
        &source,
        &query(ESS, &fields, range(T0, T0 + 60 * SECOND)),
        Semantics::Default,
    )
    .await
    .unwrap();
    // All 60 rows: whole-second and fractional timestamps alike.
    assert_eq!(frame.len(), 60);
    assert_eq!(frame.timestamps()[1], T0 + SECOND + 250_000_000);
    assert_eq!(
        floats(&frame, "temperatureItem0")[4],
        12.0,
        "JSON 12 in a float field is a float"
    );
    let t1 = floats(&frame, "temperatureItem1");
    assert!(t1[0].is_nan() && t1[7].is_nan() && t1[1] == 19.75);
    assert!(
        matches!(frame.column("salIndex"), Some(ColumnData::Int(v)) if v[0] == Some(301) && v[1] == Some(302))
    );
    assert!(matches!(frame.column("count"), Some(ColumnData::Int(v)) if v[59] == Some(59)));
    assert!(
        matches!(frame.column("ok"), Some(ColumnData::Bool(v)) if v[0] == Some(true) && v[1] == Some(false))
    );
    assert!(
        matches!(frame.column("status"), Some(ColumnData::Str(v)) if v[2].as_deref() == Some("s2"))
    );
    assert!(floats(&frame, "noSuchField").iter().all(|v| v.is_nan()));
    // Inclusive bounds on both ends, at ns precision.
    let edge = run_query(
        &source,
        &query(
            ESS,
            &["temperatureItem0"],
            range(T0 + SECOND + 250_000_000, T0 + 3 * SECOND + 250_000_000),
        ),
        Semantics::Default,
    )
    .await
    .unwrap();
    assert_eq!(edge.len(), 3);
    let narrower = run_query(
        &source,
        &query(
            ESS,
            &["temperatureItem0"],
            range(T0 + SECOND + 250_000_001, T0 + 3 * SECOND + 249_999_999),
        ),
        Semantics::Default,
    )
    .await
    .unwrap();
    assert_eq!(narrower.len(), 1);
}

#[tokio::test]
async fn empty_ranges_and_unknown_topics_give_empty_frames_with_the_columns() {
    let influx = seeded();
    let source = http(&influx.url());
    for topic in [ESS, "lsst.sal.NOPE.topic"] {
        let frame = run_query(
            &source,
            &query(
                topic,
                &["temperatureItem0", "salIndex"],
                range(T0 - 100 * SECOND, T0 - SECOND),
            ),
            Semantics::Default,
        )
        .await
        .unwrap();
        assert!(frame.is_empty());
        assert_eq!(frame.columns().len(), 2);
    }
}

#[tokio::test]
async fn more_than_100_fields_are_chunked_and_joined_without_row_loss() {
    let influx = seeded();
    let source = http(&influx.url());
    let names: Vec<String> = (0..250).map(|f| format!("f{f}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let frame = run_query(
        &source,
        &query(WIDE, &refs, range(T0, T0 + 10 * SECOND)),
        Semantics::Default,
    )
    .await
    .unwrap();
    assert_eq!(
        frame.len(),
        20,
        "rows present only in the last chunk are kept"
    );
    assert_eq!(frame.columns().len(), 250);
    assert_eq!(frame.timestamps()[3], T0 + 300_000_007);
    let f0 = floats(&frame, "f0");
    let f249 = floats(&frame, "f249");
    assert_eq!(f0[4], 4000.0);
    assert!(f0[5].is_nan(), "row 5 has no f0");
    assert_eq!(f249[5], 5249.0);
    assert!(
        frame
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .eq(refs.iter().copied()),
        "request order"
    );
}

#[tokio::test]
async fn pre_aggregation_buckets_are_epoch_aligned_and_empty_ones_dropped() {
    let influx = seeded();
    let source = http(&influx.url());
    let agg = |f| PreAggregation {
        interval: InfluxDuration::parse("2s").unwrap(),
        function: f,
    };
    let mut q = query(
        ESS,
        &["temperatureItem0", "count"],
        range(T0 - 10 * SECOND, T0 + 9 * SECOND),
    );
    q.pre_aggregation = Some(agg(AggregateFn::Mean));
    let mean = run_query(&source, &q, Semantics::Default).await.unwrap();
    // Buckets [T0-10s, T0-8s) ... are empty and dropped; data buckets start at T0, T0+2s, ... T0+8s.
    assert_eq!(
        mean.timestamps(),
        &[
            T0,
            T0 + 2 * SECOND,
            T0 + 4 * SECOND,
            T0 + 6 * SECOND,
            T0 + 8 * SECOND
        ]
    );
    assert_eq!(floats(&mean, "temperatureItem0")[0], 10.25);
    assert_eq!(
        floats(&mean, "count")[1],
        2.5,
        "MEAN of an integer field is a float"
    );
    q.pre_aggregation = Some(agg(AggregateFn::Max));
    let max = run_query(&source, &q, Semantics::Default).await.unwrap();
    assert!(
        matches!(max.column("count"), Some(ColumnData::Int(v)) if v[0] == Some(1)),
        "MAX keeps integers"
    );
    // The last bucket holds only the row at T0+8s: the range ends at T0+9s, before row 9 (+9.25 s).
    assert_eq!(floats(&max, "temperatureItem0")[4], 14.0);
}

#[tokio::test]
async fn salindex_as_tag_and_as_field() {
    let influx = seeded();
    let source = http(&influx.url());
    let tagged = run_query(
        &source,
        &query(TAGGED, &["value", "salIndex"], range(T0, T0 + 9 * SECOND)),
        Semantics::Default,
    )
    .await
    .unwrap();
    assert_eq!(tagged.len(), 20, "two series with identical timestamps");
    assert!(
        matches!(tagged.column("salIndex"), Some(ColumnData::Str(v)) if v[0].as_deref() == Some("301") && v[1].as_deref() == Some("302"))
    );
    let keys = source.field_keys(ESS).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.name == "salIndex" && k.field_type == FieldType::Integer)
    );
}

#[tokio::test]
async fn packed_series_unpack_every_base_in_default_and_three_in_reference() {
    let influx = seeded();
    let source = http(&influx.url());
    let bases = [
        "azimuthCalculatedAngle",
        "elevationCalculatedAngle",
        "nasmyth1",
        "nasmyth2",
    ];
    let mut q = query(PACKED, &bases, range(T0, T0 + 10 * SECOND));
    q.packed = true;
    let frame = run_query(&source, &q, Semantics::Default).await.unwrap();
    assert_eq!(frame.len(), 5 * PACK_N);
    assert_eq!(frame.columns().len(), 4);
    // Row 2, sample 3: cRIO = T0 + 37 s + 2.5 s (TAI) → UTC T0 + 2.5 s, + 3 × 100 ms.
    assert_eq!(
        frame.timestamps()[2 * PACK_N + 3],
        T0 + 2 * SECOND + 500_000_000 + 300_000_000
    );
    assert_eq!(
        floats(&frame, "nasmyth2")[2 * PACK_N + 3],
        3000.0 + 20.0 + 3.0
    );
    let reference = run_query(&source, &q, Semantics::Reference).await.unwrap();
    assert_eq!(
        reference.columns().len(),
        3,
        "the reference unpacks the first three bases"
    );
    assert_eq!(
        reference.timestamps()[2 * PACK_N + 3],
        T0 + 2 * SECOND + 800_000_000
    );
    // Two bases only.
    let mut two = query(PACKED, &bases[..2], range(T0, T0 + 10 * SECOND));
    two.packed = true;
    let frame = run_query(&source, &two, Semantics::Default).await.unwrap();
    assert_eq!(frame.columns().len(), 2);
    assert_eq!(floats(&frame, "elevationCalculatedAngle")[PACK_N], 1010.0);
}

#[tokio::test]
async fn the_file_source_returns_identical_frames() {
    let influx = seeded();
    // Both encodings influxd offers, in chunks of 7 points so that documents straddle the
    // transport's reads.
    let sources: Vec<(ResponseFormat, efd_client::HttpSource)> =
        [ResponseFormat::Msgpack, ResponseFormat::Json]
            .into_iter()
            .map(|format| {
                let mut o = options(&influx.url());
                o.response_format = format;
                o.chunk_size = 7;
                (format, efd_client::HttpSource::new(o).unwrap())
            })
            .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("efd.lp");
    std::fs::write(&path, seed()).unwrap();
    let file = EfdClient::open(file_options(&path)).await.unwrap();
    let wide: Vec<String> = (0..250).map(|f| format!("f{f}")).collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    let mut queries: Vec<TopicQuery> = vec![
        query(
            ESS,
            &[
                "temperatureItem0",
                "temperatureItem1",
                "salIndex",
                "count",
                "ok",
                "status",
                "noSuchField",
            ],
            range(T0, T0 + 60 * SECOND),
        ),
        query(
            ESS,
            &["temperatureItem1"],
            range(T0 + 3 * SECOND, T0 + 20 * SECOND + 250_000_000),
        ),
        query(TAGGED, &["value", "salIndex"], range(T0, T0 + 9 * SECOND)),
        query(WIDE, &wide, range(T0, T0 + 10 * SECOND)),
        query(
            ESS,
            &["temperatureItem0"],
            range(T0 - 5 * SECOND, T0 - SECOND),
        ),
    ];
    for f in [AggregateFn::Mean, AggregateFn::Max, AggregateFn::Min] {
        let mut q = query(
            ESS,
            &["temperatureItem0", "temperatureItem1", "count"],
            range(T0 - 3 * SECOND, T0 + 30 * SECOND + 1),
        );
        q.pre_aggregation = Some(PreAggregation {
            interval: InfluxDuration::parse("3s").unwrap(),
            function: f,
        });
        queries.push(q);
    }
    let mut packed = query(
        PACKED,
        &[
            "azimuthCalculatedAngle",
            "elevationCalculatedAngle",
            "nasmyth1",
            "nasmyth2",
        ],
        range(T0, T0 + 10 * SECOND),
    );
    packed.packed = true;
    queries.push(packed);
    for (format, source) in &sources {
        for q in &queries {
            for semantics in [Semantics::Default, Semantics::Reference] {
                let a = run_query(source, q, semantics).await.unwrap();
                let b = run_query(&file, q, semantics).await.unwrap();
                if let Err(why) = same_frame(&a, &b) {
                    panic!(
                        "{format:?}: {} {:?} ({semantics}): {why}",
                        q.topic, q.pre_aggregation
                    );
                }
            }
        }
        assert_eq!(
            source.field_keys(ESS).await.unwrap(),
            file.field_keys(ESS).await.unwrap()
        );
    }
}

#[tokio::test]
async fn influxql_errors_are_permanent_errors_not_empty_data() {
    let influx = seeded();
    for format in [ResponseFormat::Msgpack, ResponseFormat::Json] {
        let mut o = options(&influx.url());
        o.database = "no_such_db".to_owned();
        o.response_format = format;
        let source = efd_client::HttpSource::new(o).unwrap();
        let err = run_query(
            &source,
            &query(ESS, &["temperatureItem0"], range(T0, T0 + SECOND)),
            Semantics::Default,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, EfdError::InfluxQl { .. }),
            "{format:?}: {err:?}"
        );
        assert!(err.to_string().contains("database not found"), "{err}");
        assert!(
            err.to_string().contains(ESS),
            "errors name the topic: {err}"
        );
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn identifiers_are_escaped_so_names_cannot_inject() {
    let influx = Influxd::start();
    influx.create_database("efd");
    // A measurement and a field whose names hold quotes and backslashes (line protocol escapes only
    // commas, spaces and equals signs in them).
    influx.write(
        "efd",
        &format!("we\"ird\\topic a\"b\\c=1.5,plain=2 {T0}\nother secret=42 {T0}\n"),
    );
    let source = http(&influx.url());
    let frame = source
        .select(Select {
            topic: "we\"ird\\topic",
            fields: &strings(&["a\"b\\c", "plain"]),
            range: range(T0, T0),
            aggregation: None,
        })
        .await
        .unwrap();
    assert_eq!(floats(&frame, "a\"b\\c"), vec![1.5]);
    // A name crafted to close the identifier and select from another measurement finds nothing.
    let hostile = strings(&["plain\" FROM \"other\" --", "secret"]);
    let frame = source
        .select(Select {
            topic: "we\"ird\\topic",
            fields: &hostile,
            range: range(T0, T0),
            aggregation: None,
        })
        .await
        .unwrap();
    assert!(frame.is_empty(), "{frame:?}");
}

#[tokio::test]
async fn basic_auth_right_and_wrong_and_the_password_never_shows() {
    const PASSWORD: &str = "hunter2-Sup3rSecret";
    let influx = Influxd::start_with_auth("admin", "admin-pw-Xy7");
    influx.create_database("efd");
    influx.write("efd", &seed());
    influx.create_user("efdreader", PASSWORD, Some("efd"));
    let (logs, _guard) = test_support::capture_logs();
    let url = influx.url();
    let with = |password: Option<&str>| {
        let mut o = options(&url);
        o.username = Some("efdreader".to_owned());
        o.password = password.map(efd_client::Secret::new);
        efd_client::HttpSource::new(o).unwrap()
    };
    let q = query(ESS, &["temperatureItem0"], range(T0, T0 + 5 * SECOND));
    let ok = run_query(&with(Some(PASSWORD)), &q, Semantics::Default)
        .await
        .unwrap();
    assert_eq!(ok.len(), 5);
    let wrong = with(Some("not-the-password"));
    let err = run_query(&wrong, &q, Semantics::Default).await.unwrap_err();
    assert!(
        matches!(
            err,
            EfdError::Http {
                status: 401,
                attempts: 1,
                ..
            }
        ),
        "no retry on 401: {err:?}"
    );
    assert!(!err.is_transient());
    assert!(err.to_string().contains("authorization failed"), "{err}");
    let none = with(None);
    let err = run_query(&none, &q, Semantics::Default).await.unwrap_err();
    assert!(matches!(err, EfdError::Http { status: 401, .. }), "{err:?}");
    // Nowhere: Debug and Display of the sources and errors, and the logs.
    let client = with(Some(PASSWORD));
    let shown = format!("{client:?} {} {err} {err:?}", client.describe());
    assert!(!shown.contains(PASSWORD), "{shown}");
    let url_with_password = format!("http://efdreader:{PASSWORD}@127.0.0.1:1/");
    let unreachable = efd_client::HttpSource::new(options(&url_with_password)).unwrap();
    let err = run_query(&unreachable, &q, Semantics::Default)
        .await
        .unwrap_err();
    let shown = format!("{unreachable:?} {} {err} {err:?}", unreachable.describe());
    assert!(!shown.contains(PASSWORD), "{shown}");
    let logged = logs.text();
    assert!(
        logged.contains("retrying"),
        "the unreachable server was retried and logged"
    );
    assert!(!logged.contains(PASSWORD), "{logged}");
}

#[tokio::test]
async fn a_stopped_server_is_a_transient_error_after_retries() {
    let mut influx = seeded();
    let source = http(&influx.url());
    let q = query(ESS, &["temperatureItem0"], range(T0, T0 + 5 * SECOND));
    assert_eq!(
        run_query(&source, &q, Semantics::Default)
            .await
            .unwrap()
            .len(),
        5
    );
    influx.kill();
    let err = run_query(&source, &q, Semantics::Default)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        matches!(err, EfdError::Connect { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(ESS), "{err}");
    influx.restart();
    assert_eq!(
        run_query(&source, &q, Semantics::Default)
            .await
            .unwrap()
            .len(),
        5,
        "recovers after restart"
    );
}

#[tokio::test]
async fn concurrent_queries_of_a_topic_share_one_show_field_keys_and_are_counted() {
    let influx = seeded();
    let source = http(&influx.url());
    let fields = ["temperatureItem0", "salIndex"];
    let q = query(ESS, &fields, range(T0, T0 + 60 * SECOND));
    let before = source.stats();
    let frames =
        futures::future::join_all((0..8).map(|_| run_query(&source, &q, Semantics::Default))).await;
    for frame in frames {
        assert_eq!(frame.unwrap().len(), 60);
    }
    let stats = source.stats().since(&before);
    // Eight SELECTs and one SHOW FIELD KEYS for the topic, however the tasks interleave.
    assert_eq!(stats.statements, 9, "{stats:?}");
    assert_eq!(stats.requests, 9, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    assert!(
        stats.bytes > 0 && stats.in_flight > std::time::Duration::ZERO,
        "{stats:?}"
    );
    // Cached for the process: another query sends only its SELECT.
    run_query(&source, &q, Semantics::Default).await.unwrap();
    assert_eq!(source.stats().since(&before).statements, 10);
}

#[tokio::test]
async fn field_keys_of_many_topics_come_from_one_statement() {
    let influx = seeded();
    let source = http(&influx.url());
    let before = source.stats();
    source
        .prefetch_field_keys(&[ESS, "lsst.sal.None.nothing", ESS])
        .await
        .unwrap();
    assert_eq!(source.stats().since(&before).statements, 1);
    // The same keys and types as the topic's own SHOW FIELD KEYS, with no further statement.
    let keys = source.field_keys(ESS).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.name == "temperatureItem0" && k.field_type == FieldType::Float),
        "{keys:?}"
    );
    assert!(
        source
            .field_keys("lsst.sal.None.nothing")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(source.stats().since(&before).statements, 1);
    let fresh = http(&influx.url());
    assert_eq!(fresh.field_keys(ESS).await.unwrap(), keys);
    // Cached: asking again sends nothing.
    source.prefetch_field_keys(&[ESS]).await.unwrap();
    assert_eq!(source.stats().since(&before).statements, 1);
    // Two tasks starting together send one statement between them.
    let both = http(&influx.url());
    let (a, b) = tokio::join!(
        both.prefetch_field_keys(&[ESS, TAGGED]),
        both.prefetch_field_keys(&[TAGGED, ESS])
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(both.stats().statements, 1);
}
