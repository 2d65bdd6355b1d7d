//! Patterns over real streams: a TCP source the test serves, records out of order, a
//! watermark from the declared delay, matches and timeouts as event time passes.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use dlflow::Environment;
use dlflow::pattern::{Pattern, PatternEvent, PatternStream};
use futures::StreamExt;

/// `2026-01-01T00:MM:SS` for `seconds` after midnight.
fn ts(seconds: u64) -> String {
    format!("2026-01-01T00:{:02}:{:02}", seconds / 60, seconds % 60)
}

/// Seconds after midnight, 2026-01-01, of an event time.
fn seconds_of(time: Duration) -> u64 {
    const MIDNIGHT: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    time.as_secs() - MIDNIGHT
}

/// The Johnny door: 3, 1, 4 within 60 s; events are `(id, digit)`.
fn door() -> Pattern<(i64, i64)> {
    Pattern::begin("three", |(_, d): &(i64, i64)| *d == 3)
        .followed_by("one", |(_, d)| *d == 1)
        .followed_by("four", |(_, d)| *d == 4)
        .within(Duration::from_secs(60))
}

/// `GRANTED front [1, 2, 3] @ [0, 10, 12]`: decision, key, ids and event times.
fn describe(event: &PatternEvent<String, (i64, i64)>) -> String {
    let decision = if event.is_match() { "GRANTED" } else { "DENIED" };
    let ids: Vec<i64> = event.events().iter().map(|e| e.event.0).collect();
    let times: Vec<u64> = event.events().iter().map(|e| seconds_of(e.time)).collect();
    format!("{decision} {} {ids:?} @ {times:?}", event.key())
}

async fn next(decisions: &mut PatternStream<String, (i64, i64)>) -> String {
    let event = tokio::time::timeout(Duration::from_secs(30), decisions.next()).await.expect("a decision within 30 s");
    describe(&event.expect("the stream goes on").expect("no error"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_over_a_stream_decides_as_the_watermark_passes_in_event_time_order() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    // Phases of `(id, door, seconds, digit)`; the test goes to the next phase when the previous
    // one's decisions are out, so decisions come while the stream is open.
    let phases: Vec<Vec<(i64, &str, u64, i64)>> = vec![
        // The 4 (12 s) arrives before the 1 (10 s): in event time the order is 3, 1, 4. The
        // watermark (delay 5 s) passes 12 only when the 9 at 20 s arrives: granted then.
        vec![(1, "front", 0, 3), (2, "front", 12, 4), (3, "front", 10, 1), (4, "back", 14, 3), (5, "front", 20, 9)],
        // back: 3 at 14, 1 at 40, no 4: denied when the watermark passes 74 (the 9 at 100).
        vec![(6, "back", 40, 1), (7, "side", 100, 9)],
        // A 4 at 50 after the watermark passed 95: late, dropped and counted. side: a 3 at 110;
        // the end of the stream ends event time: denied.
        vec![(8, "front", 50, 4), (9, "side", 110, 3)],
    ];
    let (next_phase, phase_wanted) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().expect("accept");
        for phase in phases {
            phase_wanted.recv().expect("the test asks for the next phase");
            for (id, door, seconds, digit) in phase {
                writeln!(socket, r#"{{"id": {id}, "door": "{door}", "ts": "{}", "digit": {digit}}}"#, ts(seconds)).expect("write");
            }
            socket.flush().expect("flush");
        }
        phase_wanted.recv().expect("the test asks for the end");
        // Dropping the socket ends the stream ('reconnect' 'false').
    });

    let env = Environment::new();
    let seen = env
        .sql(&format!(
            "CREATE UNBOUNDED EXTERNAL TABLE seen (id BIGINT, door VARCHAR, ts TIMESTAMP, digit BIGINT)
               STORED AS JSON LOCATION 'tcp://{address}'
               OPTIONS ('watermark.column' 'ts', 'watermark.delay' '5s', 'reconnect' 'false');
             SELECT * FROM seen"
        ))
        .await
        .expect("stream table");
    let mut decisions = door().run(&seen, "ts", |row| Ok((row.string("door")?, (row.i64("id")?, row.i64("digit")?)))).await.expect("run");

    next_phase.send(()).expect("phase 1");
    assert_eq!(next(&mut decisions).await, "GRANTED front [1, 3, 2] @ [0, 10, 12]");
    next_phase.send(()).expect("phase 2");
    assert_eq!(next(&mut decisions).await, "DENIED back [4, 6] @ [14, 40]");
    next_phase.send(()).expect("phase 3");
    // Nothing else is decided while the stream is open: the side door's 3 waits for event time.
    assert!(tokio::time::timeout(Duration::from_millis(500), decisions.next()).await.is_err(), "no decision before event time passes 170");
    next_phase.send(()).expect("the end");
    assert_eq!(next(&mut decisions).await, "DENIED side [9] @ [110]");
    assert!(decisions.next().await.is_none(), "the end of the stream ends the decisions");
    assert_eq!(decisions.late_events(), 1, "the 4 at 50 s came after the watermark had passed 95 s");
    server.join().expect("server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_table_is_put_in_event_time_order_and_bad_declarations_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("seen.json");
    // Out of order in the file, no watermark: ordered as a whole.
    let lines = [(1, "front", 40, 4), (2, "front", 0, 3), (3, "front", 30, 1), (4, "back", 5, 3)];
    let text: String = lines.iter().map(|(id, door, s, d)| format!(r#"{{"id": {id}, "door": "{door}", "ts": "{}", "digit": {d}}}"#, ts(*s)) + "\n").collect();
    std::fs::write(&file, text).expect("write");
    let env = Environment::new();
    let seen = env
        .sql(&format!("CREATE EXTERNAL TABLE seen (id BIGINT, door VARCHAR, ts TIMESTAMP, digit BIGINT) STORED AS JSON LOCATION '{}'; SELECT * FROM seen", file.display()))
        .await
        .expect("table");
    let decisions: Vec<String> = door()
        .run(&seen, "ts", |row| Ok((row.string("door")?, (row.i64("id")?, row.i64("digit")?))))
        .await
        .expect("run")
        .map(|e| describe(&e.expect("no error")))
        .collect()
        .await;
    assert_eq!(decisions, ["GRANTED front [2, 3, 1] @ [0, 30, 40]", "DENIED back [4] @ [5]"]);

    let not_a_time = door().run(&seen, "id", |_| Ok((String::new(), (0, 0)))).await.err().expect("id is no TIMESTAMP").to_string();
    assert!(not_a_time.contains("`id` is Int64; expected a TIMESTAMP"), "{not_a_time}");
    let bad_row = door().run(&seen, "ts", |row| Ok((row.string("digit")?, (0, 0)))).await.expect("run").next().await.expect("an item");
    let bad_row = bad_row.expect_err("digit is no string").to_string();
    assert!(bad_row.contains("column `digit`") && bad_row.contains("expected a string"), "{bad_row}");

    let stream = env
        .sql("CREATE UNBOUNDED EXTERNAL TABLE s (ts TIMESTAMP, digit BIGINT) STORED AS JSON LOCATION 'tcp://127.0.0.1:9'; SELECT * FROM s")
        .await
        .expect("stream table");
    let no_watermark = door().run(&stream, "ts", |_| Ok((String::new(), (0, 0)))).await.err().expect("a stream needs a watermark").to_string();
    assert!(no_watermark.contains("'watermark.column' 'ts'"), "{no_watermark}");
}
