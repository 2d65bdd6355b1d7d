//! Benchmark: file-to-file inference as a user runs it, whole commands timed from process start
//! to exit, side by side in one run:
//!
//! - `dlflow predict --input IN.parquet --output OUT.parquet` (the release binary), which copies
//!   the input's column chunks into the output as they are stored and encodes only the model's
//!   outputs (`dlflow_table::sink::stored_columns`);
//! - the same with a query as input that computes `id` (`SELECT <input>, id + 0 AS id`): every
//!   column decoded and encoded again, as for any input that is not Parquet files as stored;
//! - (a) the same file copied by `dlflow sql --table t=IN.parquet "SELECT <input>, id FROM t"
//!   --output OUT.parquet`: what reading and writing the rows alone cost. Target on the
//!   I/O-bound model: predict >= 0.85x the copy's throughput;
//! - (b) a plain Python script (python/tools/bench_predict_file.py: pyarrow reads the file, the
//!   SavedModel's serving signature runs on batches of 1024 rows, pyarrow writes the outputs
//!   and `id`). Target on the I/O-bound model: predict >= 2x its throughput;
//!
//! on the I/O-bound `mlp` (784 -> 128 -> 10, input `pixels`) and the compute-bound `mlp_wide`
//! (256 -> 1024 -> 1024 -> 10, input `x`; reported, no target), each over a Parquet file of
//! random floats plus an `id` column. Every round runs the four commands once per model; the
//! ratios' median and range (min-max) over the rounds are printed, with each command's median
//! seconds and its peak resident memory (the largest over the rounds, read from /proc), and the
//! input file's size.
//!
//! Run with `scripts/bench.sh inference files` (it builds the `dlflow` binary first). Sizes:
//! DLFLOW_BENCH_ROWS (rows of each file, default 200000), DLFLOW_BENCH_WIDE_ROWS (the
//! `mlp_wide` file, default DLFLOW_BENCH_ROWS: a few seconds a run at ~50k rows/s),
//! DLFLOW_BENCH_REPEAT (rounds, default 5).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{dlflow_binary, env_usize, spread};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use dlflow::{DataGen, Environment, Generator};
use dlflow_testkit::watch::{run_watched, Watched};

/// One model of the benchmark and the file it runs over.
struct Case {
    model: &'static str,
    what: &'static str,
    /// The signature input, and the file's column of that name.
    column: &'static str,
    width: usize,
    rows: usize,
    /// The ratio targets of (a) and (b), where the issue sets them.
    targets: Option<(f64, f64)>,
}

/// The commands of a round, in the order they run.
#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Copy,
    Predict,
    PredictEncoding,
    Python,
}

const CONTENDERS: [Contender; 4] = [Contender::Copy, Contender::Predict, Contender::PredictEncoding, Contender::Python];

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Copy => "dlflow sql copy (SELECT <input>, id)",
            Contender::Predict => "dlflow predict",
            Contender::PredictEncoding => "dlflow predict, every column encoded",
            Contender::Python => "Python (pyarrow + SavedModel, batch 1024)",
        }
    }

    fn command(self, case: &Case, input: &Path, output: &Path) -> Command {
        let model = models().join(case.model);
        match self {
            Contender::Copy => {
                let mut command = Command::new(dlflow_binary());
                command.arg("sql").arg("--table").arg(format!("t={}", input.display()));
                command.arg(format!("SELECT {}, id FROM t", case.column)).arg("--output").arg(output);
                command
            }
            Contender::Predict => {
                let mut command = Command::new(dlflow_binary());
                command.arg("predict").arg("--model").arg(&model).arg("--input").arg(input).arg("--output").arg(output);
                command
            }
            Contender::PredictEncoding => {
                let mut command = Command::new(dlflow_binary());
                command.arg("predict").arg("--model").arg(&model).arg("--output").arg(output).arg("--sql").arg(format!(
                    "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'; SELECT {}, id + 0 AS id FROM t",
                    input.display(),
                    case.column
                ));
                command
            }
            Contender::Python => {
                let mut command = Command::new(dlflow::layers::dlflow_common::paths::project_venv().join("bin/python"));
                command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/tools/bench_predict_file.py"));
                command.arg("--input").arg(input).arg("--model").arg(&model).args(["--column", case.column, "--keep", "id"]);
                command.arg("--output").arg(output).args(["--batch-size", "1024"]);
                command
            }
        }
    }
}

fn models() -> PathBuf {
    PathBuf::from(std::env::var("DLFLOW_MODELS").expect("DLFLOW_MODELS: run scripts/bench.sh inference files"))
}

/// `rows` rows of `width` random floats in column `column`, and an `id`, as a Parquet file
/// written by dlflow.
async fn write_input(case: &Case, path: &Path) {
    let env = Environment::new();
    let table = env
        .datagen(
            DataGen::new(case.rows as u64)
                .seed(13)
                .column(case.column, Generator::uniform_vector(case.width, 0.0, 1.0))
                .column("id", Generator::sequence(0)),
        )
        .expect("datagen");
    table.write(path, |_| {}).await.expect("write the input file");
}

fn parquet_rows(path: &Path) -> i64 {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = SerializedFileReader::new(file).unwrap_or_else(|e| panic!("{}: not a Parquet file: {e}", path.display()));
    reader.metadata().file_metadata().num_rows()
}

/// Runs one command to its end; checks it wrote every row.
fn run(contender: Contender, case: &Case, input: &Path, dir: &Path) -> Watched {
    let output = dir.join("out.parquet");
    let watched = run_watched(&mut contender.command(case, input, &output), None);
    watched.assert_success(contender.label());
    assert_eq!(parquet_rows(&output), case.rows as i64, "rows {} wrote to {}", contender.label(), output.display());
    std::fs::remove_file(&output).expect("remove the output");
    watched
}

async fn bench(case: &Case, repeat: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join(format!("{}.parquet", case.model));
    write_input(case, &input).await;
    let megabytes = std::fs::metadata(&input).expect("input file").len() as f64 / 1e6;
    // Every command then reads the file from the page cache, the first one included.
    std::io::copy(&mut std::fs::File::open(&input).expect("input"), &mut std::io::sink()).expect("read the input");

    let mut seconds: [Vec<f64>; 4] = Default::default();
    let mut peak_mib = [0f64; 4];
    let (mut to_copy, mut to_python, mut encoding_to_copy) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=repeat {
        let runs = CONTENDERS.map(|contender| run(contender, case, &input, dir.path()));
        let [copy, predict, encoding, python] = runs.each_ref().map(|w| w.wall.as_secs_f64());
        println!("  round {round}: copy {copy:.2} s, predict {predict:.2} s, predict encoding every column {encoding:.2} s, Python {python:.2} s");
        // Same rows in each: a throughput ratio is the inverse ratio of the times.
        to_copy.push(copy / predict);
        to_python.push(python / predict);
        encoding_to_copy.push(copy / encoding);
        for (i, watched) in runs.iter().enumerate() {
            seconds[i].push(watched.wall.as_secs_f64());
            peak_mib[i] = peak_mib[i].max(watched.peak_mib());
        }
    }

    println!(
        "{} ({}): {} rows x {} float32 + id, input {megabytes:.0} MB Parquet, {repeat} rounds",
        case.model, case.what, case.rows, case.width
    );
    println!("  {:<44} {:>22} {:>12} {:>14}", "command", "seconds: median (range)", "rows/s", "peak RSS");
    for (i, contender) in CONTENDERS.iter().enumerate() {
        let (m, lo, hi) = spread(&mut seconds[i]);
        println!(
            "  {:<44} {:>22} {:>12.0} {:>10.0} MiB",
            contender.label(),
            format!("{m:.2} ({lo:.2}-{hi:.2})"),
            case.rows as f64 / m,
            peak_mib[i]
        );
    }
    let target = |t: Option<f64>| t.map_or("report only".to_string(), |t| format!("target >= {t}x"));
    let (m, lo, hi) = spread(&mut to_copy);
    println!(
        "  ratio predict / copy, throughput:   median {m:.2}x, range {lo:.2}-{hi:.2}x ({})",
        target(case.targets.map(|t| t.0))
    );
    let (m, lo, hi) = spread(&mut to_python);
    println!(
        "  ratio predict / Python, throughput: median {m:.2}x, range {lo:.2}-{hi:.2}x ({})",
        target(case.targets.map(|t| t.1))
    );
    let (m, lo, hi) = spread(&mut encoding_to_copy);
    println!("  ratio predict encoding every column / copy: median {m:.2}x, range {lo:.2}-{hi:.2}x (report only)");
}

#[tokio::main]
async fn main() {
    let rows = env_usize("DLFLOW_BENCH_ROWS", 200_000);
    let wide_rows = env_usize("DLFLOW_BENCH_WIDE_ROWS", rows);
    let repeat = env_usize("DLFLOW_BENCH_REPEAT", 5).max(1);
    let cases = [
        Case { model: "mlp", what: "MLP 784-128-10, I/O-bound", column: "pixels", width: 784, rows, targets: Some((0.85, 2.0)) },
        Case { model: "mlp_wide", what: "MLP 256-1024-1024-10, compute-bound", column: "x", width: 256, rows: wide_rows, targets: None },
    ];
    println!("file-to-file inference: whole commands, process start to exit; peak RSS of each process (VmHWM)");
    for case in &cases {
        bench(case, repeat).await;
    }
}
