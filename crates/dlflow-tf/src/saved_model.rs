//! Loading a SavedModel into a TensorFlow session and running its signatures.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::dtype::DType;
use crate::error::{Result, TfError};
use crate::ffi::{TF_Buffer, TF_Graph, TF_Output, TF_Session, TF_Tensor};
use crate::library::TensorFlow;
use crate::proto;
use crate::signature::{Shape, Signature, TensorSpec, STANDARD_SIGNATURES};
use crate::status::Status;
use crate::tensor::Tensor;

/// How to load a SavedModel.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// MetaGraph tags; `["serve"]` by default, which is what `tf.saved_model.save` writes.
    pub tags: Vec<String>,
    /// The TensorFlow library file or directory; found by [`crate::locate`] when `None`.
    pub library: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { tags: vec!["serve".to_string()], library: None }
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
}

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
    pub fn load_with(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<SavedModel> {
        // TensorFlow logs its start-up and every SavedModel load to stderr: see `logs`.
        crate::logs::quietly(|| Self::load_logged(dir.as_ref(), options))
    }

    fn load_logged(dir: &Path, options: &LoadOptions) -> Result<SavedModel> {
        check_model_dir(dir)?;
        let tf = match &options.library {
            Some(path) => TensorFlow::load_from(path)?,
            None => TensorFlow::get()?,
        };
        let load_error = |message: String| TfError::ModelLoad { path: dir.to_path_buf(), tags: options.tags.clone(), message };
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
        let loaded = status.check().map(|()| {
            // SAFETY: on success the buffer holds the serialized MetaGraphDef.
            let bytes = unsafe { buffer_bytes(meta_graph) };
            proto::MetaGraphDef::decode(bytes)
        });
        // SAFETY: the buffer was created above and is not used after this.
        unsafe { (api.TF_DeleteBuffer)(meta_graph) };
        let mut model = SavedModel { tf, dir: dir.to_path_buf(), graph, session, signatures: Vec::new(), ports: HashMap::new() };
        match loaded {
            Err(message) => {
                model.session = std::ptr::null_mut();
                Err(load_error(message))
            }
            Ok(Err(decode)) => Err(TfError::BadMetaGraph { path: model.dir.clone(), message: decode.to_string() }),
            Ok(Ok(meta_graph)) => {
                model.bind_signatures(meta_graph)?;
                Ok(model)
            }
        }
    }

    fn bind_signatures(&mut self, meta_graph: proto::MetaGraphDef) -> Result<()> {
        let mut names: Vec<&String> = meta_graph.signature_def.keys().filter(|n| !n.starts_with("__")).collect();
        names.sort();
        for name in names {
            let def = &meta_graph.signature_def[name];
            let inputs = sorted_specs(&def.inputs);
            let outputs = sorted_specs(&def.outputs);
            let ports = Ports {
                inputs: inputs.iter().map(|s| self.resolve(&s.tensor_name)).collect::<Result<_>>()?,
                outputs: outputs.iter().map(|s| self.resolve(&s.tensor_name)).collect::<Result<_>>()?,
            };
            self.ports.insert(name.clone(), ports);
            self.signatures.push(Signature { name: name.clone(), method_name: def.method_name.clone(), inputs, outputs });
        }
        Ok(())
    }

    /// `op_name:index` to a graph endpoint.
    fn resolve(&self, tensor_name: &str) -> Result<TF_Output> {
        let bad = |message: String| TfError::BadMetaGraph { path: self.dir.clone(), message };
        let (op, index) = match tensor_name.rsplit_once(':') {
            Some((op, index)) => (op, index.parse::<c_int>().map_err(|_| bad(format!("bad tensor name `{tensor_name}`")))?),
            None => (tensor_name, 0),
        };
        let op_name = CString::new(op).map_err(|_| bad(format!("bad tensor name `{tensor_name}`")))?;
        // SAFETY: graph is live; the name is NUL-terminated.
        let oper = unsafe { (self.tf.api.TF_GraphOperationByName)(self.graph, op_name.as_ptr()) };
        if oper.is_null() {
            return Err(bad(format!("the graph has no operation `{op}` (signature tensor `{tensor_name}`)")));
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

fn sorted_specs(infos: &HashMap<String, proto::TensorInfo>) -> Vec<TensorSpec> {
    let mut specs: Vec<TensorSpec> = infos
        .iter()
        .map(|(key, info)| TensorSpec {
            key: key.clone(),
            tensor_name: info.name.clone(),
            dtype: DType::from_code(info.dtype),
            shape: Shape(match &info.tensor_shape {
                Some(shape) if !shape.unknown_rank => Some(shape.dim.iter().map(|d| d.size).collect()),
                _ => None,
            }),
        })
        .collect();
    specs.sort_by(|a, b| a.key.cmp(&b.key));
    specs
}
