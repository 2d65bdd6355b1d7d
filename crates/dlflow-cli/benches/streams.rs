//! `scripts/bench.sh streams`: streaming inference as a user runs it (the `dlflow` binary, records
//! on standard input, results on standard output), against its baselines, side by side in one run.
//!
//! - Throughput: peak records/s of the stream path (`--input -`) against the table path (the same
//!   records from a file) and against flink-tensorflow's way (one model call per record:
//!   `--max-batch-rows 1`), on the linear model (records cost little to read: the model calls
//!   dominate) and on the MLP 784 -> 128 -> 10 (784 numbers of JSON per record).
//! - Latency: the MLP over standard input at a steady rate of half its peak stream throughput;
//!   p50 / p99 / p99.9 from a record written to its result read.
//! - Hot reload: the longest gap between two results while a new model version takes over, at a
//!   steady rate, against the longest gap of the same stream without a switch.
//! - Windows: a TUMBLE aggregate over a stream against the same aggregation as a bounded GROUP BY
//!   over the same rows from a file; the latency of a window's result after the watermark passes
//!   its end.
//!
//! - Delays and rows (only when asked for: `scripts/bench.sh streams delays|rows`): the latency
//!   case and the peak stream throughput for several `--max-batch-delay-ms` or
//!   `--max-batch-rows`, which chose the defaults.
//!
//! Each figure is repeated (`DLFLOW_BENCH_REPEATS`, default 3); medians and ranges are printed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dlflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlflow"))
}

fn model(name: &str) -> String {
    dlflow_testkit::model(name).display().to_string()
}

fn repeats() -> usize {
    std::env::var("DLFLOW_BENCH_REPEATS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

/// Records/s from dlflow's own summary line (`predicted: N records in S s ...`); the run's
/// start-up (loading TensorFlow and the model) is outside it.
fn run_rate(args: &[&str], stdin: Option<&Path>) -> f64 {
    let mut command = dlflow();
    command.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    command.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("input file")),
        None => Stdio::null(),
    });
    let output = command.output().expect("run dlflow");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dlflow {args:?} failed: {stderr}");
    let summary = stderr.lines().find(|l| l.starts_with("predicted: ")).unwrap_or_else(|| panic!("no summary in {stderr}"));
    let words: Vec<&str> = summary.split_whitespace().collect();
    let records: f64 = words[1].parse().expect("records");
    let seconds: f64 = words[4].parse().expect("seconds");
    records / seconds
}

struct Spread(Vec<f64>);

impl Spread {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
}

fn ratio_line(what: &str, a: &Spread, b: &Spread) {
    let ratios = Spread(a.0.iter().zip(&b.0).map(|(x, y)| x / y).collect());
    println!("  {what}: median {:.2}x (runs {:.2}x to {:.2}x)", ratios.median(), ratios.min(), ratios.max());
}

fn human(rate: f64) -> String {
    if rate >= 1e6 { format!("{:.2}M", rate / 1e6) } else { format!("{:.1}k", rate / 1e3) }
}

fn write_records(path: &Path, n: usize, width: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for i in 0..n {
        if width == 1 {
            writeln!(out, "{{\"x\":{},\"id\":{i}}}", (i % 1000) as f32 / 1000.0).expect("write");
        } else {
            let values: Vec<String> = (0..width).map(|j| format!("{:.3}", ((i * 31 + j * 7) % 1000) as f32 / 1000.0)).collect();
            writeln!(out, "{{\"pixels\":[{}],\"id\":{i}}}", values.join(",")).expect("write");
        }
    }
}

fn throughput(dir: &Path, name: &str, records: usize, batch1_records: usize, width: usize) -> f64 {
    let file = dir.join(format!("{name}.json"));
    let small = dir.join(format!("{name}-batch1.json"));
    write_records(&file, records, width);
    write_records(&small, batch1_records, width);
    let (model, file_arg) = (model(name), file.display().to_string());
    let (mut stream, mut table, mut batch1) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats() {
        stream.push(run_rate(&["predict", "--model", &model, "--input", "-", "--output", "-", "--columns", "id BIGINT"], Some(&file)));
        table.push(run_rate(&["predict", "--model", &model, "--input", &file_arg, "--output", "-"], None));
        batch1.push(run_rate(&["predict", "--model", &model, "--input", "-", "--output", "-", "--columns", "id BIGINT", "--max-batch-rows", "1"], Some(&small)));
    }
    let (stream, table, batch1) = (Spread(stream), Spread(table), Spread(batch1));
    println!("throughput, model `{name}` ({records} records, {width} value(s) each; batch-1 on the first {batch1_records}):");
    for (what, s) in [("stream (--input -)", &stream), ("table (same records from a file)", &table), ("batch 1 (one model call per record)", &batch1)] {
        println!("  {what}: {} records/s (runs {} to {})", human(s.median()), human(s.min()), human(s.max()));
    }
    ratio_line("stream / table (target >= 0.8x)", &stream, &table);
    ratio_line("stream / batch 1 (target >= 50x)", &stream, &batch1);
    stream.median()
}

/// Peak stream throughput for each value of a micro-batch `flag`, each run against a run with
/// the defaults in the same round.
fn peak_by(dir: &Path, name: &str, records: usize, width: usize, flag: &str, values: &[u64]) {
    let file = dir.join(format!("{name}-sweep.json"));
    write_records(&file, records, width);
    let model = model(name);
    let base = ["predict", "--model", model.as_str(), "--input", "-", "--output", "-", "--columns", "id BIGINT"];
    let (mut by_value, mut default) = (vec![Vec::new(); values.len()], Vec::new());
    for _ in 0..repeats() {
        default.push(run_rate(&base, Some(&file)));
        for (runs, value) in by_value.iter_mut().zip(values) {
            let value = value.to_string();
            let args: Vec<&str> = base.iter().copied().chain([flag, value.as_str()]).collect();
            runs.push(run_rate(&args, Some(&file)));
        }
    }
    let default = Spread(default);
    println!("peak stream throughput, model `{name}` ({records} records), by {flag}; the defaults: {} records/s", human(default.median()));
    for (runs, value) in by_value.into_iter().zip(values) {
        let runs = Spread(runs);
        println!("  {flag} {value}: {} records/s (runs {} to {})", human(runs.median()), human(runs.min()), human(runs.max()));
        ratio_line(&format!("{value} / the defaults"), &runs, &default);
    }
}

/// Writes `lines` to a new `dlflow` at `rate` records/s; returns each record's latency (by id).
fn paced_latencies(args: &[&str], lines: &[String], rate: f64, on_sent: impl Fn(usize)) -> (Vec<Duration>, Vec<Instant>) {
    let mut child = dlflow().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut arrivals = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let id = line.rsplit("\"id\":").next().and_then(|s| s.split([',', '}']).next()).and_then(|s| s.parse::<usize>().ok()).expect("id");
            arrivals.push((id, Instant::now()));
        }
        arrivals
    });
    let mut stdin = child.stdin.take().expect("stdin");
    // A first record, and wait for the model to be loaded: latency counts from then.
    writeln!(stdin, "{}", lines[0]).expect("write");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let mut sent = vec![start; lines.len()];
    for (i, line) in lines.iter().enumerate().skip(1) {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        sent[i] = Instant::now();
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        on_sent(i);
    }
    drop(stdin);
    let arrivals = reader.join().expect("reader");
    child.wait().expect("wait");
    let mut latencies: Vec<Duration> = arrivals.iter().filter(|(id, _)| *id > 0).map(|(id, at)| *at - sent[*id]).collect();
    latencies.sort();
    (latencies, arrivals.iter().filter(|(id, _)| *id > 0).map(|(_, at)| *at).collect())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Latency at half the peak rate; `setting` is a micro-batch flag and its value (`None`: the
/// defaults).
fn latency(peak: f64, setting: Option<(&str, u64)>) {
    let rate = peak / 2.0;
    let seconds = 10.0;
    let n = (rate * seconds) as usize;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let values: Vec<String> = (0..784).map(|j| format!("{:.3}", ((i * 31 + j * 7) % 1000) as f32 / 1000.0)).collect();
            format!("{{\"pixels\":[{}],\"id\":{i}}}", values.join(","))
        })
        .collect();
    let setting_text = setting.map_or_else(|| "the default micro-batch bounds".to_string(), |(flag, value)| format!("{flag} {value}"));
    println!("latency, model `mlp` over standard input at {} records/s (half the peak stream throughput), {n} records, {setting_text}:", human(rate));
    let mlp = model("mlp");
    let value = setting.map(|(_, value)| value.to_string());
    let mut args = vec!["predict", "--model", &mlp, "--input", "-", "--output", "-", "--columns", "id BIGINT"];
    if let (Some((flag, _)), Some(value)) = (setting, &value) {
        args.extend([flag, value.as_str()]);
    }
    for run in 0..repeats() {
        let (latencies, _) = paced_latencies(&args, &lines, rate, |_| {});
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  run {}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms (target p99 < 10 ms), {} results",
            run + 1,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(percentile(&latencies, 0.999)),
            latencies.len()
        );
    }
}

fn hot_reload(dir: &Path) {
    let rate = 2000.0;
    let n = (rate * 6.0) as usize;
    let lines: Vec<String> = (0..n).map(|i| format!("{{\"x\":0.5,\"id\":{i}}}")).collect();
    println!("hot reload, model `linear` -> `linear_v2` at {} records/s:", human(rate));
    for run in 0..repeats() {
        let base = dir.join(format!("versions-{run}"));
        copy_dir(&dlflow_testkit::model("linear"), &base.join("1"));
        let args = ["predict", "--model", base.to_str().expect("utf8"), "--input", "-", "--output", "-", "--columns", "id BIGINT"];
        let switch_at = n / 3;
        let base_for_switch = base.clone();
        let (_, arrivals) = paced_latencies(&args, &lines, rate, move |i| {
            if i == switch_at {
                copy_dir(&dlflow_testkit::model("linear_v2"), &base_for_switch.join(".staging"));
                std::fs::rename(base_for_switch.join(".staging"), base_for_switch.join("2")).expect("rename");
            }
        });
        let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        let third = gaps.len() / 3;
        let before = gaps[..third].iter().max().copied().unwrap_or_default();
        let during = gaps[third..].iter().max().copied().unwrap_or_default();
        println!(
            "  run {}: longest gap between results {:.1} ms after the new version appeared, {:.1} ms before it",
            run + 1,
            during.as_secs_f64() * 1e3,
            before.as_secs_f64() * 1e3
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `2026-01-01T00:00:00` plus `millis`.
fn iso(millis: u64) -> String {
    let (s, ms) = (millis / 1000, millis % 1000);
    format!("2026-01-01T{:02}:{:02}:{:02}.{ms:03}", s / 3600, (s / 60) % 60, s % 60)
}

fn wall_rate(args: &[&str], stdin: Option<&Path>, records: usize) -> f64 {
    let mut command = dlflow();
    command.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    command.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("input")),
        None => Stdio::null(),
    });
    let started = Instant::now();
    let output = command.output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    records as f64 / started.elapsed().as_secs_f64()
}

/// Windowed aggregation over a stream (stdin, watermark, TUMBLE) against the same aggregation as
/// a bounded GROUP BY over the same rows from a file; and the latency of a window's result after
/// the watermark passes its end.
fn windows(dir: &Path) {
    let records = 1_000_000;
    let file = dir.join("events.json");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        for i in 0..records {
            // 10 ms apart; every 7th 1.5 s behind its neighbours (out of order, within the delay).
            let millis = (i as u64) * 10 - if i % 7 == 3 && i >= 150 { 1500 } else { 0 };
            writeln!(out, "{{\"ts\":\"{}\",\"k\":\"k{}\",\"v\":{}}}", iso(millis), i % 4, i % 100).expect("write");
        }
    }
    let stream_sql = "CREATE UNBOUNDED EXTERNAL TABLE e (ts TIMESTAMP, k VARCHAR, v DOUBLE) STORED AS JSON LOCATION '-'
          OPTIONS ('watermark.column' 'ts', 'watermark.delay' '2s');
        SELECT k, TUMBLE_START(ts, INTERVAL '1' SECOND) AS w, COUNT(*) AS n, SUM(v) AS s FROM e GROUP BY TUMBLE(ts, INTERVAL '1' SECOND), k";
    let table_sql = format!(
        "CREATE EXTERNAL TABLE e (ts TIMESTAMP, k VARCHAR, v DOUBLE) STORED AS JSON LOCATION '{}';
         SELECT k, date_bin(INTERVAL '1' SECOND, ts) AS w, COUNT(*) AS n, SUM(v) AS s FROM e GROUP BY date_bin(INTERVAL '1' SECOND, ts), k",
        file.display()
    );
    let (mut stream, mut table) = (Vec::new(), Vec::new());
    for _ in 0..repeats() {
        stream.push(wall_rate(&["sql", stream_sql, "--output", "-"], Some(&file), records));
        table.push(wall_rate(&["sql", &table_sql, "--output", "-"], None, records));
    }
    let (stream, table) = (Spread(stream), Spread(table));
    println!("windows: TUMBLE 1 s by 4 keys over {records} records (NDJSON), whole runs:");
    println!("  stream (stdin, watermark 2 s): {} records/s (runs {} to {})", human(stream.median()), human(stream.min()), human(stream.max()));
    println!("  bounded GROUP BY date_bin over the file: {} records/s (runs {} to {})", human(table.median()), human(table.min()), human(table.max()));
    ratio_line("stream / bounded (target >= 0.5x)", &stream, &table);

    // Latency: events every 2 ms stamped with the time they are sent; 100 ms windows, no delay.
    // A window fires when the first event past its end arrives: latency = result read - that
    // event sent.
    let sql = "CREATE UNBOUNDED EXTERNAL TABLE e (ts TIMESTAMP, v DOUBLE) STORED AS JSON LOCATION '-'
          OPTIONS ('watermark.column' 'ts', 'watermark.delay' '0s');
        SELECT TUMBLE_END(ts, INTERVAL '100' MILLISECOND) AS e, COUNT(*) AS n FROM e GROUP BY TUMBLE(ts, INTERVAL '100' MILLISECOND)";
    let mut all = Vec::new();
    for _ in 0..repeats() {
        let mut child = dlflow().args(["sql", sql, "--output", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(|l| l.ok()).map(|l| (Instant::now(), l)).collect::<Vec<_>>());
        let mut stdin = child.stdin.take().expect("stdin");
        let origin = Instant::now();
        let mut sent: Vec<(u64, Instant)> = Vec::new();
        for i in 0..2500u64 {
            let due = origin + Duration::from_millis(i * 2);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let millis = i * 2;
            writeln!(stdin, "{{\"ts\":\"{}\",\"v\":1}}", iso(millis)).expect("write");
            stdin.flush().expect("flush");
            sent.push((millis, Instant::now()));
        }
        drop(stdin);
        let lines = reader.join().expect("reader");
        child.wait().expect("wait");
        for (at, line) in lines {
            let end = line.split("\"e\":\"").nth(1).and_then(|r| r.split('"').next()).expect("end");
            let time = end.split('T').nth(1).expect("time");
            let parts: Vec<f64> = time.split(':').map(|p| p.parse().expect("number")).collect();
            let end_millis = ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0).round() as u64;
            // The event that moved the watermark past the end.
            if let Some((_, sent_at)) = sent.iter().find(|(m, _)| *m >= end_millis) {
                all.push(at.saturating_duration_since(*sent_at));
            }
        }
    }
    all.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  window result after the watermark passes its end ({} windows): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 50 ms)",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default())
    );
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |what: &str| filter.is_empty() || filter.iter().any(|f| f == what);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mlp_peak = None;
    if wanted("throughput") {
        throughput(dir.path(), "linear", 2_000_000, 50_000, 1);
        mlp_peak = Some(throughput(dir.path(), "mlp", 20_000, 5_000, 784));
    }
    let mut peak = || {
        *mlp_peak.get_or_insert_with(|| {
            let file = dir.path().join("mlp-peak.json");
            write_records(&file, 20_000, 784);
            run_rate(&["predict", "--model", &model("mlp"), "--input", "-", "--output", "-", "--columns", "id BIGINT"], Some(&file))
        })
    };
    if wanted("latency") {
        latency(peak(), None);
    }
    // Not in the default set: what chose the default micro-batch bounds.
    for (what, flag, values) in [("delays", "--max-batch-delay-ms", &[0u64, 1, 2, 5, 10][..]), ("rows", "--max-batch-rows", &[1024, 4096, 8192, 16384][..])] {
        if filter.iter().any(|f| f == what) {
            let peak = peak();
            for value in values {
                latency(peak, Some((flag, *value)));
            }
            peak_by(dir.path(), "linear", 2_000_000, 1, flag, values);
            peak_by(dir.path(), "mlp", 20_000, 784, flag, values);
        }
    }
    if wanted("reload") {
        hot_reload(dir.path());
    }
    if wanted("windows") {
        windows(dir.path());
    }
}
