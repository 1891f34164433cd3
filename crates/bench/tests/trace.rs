//! Trace traffic: exact replay of a CSV's rows, time and rate scaling, looping, the binned
//! rate, bad rows named by line and column, and files relative to the scenario file.

use std::sync::Arc;

use wvo_bench::scenario::Shape;
use wvo_bench::trace::{Arrivals, Replay, Trace, RATE_BIN_SECONDS};
use wvo_bench::{run_policy, BenchError, Scenario};

mod common;
use common::Fixed;

const CSV: &str = "TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:47.1805900,1200,7
2023-11-16 18:15:47.1805900,20,300
2023-11-16 18:15:50.0000000,512,1
2023-11-16 18:16:00.6805900,96,128
";

fn trace() -> Arc<Trace> {
    Arc::new(Trace::parse(CSV, "t.csv").unwrap())
}

fn take(a: &mut Arrivals, n: usize) -> Vec<(f64, u32, u32)> {
    (0..n)
        .map(|_| {
            let x = a.pop().unwrap();
            (x.t, x.input, x.output)
        })
        .collect()
}

#[test]
fn a_trace_replays_exactly_its_rows_and_loops() {
    let t = trace();
    assert_eq!(t.rows.len(), 5);
    // The last row is 14 s after the first; one loop adds the mean gap (14 / 4 s).
    assert!(
        (t.period_seconds - 17.5).abs() < 1e-9,
        "{}",
        t.period_seconds
    );
    assert!((t.mean_input - 2202.0 / 5.0).abs() < 1e-9);
    assert!((t.mean_output - 480.0 / 5.0).abs() < 1e-9);
    let mut a = Arrivals::new(Arc::new(Replay::new(t.clone(), 1.0, 1.0)), 9);
    let got = take(&mut a, 10);
    let want = [
        (0.0, 374, 44),
        (0.5, 1200, 7),
        (0.5, 20, 300),
        (3.3194100, 512, 1),
        (14.0, 96, 128),
    ];
    for (i, g) in got.iter().enumerate() {
        let (t0, input, output) = want[i % 5];
        let t_want = t0 + if i >= 5 { 17.5 } else { 0.0 };
        assert!((g.0 - t_want).abs() < 1e-6, "arrival {i}: {g:?}");
        assert_eq!((g.1, g.2), (input, output), "arrival {i}");
    }
    // timeScale stretches every time, the loop too.
    let mut slow = Arrivals::new(Arc::new(Replay::new(t, 1.0, 2.0)), 9);
    let stretched = take(&mut slow, 10);
    for (g, s) in got.iter().zip(&stretched) {
        assert!((s.0 - 2.0 * g.0).abs() < 1e-6, "{s:?} vs {g:?}");
        assert_eq!((s.1, s.2), (g.1, g.2));
    }
}

/// Arrivals of `replay` before `until` s, with seed `seed`.
fn arrivals_until(replay: &Arc<Replay>, seed: u64, until: f64) -> Vec<(f64, u32, u32)> {
    let mut a = Arrivals::new(replay.clone(), seed);
    let mut out = Vec::new();
    while a.next_time() < until {
        let x = a.pop().unwrap();
        out.push((x.t, x.input, x.output));
    }
    out
}

#[test]
fn rate_scale_multiplies_arrivals_deterministically_per_seed() {
    let t = trace();
    let until = 17.5 * 400.0; // 400 loops, 2000 rows
    let rows = arrivals_until(&Arc::new(Replay::new(t.clone(), 1.0, 1.0)), 1, until).len();
    assert_eq!(rows, 2000);
    for scale in [2.0, 2.5, 0.5, 0.25] {
        let r = Arc::new(Replay::new(t.clone(), scale, 1.0));
        let a = arrivals_until(&r, 1, until);
        let ratio = a.len() as f64 / rows as f64;
        assert!(
            (ratio - scale).abs() <= 0.05 * scale,
            "rateScale {scale}: {} arrivals for {rows} rows",
            a.len()
        );
        // In time order, every copy is one of the rows' requests.
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0), "rateScale {scale}");
        assert!(a
            .iter()
            .all(|x| t.rows.iter().any(|r| (r.input, r.output) == (x.1, x.2))));
        assert_eq!(a, arrivals_until(&r, 1, until), "same seed, same arrivals");
        assert_ne!(a, arrivals_until(&r, 2, until), "seeds matter");
    }
    // A whole rateScale replays every row that many times: the row's own time, then copies
    // within the gap to the next row.
    let r = Arc::new(Replay::new(t.clone(), 3.0, 1.0));
    let a = arrivals_until(&r, 5, 17.5);
    assert_eq!(a.len(), 15);
    assert!((a[0].0, a[0].1) == (0.0, 374));
    assert!(a[..3].iter().all(|x| x.1 == 374 && x.0 < 0.5));
}

#[test]
fn the_rate_is_binned_arrivals_times_the_rate_scale() {
    let t = trace();
    let r = Replay::new(t, 2.0, 1.0);
    // Loop 0: rows at 0, 0.5, 0.5, 3.3, 14; loop 1 starts at 17.5 (rows at 17.5, 18, 18).
    assert!((r.rate(0.0) - 2.0 * 4.0 / RATE_BIN_SECONDS).abs() < 1e-12);
    assert!((r.rate(12.0) - 2.0 * 4.0 / RATE_BIN_SECONDS).abs() < 1e-12);
    assert!((r.max_rate(0.0, 25.0) - 0.8).abs() < 1e-12);
    let s = Replay::new(trace(), 1.0, 10.0);
    // Stretched 10x: 0, 5, 5 in the first bin; 33 in the fourth; none in the second.
    assert!((s.rate(1.0) - 0.3).abs() < 1e-12);
    assert_eq!(s.rate(15.0), 0.0);
    assert!((s.rate(35.0) - 0.1).abs() < 1e-12);
}

fn error_of(csv: &str) -> String {
    match Trace::parse(csv, "bad.csv") {
        Ok(_) => panic!("accepted a bad trace:\n{csv}"),
        Err(e) => {
            assert!(matches!(e, BenchError::Trace { .. }), "{e}");
            e.to_string()
        }
    }
}

#[test]
fn bad_rows_name_the_file_line_and_column() {
    let cases = [
        (CSV.replace("1200,7", "12x0,7"), "line 3", "ContextTokens"),
        (CSV.replace("20,300", "20,-3"), "line 4", "GeneratedTokens"),
        (
            CSV.replace("18:15:50.0", "18:75:50.0"),
            "line 5",
            "TIMESTAMP",
        ),
        (
            CSV.replace("18:16:00.6", "18:14:00.6"),
            "line 6",
            "TIMESTAMP",
        ),
        (CSV.replace("512,1", "512"), "line 5", "row"),
        (CSV.replace("GeneratedTokens", "Output"), "line 1", "Output"),
        (
            CSV.replace(",GeneratedTokens", "").replace(",44", ""),
            "line 1",
            "GeneratedTokens",
        ),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\n1.5,3,4\n".into(),
            "line 1",
            "two rows",
        ),
    ];
    for (csv, line, column) in cases {
        let e = error_of(&csv);
        assert!(e.contains("bad.csv"), "{e}");
        assert!(e.contains(line), "{e:?} does not name {line}");
        assert!(e.contains(column), "{e:?} does not name {column}");
    }
    // Plain seconds, any column order, CRLF line ends and blank lines are fine.
    let t = Trace::parse(
        "GeneratedTokens,TIMESTAMP,ContextTokens\r\n5,10.5,100\r\n\r\n0,12,200\r\n",
        "ok.csv",
    )
    .unwrap();
    assert_eq!(t.rows[1].t, 1.5);
    assert_eq!((t.rows[0].input, t.rows[0].output), (100, 5));
    assert_eq!(t.rows[1].output, 1, "0 generated tokens count as 1");
}

fn scenario_yaml(traffic: &str, extra: &str) -> String {
    format!(
        r#"
name: tr
durationSeconds: 120
startupSeconds: 10
{extra}
inventory: [{{name: L4, count: 4, costPerHour: 0.8}}]
models:
  - name: m
    slo: {{ttftMs: 5000, itlMs: 100}}
    variants:
      - {{name: l4, accelerator: L4, kvCacheTokens: 4000, profile: {{alpha: 8, beta: 0.3, gamma: 10, delta: 0.05, maxBatchSize: 32}}}}
    traffic: {traffic}
"#
    )
}

#[test]
fn scenario_files_resolve_traces_next_to_them() {
    let dir = std::env::temp_dir().join(format!("wvo-bench-trace-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/t.csv"), CSV).unwrap();
    let yaml = scenario_yaml("{shape: trace, file: sub/t.csv}", "");
    std::fs::write(dir.join("s.yaml"), &yaml).unwrap();
    let s = Scenario::load(dir.join("s.yaml").to_str().unwrap()).unwrap();
    let m = &s.models[0];
    assert!(m.traffic.tokens.is_none());
    assert!((m.mix().avg_input_tokens - 2202.0 / 5.0).abs() < 1e-9);
    let Shape::Trace {
        rate_scale,
        time_scale,
        replay: Some(_),
        ..
    } = &m.traffic.shape
    else {
        panic!("not a loaded trace: {:?}", m.traffic.shape)
    };
    assert_eq!((*rate_scale, *time_scale), (1.0, 1.0));
    // Relative to the current directory it is not found, and the error names the field.
    let e = Scenario::parse(&yaml).unwrap_err().to_string();
    assert!(e.contains("models[0].traffic.file"), "{e}");
    assert!(e.contains("sub/t.csv"), "{e}");
    assert!(Scenario::parse_in(&yaml, &dir).is_ok());
    // Bad rows name the resolved file.
    std::fs::write(dir.join("sub/t.csv"), CSV.replace("96,128", "96,x")).unwrap();
    let e = Scenario::parse_in(&yaml, &dir).unwrap_err().to_string();
    assert!(e.contains("t.csv") && e.contains("line 6"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trace_fields_are_checked_by_name() {
    let dir = std::env::temp_dir().join(format!("wvo-bench-trace-f-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.csv"), CSV).unwrap();
    let cases = [
        ("{shape: trace, file: t.csv, rateScal: 2}", "rateScal"),
        (
            "{shape: trace, file: t.csv, rateScale: 0}",
            "models[0].traffic.rateScale",
        ),
        (
            "{shape: trace, file: t.csv, timeScale: -1}",
            "models[0].traffic.timeScale",
        ),
        ("{shape: trace}", "file"),
        (
            "{shape: trace, file: t.csv}\n    tokens: {input: 1, output: 1}",
            "models[0].tokens",
        ),
        ("{shape: constant, rate: 1}", "models[0].tokens"),
    ];
    for (traffic, field) in cases {
        let e = Scenario::parse_in(&scenario_yaml(traffic, ""), &dir)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{traffic}: {e:?} does not name {field}");
    }
    // The KV cache must hold the trace's largest prompt (line 3: 1200 tokens).
    let small_kv = scenario_yaml("{shape: trace, file: t.csv}", "").replace("4000", "1000");
    let e = Scenario::parse_in(&small_kv, &dir).unwrap_err().to_string();
    assert!(e.contains("kvCacheTokens") && e.contains("line 3"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_simulator_replays_every_row_and_warm_up_skips_the_early_ones() {
    let dir = std::env::temp_dir().join(format!("wvo-bench-trace-s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.csv"), CSV).unwrap();
    // 120 s = 7 loops of 17.5 s (the 7th starts at 105 s and its last row is at 119 s).
    let s = Scenario::parse_in(&scenario_yaml("{shape: trace, file: t.csv}", ""), &dir).unwrap();
    let r = run_policy(&s, Box::new(Fixed(1)), 1).unwrap();
    assert_eq!(r.requests, 35);
    assert_eq!(r.dropped, 0);
    // Warm-up 50 s: loops start at 0, 17.5, 35, 52.5, ...: the first three (the last row of
    // the third at 49 s) are not scored.
    let w = Scenario::parse_in(
        &scenario_yaml("{shape: trace, file: t.csv}", "warmupSeconds: 50"),
        &dir,
    )
    .unwrap();
    let rw = run_policy(&w, Box::new(Fixed(1)), 1).unwrap();
    assert_eq!(rw.requests, 35 - 3 * 5);
    assert!((r.gpu_hours[0] - 120.0 / 3600.0).abs() < 1e-9);
    assert!((rw.gpu_hours[0] - 70.0 / 3600.0).abs() < 1e-9);
    std::fs::remove_dir_all(&dir).unwrap();
}
