//! Kernel throughput over 10⁶ samples, and window evaluation of 1,000 items over a 10⁷-sample series.
//!
//! Throughput is reported in samples/s (criterion's "elements").

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use transform_core::kernels::{self, RmsFormula, Underdetermined};
use transform_core::{
    ColumnData, Config, FitBasis, Frame, FrameColumn, Item, PreparedColumn, Semantics, TimeRange,
    UtcNanos,
};
use transformed_efd_benches::samples;

const N: usize = 1_000_000;

fn kernel_benches(c: &mut Criterion) {
    let data = samples(N, 1);
    let parts: &[&[f64]] = &[&data];
    let mut group = c.benchmark_group("kernels");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("mean", |b| {
        b.iter(|| kernels::mean(std::hint::black_box(parts)));
    });
    group.bench_function("stddev", |b| {
        b.iter(|| kernels::stddev(std::hint::black_box(parts), 1));
    });
    group.bench_function("max", |b| {
        b.iter(|| kernels::max(std::hint::black_box(parts)));
    });
    group.bench_function("min", |b| {
        b.iter(|| kernels::min(std::hint::black_box(parts)));
    });
    group.bench_function("most_recent_value", |b| {
        b.iter(|| kernels::most_recent_value(std::hint::black_box(parts)));
    });
    #[allow(clippy::cast_precision_loss)]
    let x: Vec<f64> = (0..N).map(|i| i as f64 * 1e6).collect();
    for (name, basis) in [("index", FitBasis::Index), ("time", FitBasis::Time)] {
        group.bench_with_input(
            BenchmarkId::new("rms_from_polynomial_fit", name),
            &basis,
            |b, &basis| {
                b.iter(|| {
                    kernels::rms_from_polynomial_fit(
                        std::hint::black_box(&data),
                        &x,
                        4,
                        basis,
                        RmsFormula::Residual,
                        Underdetermined::None,
                    )
                });
            },
        );
    }
    group.finish();
}

fn window_benches(c: &mut Criterion) {
    const SERIES: usize = 10_000_000;
    const ITEMS: usize = 1_000;
    let step = 10_000_000i64; // 100 Hz
    #[allow(clippy::cast_possible_wrap)]
    let timestamps: Vec<i64> = (0..SERIES as i64)
        .map(|i| 1_700_000_000_000_000_000 + i * step)
        .collect();
    let frame = Frame::new(
        timestamps.clone(),
        vec![FrameColumn::new("v", ColumnData::Float(samples(SERIES, 2)))],
    )
    .expect("frame shape");
    let config = Config::parse(
        "version: b\ncolumns:\n- name: c\n  function: mean\n  datatype: float\n  description: bench\n  topics:\n  - name: lsst.sal.B.b\n    fields:\n    - name: v\n",
        "bench",
    )
    .expect("bench config");
    let prepared = PreparedColumn::new(&config.columns[0], &frame, Semantics::Default);
    // 1,000 items of 30 s spread over the series (3,000 samples each).
    let span = timestamps[SERIES - 1] - timestamps[0];
    #[allow(clippy::cast_possible_wrap)]
    let items: Vec<Item> = (0..ITEMS as i64)
        .map(|k| {
            let begin = timestamps[0] + k * (span / ITEMS as i64);
            Item {
                id: k,
                day_obs: 20250101,
                seq_num: i32::try_from(k).unwrap_or_default(),
                timespan: TimeRange::new(UtcNanos(begin), UtcNanos(begin + 30_000_000_000))
                    .expect("range"),
            }
        })
        .collect();
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.bench_function("lookup_1000_items_in_1e7", |b| {
        b.iter(|| {
            items
                .iter()
                .map(|it| prepared.rows(prepared.window(it).unwrap_or((0, -1))).len())
                .sum::<usize>()
        });
    });
    group.bench_function("mean_1000_items_in_1e7", |b| {
        b.iter(|| {
            items
                .iter()
                .filter_map(|it| prepared.value(it))
                .sum::<f64>()
        });
    });
    group.finish();
}

criterion_group!(benches, kernel_benches, window_benches);
criterion_main!(benches);
