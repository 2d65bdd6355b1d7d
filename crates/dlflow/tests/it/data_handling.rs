//! How training rows reach the workers, with real Python nodes: equal shares without needless
//! loss, and the seeded shuffle across partitions (a new order every epoch, the same set, the
//! same order again for the same seed).

use std::path::{Path, PathBuf};

use dlflow::{DataGen, Environment, Generator, Job, TfClusterConfig};

fn entry() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/entries/record_rows.py")
}

/// The ids each worker saw, per epoch, in order: `[worker][epoch][row]`.
async fn record(table: &dlflow::Table, workers: usize, epochs: u64, shuffle: Option<u64>) -> (dlflow::JobReport, Vec<Vec<Vec<i64>>>) {
    let out = tempfile::tempdir().expect("tempdir");
    let config = TfClusterConfig::builder()
        .worker_count(workers)
        .node_entry(entry(), "record_entry")
        .property("out_dir", out.path().to_string_lossy())
        .quiet(true)
        .build()
        .expect("config");
    let report = Job::train(table, &config, epochs).shuffle(shuffle).run().await.expect("train");
    let seen = (0..workers)
        .map(|k| {
            let text = std::fs::read_to_string(out.path().join(format!("worker_{k}.json"))).expect("worker's record");
            serde_json::from_str(&text).expect("json")
        })
        .collect();
    (report, seen)
}

/// `rows` ids over several uneven partitions and small batches, read by two engine threads.
fn ids(env: &Environment, rows: u64) -> dlflow::Table {
    env.datagen(DataGen::new(rows).partitions(5).batch_size(37).column("id", Generator::sequence(0))).expect("datagen")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evenly_divisible_table_loses_no_row_and_an_uneven_one_at_most_workers_minus_one() {
    let env = Environment::new();
    for (rows, workers, shuffle) in [(1000u64, 2usize, None), (1001, 3, None), (999, 3, Some(5)), (1001, 2, Some(5))] {
        {
            let (report, seen) = record(&ids(&env, rows), workers, 2, shuffle).await;
            let share = rows / workers as u64;
            for epoch in &report.epochs {
                assert_eq!(epoch.rows, vec![share; workers], "{rows} rows, shuffle {shuffle:?}: {report}");
                assert_eq!(epoch.dropped(), rows % workers as u64, "{rows} rows, shuffle {shuffle:?}: {report}");
            }
            for epoch in 0..2 {
                let mut all: Vec<i64> = seen.iter().flat_map(|w| w[epoch].clone()).collect();
                assert!(seen.iter().all(|w| w[epoch].len() as u64 == share), "{rows} rows, shuffle {shuffle:?}");
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len() as u64, share * workers as u64, "no row twice in an epoch");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffling_changes_the_order_between_epochs_keeps_the_set_and_repeats_for_a_seed() {
    let env = Environment::new();
    let table = ids(&env, 600);
    let (_, first) = record(&table, 2, 3, Some(42)).await;
    for worker in &first {
        assert_ne!(worker[0], worker[1], "a new order every epoch");
        assert_ne!(worker[1], worker[2], "a new order every epoch");
    }
    for epoch in 0..3 {
        let mut all: Vec<i64> = first.iter().flat_map(|w| w[epoch].clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..600).collect::<Vec<_>>(), "epoch {epoch}: every row once");
    }
    // Rows cross partitions: worker 0's first 100 rows come from all five partitions (120 rows each).
    let partitions: std::collections::BTreeSet<i64> = first[0][0].iter().take(100).map(|id| id / 120).collect();
    assert_eq!(partitions.len(), 5, "{partitions:?}");
    // The same seed: the same rows in the same order, on every worker, in every epoch.
    let (_, again) = record(&table, 2, 3, Some(42)).await;
    assert_eq!(again, first);
    let (_, other) = record(&table, 2, 3, Some(43)).await;
    assert_ne!(other, first);
    // Without shuffling each partition's rows keep their order.
    let (_, plain) = record(&table, 1, 1, None).await;
    for partition in 0..5 {
        let rows: Vec<i64> = plain[0][0].iter().copied().filter(|id| id / 120 == partition).collect();
        assert!(rows.len() == 120 && rows.windows(2).all(|w| w[0] < w[1]), "partition {partition}: {rows:?}");
    }
}
