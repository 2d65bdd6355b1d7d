//! The guides, followed word for word: every command, job file and SQL snippet in README.md,
//! docs/ and examples/ runs here as written, so that the documentation cannot drift from the
//! code. The convention (also in docs/guide/README.md, "The guides run as tests"):
//!
//! - the fenced blocks of one Markdown file run in order in one `bash` session (`set -euo
//!   pipefail`), in a fresh folder where the repository's top-level files and folders are
//!   linked, so paths read as from the repository root and outputs land in the folder;
//! - ```` ```sh ```` blocks run; every command must succeed;
//! - ```` ```LANG file=PATH ```` blocks (a `train.py`, a `job.toml`, a `points.csv`) are
//!   written to `PATH` at that point, for the blocks after them;
//! - ```` ```sql ```` blocks run with `dlflow sql ARGS 'the block'`, the arguments given by a
//!   `<!-- docs-test: sql ARGS -->` line right above the block;
//! - in a ```` ```sh ```` block right under `<!-- docs-test: examples -->`, a line
//!   `cargo run --release --example NAME -- ARGS` runs the example as the test build made it,
//!   `$CARGO_TARGET_DIR/release/examples/NAME ARGS` (cargo cannot build inside its own test run);
//! - ```` ```rust ```` blocks are doc tests of the `dlflow` crate (see its `lib.rs`);
//! - ```` ```text ```` blocks (and blocks without a language) are output, not run;
//! - `<!-- docs-test: skip: REASON -->` right above a block skips it, with the reason;
//! - any other block (a `python` or `toml` block without `file=`) is an error here: it would
//!   be a snippet nobody runs.
//!
//! Whatever ran, TensorFlow's start-up lines must not show (they are hidden unless `--tf-log`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a guide may take (it trains models; the machine may be busy).
const GUIDE_TIME_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Lines TensorFlow prints when it starts on a CPU machine, which dlflow hides by default.
const TENSORFLOW_START_UP: &[&str] =
    &["oneDNN custom operations", "Could not find cuda drivers", "cuInit", "absl::InitializeLog", "CUDA error"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// A fenced block of a Markdown file.
#[derive(Debug, PartialEq)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// The info string's first word (`sh`, `rust,no_run`, ...), empty for none.
    language: String,
    /// `file=PATH` from the info string.
    file: Option<String>,
    /// The `<!-- docs-test: ... -->` directive right above the fence.
    directive: Option<String>,
    body: String,
}

/// The fenced blocks of `markdown`, with the directive comment right above each.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    let mut previous = "";
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        let fence = if trimmed.starts_with("```") { "```" } else if trimmed.starts_with("~~~") { "~~~" } else { "" };
        if fence.is_empty() {
            previous = line;
            continue;
        }
        let info = trimmed.trim_start_matches(fence).trim();
        let mut words = info.split_whitespace();
        let language = words.next().unwrap_or("").to_string();
        let file = words.find_map(|w| w.strip_prefix("file=")).map(str::to_string);
        let directive = previous
            .trim()
            .strip_prefix("<!-- docs-test:")
            .and_then(|d| d.strip_suffix("-->"))
            .map(|d| d.trim().to_string());
        let mut body = String::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with(fence) {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        blocks.push(Block { line: index + 1, language, file, directive, body });
        previous = "";
    }
    blocks
}

/// The bash script that follows one Markdown file, or the reason a block breaks the convention.
fn script(name: &str, markdown: &str) -> Result<String, String> {
    let mut script = String::from("set -euo pipefail\n");
    for block in blocks(markdown) {
        let place = format!("{name}:{}", block.line);
        let language = block.language.split(',').next().unwrap_or("");
        if let Some(reason) = block.directive.as_deref().and_then(|d| d.strip_prefix("skip:")) {
            if reason.trim().is_empty() {
                return Err(format!("{place}: a skipped block needs its reason: <!-- docs-test: skip: REASON -->"));
            }
            continue;
        }
        let marker = format!("echo '::: {place}' >&2\n");
        match (language, &block.file) {
            (_, Some(file)) => {
                script += &marker;
                script += &format!("cat > '{file}' <<'DLFLOW_DOCS_BLOCK'\n{}DLFLOW_DOCS_BLOCK\n", block.body);
            }
            ("sh" | "bash" | "shell", None) if block.directive.as_deref() == Some("examples") => {
                script += &marker;
                for line in block.body.lines() {
                    script += &example_binary(line);
                    script.push('\n');
                }
            }
            ("sh" | "bash" | "shell", None) => {
                script += &marker;
                script += &block.body;
            }
            ("sql", None) => {
                let args = block.directive.as_deref().and_then(|d| d.strip_prefix("sql")).unwrap_or("");
                script += &marker;
                script += &format!("dlflow sql {args} \"$(cat <<'DLFLOW_DOCS_BLOCK'\n{}DLFLOW_DOCS_BLOCK\n)\"\n", block.body);
            }
            ("rust" | "text" | "", None) => {}
            (other, None) => {
                return Err(format!(
                    "{place}: a `{other}` block that nothing runs: give it file=PATH, or <!-- docs-test: skip: REASON -->"
                ));
            }
        }
    }
    Ok(script)
}

/// `cargo run --release --example NAME -- ARGS` as the built example: `"$CARGO_TARGET_DIR/release/examples/NAME" ARGS`.
fn example_binary(line: &str) -> String {
    let Some(rest) = line.trim_start().strip_prefix("cargo run --release --example ") else { return line.to_string() };
    let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let args = args.trim_start().strip_prefix("--").unwrap_or(args);
    format!("\"$CARGO_TARGET_DIR/release/examples/{name}\"{args}")
}

/// Runs the guide `relative` (from the repository root) as the convention says and returns
/// what it printed; panics with the failing block and the output if a command fails.
fn follow(relative: &str) -> String {
    let root = repository();
    let markdown = std::fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    let commands = script(relative, &markdown).unwrap_or_else(|e| panic!("{e}"));
    let scratch = tempfile::tempdir().expect("scratch folder");
    for entry in std::fs::read_dir(&root).expect("repository") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name != ".git" && name != "target" {
            std::os::unix::fs::symlink(entry.path(), scratch.path().join(&name)).expect("link");
        }
    }
    let dlflow = PathBuf::from(env!("CARGO_BIN_EXE_dlflow"));
    let bin = dlflow.parent().expect("bin folder");
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))
        .expect("PATH");
    let mut child = Command::new("bash")
        .args(["-c", &commands])
        .current_dir(scratch.path())
        .env("PATH", path)
        // What `source scripts/setup.sh` puts on PATH: this build, not another one.
        .env("CARGO_TARGET_DIR", bin.parent().expect("target dir"))
        // The quick start's model in this folder, not shared with another run of the tests.
        .env("DLFLOW_QUICKSTART_DIR", scratch.path().join("quickstart"))
        .env_remove("DLFLOW_TF_LOG")
        .env_remove("DLFLOW_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let (stdout, stderr) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let read = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > GUIDE_TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{relative} took longer than {GUIDE_TIME_LIMIT:?}; its output:\n{}", err.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (out.join().expect("stdout"), err.join().expect("stderr"));
    let last_block = stderr.lines().filter_map(|l| l.strip_prefix("::: ")).next_back().unwrap_or("(before the first block)").to_string();
    assert!(status.success(), "{relative}: the block at {last_block} failed ({status}).\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let output = format!("{stdout}{stderr}");
    for line in output.lines() {
        assert!(!TENSORFLOW_START_UP.iter().any(|noise| line.contains(noise)), "{relative}: TensorFlow's start-up noise shows:\n{line}\n\nall output:\n{output}");
        assert!(!line.contains("panicked"), "{relative}: a panic:\n{output}");
    }
    output
}

#[test]
fn the_convention_is_parsed_as_documented() {
    let markdown = "intro\n\n```sh\necho one\n```\n\n<!-- docs-test: skip: needs a GPU -->\n```sh\nexit 1\n```\n\n\
                    ```python file=train.py\nprint(1)\n```\n\n<!-- docs-test: sql --model m=dir -->\n```sql\nSELECT 1\n```\n\n\
                    ```text\noutput\n```\n\n```rust\nfn main() {}\n```\n";
    let found = blocks(markdown);
    assert_eq!(found.len(), 6);
    assert_eq!((found[0].line, found[0].language.as_str(), found[0].body.as_str()), (3, "sh", "echo one\n"));
    assert_eq!(found[1].directive.as_deref(), Some("skip: needs a GPU"));
    assert_eq!(found[2].file.as_deref(), Some("train.py"));
    let followed = script("x.md", markdown).expect("script");
    assert!(followed.contains("echo one") && !followed.contains("exit 1"), "{followed}");
    assert!(followed.contains("cat > 'train.py'") && followed.contains("dlflow sql  --model m=dir"), "{followed}");
    assert!(!followed.contains("output") && !followed.contains("fn main"), "{followed}");

    let examples = script("e.md", "<!-- docs-test: examples -->\n```sh\ncargo run --release --example demo -- out/x  # a comment\nls out\n```\n").expect("script");
    assert!(examples.contains("\"$CARGO_TARGET_DIR/release/examples/demo\" out/x  # a comment\nls out\n"), "{examples}");

    let error = script("y.md", "```python\nprint(1)\n```\n").expect_err("an orphan snippet");
    assert!(error.contains("y.md:1") && error.contains("file=PATH"), "{error}");
    let error = script("z.md", "<!-- docs-test: skip: -->\n```sh\ntrue\n```\n").expect_err("no reason");
    assert!(error.contains("z.md:2") && error.contains("reason"), "{error}");
}

#[test]
fn every_markdown_file_with_commands_is_followed_here() {
    // A new guide must be added to the tests below; a guide whose blocks are all output or Rust
    // need not be.
    let tested = ["README.md", "docs/guide/cli.md", "docs/guide/estimator.md", "docs/guide/inference.md", "docs/guide/tables.md", "docs/guide/training.md", "docs/guide/streams.md", "docs/guide/event-time.md", "examples/README.md"];
    let root = repository();
    let mut files = vec![root.join("README.md"), root.join("examples/README.md")];
    for dir in ["docs", "docs/guide", "docs/decisions"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("docs") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    for file in files {
        let relative = file.strip_prefix(&root).expect("relative").to_string_lossy().into_owned();
        let markdown = std::fs::read_to_string(&file).expect("read");
        let commands = script(&relative, &markdown).unwrap_or_else(|e| panic!("{e}"));
        let runs_something = commands.lines().any(|l| l.starts_with("echo ':::"));
        assert!(!runs_something || tested.contains(&relative.as_str()), "{relative} has commands but no test follows it: add it to crates/dlflow-cli/tests/it/docs.rs");
    }
}

#[test]
fn readme() {
    let output = follow("README.md");
    // The quick start ends with the in-process predictions of the model it trained.
    assert!(output.contains("predicted: 100000 rows"), "{output}");
    assert!(output.contains("loss per epoch"), "the loss curve is drawn: {output}");
}

#[test]
fn training_guide() {
    let output = follow("docs/guide/training.md");
    // The guide's train.py, with 2 workers: both save, the chief keeps the model and its events.
    assert!(output.contains("loss curve: linear.loss.svg (TensorBoard: dlflow tensorboard linear.tensorboard)"), "{output}");
}

#[test]
fn cli_guide() {
    follow("docs/guide/cli.md");
}

#[test]
fn estimator_guide() {
    let output = follow("docs/guide/estimator.md");
    // `dlflow fit` ends with the loss curve of the Estimator's TensorBoard events, copied beside the saved model.
    assert!(output.contains("loss per epoch") && output.contains("loss curve: linear.loss.svg (TensorBoard: dlflow tensorboard linear.tensorboard)"), "{output}");
}

#[test]
fn inference_guide() {
    follow("docs/guide/inference.md");
}

#[test]
fn streams_guide() {
    let output = follow("docs/guide/streams.md");
    // The filter: one line per record, the model's output beside its input.
    assert!(output.contains("{\"x\":0.5,\"y\":2.0}\n{\"x\":1.0,\"y\":3.0}"), "{output}");
    // The rolling files: 5 records, 2 per file, the last one holds the fifth.
    assert!(output.contains("{\"x\":5.0,\"y\":11.0}"), "{output}");
}

#[test]
fn event_time_guide() {
    let output = follow("docs/guide/event-time.md");
    // The issue's exact form: one line per 1-second window, the late window fired at the end.
    for window in ["\"n\":2,\"s\":3.0", "\"n\":1,\"s\":4.0", "\"n\":1,\"s\":8.0"] {
        assert!(output.contains(window), "{window}: {output}");
    }
}

#[test]
fn tables_guide() {
    follow("docs/guide/tables.md");
}

#[test]
fn examples() {
    check_examples_are_built();
    follow("examples/README.md");
    // An example's `main` returns `dlflow::Result`: a failure reads as a message, not a struct dump.
    let example = PathBuf::from(env!("CARGO_BIN_EXE_dlflow")).with_file_name("examples").join("quickstart_inference");
    let output = Command::new(example).arg("/nonexistent/model").output().expect("run the example");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Error: model directory /nonexistent/model does not exist") && !stderr.contains("ModelNotFound"), "{stderr}");
}

/// The example binaries the test build made must be newer than every Rust source they are
/// built from: `cargo test --workspace` (the test command) builds them, `cargo test --test docs`
/// alone does not. Those sources are the library crates' `src/` folders and `examples/`: the
/// examples link the `dlflow` library, its dependencies and dev-dependencies, not the CLI, and
/// no crate's `tests/` or `benches/` (a change there rebuilds no example, so counting it would
/// fail this check on a build that is up to date).
fn check_examples_are_built() {
    fn newest(dir: &Path, newest_so_far: &mut std::time::SystemTime) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                newest(&path, newest_so_far);
            } else if let (true, Ok(modified)) = (path.extension().is_some_and(|e| e == "rs"), entry.metadata().and_then(|m| m.modified())) {
                *newest_so_far = (*newest_so_far).max(modified);
            }
        }
    }
    let root = repository();
    let mut sources = std::time::SystemTime::UNIX_EPOCH;
    for krate in std::fs::read_dir(root.join("crates")).expect("crates/").flatten() {
        if krate.file_name() != "dlflow-cli" {
            newest(&krate.path().join("src"), &mut sources);
        }
    }
    newest(&root.join("examples"), &mut sources);
    let examples = PathBuf::from(env!("CARGO_BIN_EXE_dlflow")).with_file_name("examples");
    for name in ["quickstart_train", "quickstart_inference", "sql_predict", "estimator_linear", "digits"] {
        let built = std::fs::metadata(examples.join(name)).and_then(|m| m.modified());
        assert!(
            built.is_ok_and(|built| built >= sources),
            "the example binary {name} is missing or older than the sources: run the whole test command \
             (`cargo test --release --workspace`, which builds the examples) or `cargo build --release --workspace --examples`"
        );
    }
}
