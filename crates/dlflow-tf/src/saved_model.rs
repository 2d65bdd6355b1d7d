//! Loading a SavedModel into a TensorFlow session and running its signatures.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;

use crate::dtype::DType;
use crate::error::{Result, TfError};
use crate::example_spec::ExampleSpec;
use crate::ffi::{TF_Buffer, TF_Graph, TF_Output, TF_Session, TF_Tensor};
use crate::graph::GraphIndex;
use crate::graph_shapes::{infer_with_inputs, tensor_dtype, tensor_shape, FedInput};
use crate::library::TensorFlow;
use crate::proto;
use crate::signature::{keys, Shape, Signature, TensorSpec, STANDARD_SIGNATURES};
use crate::status::Status;
use crate::tensor::Tensor;
use crate::tensor_value::TensorValue;

/// How to load a SavedModel.
///
/// ```
/// use dlflow_tf::LoadOptions;
/// let options = LoadOptions::default().with_tags(["train", "serve"]);
/// assert_eq!(options.tags, vec!["train", "serve"]);
/// assert_eq!(LoadOptions::parse_tags("train, serve"), vec!["train", "serve"]);
/// ```
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// MetaGraph tags; `["serve"]` by default, which is what `tf.saved_model.save` writes.
    /// A model is loaded from the MetaGraph whose tag set is exactly this set.
    pub tags: Vec<String>,
    /// The TensorFlow library file or directory; found by [`crate::locate`] when `None`.
    pub library: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { tags: vec!["serve".to_string()], library: None }
    }
}

impl LoadOptions {
    /// Load the MetaGraph tagged with exactly these tags.
    pub fn with_tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Tags from a comma-separated list (`train,serve`), as the command line takes them.
    pub fn parse_tags(list: &str) -> Vec<String> {
        list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
    }
}

/// A SavedModel loaded into a TensorFlow session, ready to run its signatures.
///
/// Load it once and share it (`Arc<SavedModel>`): a TensorFlow session runs concurrent calls
/// from many threads, so every worker thread of a pipeline uses the same loaded weights.
///
/// ```no_run
/// use dlflow_tf::SavedModel;
/// let model = SavedModel::load("models/linear")?;
/// for signature in model.signatures() {
///     println!("{} ({} inputs)", signature.name(), signature.inputs().len());
/// }
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
pub struct SavedModel {
    tf: &'static TensorFlow,
    dir: PathBuf,
    graph: *mut TF_Graph,
    session: *mut TF_Session,
    signatures: Vec<Signature>,
    /// Graph endpoints of each signature's inputs and outputs, in the order of its specs.
    ports: HashMap<String, Ports>,
    tags: Vec<String>,
    /// The TensorFlow version recorded in the MetaGraph (who wrote the model).
    written_by: Option<String>,
    /// Output shapes inferred for a signature fed inputs of given shapes.
    inferred_shapes: Mutex<HashMap<ShapeQuery, Vec<Shape>>>,
}

/// A signature and the shapes of the inputs it is fed (`None`: unknown rank).
type ShapeQuery = (String, Vec<Option<Vec<i64>>>);

struct Ports {
    inputs: Vec<TF_Output>,
    outputs: Vec<TF_Output>,
}

// SAFETY: a TF_Session is thread-safe for concurrent TF_SessionRun calls (documented in
// c_api.h); the graph is only read after loading, and the operation pointers in `ports` stay
// valid until the graph is deleted in Drop.
unsafe impl Send for SavedModel {}
// SAFETY: see above; no method mutates shared state on the Rust side.
unsafe impl Sync for SavedModel {}

impl SavedModel {
    /// Load the model in `dir` with the `serve` tag.
    pub fn load(dir: impl AsRef<Path>) -> Result<SavedModel> {
        Self::load_with(dir, &LoadOptions::default())
    }

    /// Load the model in `dir` with explicit options.
    ///
    /// TensorFlow runs the model's initialisation as TensorFlow Serving does: TF1's
    /// `main_op` / `legacy_init_op` (filling lookup tables from the files in `assets/`), TF2's
    /// `__saved_model_init_op`; a model without a `variables/` folder loads too.
    pub fn load_with(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<SavedModel> {
        let dir = dir.as_ref();
        check_model_dir(dir)?;
        check_readable(dir, &options.tags)?;
        let header = read_header(dir);
        if let Some(header) = &header {
            check_tags(dir, header, &options.tags)?;
        }
        check_variables(dir, &options.tags)?;
        // TensorFlow is loaded before the stderr filter below is taken, never inside it: loading
        // takes the filter itself, after its own lock, and two threads that took the two locks in
        // opposite orders (one loading a model, one TensorFlow) would wait for each other forever.
        let tf = match &options.library {
            Some(path) => TensorFlow::load_from(path)?,
            None => TensorFlow::get()?,
        };
        // TensorFlow logs every SavedModel load to stderr: see `logs`.
        crate::logs::quietly(|| Self::load_logged(tf, dir, header, options))
    }

    fn load_logged(tf: &'static TensorFlow, dir: &Path, header: Option<proto::SavedModelHeader>, options: &LoadOptions) -> Result<SavedModel> {
        let load_error = |message: String| match unregistered_op(&message) {
            Some(op) => TfError::UnknownOp {
                path: dir.to_path_buf(),
                op,
                written_by: header.as_ref().and_then(|h| written_by(h, &options.tags)).unwrap_or_else(|| "an unknown version".into()),
                running: tf.version().to_string(),
            },
            None => TfError::ModelLoad { path: dir.to_path_buf(), tags: options.tags.clone(), message },
        };
        let export_dir = CString::new(dir.to_string_lossy().as_bytes()).map_err(|_| load_error("path contains a NUL byte".into()))?;
        let tags: Vec<CString> = options
            .tags
            .iter()
            .map(|t| CString::new(t.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| load_error("a tag contains a NUL byte".into()))?;
        let tag_ptrs: Vec<*const c_char> = tags.iter().map(|t| t.as_ptr()).collect();

        let api = &tf.api;
        let status = Status::new(tf);
        // SAFETY: plain constructors; every object is freed below or owned by the SavedModel.
        let (graph, session_options, meta_graph) = unsafe { ((api.TF_NewGraph)(), (api.TF_NewSessionOptions)(), (api.TF_NewBuffer)()) };
        // SAFETY: all pointers are live; tags outlive the call.
        let session = unsafe {
            (api.TF_LoadSessionFromSavedModel)(
                session_options,
                std::ptr::null(),
                export_dir.as_ptr(),
                tag_ptrs.as_ptr(),
                tag_ptrs.len() as c_int,
                graph,
                meta_graph,
                status.raw,
            )
        };
        // SAFETY: session options are copied by the session and no longer needed.
        unsafe { (api.TF_DeleteSessionOptions)(session_options) };
        let mut model = SavedModel {
            tf,
            dir: dir.to_path_buf(),
            graph,
            session,
            signatures: Vec::new(),
            ports: HashMap::new(),
            tags: options.tags.clone(),
            written_by: None,
            inferred_shapes: Mutex::new(HashMap::new()),
        };
        let loaded = status.check().map(|()| {
            // SAFETY: on success the buffer holds the serialized MetaGraphDef.
            let bytes = unsafe { buffer_bytes(meta_graph) };
            proto::MetaGraphDef::decode(bytes).map(|meta| {
                let graph = graph_if_needed(&meta, bytes);
                (meta, graph)
            })
        });
        // SAFETY: the buffer was created above and is not used after this.
        unsafe { (api.TF_DeleteBuffer)(meta_graph) };
        match loaded {
            Err(message) => {
                model.session = std::ptr::null_mut();
                Err(load_error(message))
            }
            Ok(Err(decode)) => Err(TfError::BadMetaGraph { path: model.dir.clone(), message: decode.to_string() }),
            Ok(Ok((meta_graph, graph_def))) => {
                model.written_by = meta_graph.meta_info_def.as_ref().map(|m| m.tensorflow_version.clone()).filter(|v| !v.is_empty());
                model.bind_signatures(meta_graph, graph_def.as_ref());
                Ok(model)
            }
        }
    }

    /// The tag sets of the MetaGraphs in the SavedModel at `dir`, read from
    /// `saved_model.pb` without loading anything.
    ///
    /// ```no_run
    /// let sets = dlflow_tf::SavedModel::tag_sets("models/regression")?;
    /// assert_eq!(sets, vec![vec!["train".to_string(), "serve".to_string()]]);
    /// # Ok::<(), dlflow_tf::TfError>(())
    /// ```
    pub fn tag_sets(dir: impl AsRef<Path>) -> Result<Vec<Vec<String>>> {
        let dir = dir.as_ref();
        check_model_dir(dir)?;
        let header = read_header(dir).ok_or_else(|| TfError::BadMetaGraph {
            path: dir.to_path_buf(),
            message: "saved_model.pb could not be read as a SavedModel (a saved_model.pbtxt is not read)".into(),
        })?;
        Ok(header.meta_graphs.iter().map(|m| m.meta_info_def.as_ref().map(|i| i.tags.clone()).unwrap_or_default()).collect())
    }

    fn bind_signatures(&mut self, meta_graph: proto::MetaGraphDef, graph_def: Option<&proto::GraphDef>) {
        let index = graph_def.map(GraphIndex::new);
        let mut names: Vec<&String> = meta_graph.signature_def.keys().filter(|n| !n.starts_with("__")).collect();
        names.sort();
        for name in names {
            let def = &meta_graph.signature_def[name];
            let mut problems = Vec::new();
            let mut ports = Ports { inputs: Vec::new(), outputs: Vec::new() };
            let mut bind = |infos: &HashMap<String, proto::TensorInfo>, kind: &str, endpoints: &mut Vec<TF_Output>| {
                let mut specs = Vec::new();
                for (key, info) in sorted(infos) {
                    let mut spec = TensorSpec {
                        key: key.clone(),
                        tensor_name: info.name.clone(),
                        dtype: DType::from_code(info.dtype).without_ref(),
                        shape: Shape(info.tensor_shape.as_ref().and_then(|s| s.dims())),
                        graph_shape: Shape(None),
                    };
                    match self.check_tensor(kind, key, info, &mut spec) {
                        Ok(port) => endpoints.push(port),
                        Err(problem) => problems.push(problem),
                    }
                    specs.push(spec);
                }
                specs
            };
            let inputs = bind(&def.inputs, "input", &mut ports.inputs);
            let outputs = bind(&def.outputs, "output", &mut ports.outputs);
            let example_specs = match &index {
                Some(index) => inputs
                    .iter()
                    .filter(|spec| spec.dtype == DType::String)
                    .filter_map(|spec| Some((spec.key.clone(), ExampleSpec::of_input(index, &spec.tensor_name)?)))
                    .collect(),
                None => Vec::new(),
            };
            let problem = (!problems.is_empty()).then(|| problems.join("; "));
            if problem.is_none() {
                self.ports.insert(name.clone(), ports);
            }
            self.signatures.push(Signature { name: name.clone(), method_name: def.method_name.clone(), inputs, outputs, problem, example_specs });
        }
    }

    /// Resolve one signature tensor in the graph, fill in its graph shape, and check that
    /// the graph agrees with what the signature declares.
    fn check_tensor(&self, kind: &str, key: &str, info: &proto::TensorInfo, spec: &mut TensorSpec) -> Result<TF_Output, String> {
        if let Some(coo) = &info.coo_sparse {
            return Err(format!(
                "{kind} `{key}` is a sparse tensor (COO: values `{}`, indices `{}`, dense shape `{}`); dlflow feeds and \
                 fetches dense tensors only: export a signature with dense tensors or serialized tf.Example protos",
                coo.values_tensor_name, coo.indices_tensor_name, coo.dense_shape_tensor_name
            ));
        }
        if info.composite_tensor.is_some() {
            return Err(format!(
                "{kind} `{key}` is a composite tensor (ragged or sparse); dlflow feeds and fetches dense tensors only"
            ));
        }
        let port = self.resolve(&info.name).map_err(|e| format!("{kind} `{key}`: {e}"))?;
        spec.graph_shape = tensor_shape(self.tf, self.graph, port);
        let actual = tensor_dtype(self.tf, port);
        if actual != spec.dtype {
            return Err(format!(
                "{kind} `{key}` is declared {} in the signature, but its graph tensor `{}` is {actual}; the signature is \
                 wrong (written by TensorFlow {}), so dlflow will not guess which type to feed",
                spec.dtype,
                info.name,
                self.written_by.as_deref().unwrap_or("of an unknown version")
            ));
        }
        Ok(port)
    }

    /// `op_name:index` to a graph endpoint.
    fn resolve(&self, tensor_name: &str) -> Result<TF_Output, String> {
        let (op, index) = match tensor_name.rsplit_once(':') {
            Some((op, index)) => (op, index.parse::<c_int>().map_err(|_| format!("bad tensor name `{tensor_name}`"))?),
            None => (tensor_name, 0),
        };
        let op_name = CString::new(op).map_err(|_| format!("bad tensor name `{tensor_name}`"))?;
        // SAFETY: graph is live; the name is NUL-terminated.
        let oper = unsafe { (self.tf.api.TF_GraphOperationByName)(self.graph, op_name.as_ptr()) };
        if oper.is_null() {
            return Err(format!("the graph has no operation `{op}` (tensor `{tensor_name}`)"));
        }
        // SAFETY: the operation is live.
        let outputs = unsafe { (self.tf.api.TF_OperationNumOutputs)(oper) };
        if index < 0 || index >= outputs {
            return Err(format!("operation `{op}` has {outputs} output(s), no output {index} (tensor `{tensor_name}`)"));
        }
        Ok(TF_Output { oper, index })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TensorFlow this model runs on.
    pub fn tensorflow(&self) -> &'static TensorFlow {
        self.tf
    }

    /// The tags the model was loaded with.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The TensorFlow version that wrote the model, as its MetaGraph records it.
    pub fn written_by(&self) -> Option<&str> {
        self.written_by.as_deref()
    }

    /// All signatures, sorted by name (internal ones such as `__saved_model_init_op` hidden).
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The signature called `name`.
    pub fn signature(&self, name: &str) -> Result<&Signature> {
        self.signatures.iter().find(|s| s.name == name).ok_or_else(|| TfError::UnknownSignature {
            name: name.to_string(),
            available: self.signature_names(),
        })
    }

    /// The signature to use when none is named: `serving_default`, else the first of
    /// `predict`, `regress`, `classify`, else the only one.
    pub fn default_signature(&self) -> Result<&Signature> {
        STANDARD_SIGNATURES
            .iter()
            .find_map(|name| self.signatures.iter().find(|s| s.name == *name))
            .or_else(|| (self.signatures.len() == 1).then(|| &self.signatures[0]))
            .ok_or_else(|| TfError::UnknownSignature { name: "serving_default".to_string(), available: self.signature_names() })
    }

    fn signature_names(&self) -> String {
        let names: Vec<&str> = self.signatures.iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            "(no signatures)".to_string()
        } else {
            names.join(", ")
        }
    }

    /// Run `signature` on `inputs` (one tensor per signature input, in the order of
    /// [`Signature::inputs`]) and fetch the outputs at `outputs` (indices into
    /// [`Signature::outputs`]).
    pub fn run(&self, signature: &Signature, inputs: &[Tensor], outputs: &[usize]) -> Result<Vec<Tensor>> {
        let run_error = |message: String| TfError::Run { signature: signature.name.clone(), message };
        if let Some(reason) = &signature.problem {
            return Err(TfError::UnusableSignature { signature: signature.name.clone(), reason: reason.clone() });
        }
        let ports = self.ports.get(&signature.name).ok_or_else(|| run_error("signature does not belong to this model".into()))?;
        if inputs.len() != ports.inputs.len() {
            return Err(run_error(format!("expected {} input tensors, got {}", ports.inputs.len(), inputs.len())));
        }
        let fetch: Vec<TF_Output> = outputs
            .iter()
            .map(|&i| ports.outputs.get(i).copied().ok_or_else(|| run_error(format!("no output #{i}"))))
            .collect::<Result<_>>()?;
        let input_values: Vec<*mut TF_Tensor> = inputs.iter().map(|t| t.raw).collect();
        let mut output_values: Vec<*mut TF_Tensor> = vec![std::ptr::null_mut(); fetch.len()];
        let status = Status::new(self.tf);
        // SAFETY: all arrays have the lengths passed; the session and tensors are live. TF does
        // not take ownership of inputs; it hands us new output tensors.
        unsafe {
            (self.tf.api.TF_SessionRun)(
                self.session,
                std::ptr::null(),
                ports.inputs.as_ptr(),
                input_values.as_ptr(),
                input_values.len() as c_int,
                fetch.as_ptr(),
                output_values.as_mut_ptr(),
                fetch.len() as c_int,
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                status.raw,
            )
        };
        // Take ownership of whatever came back before checking, so nothing leaks on error.
        // SAFETY: non-null entries are fresh tensors owned by us.
        let tensors: Vec<Tensor> = output_values.into_iter().filter(|t| !t.is_null()).map(|t| unsafe { Tensor::from_raw(self.tf, t) }).collect();
        status.check().map_err(run_error)?;
        Ok(tensors)
    }
}

impl SavedModel {
    /// Call signature `name` once with `inputs` (by input key; every input must be given)
    /// and return all its outputs, sorted by key. This is how signatures without inputs
    /// (`w()`, a counter's `get_counter`) are run, and how a stateful model is driven step by
    /// step: state lives in the loaded model, so calls see each other's effects.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use arrow::array::Float32Array;
    /// use dlflow_tf::{SavedModel, TensorValue};
    /// let counter = SavedModel::load("models/counter")?;
    /// counter.call("incr_counter", &[])?;
    /// let delta = TensorValue::scalar(Arc::new(Float32Array::from(vec![2.5])))?;
    /// let outputs = counter.call("incr_counter_by", &[("delta", delta)])?;
    /// println!("{} = {}", outputs[0].0, outputs[0].1); // output = 3.5
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call(&self, name: &str, inputs: &[(&str, TensorValue)]) -> Result<Vec<(String, TensorValue)>> {
        let signature = self.signature(name)?;
        if let Some(reason) = signature.problem() {
            return Err(TfError::UnusableSignature { signature: name.to_string(), reason: reason.to_string() });
        }
        let input_error = |input: &str, message: String| TfError::CallInput { signature: name.to_string(), input: input.to_string(), message };
        for (key, _) in inputs {
            if signature.input(key).is_none() {
                return Err(TfError::UnknownInput { signature: name.to_string(), input: key.to_string(), available: keys(&signature.inputs) });
            }
        }
        let tensors = signature
            .inputs
            .iter()
            .map(|spec| {
                let (_, value) = inputs.iter().find(|(key, _)| *key == spec.key).ok_or_else(|| {
                    input_error(&spec.key, format!("no value given ({} {}); the signature's inputs are: {}", spec.dtype, spec.shape, keys(&signature.inputs)))
                })?;
                value.to_tensor(self.tf, spec.dtype).map_err(|message| input_error(&spec.key, message))
            })
            .collect::<Result<Vec<_>>>()?;
        let all: Vec<usize> = (0..signature.outputs.len()).collect();
        let results = self.run(signature, &tensors, &all)?;
        let outputs = signature
            .outputs
            .iter()
            .zip(&results)
            .map(|(spec, tensor)| {
                let value = TensorValue::from_tensor(tensor).map_err(|message| TfError::Output { output: spec.key.clone(), message })?;
                Ok((spec.key.clone(), value))
            })
            .collect();
        drop(results);
        drop(tensors);
        outputs
    }

    /// The shapes of `signature`'s outputs when its inputs are fed tensors of `input_dims`
    /// (one per input, `-1` for a free dimension, `None` for unknown rank), as TensorFlow's
    /// shape inference gives them, without running anything. Declared shapes of known rank
    /// are kept; the graph is consulted only for outputs of unknown rank or dimensions.
    pub(crate) fn infer_output_shapes(&self, signature: &Signature, input_dims: &[Option<Vec<i64>>]) -> Result<Vec<Shape>> {
        let key = (signature.name.clone(), input_dims.to_vec());
        if let Some(shapes) = self.inferred_shapes.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(shapes.clone());
        }
        let fed: Vec<FedInput<'_>> = signature
            .inputs
            .iter()
            .zip(input_dims)
            .map(|(spec, dims)| FedInput { tensor_name: &spec.tensor_name, dtype: spec.dtype, dims: dims.as_deref() })
            .collect();
        let names: Vec<&str> = signature.outputs.iter().map(|o| o.tensor_name.as_str()).collect();
        let inferred = infer_with_inputs(self.tf, self.graph, &fed, &names)
            .map_err(|message| TfError::Run { signature: signature.name.clone(), message: format!("inferring output shapes: {message}") })?;
        let shapes: Vec<Shape> = signature
            .outputs
            .iter()
            .zip(inferred)
            .map(|(spec, inferred)| match spec.effective_shape() {
                Shape(Some(dims)) if dims.iter().all(|d| *d >= 0) || inferred.0.is_none() => Shape(Some(dims.clone())),
                _ => inferred,
            })
            .collect();
        self.inferred_shapes.lock().unwrap_or_else(|p| p.into_inner()).insert(key, shapes.clone());
        Ok(shapes)
    }
}

impl Drop for SavedModel {
    fn drop(&mut self) {
        let api = &self.tf.api;
        let status = Status::new(self.tf);
        // SAFETY: session and graph were created in load_with and are freed exactly once.
        unsafe {
            if !self.session.is_null() {
                (api.TF_CloseSession)(self.session, status.raw);
                (api.TF_DeleteSession)(self.session, status.raw);
            }
            (api.TF_DeleteGraph)(self.graph);
        }
    }
}

fn check_model_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Err(TfError::ModelNotFound { path: dir.to_path_buf() });
    }
    if !(dir.join("saved_model.pb").is_file() || dir.join("saved_model.pbtxt").is_file()) {
        return Err(TfError::NotASavedModel { path: dir.to_path_buf() });
    }
    Ok(())
}

/// # Safety
/// `buffer` must be a live TF_Buffer whose data outlives the returned slice.
unsafe fn buffer_bytes<'a>(buffer: *const TF_Buffer) -> &'a [u8] {
    // SAFETY: per the contract above.
    let buffer = unsafe { &*buffer };
    if buffer.data.is_null() {
        return &[];
    }
    // SAFETY: TF guarantees `length` bytes at `data`.
    unsafe { std::slice::from_raw_parts(buffer.data.cast::<u8>(), buffer.length) }
}

/// Map entries sorted by key.
fn sorted<V>(map: &HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<(&String, &V)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// A `saved_model.pb` that is not a SavedModel (truncated, damaged, another file under its
/// name) is refused here, naming the file: TensorFlow would only say "Read less bytes than
/// requested" or the like, after loading itself.
fn check_readable(dir: &Path, tags: &[String]) -> Result<()> {
    let path = dir.join("saved_model.pb");
    let Ok(bytes) = std::fs::read(&path) else { return Ok(()) }; // saved_model.pbtxt: TensorFlow reads it
    let problem = match proto::SavedModelHeader::decode(bytes.as_slice()) {
        Err(error) => format!("{} ({} bytes) does not parse as a SavedModel: {error}", path.display(), bytes.len()),
        Ok(header) if header.meta_graphs.is_empty() => format!("{} ({} bytes) holds no MetaGraph", path.display(), bytes.len()),
        Ok(_) => return Ok(()),
    };
    Err(TfError::ModelLoad {
        path: dir.to_path_buf(),
        tags: tags.to_vec(),
        message: format!("{problem}; expected the file tf.saved_model.save or model.export writes: copy the model again, whole"),
    })
}

/// The tag sets and versions of `saved_model.pb`, if it can be read.
fn read_header(dir: &Path) -> Option<proto::SavedModelHeader> {
    let bytes = std::fs::read(dir.join("saved_model.pb")).ok()?;
    proto::SavedModelHeader::decode(bytes.as_slice()).ok().filter(|h| !h.meta_graphs.is_empty())
}

/// Op types that hold a variable, TF1's and TF2's.
const VARIABLE_OPS: &[&str] = &["VarHandleOp", "VariableV2", "Variable"];

/// A graph with variables needs `variables/`: without it TensorFlow loads the model and fails
/// only when a signature runs, with "Could not find variable ...". Read only when
/// `variables/variables.index` is missing.
fn check_variables(dir: &Path, tags: &[String]) -> Result<()> {
    if dir.join("variables").join("variables.index").is_file() {
        return Ok(());
    }
    let Ok(bytes) = std::fs::read(dir.join("saved_model.pb")) else { return Ok(()) };
    let Ok(model) = proto::SavedModelOps::decode(bytes.as_slice()) else { return Ok(()) };
    let wanted = tag_set(tags);
    let graph = model
        .meta_graphs
        .iter()
        .find(|m| m.meta_info_def.as_ref().is_some_and(|info| tag_set(&info.tags) == wanted))
        .and_then(|m| m.graph_def.as_ref());
    let variables = graph.map_or(0, |g| g.node.iter().filter(|n| VARIABLE_OPS.contains(&n.op.as_str())).count());
    if variables == 0 {
        return Ok(());
    }
    Err(TfError::ModelLoad {
        path: dir.to_path_buf(),
        tags: tags.to_vec(),
        message: format!(
            "its graph holds {variables} variable(s) but variables/ is missing or has no variables.index; \
             copy the whole SavedModel directory (saved_model.pb with its variables/ folder)"
        ),
    })
}

fn tag_set(tags: &[String]) -> std::collections::BTreeSet<&str> {
    tags.iter().map(String::as_str).collect()
}

/// The MetaGraph TensorFlow will pick for `tags`: the one whose tag set is exactly theirs.
fn meta_graph_for<'h>(header: &'h proto::SavedModelHeader, tags: &[String]) -> Option<&'h proto::MetaInfoDef> {
    let wanted = tag_set(tags);
    header.meta_graphs.iter().filter_map(|m| m.meta_info_def.as_ref()).find(|info| tag_set(&info.tags) == wanted)
}

/// An error listing the model's tag sets when none is `tags`.
fn check_tags(dir: &Path, header: &proto::SavedModelHeader, tags: &[String]) -> Result<()> {
    if meta_graph_for(header, tags).is_some() {
        return Ok(());
    }
    let sets: Vec<Vec<String>> = header.meta_graphs.iter().map(|m| m.meta_info_def.as_ref().map(|i| i.tags.clone()).unwrap_or_default()).collect();
    let braces = |set: &[String]| format!("{{{}}}", set.join(", "));
    Err(TfError::NoSuchTags {
        path: dir.to_path_buf(),
        tags: braces(tags),
        available: sets.iter().map(|s| braces(s)).collect::<Vec<_>>().join(", "),
        example: sets.first().map(|s| s.join(",")).unwrap_or_default(),
    })
}

/// The TensorFlow version recorded in the MetaGraph for `tags`.
fn written_by(header: &proto::SavedModelHeader, tags: &[String]) -> Option<String> {
    meta_graph_for(header, tags).map(|info| info.tensorflow_version.clone()).filter(|v| !v.is_empty())
}

/// The op named in TensorFlow's "Op type not registered 'X' in binary ..." message.
fn unregistered_op(message: &str) -> Option<String> {
    let rest = message.split("Op type not registered '").nth(1)?;
    Some(rest.split('\'').next()?.to_string())
}

/// The graph with its functions, decoded only when a signature takes strings: those may be
/// serialized tf.Example protos whose parse op tells which features they need.
fn graph_if_needed(signatures: &proto::MetaGraphDef, meta_graph: &[u8]) -> Option<proto::GraphDef> {
    let takes_strings = signatures.signature_def.values().any(|s| s.inputs.values().any(|i| DType::from_code(i.dtype) == DType::String));
    if !takes_strings {
        return None;
    }
    proto::MetaGraphWithGraph::decode(meta_graph).ok()?.graph_def
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unregistered_op_is_read_from_tensorflows_message() {
        let message = "Op type not registered 'Zzz' in binary running on host. Make sure the Op and Kernel are registered";
        assert_eq!(unregistered_op(message).as_deref(), Some("Zzz"));
        assert_eq!(unregistered_op("Could not find meta graph def matching supplied tags"), None);
    }

    #[test]
    fn tags_match_as_sets_and_a_miss_lists_every_set() {
        let meta = |tags: &[&str]| proto::MetaGraphHeader {
            meta_info_def: Some(proto::MetaInfoDef {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                tensorflow_version: "1.2.1".into(),
                tensorflow_git_version: String::new(),
            }),
        };
        let header = proto::SavedModelHeader { meta_graphs: vec![meta(&["train", "serve"]), meta(&["gpu"])] };
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_tags(Path::new("m"), &header, &tags(&["serve", "train"])).is_ok());
        assert_eq!(written_by(&header, &tags(&["serve", "train"])).as_deref(), Some("1.2.1"));
        let err = check_tags(Path::new("m"), &header, &tags(&["serve"])).expect_err("no {serve}");
        let message = err.to_string();
        assert!(message.contains("tagged {serve}") && message.contains("{train, serve}, {gpu}") && message.contains("--tags train,serve"), "{message}");
    }
}
