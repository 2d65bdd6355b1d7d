//! Scalar series from a TensorBoard log directory: every event file under it, grouped by run
//! (the folder, relative to the log directory: `train`, `validation`) and tag (`epoch_loss`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};
use crate::proto::Event;
use crate::record::{RecordError, RecordReader};

/// One logged value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalarPoint {
    /// The step the value was logged at (Keras: the epoch from 0 for `epoch_*` tags, the
    /// optimizer step for `batch_*` tags).
    pub step: i64,
    /// Seconds since the Unix epoch, when it was logged.
    pub wall_time: f64,
    /// The value.
    pub value: f64,
}

/// The values of one tag in one run, by step.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarSeries {
    /// The run: the folder of its event files relative to the log directory (`.` for the
    /// log directory itself).
    pub run: String,
    /// The summary tag (`epoch_loss`, `batch_loss`, ...).
    pub tag: String,
    /// One point per step, in step order. A step logged twice (a restarted job) keeps the
    /// value written last.
    pub points: Vec<ScalarPoint>,
}

/// Every scalar series under `dir`, sorted by run and tag.
///
/// Event files are the files whose name contains `tfevents`, at any depth (TensorBoard's
/// rule). Values are read from TF2 summaries (`tf.summary.scalar` writes a one-element
/// tensor) and TF1 ones (`simple_value`). A directory with no event files gives no series.
///
/// ```no_run
/// let series = dlflow_tensorboard::read_scalars("/tmp/linear.tensorboard".as_ref())?;
/// for s in &series {
///     println!("{}/{}: {} points", s.run, s.tag, s.points.len());
/// }
/// # Ok::<(), dlflow_tensorboard::Error>(())
/// ```
pub fn read_scalars(dir: &Path) -> Result<Vec<ScalarSeries>> {
    let mut files = Vec::new();
    find_event_files(dir, &mut files)?;
    // By path: one run's files sort by their creation time, which TensorFlow puts in the name.
    files.sort();
    let mut series: BTreeMap<(String, String), BTreeMap<i64, ScalarPoint>> = BTreeMap::new();
    for file in &files {
        let run = run_name(dir, file);
        for event in read_events(file)? {
            let Some(summary) = event.summary else { continue };
            for value in summary.value {
                let number = value.simple_value.map(f64::from).or_else(|| value.tensor.as_ref().and_then(crate::proto::scalar));
                if let Some(number) = number {
                    let point = ScalarPoint { step: event.step, wall_time: event.wall_time, value: number };
                    series.entry((run.clone(), value.tag)).or_default().insert(event.step, point);
                }
            }
        }
    }
    Ok(series
        .into_iter()
        .map(|((run, tag), points)| ScalarSeries { run, tag, points: points.into_values().collect() })
        .collect())
}

/// Every event of one event file, in order.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut events = Vec::new();
    let mut offset = 0u64;
    for record in RecordReader::new(BufReader::new(file)) {
        let record = record.map_err(|source| match source {
            RecordError::Io(source) => Error::Io { path: path.to_path_buf(), source },
            other => Error::Corrupt { path: path.to_path_buf(), source: other },
        })?;
        let event = Event::decode(record.as_slice()).map_err(|source| Error::NotAnEvent { path: path.to_path_buf(), offset, source })?;
        offset += 16 + record.len() as u64;
        events.push(event);
    }
    Ok(events)
}

fn find_event_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| Error::Io { path: path.clone(), source })?;
        if kind.is_dir() {
            find_event_files(&path, files)?;
        } else if entry.file_name().to_string_lossy().contains("tfevents") {
            files.push(path);
        }
    }
    Ok(())
}

fn run_name(dir: &Path, file: &Path) -> String {
    let folder = file.parent().and_then(|parent| parent.strip_prefix(dir).ok()).map(Path::to_path_buf).unwrap_or_default();
    if folder.as_os_str().is_empty() { ".".into() } else { folder.to_string_lossy().into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Summary, SummaryValue, TensorProto};
    use dlflow_common::types::tf_code;
    use crate::record::masked_crc32c;

    fn write_events(path: &Path, events: &[Event]) {
        let mut bytes = Vec::new();
        for event in events {
            let data = event.encode_to_vec();
            let length = (data.len() as u64).to_le_bytes();
            bytes.extend(length);
            bytes.extend(masked_crc32c(&length).to_le_bytes());
            bytes.extend(&data);
            bytes.extend(masked_crc32c(&data).to_le_bytes());
        }
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, bytes).expect("write");
    }

    fn scalar(step: i64, tag: &str, value: SummaryValue) -> Event {
        Event { step, wall_time: 1.0 + step as f64, summary: Some(Summary { value: vec![SummaryValue { tag: tag.into(), ..value }] }), ..Event::default() }
    }

    #[test]
    fn runs_tags_and_both_value_kinds_are_read_a_repeated_step_keeps_the_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let version = Event { file_version: Some("brain.Event:2".into()), ..Event::default() };
        let tensor = |v: f32| SummaryValue { tensor: Some(TensorProto { dtype: tf_code::FLOAT, float_val: vec![v], ..TensorProto::default() }), ..SummaryValue::default() };
        let simple = |v: f32| SummaryValue { simple_value: Some(v), ..SummaryValue::default() };
        write_events(
            &dir.path().join("train/events.out.tfevents.1.host.1.0.v2"),
            &[version.clone(), scalar(0, "epoch_loss", tensor(0.5)), scalar(1, "epoch_loss", tensor(0.25)), scalar(1, "epoch_loss", tensor(0.125))],
        );
        write_events(&dir.path().join("validation/events.out.tfevents.1.host.1.1.v2"), &[version, scalar(0, "epoch_loss", simple(0.75))]);
        std::fs::write(dir.path().join("notes.txt"), "not events").expect("write");

        let series = read_scalars(dir.path()).expect("scalars");
        let summary: Vec<String> = series
            .iter()
            .map(|s| format!("{}/{}: {:?}", s.run, s.tag, s.points.iter().map(|p| (p.step, p.value)).collect::<Vec<_>>()))
            .collect();
        assert_eq!(summary, ["train/epoch_loss: [(0, 0.5), (1, 0.125)]", "validation/epoch_loss: [(0, 0.75)]"]);
    }

    #[test]
    fn a_missing_directory_and_a_broken_file_are_named() {
        let error = read_scalars(Path::new("/nonexistent/logs")).expect_err("missing").to_string();
        assert!(error.contains("/nonexistent/logs"), "{error}");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.out.tfevents.broken");
        std::fs::write(&path, b"definitely not a record").expect("write");
        let error = read_scalars(dir.path()).expect_err("broken").to_string();
        assert!(error.contains("events.out.tfevents.broken") && error.contains("checksum"), "{error}");
    }
}
