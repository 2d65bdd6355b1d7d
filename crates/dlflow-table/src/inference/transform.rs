//! `transform`: a table with a model's outputs appended to every row.
//!
//! The result is an ordinary lazy table: a projection of the input plus a bound `predict`
//! call, which the [`PlanPredictions`](super::PlanPredictions) rule turns into a
//! [`PredictExec`](super::PredictExec) over the input's partitions. Reading its partitions in
//! order ([`crate::ordered::execute_in_order`]) gives the rows in input order.

use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::{ident, Expr, ScalarUDF};
use dlflow_tf::{PredictOptions, Predictor};

use super::call::MODEL_VERSION_COLUMN;
use super::{tf_error, ModelHandle, PredictFunction};

/// `input` with `model`'s outputs appended to every row: one column per output (and
/// `model_version` for a versioned model). Input columns feed the signature's inputs by name, or
/// as [`PredictOptions::map_input`] says; types and shapes are checked now, before any row is
/// read. An output whose name is already a column of `input` is an error, not a silent
/// replacement.
///
/// ```no_run
/// use dlflow_table::inference::{transform, ModelHandle};
/// # async fn demo(ctx: datafusion::prelude::SessionContext) -> datafusion::error::Result<()> {
/// let model = ModelHandle::open("models/linear", &Default::default()).expect("model");
/// let points = ctx.sql("SELECT x FROM points").await?;
/// let predicted = transform(points, model, Default::default())?; // x, y
/// # Ok(()) }
/// ```
pub fn transform(input: DataFrame, model: ModelHandle, options: PredictOptions) -> Result<DataFrame> {
    let schema = input.schema().as_arrow().clone();
    let (saved_model, _) = model.current();
    // Bound here to check the columns before any row is read, and to learn the outputs.
    let predictor = Predictor::new(saved_model, &schema, &options).map_err(tf_error)?;
    let mut outputs: Vec<String> = predictor.output_fields().iter().map(|f| f.name().clone()).collect();
    if model.is_versioned() {
        outputs.push(MODEL_VERSION_COLUMN.to_string());
    }
    for output in &outputs {
        if schema.field_with_name(output).is_ok() {
            return Err(DataFusionError::Plan(format!(
                "model output `{output}` has the same name as an input column; rename the column first \
                 (SELECT {output} AS {output}_in, ...) or append only other outputs (`--output-column NAME` on the \
                 command line, `Model::with_outputs` in Rust)"
            )));
        }
    }
    // Every column goes to the call (Arc clones, no copies); the predictor picks its inputs by
    // name, and builds tf.Example protos from feature columns.
    let columns: Vec<Expr> = schema.fields().iter().map(|f| ident(f.name())).collect();
    let name = format!("predict_{}", predictor.signature().name().replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let call = ScalarUDF::new_from_impl(PredictFunction::bound(name, model, options)).call(columns.clone());
    let mut select = columns;
    match outputs.as_slice() {
        [single] => select.push(call.alias(single)),
        many => select.extend(many.iter().map(|output| get_field(call.clone(), output.as_str()).alias(output))),
    }
    input.select(select)
}
