//! Shapes TensorFlow infers in a graph.
//!
//! A signature may declare no shapes (TensorFlow 1.0) or inputs and outputs of unknown rank
//! (`tf.TensorSpec(None)`). The graph often knows better: its placeholder has a shape, or
//! its ops fix an output's rank once the input's rank is known. [`tensor_shape`] reads what
//! the loaded graph inferred; [`infer_with_inputs`] copies the graph into a scratch graph
//! with the inputs replaced by placeholders of the shapes dlflow will feed, and reads the
//! output shapes TensorFlow's shape inference (through function calls) gives there. No
//! TensorFlow kernel runs, so stateful signatures are not touched.

use std::ffi::{c_int, CString};

use crate::dtype::DType;
use crate::ffi::{TF_Graph, TF_Output};
use crate::library::TensorFlow;
use crate::signature::Shape;
use crate::status::Status;

/// The shape the graph holds for `port` (unknown rank when TensorFlow does not know it).
pub(crate) fn tensor_shape(tf: &'static TensorFlow, graph: *mut TF_Graph, port: TF_Output) -> Shape {
    let status = Status::new(tf);
    // SAFETY: graph and port are live; the status is ours.
    let rank = unsafe { (tf.api.TF_GraphGetTensorNumDims)(graph, port, status.raw) };
    if status.check().is_err() || rank < 0 {
        return Shape(None);
    }
    let mut dims = vec![0i64; rank as usize];
    // SAFETY: dims has `rank` slots.
    unsafe { (tf.api.TF_GraphGetTensorShape)(graph, port, dims.as_mut_ptr(), rank, status.raw) };
    if status.check().is_err() {
        return Shape(None);
    }
    Shape(Some(dims))
}

/// The element type of `port` in the graph, reference types (`float_ref`) as their value type.
pub(crate) fn tensor_dtype(tf: &'static TensorFlow, port: TF_Output) -> DType {
    // SAFETY: the port's operation is live.
    DType::from_code(unsafe { (tf.api.TF_OperationOutputType)(port) }).without_ref()
}

/// An input of [`infer_with_inputs`]: the graph tensor (`op:index`), its type, and the
/// shape to feed (`None` for unknown rank).
pub(crate) struct FedInput<'a> {
    pub tensor_name: &'a str,
    pub dtype: DType,
    pub dims: Option<&'a [i64]>,
}

/// The shapes of `outputs` (graph tensor names) when `inputs` have the given shapes.
pub(crate) fn infer_with_inputs(tf: &'static TensorFlow, graph: *mut TF_Graph, inputs: &[FedInput<'_>], outputs: &[&str]) -> Result<Vec<Shape>, String> {
    let api = &tf.api;
    let status = Status::new(tf);
    let scratch = Scratch::new(tf);
    // SAFETY: buffer, graph and status are live; the buffer receives a copy of the GraphDef.
    unsafe { (api.TF_GraphToGraphDef)(graph, scratch.graph_def, status.raw) };
    status.check()?;
    let dtype_attr = c"dtype";
    let shape_attr = c"shape";
    let mut mapped = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let name = CString::new(format!("dlflow_shape_probe_input_{i}")).map_err(|e| e.to_string())?;
        // SAFETY: the scratch graph is live; names are NUL-terminated; the description is
        // consumed by TF_FinishOperation.
        let op = unsafe {
            let description = (api.TF_NewOperation)(scratch.graph, c"Placeholder".as_ptr(), name.as_ptr());
            (api.TF_SetAttrType)(description, dtype_attr.as_ptr(), input.dtype.code());
            match input.dims {
                Some(dims) => (api.TF_SetAttrShape)(description, shape_attr.as_ptr(), dims.as_ptr(), dims.len() as c_int),
                None => (api.TF_SetAttrShape)(description, shape_attr.as_ptr(), std::ptr::null(), -1),
            }
            (api.TF_FinishOperation)(description, status.raw)
        };
        status.check()?;
        let (source, index) = split_tensor_name(input.tensor_name)?;
        mapped.push((source, index, TF_Output { oper: op, index: 0 }));
    }
    for (source, index, placeholder) in &mapped {
        // SAFETY: options and placeholder are live; TF copies the source name.
        unsafe { (api.TF_ImportGraphDefOptionsAddInputMapping)(scratch.options, source.as_ptr(), *index, *placeholder) };
    }
    // SAFETY: all objects are live.
    unsafe { (api.TF_GraphImportGraphDef)(scratch.graph, scratch.graph_def, scratch.options, status.raw) };
    status.check()?;
    outputs
        .iter()
        .map(|name| {
            let (op_name, index) = split_tensor_name(name)?;
            // SAFETY: graph is live; the name is NUL-terminated.
            let oper = unsafe { (api.TF_GraphOperationByName)(scratch.graph, op_name.as_ptr()) };
            if oper.is_null() {
                return Err(format!("the graph has no operation for `{name}`"));
            }
            Ok(tensor_shape(tf, scratch.graph, TF_Output { oper, index }))
        })
        .collect()
}

/// `op:index` as a C string and an index.
fn split_tensor_name(name: &str) -> Result<(CString, c_int), String> {
    let (op, index) = match name.rsplit_once(':') {
        Some((op, index)) => (op, index.parse::<c_int>().map_err(|_| format!("bad tensor name `{name}`"))?),
        None => (name, 0),
    };
    Ok((CString::new(op).map_err(|_| format!("bad tensor name `{name}`"))?, index))
}

/// The scratch graph, its import options and the GraphDef buffer, freed together.
struct Scratch<'tf> {
    tf: &'tf TensorFlow,
    graph: *mut TF_Graph,
    options: *mut crate::ffi::TF_ImportGraphDefOptions,
    graph_def: *mut crate::ffi::TF_Buffer,
}

impl<'tf> Scratch<'tf> {
    fn new(tf: &'tf TensorFlow) -> Scratch<'tf> {
        // SAFETY: plain constructors, freed in Drop.
        unsafe { Scratch { tf, graph: (tf.api.TF_NewGraph)(), options: (tf.api.TF_NewImportGraphDefOptions)(), graph_def: (tf.api.TF_NewBuffer)() } }
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        // SAFETY: each was created in new and is freed once.
        unsafe {
            (self.tf.api.TF_DeleteBuffer)(self.graph_def);
            (self.tf.api.TF_DeleteImportGraphDefOptions)(self.options);
            (self.tf.api.TF_DeleteGraph)(self.graph);
        }
    }
}
