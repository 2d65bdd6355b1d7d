//! Streams end to end, as a user runs them: the real `dlflow` binary, real sockets, files, a
//! real Kafka-compatible broker (Tansu) on loopback and real TensorFlow.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dlflow_testkit as common;
use serde_json::Value;

fn dlflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlflow"))
}

fn model(name: &str) -> String {
    common::model(name).display().to_string()
}

/// A running `dlflow` whose stdin the test writes and whose stdout lines arrive on a channel.
struct Filter {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl Filter {
    fn start(args: &[&str]) -> Filter {
        let mut child = dlflow().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start dlflow");
        let stdout = child.stdout.take().expect("stdout");
        Filter { child, lines: read_lines(stdout) }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write a record");
        stdin.flush().expect("flush");
    }

    /// The next output line within `timeout`, or a failure naming what dlflow said.
    fn next(&mut self, timeout: Duration) -> (Instant, Value) {
        match self.lines.recv_timeout(timeout) {
            Ok((at, line)) => (at, serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))),
            Err(_) => {
                let _ = self.child.kill();
                let output = self.child.wait_with_output_ref();
                panic!("no output line within {timeout:?}; dlflow's stderr: {output}");
            }
        }
    }

    /// Closes stdin and waits for the end; the remaining lines and stderr.
    fn finish(mut self) -> (Vec<Value>, String, Option<i32>) {
        drop(self.child.stdin.take());
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(60));
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr).ok();
        }
        let rest = self.lines.iter().map(|(_, l)| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
        (rest, stderr, status)
    }
}

trait StderrOf {
    fn wait_with_output_ref(&mut self) -> String;
}

impl StderrOf for Child {
    fn wait_with_output_ref(&mut self) -> String {
        let _ = self.wait();
        let mut stderr = String::new();
        if let Some(mut err) = self.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr).ok();
        }
        stderr
    }
}

fn read_lines(stdout: ChildStdout) -> Receiver<(Instant, String)> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    receiver
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dlflow did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = dlflow().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start dlflow");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    text(bytes).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn records(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"x\": {}, \"id\": {i}}}", (i as f64) / 100.0)).collect()
}

fn f64_of(value: &Value, key: &str) -> f64 {
    value[key].as_f64().unwrap_or_else(|| panic!("no number `{key}` in {value}"))
}

#[test]
fn standard_input_filter_gives_the_table_path_output_line_by_line() {
    let lines = records(300);
    let output = run_with_stdin(&["predict", "--model", &model("linear"), "--input", "-", "--output", "-", "--columns", "id BIGINT"], &(lines.join("\n") + "\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let streamed = json_lines(&output.stdout);

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("records.json");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let table = dlflow().args(["predict", "--model", &model("linear"), "--input", file.to_str().expect("utf8"), "--output", "-"]).output().expect("run");
    assert!(table.status.success(), "{}", text(&table.stderr));
    let from_table = json_lines(&table.stdout);

    assert_eq!(streamed.len(), 300, "one line out per record");
    for (s, t) in streamed.iter().zip(&from_table) {
        assert_eq!(s["id"], t["id"], "same order");
        assert_eq!(f64_of(s, "y"), f64_of(t, "y"), "same prediction for id {}", s["id"]);
        assert!((f64_of(s, "y") - (2.0 * f64_of(s, "x") + 1.0)).abs() < 1e-5, "{s}");
    }
    let stderr = text(&output.stderr);
    assert!(stderr.contains("300 records") && stderr.contains("latency p50"), "summary: {stderr}");
}

#[test]
fn a_lone_record_comes_out_within_the_delay_and_micro_batches_stay_within_their_rows() {
    let mut filter = Filter::start(&[
        "predict",
        "--model",
        &model("batch_probe"),
        "--input",
        "-",
        "--output",
        "-",
        "--max-batch-rows",
        "64",
        "--max-batch-delay-ms",
        "100",
        "--columns",
        "id BIGINT",
    ]);
    // The first record waits for the model to load; it tells us dlflow is ready.
    filter.send("{\"x\": 0.5, \"id\": -1}");
    let (_, first) = filter.next(Duration::from_secs(60));
    assert_eq!(first["id"], -1);
    // A lone record: out within its delay (100 ms) plus the model's time, well under a second
    // even on a busy machine; and no batch waits for the 64 rows it could hold.
    let sent = Instant::now();
    filter.send("{\"x\": 0.25, \"id\": 0}");
    let (at, lone) = filter.next(Duration::from_secs(10));
    let latency = at - sent;
    assert_eq!(lone["rows"].as_f64(), Some(1.0), "{lone}");
    assert!(latency < Duration::from_millis(1000), "a lone record took {latency:?}");
    // A burst of 1000 records: every TensorFlow call sees at most 64 rows.
    let burst: Vec<String> = (1..=1000).map(|i| format!("{{\"x\": 0.1, \"id\": {i}}}")).collect();
    {
        let stdin = filter.child.stdin.as_mut().expect("stdin");
        stdin.write_all((burst.join("\n") + "\n").as_bytes()).expect("write");
    }
    let (rest, stderr, status) = filter.finish();
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(rest.len(), 1000, "{stderr}");
    let largest = rest.iter().map(|r| f64_of(r, "rows")).fold(0.0, f64::max);
    assert!(largest <= 64.0, "a micro-batch of {largest} rows");
    assert!(largest > 1.0, "a burst is batched, not one record per call");
    let ids: Vec<i64> = rest.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, (1..=1000).collect::<Vec<_>>(), "order kept");
}

#[test]
fn a_bad_record_fails_the_stream_with_its_place_or_is_skipped_to_a_dead_letter_file() {
    let input = "{\"x\": 1.0}\n{\"x\": 2.0}\n{\"x\": oops}\n{\"x\": 3.0}\n";
    let failed = run_with_stdin(&["predict", "--model", &model("linear"), "--input", "-", "--output", "-"], input);
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("standard input") && stderr.contains("offset 2") && stderr.contains("{\"x\": oops}"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let dead = dir.path().join("dead.ndjson");
    let skipped = run_with_stdin(
        &["predict", "--model", &model("linear"), "--input", "-", "--output", "-", "--on-error", "skip", "--dead-letter", dead.to_str().expect("utf8")],
        input,
    );
    let stderr = text(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    let ys: Vec<f64> = json_lines(&skipped.stdout).iter().map(|v| f64_of(v, "y")).collect();
    assert_eq!(ys, vec![3.0, 5.0, 7.0]);
    assert!(stderr.contains("1 bad records skipped"), "{stderr}");
    let letter: Value = serde_json::from_str(std::fs::read_to_string(&dead).expect("dead letter").trim()).expect("json");
    assert_eq!(letter["offset"], 2);
    assert_eq!(letter["record"], "{\"x\": oops}");
}

#[test]
fn a_record_without_a_model_input_is_a_bad_record_not_the_end_of_the_stream() {
    // A record missing the model's input `x`, and one with `x` null: both are bad records
    // (named with their offsets when failing, skipped when skipping), not nulls that would stop
    // the model and lose the records after them.
    let input = "{\"x\": 1.0}\n{\"y\": 5}\n{\"x\": 2.0}\n{\"x\": null}\n{\"x\": 3.0}\n";
    let failed = run_with_stdin(&["predict", "--model", &model("linear"), "--input", "-", "--output", "-"], input);
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("offset 1") && stderr.contains("field `x` is missing or null") && stderr.contains("{\"y\": 5}"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let skipped = run_with_stdin(&["predict", "--model", &model("linear"), "--input", "-", "--output", "-", "--on-error", "skip"], input);
    let stderr = text(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    let ys: Vec<f64> = json_lines(&skipped.stdout).iter().map(|v| f64_of(v, "y")).collect();
    assert_eq!(ys, vec![3.0, 5.0, 7.0], "every good record, the ones after the bad ones too");
    assert!(stderr.contains("2 bad records skipped"), "{stderr}");
}

#[test]
fn sql_over_standard_input_writes_each_result_while_the_stream_is_open() {
    let sql = "CREATE UNBOUNDED EXTERNAL TABLE events (x FLOAT, id BIGINT) STORED AS JSON LOCATION '-';
               SELECT id, predict('linear', x) AS y FROM events WHERE x > 0.5";
    let linear = format!("linear={}", model("linear"));
    let mut filter = Filter::start(&["sql", "--model", &linear, sql, "--output", "-"]);
    filter.send("{\"x\": 0.25, \"id\": 1}");
    filter.send("{\"x\": 0.75, \"id\": 2}");
    let (_, row) = filter.next(Duration::from_secs(60));
    assert_eq!(row["id"], 2, "the filtered row, before the input ends");
    assert_eq!(f64_of(&row, "y"), 2.5);
    filter.send("{\"x\": 1.0, \"id\": 3}");
    let (_, row) = filter.next(Duration::from_secs(10));
    assert_eq!(row["id"], 3);
    let (rest, stderr, status) = filter.finish();
    assert_eq!(status, Some(0), "{stderr}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn a_tcp_source_reconnects_when_its_peer_comes_back_and_fails_clearly_when_it_is_gone() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sql = format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events (x FLOAT, id BIGINT) STORED AS JSON LOCATION 'tcp://127.0.0.1:{port}'
           OPTIONS ('reconnect.attempts' '3', 'reconnect.backoff-ms' '50');
         SELECT id, predict('linear', x) AS y FROM events"
    );
    let linear = format!("linear={}", model("linear"));
    let mut child = dlflow().args(["sql", "--model", &linear, &sql, "--output", "-"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    for round in 0..2 {
        let (mut peer, _) = listener.accept().expect("dlflow connects");
        for i in 0..5 {
            writeln!(peer, "{{\"x\": {i}, \"id\": {}}}", round * 10 + i).expect("send");
        }
        peer.flush().expect("flush");
        for _ in 0..5 {
            let (_, line) = lines.recv_timeout(Duration::from_secs(60)).expect("a result");
            let value: Value = serde_json::from_str(&line).expect("json");
            assert_eq!(value["id"].as_i64().expect("id") / 10, round);
        }
        drop(peer); // the peer goes away; dlflow connects again
    }
    drop(listener); // now for good
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let stderr = child.wait_with_output_ref();
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("tcp://127.0.0.1:{port}")) && stderr.contains("could not connect after 3 tries"), "{stderr}");
}

#[test]
fn a_tcp_sink_gets_one_line_per_record() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let receiver = std::thread::spawn(move || {
        let (peer, _) = listener.accept().expect("dlflow connects");
        BufReader::new(peer).lines().map(|l| l.expect("line")).collect::<Vec<_>>()
    });
    let output = run_with_stdin(&["predict", "--model", &model("linear"), "--input", "-", "--output", &format!("tcp://127.0.0.1:{port}")], &(records(20).join("\n") + "\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let received = receiver.join().expect("receiver");
    assert_eq!(received.len(), 20);
    let first: Value = serde_json::from_str(&received[0]).expect("json");
    assert_eq!(f64_of(&first, "y"), 1.0);
}

#[test]
fn a_followed_directory_goes_to_rolling_files_each_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    let out = dir.path().join("out");
    std::fs::create_dir(&inbox).expect("mkdir");
    let mut child = dlflow()
        .args(["predict", "--model", &model("linear"), "--input", inbox.to_str().expect("utf8"), "--follow", "--columns", "id BIGINT"])
        .args(["--output", &format!("{}/", out.display()), "--roll-rows", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    // Files appear whole: written elsewhere, renamed in; names give the order.
    for (name, ids) in [("b.json", 50..100), ("a.json", 0..50)] {
        let staging = dir.path().join(name);
        let body: String = ids.map(|i| format!("{{\"x\": 1.0, \"id\": {i}}}\n")).collect();
        std::fs::write(&staging, body).expect("write");
        std::fs::rename(&staging, inbox.join(name)).expect("rename");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = |out: &Path| -> usize {
        std::fs::read_dir(out).map(|d| d.filter_map(|e| e.ok()).filter(|e| !e.file_name().to_string_lossy().starts_with('.')).map(|e| std::fs::read_to_string(e.path()).map(|t| t.lines().count()).unwrap_or(0)).sum()).unwrap_or(0)
    };
    while count(&out) < 80 {
        assert!(Instant::now() < deadline, "rolled files hold {} rows", count(&out));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop it like a user: Ctrl-C. What was read is written, and the last file is closed.
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let stderr = child.wait_with_output_ref();
    assert_eq!(status, Some(130), "{stderr}");
    let mut files: Vec<_> = std::fs::read_dir(&out).expect("out").filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert!(files.iter().all(|f| f.starts_with("part-") && f.ends_with(".json")), "no temporary files: {files:?}");
    let mut ids = Vec::new();
    for file in &files {
        let body = std::fs::read_to_string(out.join(file)).expect("read");
        assert!(body.lines().count() <= 40, "{file} has more than 40 rows");
        ids.extend(body.lines().map(|l| serde_json::from_str::<Value>(l).expect("json")["id"].as_i64().expect("id")));
    }
    // The directory was listed after both files were in place, so a.json came first; if it
    // was listed in between, b.json's rows come first. Either way, every row exactly once.
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "{stderr}");
}

#[test]
fn an_unreachable_kafka_broker_is_a_clear_error_not_a_hang() {
    let port = common::free_port();
    let started = Instant::now();
    let output = dlflow().args(["predict", "--model", &model("linear"), "--input", &format!("kafka://127.0.0.1:{port}/events"), "--output", "-"]).output().expect("run");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the Kafka broker") && stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
}

/// Writes `records` to partition `partition` of `topic`.
fn produce(broker: &str, topic: &str, partition: i32, records: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = rskafka::client::ClientBuilder::new(vec![broker.to_string()]).build().await.expect("client");
        let partition = client.partition_client(topic, partition, rskafka::client::partition::UnknownTopicHandling::Retry).await.expect("partition client");
        let records = records
            .iter()
            .map(|r| rskafka::record::Record { key: None, value: Some(r.clone().into_bytes()), headers: BTreeMap::new(), timestamp: chrono::DateTime::from_timestamp_millis(0).expect("time") })
            .collect();
        partition.produce(records, rskafka::client::partition::Compression::NoCompression).await.expect("produce");
    });
}

#[test]
fn kafka_partitions_are_read_concurrently_in_order_and_written_back_to_a_topic() {
    let broker = common::KafkaBroker::start();
    broker.create_topic("events", 2);
    broker.create_topic("scored", 1);
    let linear = format!("linear={}", model("linear"));
    let sql = format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events (x FLOAT, id BIGINT, _partition INT, _offset BIGINT) STORED AS JSON LOCATION 'kafka://{}/events';
         SELECT id, _partition, _offset, predict('linear', x) AS y FROM events",
        broker.address()
    );
    let mut child = dlflow().args(["sql", "--model", &linear, &sql, "--output", "-"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    // Partition 0 stays idle: partition 1's records still come through.
    let ones: Vec<String> = (0..200).map(|i| format!("{{\"x\": 1.0, \"id\": {i}}}")).collect();
    produce(&broker.address(), "events", 1, &ones);
    let mut seen: Vec<Value> = Vec::new();
    while seen.len() < 200 {
        let (_, line) = lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("only {} results; stderr: {}", seen.len(), child.wait_with_output_ref()));
        seen.push(serde_json::from_str(&line).expect("json"));
    }
    let zeros: Vec<String> = (1000..1200).map(|i| format!("{{\"x\": 0.0, \"id\": {i}}}")).collect();
    produce(&broker.address(), "events", 0, &zeros);
    while seen.len() < 400 {
        let (_, line) = lines.recv_timeout(Duration::from_secs(60)).expect("a result");
        seen.push(serde_json::from_str(&line).expect("json"));
    }
    let _ = child.kill();
    let _ = child.wait();
    for partition in [0, 1] {
        let rows: Vec<&Value> = seen.iter().filter(|v| v["_partition"] == partition).collect();
        assert_eq!(rows.len(), 200);
        let offsets: Vec<i64> = rows.iter().map(|v| v["_offset"].as_i64().expect("offset")).collect();
        assert_eq!(offsets, (0..200).collect::<Vec<_>>(), "partition {partition} in order");
        let expected_y = if partition == 1 { 3.0 } else { 1.0 };
        assert!(rows.iter().all(|v| f64_of(v, "y") == expected_y));
    }

    // And a topic as the sink: records from stdin scored into `scored`.
    let output = run_with_stdin(
        &["predict", "--model", &model("linear"), "--input", "-", "--columns", "id BIGINT", "--output", &format!("kafka://{}/scored", broker.address())],
        &(records(30).join("\n") + "\n"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let sql = format!(
        "CREATE UNBOUNDED EXTERNAL TABLE scored (x DOUBLE, id BIGINT, y DOUBLE) STORED AS JSON LOCATION 'kafka://{}/scored'; SELECT id, y FROM scored",
        broker.address()
    );
    let mut reader = dlflow().args(["sql", &sql, "--output", "-"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let lines = read_lines(reader.stdout.take().expect("stdout"));
    let got: Vec<Value> = (0..30).map(|_| serde_json::from_str(&lines.recv_timeout(Duration::from_secs(60)).expect("a scored record").1).expect("json")).collect();
    let _ = reader.kill();
    let _ = reader.wait();
    assert_eq!(got.iter().map(|v| v["id"].as_i64().expect("id")).collect::<Vec<_>>(), (0..30).collect::<Vec<_>>());
    assert_eq!(f64_of(&got[10], "y"), 1.2);
}

#[test]
fn ctrl_c_on_an_endless_generated_stream_writes_every_record_read() {
    let sql = "CREATE UNBOUNDED EXTERNAL TABLE g (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ('rows-per-second' '2000', 'seed' '3'); SELECT x FROM g";
    let mut child = dlflow().args(["predict", "--model", &model("linear"), "--sql", sql, "--output", "-"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    let mut count = 0;
    while count < 500 {
        lines.recv_timeout(Duration::from_secs(60)).expect("records");
        count += 1;
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let stderr = child.wait_with_output_ref();
    count += lines.iter().count();
    assert_eq!(status, Some(130), "{stderr}");
    let summary = stderr.lines().find(|l| l.starts_with("predicted: ")).unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert!(summary.starts_with(&format!("predicted: {count} records")), "every record read was written: {count} lines, {summary}");
}

#[test]
fn a_new_model_version_takes_over_between_batches_with_no_record_lost_or_repeated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("linear");
    std::fs::create_dir(&base).expect("mkdir");
    copy_dir(&common::model("linear"), &base.join("1"));
    let mut filter = Filter::start(&["predict", "--model", base.to_str().expect("utf8"), "--input", "-", "--output", "-", "--columns", "id BIGINT"]);
    let mut outputs: Vec<Value> = Vec::new();
    let drain = |filter: &mut Filter, outputs: &mut Vec<Value>| {
        while let Ok((_, line)) = filter.lines.try_recv() {
            outputs.push(serde_json::from_str(&line).expect("json"));
        }
    };
    // A steady stream: a record every 5 ms. Version 2 appears after record 100, staged and
    // renamed in whole, as an exporter does.
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut switched_at = None;
    while switched_at.is_none_or(|at| sent < at + 100) {
        assert!(Instant::now() < deadline, "version 2 never served; outputs so far: {}", outputs.len());
        filter.send(&format!("{{\"x\": 0.5, \"id\": {sent}}}"));
        sent += 1;
        if sent == 100 {
            copy_dir(&common::model("linear_v2"), &base.join(".staging"));
            std::fs::rename(base.join(".staging"), base.join("2")).expect("rename");
        }
        std::thread::sleep(Duration::from_millis(5));
        drain(&mut filter, &mut outputs);
        if switched_at.is_none() && outputs.last().is_some_and(|v| v["model_version"] == 2) {
            switched_at = Some(sent);
        }
    }
    let (rest, stderr, status) = filter.finish();
    outputs.extend(rest);
    assert_eq!(status, Some(0), "{stderr}");
    let ids: Vec<i64> = outputs.iter().map(|v| v["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, (0..sent as i64).collect::<Vec<_>>(), "every record once, in order");
    let versions: Vec<i64> = outputs.iter().map(|v| v["model_version"].as_i64().expect("model_version")).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "versions never go back");
    assert_eq!((versions.first(), versions.last()), (Some(&1), Some(&2)), "the switch happened: {stderr}");
    for value in &outputs {
        let expected = if value["model_version"] == 1 { 2.0 * 0.5 + 1.0 } else { -0.5 + 3.0 };
        assert_eq!(f64_of(value, "y"), expected, "{value}");
    }
    assert!(stderr.contains("model version 2 loaded and serving"), "{stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

// ---- Event time: watermarks and windows -------------------------------------------------

/// `2026-01-01T00:00:SS.mmm` for `seconds` after midnight.
fn ts(seconds: f64) -> String {
    let whole = seconds.floor() as u64;
    let millis = ((seconds - whole as f64) * 1000.0).round() as u64;
    format!("2026-01-01T00:{:02}:{:02}.{millis:03}", whole / 60, whole % 60)
}

fn event(seconds: f64, key: &str, v: f64) -> String {
    format!("{{\"ts\": \"{}\", \"k\": \"{key}\", \"v\": {v}}}", ts(seconds))
}

/// Seconds after midnight of 2026-01-01 of a window bound printed as `2026-01-01T00:00:05` (or
/// with a fraction); a hop window can start before midnight (`2025-12-31T23:59:59`): negative.
fn seconds_of(value: &Value) -> f64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let (date, time) = text.split_once('T').expect("date and time");
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().expect("number")).collect();
    let day = match date {
        "2026-01-01" => 0.0,
        "2025-12-31" => -86_400.0,
        other => panic!("a window bound on an unexpected day: {other}"),
    };
    day + parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// A window result keyed by (key, start): (count, sum, end).
type Results = BTreeMap<(String, i64), (i64, f64, f64)>;

fn collect_results(rows: &[Value]) -> Results {
    rows.iter()
        .map(|r| {
            // Unkeyed queries: the tests put every event under key `a`.
            let key = r["k"].as_str().unwrap_or("a").to_string();
            ((key, (seconds_of(&r["w"]) * 1000.0).round() as i64), (r["n"].as_i64().expect("n"), f64_of(r, "s"), seconds_of(&r["e"])))
        })
        .collect()
}

/// What the windows must hold: `phases` of events sent one phase at a time (each phase's results
/// awaited before the next), with the watermark `max event time - delay` after each phase; an
/// event whose windows all end at or before the watermark is late and dropped.
fn reference(phases: &[Vec<(f64, &str, f64)>], delay: f64, windows_of: impl Fn(f64) -> Vec<(f64, f64)>) -> (Results, usize) {
    let mut results: Results = BTreeMap::new();
    let (mut watermark, mut max_time, mut late) = (f64::MIN, f64::MIN, 0);
    for phase in phases {
        for (time, key, v) in phase {
            let windows: Vec<_> = windows_of(*time).into_iter().filter(|(_, end)| *end > watermark).collect();
            if windows.is_empty() {
                late += 1;
            }
            for (start, end) in windows {
                let entry = results.entry((key.to_string(), (start * 1000.0).round() as i64)).or_insert((0, 0.0, end));
                entry.0 += 1;
                entry.1 += v;
            }
            max_time = max_time.max(*time);
        }
        watermark = watermark.max(max_time - delay);
    }
    (results, late)
}

/// Runs a window query over standard input phase by phase: after each phase, waits for the
/// windows the reference says have fired; returns every result line.
fn run_windows(group_by: &str, bounds: (&str, &str), keyed: bool, phases: &[Vec<(f64, &str, f64)>], fired_after: &[usize]) -> (Vec<Value>, String) {
    let key = if keyed { "k, " } else { "" };
    let group_key = if keyed { ", k" } else { "" };
    let sql = format!(
        "CREATE UNBOUNDED EXTERNAL TABLE events (ts TIMESTAMP, k VARCHAR, v DOUBLE) STORED AS JSON LOCATION '-'
           OPTIONS ('watermark.column' 'ts', 'watermark.delay' '500ms');
         SELECT {key}{} AS w, {} AS e, COUNT(*) AS n, SUM(v) AS s FROM events GROUP BY {group_by}{group_key}",
        bounds.0, bounds.1
    );
    let mut filter = Filter::start(&["sql", &sql, "--output", "-"]);
    let mut rows = Vec::new();
    for (phase, expected) in phases.iter().zip(fired_after) {
        for (time, key, v) in phase {
            filter.send(&event(*time, key, *v));
        }
        // Results come while the stream is open, as the watermark passes each window's end.
        while rows.len() < *expected {
            rows.push(filter.next(Duration::from_secs(60)).1);
        }
    }
    let (rest, stderr, status) = filter.finish();
    assert_eq!(status, Some(0), "{stderr}");
    rows.extend(rest);
    (rows, stderr)
}

fn tumble_windows(time: f64) -> Vec<(f64, f64)> {
    let start = time.floor();
    vec![(start, start + 1.0)]
}

#[test]
fn tumbling_windows_fire_as_the_watermark_passes_keep_late_rows_out_and_count_them() {
    // Delay 0.5 s. Phase 1 ends at 2.9: windows [0,1) and [1,2) fire. 0.7 after 1.3 is out of
    // order inside the delay: kept. Phase 2: 0.5 is late ([0,1) fired), 2.2 is not ([2,3) is
    // open); 4.0 moves the watermark to 3.5: [2,3) fires. The end of input fires [4,5).
    let phases = vec![
        vec![(0.1, "a", 1.0), (0.4, "a", 2.0), (1.3, "a", 3.0), (0.7, "a", 4.0), (1.8, "a", 5.0), (2.9, "a", 6.0)],
        vec![(0.5, "a", 100.0), (2.2, "a", 7.0), (4.0, "a", 8.0)],
    ];
    let (expected, late) = reference(&phases, 0.5, tumble_windows);
    let (rows, stderr) = run_windows("TUMBLE(ts, INTERVAL '1' SECOND)", ("TUMBLE_START(ts, INTERVAL '1' SECOND)", "TUMBLE_END(ts, INTERVAL '1' SECOND)"), false, &phases, &[2, 3]);
    assert_eq!(collect_results(&rows), expected, "{stderr}");
    assert_eq!(late, 1);
    assert!(stderr.contains("1 late rows dropped"), "{stderr}");
}

#[test]
fn hop_and_session_windows_equal_the_reference_and_keys_stay_apart() {
    let phases = vec![
        vec![(0.2, "a", 1.0), (0.9, "b", 2.0), (1.4, "a", 3.0), (2.1, "b", 4.0), (3.6, "a", 5.0)],
        vec![(1.0, "a", 50.0), (3.7, "b", 6.0), (6.0, "a", 7.0)],
    ];
    let hops = |t: f64| {
        let last = (t / 0.5).floor() * 0.5;
        vec![(last - 1.0, last), (last - 0.5, last + 0.5), (last, last + 1.0)].into_iter().map(|(s, _)| (s, s + 1.5)).collect::<Vec<_>>()
    };
    let (expected, _) = reference(&phases, 0.5, hops);
    let fired_first = expected.iter().filter(|(_, (_, _, end))| *end <= 3.6 - 0.5).count();
    let fired_second = expected.iter().filter(|(_, (_, _, end))| *end <= 6.0 - 0.5).count();
    let (rows, stderr) = run_windows(
        "HOP(ts, INTERVAL '0.5' SECOND, INTERVAL '1.5' SECOND)",
        ("HOP_START(ts, INTERVAL '0.5' SECOND, INTERVAL '1.5' SECOND)", "HOP_END(ts, INTERVAL '0.5' SECOND, INTERVAL '1.5' SECOND)"),
        true,
        &phases,
        &[fired_first, fired_second],
    );
    assert_eq!(collect_results(&rows), expected, "{stderr}");

    // Sessions with a 1 s gap, per key: a: 0.2, 0.9 | 2.5 ; b: 0.5, 1.2, 2.0 ; the late row is
    // a's 0.1 after the watermark passed 1.9 (a's first session ended at 1.9).
    let phases = [vec![(0.2, "a", 1.0), (0.5, "b", 1.0), (0.9, "a", 1.0), (1.2, "b", 1.0), (2.0, "b", 1.0), (2.5, "a", 1.0), (3.0, "c", 1.0)], vec![(0.1, "a", 9.0), (5.0, "c", 1.0)]];
    let sql = "CREATE UNBOUNDED EXTERNAL TABLE events (ts TIMESTAMP, k VARCHAR, v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '500' MILLISECOND) STORED AS JSON LOCATION '-';
               SELECT k, SESSION_START(ts, INTERVAL '1' SECOND) AS w, SESSION_END(ts, INTERVAL '1' SECOND) AS e, COUNT(*) AS n, SUM(v) AS s
               FROM events GROUP BY SESSION(ts, INTERVAL '1' SECOND), k";
    let mut filter = Filter::start(&["sql", sql, "--output", "-"]);
    for (time, key, v) in &phases[0] {
        filter.send(&event(*time, key, *v));
    }
    // Watermark 2.5: a's [0.2, 1.9) has fired; b's session runs to 3.0.
    let first = filter.next(Duration::from_secs(60)).1;
    assert_eq!((first["k"].as_str(), first["n"].as_i64()), (Some("a"), Some(2)), "{first}");
    assert_eq!((seconds_of(&first["w"]), seconds_of(&first["e"])), (0.2, 1.9));
    for (time, key, v) in &phases[1] {
        filter.send(&event(*time, key, *v));
    }
    let (rest, stderr, status) = filter.finish();
    assert_eq!(status, Some(0), "{stderr}");
    let mut all = vec![first];
    all.extend(rest);
    let sessions: BTreeMap<(String, String), i64> =
        all.iter().map(|r| ((r["k"].as_str().expect("k").to_string(), format!("{:.1}-{:.1}", seconds_of(&r["w"]), seconds_of(&r["e"]))), r["n"].as_i64().expect("n"))).collect();
    let expected: BTreeMap<(String, String), i64> = [(("a", "0.2-1.9"), 2), (("a", "2.5-3.5"), 1), (("b", "0.5-3.0"), 3), (("c", "3.0-4.0"), 1), (("c", "5.0-6.0"), 1)]
        .into_iter()
        .map(|((k, w), n)| ((k.to_string(), w.to_string()), n))
        .collect();
    assert_eq!(sessions, expected, "{stderr}");
    assert!(stderr.contains("1 late rows dropped"), "{stderr}");
}

#[test]
fn the_issue_s_exact_window_query_streams_a_line_per_window_and_fires_the_rest_at_the_end() {
    let sql = "CREATE UNBOUNDED EXTERNAL TABLE events (ts TIMESTAMP, v DOUBLE) STORED AS JSON LOCATION '-'
              OPTIONS ('watermark.column' 'ts', 'watermark.delay' '2s');
          SELECT TUMBLE_START(ts, INTERVAL '1' SECOND) AS w, COUNT(*) AS n, SUM(v) AS s
          FROM events GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)";
    let mut filter = Filter::start(&["sql", sql, "--output", "-"]);
    for (time, v) in [(0.5, 1.0), (0.7, 2.0), (1.5, 3.0)] {
        filter.send(&format!("{{\"ts\": \"{}\", \"v\": {v}}}", ts(time)));
    }
    // 3.2 - 2 s = 1.2: window [0, 1) fires now, while the input is open.
    let sent = Instant::now();
    filter.send(&format!("{{\"ts\": \"{}\", \"v\": 4.0}}", ts(3.2)));
    let (at, first) = filter.next(Duration::from_secs(60));
    assert!(at - sent < Duration::from_secs(5), "a window result {:?} after the watermark passed", at - sent);
    assert_eq!((seconds_of(&first["w"]), first["n"].as_i64(), f64_of(&first, "s")), (0.0, Some(2), 3.0));
    let (rest, stderr, status) = filter.finish();
    assert_eq!(status, Some(0), "{stderr}");
    let rest: Vec<(f64, i64)> = rest.iter().map(|r| (seconds_of(&r["w"]), r["n"].as_i64().expect("n"))).collect();
    assert_eq!(rest, vec![(1.0, 1), (3.0, 1)], "the open windows fire at the end of the input");
}

#[test]
fn an_idle_partition_stops_holding_windows_back_after_its_timeout() {
    let broker = common::KafkaBroker::start();
    broker.create_topic("ticks", 2);
    let sql = format!(
        "CREATE UNBOUNDED EXTERNAL TABLE ticks (ts TIMESTAMP, v DOUBLE) STORED AS JSON LOCATION 'kafka://{}/ticks'
           OPTIONS ('watermark.column' 'ts', 'watermark.delay' '0s', 'watermark.idle-timeout' '1s');
         SELECT TUMBLE_START(ts, INTERVAL '1' SECOND) AS w, COUNT(*) AS n FROM ticks GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)",
        broker.address()
    );
    let mut child = dlflow().args(["sql", &sql, "--output", "-"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    // Only partition 0 gets records; partition 1 never does. After its idle timeout the window
    // [0, 1) fires on partition 0's watermark alone.
    let records: Vec<String> = [0.2, 0.6, 1.5].iter().map(|t| format!("{{\"ts\": \"{}\", \"v\": 1.0}}", ts(*t))).collect();
    produce(&broker.address(), "ticks", 0, &records);
    let (_, line) = lines.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no window fired: {}", child.wait_with_output_ref()));
    let value: Value = serde_json::from_str(&line).expect("json");
    assert_eq!((seconds_of(&value["w"]), value["n"].as_i64()), (0.0, Some(2)));
    let _ = child.kill();
    let _ = child.wait();
}
