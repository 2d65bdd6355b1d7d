//! `dlflow model inspect DIR`: signatures, inputs and outputs of a SavedModel.

use std::path::PathBuf;

use clap::Subcommand;
use dlflow::Model;

/// Model subcommands.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Print a SavedModel's signatures with their inputs and outputs (name, dtype, shape).
    Inspect {
        /// The SavedModel directory.
        dir: PathBuf,
    },
}

impl ModelCommand {
    /// Run the subcommand.
    pub fn run(self) -> dlflow::Result<()> {
        match self {
            ModelCommand::Inspect { dir } => {
                let model = Model::load(&dir)?;
                print!("{}", describe(&model));
                Ok(())
            }
        }
    }
}

/// The model's signatures as a text table.
fn describe(model: &Model) -> String {
    let saved = model.saved_model();
    let default = saved.default_signature().ok().map(|s| s.name().to_string());
    let mut rows: Vec<[String; 6]> = Vec::new();
    for signature in model.signatures() {
        let name = if default.as_deref() == Some(signature.name()) { format!("{} (default)", signature.name()) } else { signature.name().to_string() };
        for (kind, specs) in [("input", signature.inputs()), ("output", signature.outputs())] {
            for spec in specs {
                rows.push([name.clone(), kind.into(), spec.key.clone(), spec.dtype.to_string(), spec.shape.to_string(), spec.tensor_name.clone()]);
            }
        }
    }
    let header = ["signature", "kind", "name", "dtype", "shape", "tensor"].map(String::from);
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().chain([&header]).map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let line = |row: &[String; 6]| row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string() + "\n";
    let mut out = format!(
        "SavedModel {} (TensorFlow {})\n",
        saved.dir().display(),
        saved.tensorflow().version()
    );
    out += &line(&header);
    let separator: [String; 6] = std::array::from_fn(|i| "-".repeat(widths[i]));
    out += &line(&separator);
    for row in &rows {
        out += &line(row);
    }
    out
}
