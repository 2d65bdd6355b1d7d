//! The slice of the TensorFlow C API (`tensorflow/c/c_api.h`, `tf_tensor.h`, `tf_tstring.h`)
//! that dlflow calls, resolved at run time from `libtensorflow_cc.so.2`.
//!
//! Why run-time loading: `cargo build` must work on a machine without TensorFlow, and the
//! library a user has is the one inside their `tensorflow-cpu` wheel. One macro lists each
//! symbol once; it generates both the table of function pointers and the code that fills it,
//! so a symbol missing from the library is reported by name.

#![allow(non_camel_case_types, non_snake_case, missing_docs)]

use std::ffi::{c_char, c_int, c_void};

/// Opaque C types: only ever handled by pointer.
macro_rules! opaque {
    ($($name:ident),* $(,)?) => {$(
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}
opaque!(
    TF_Status,
    TF_Graph,
    TF_Operation,
    TF_OperationDescription,
    TF_ImportGraphDefOptions,
    TF_SessionOptions,
    TF_Session,
    TF_Tensor,
);

/// `TF_DataType`, a C enum (int).
pub type TF_DataType = c_int;
/// `TF_Code`, a C enum (int).
pub type TF_Code = c_int;
pub const TF_OK: TF_Code = 0;

/// The in-memory layout of `TF_TString` (tf_tstring.h): 24 bytes, 8-byte aligned. Only its
/// size matters to Rust; the content is managed by the `TF_String*` functions.
#[repr(C, align(8))]
pub struct TF_TString {
    _raw: [u8; 24],
}

#[repr(C)]
pub struct TF_Buffer {
    pub data: *const c_void,
    pub length: usize,
    pub data_deallocator: Option<unsafe extern "C" fn(data: *mut c_void, length: usize)>,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TF_Output {
    pub oper: *mut TF_Operation,
    pub index: c_int,
}

macro_rules! tf_api {
    ($( fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?; )*) => {
        /// Function pointers into a loaded libtensorflow. Valid for as long as the
        /// [`libloading::Library`] they came from is alive (the library is never unloaded).
        pub struct Api {
            $( pub $name: unsafe extern "C" fn($($ty),*) $(-> $ret)?, )*
        }

        impl Api {
            /// Resolve every symbol; on the first missing one return its name.
            ///
            /// # Safety
            /// `lib` must be a TensorFlow C API library whose symbols have these C signatures.
            pub unsafe fn load(lib: &libloading::Library) -> Result<Api, &'static str> {
                Ok(Api {
                    $( $name: {
                        let symbol: Result<libloading::Symbol<'_, unsafe extern "C" fn($($ty),*) $(-> $ret)?>, _> =
                            // SAFETY: the caller promises the C signature matches.
                            unsafe { lib.get(concat!(stringify!($name), "\0").as_bytes()) };
                        *symbol.map_err(|_| stringify!($name))?
                    }, )*
                })
            }
        }
    };
}

tf_api! {
    fn TF_NewStatus() -> *mut TF_Status;
    fn TF_DeleteStatus(s: *mut TF_Status);
    fn TF_GetCode(s: *const TF_Status) -> TF_Code;
    fn TF_Message(s: *const TF_Status) -> *const c_char;
    fn TF_NewBuffer() -> *mut TF_Buffer;
    fn TF_DeleteBuffer(b: *mut TF_Buffer);
    fn TF_NewGraph() -> *mut TF_Graph;
    fn TF_DeleteGraph(g: *mut TF_Graph);
    fn TF_GraphOperationByName(g: *mut TF_Graph, name: *const c_char) -> *mut TF_Operation;
    fn TF_GraphGetTensorNumDims(g: *mut TF_Graph, output: TF_Output, s: *mut TF_Status) -> c_int;
    fn TF_GraphGetTensorShape(g: *mut TF_Graph, output: TF_Output, dims: *mut i64, num_dims: c_int, s: *mut TF_Status);
    fn TF_OperationOutputType(output: TF_Output) -> TF_DataType;
    fn TF_OperationNumOutputs(oper: *mut TF_Operation) -> c_int;
    fn TF_GraphToGraphDef(g: *mut TF_Graph, output_graph_def: *mut TF_Buffer, s: *mut TF_Status);
    fn TF_NewImportGraphDefOptions() -> *mut TF_ImportGraphDefOptions;
    fn TF_DeleteImportGraphDefOptions(opts: *mut TF_ImportGraphDefOptions);
    fn TF_ImportGraphDefOptionsAddInputMapping(
        opts: *mut TF_ImportGraphDefOptions,
        src_name: *const c_char,
        src_index: c_int,
        dst: TF_Output,
    );
    fn TF_GraphImportGraphDef(g: *mut TF_Graph, graph_def: *const TF_Buffer, options: *const TF_ImportGraphDefOptions, s: *mut TF_Status);
    fn TF_NewOperation(g: *mut TF_Graph, op_type: *const c_char, oper_name: *const c_char) -> *mut TF_OperationDescription;
    fn TF_SetAttrType(desc: *mut TF_OperationDescription, attr_name: *const c_char, value: TF_DataType);
    fn TF_SetAttrShape(desc: *mut TF_OperationDescription, attr_name: *const c_char, dims: *const i64, num_dims: c_int);
    fn TF_FinishOperation(desc: *mut TF_OperationDescription, s: *mut TF_Status) -> *mut TF_Operation;
    fn TF_NewSessionOptions() -> *mut TF_SessionOptions;
    fn TF_DeleteSessionOptions(o: *mut TF_SessionOptions);
    fn TF_LoadSessionFromSavedModel(
        options: *const TF_SessionOptions,
        run_options: *const TF_Buffer,
        export_dir: *const c_char,
        tags: *const *const c_char,
        tags_len: c_int,
        graph: *mut TF_Graph,
        meta_graph_def: *mut TF_Buffer,
        s: *mut TF_Status,
    ) -> *mut TF_Session;
    fn TF_CloseSession(session: *mut TF_Session, s: *mut TF_Status);
    fn TF_DeleteSession(session: *mut TF_Session, s: *mut TF_Status);
    fn TF_SessionRun(
        session: *mut TF_Session,
        run_options: *const TF_Buffer,
        inputs: *const TF_Output,
        input_values: *const *mut TF_Tensor,
        ninputs: c_int,
        outputs: *const TF_Output,
        output_values: *mut *mut TF_Tensor,
        noutputs: c_int,
        target_opers: *const *const TF_Operation,
        ntargets: c_int,
        run_metadata: *mut TF_Buffer,
        s: *mut TF_Status,
    );
    fn TF_AllocateTensor(dtype: TF_DataType, dims: *const i64, num_dims: c_int, len: usize) -> *mut TF_Tensor;
    fn TF_NewTensor(
        dtype: TF_DataType,
        dims: *const i64,
        num_dims: c_int,
        data: *mut c_void,
        len: usize,
        deallocator: Option<unsafe extern "C" fn(data: *mut c_void, len: usize, arg: *mut c_void)>,
        deallocator_arg: *mut c_void,
    ) -> *mut TF_Tensor;
    fn TF_DeleteTensor(t: *mut TF_Tensor);
    fn TF_TensorType(t: *const TF_Tensor) -> TF_DataType;
    fn TF_NumDims(t: *const TF_Tensor) -> c_int;
    fn TF_Dim(t: *const TF_Tensor, index: c_int) -> i64;
    fn TF_TensorByteSize(t: *const TF_Tensor) -> usize;
    fn TF_TensorData(t: *const TF_Tensor) -> *mut c_void;
    fn TF_StringInit(s: *mut TF_TString);
    fn TF_StringCopy(s: *mut TF_TString, src: *const c_char, size: usize);
    fn TF_StringGetDataPointer(s: *const TF_TString) -> *const c_char;
    fn TF_StringGetSize(s: *const TF_TString) -> usize;
    fn TF_StringDealloc(s: *mut TF_TString);
}
