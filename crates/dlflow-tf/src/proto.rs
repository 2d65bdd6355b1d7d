//! The protobuf messages dlflow reads from a SavedModel, declared by hand with prost so that
//! no `protoc` is needed to build. Field numbers follow tensorflow/core/protobuf/
//! saved_model.proto, meta_graph.proto and tensorflow/core/framework/{graph,node_def,
//! attr_value,tensor,function,op_def,tensor_shape}.proto; every field not declared here is
//! skipped by the decoder (skipping a nested message costs a length jump, not a copy).
//!
//! Three views of the same bytes, each decoding only what it needs:
//! - [`SavedModelHeader`]: the tag sets and TensorFlow versions of `saved_model.pb`, read
//!   before TensorFlow loads the model (to name the tag sets a model has);
//! - [`MetaGraphDef`]: the signatures, from the MetaGraphDef TensorFlow hands back;
//! - [`MetaGraphWithGraph`]: the same plus the graph's nodes and functions, decoded only for
//!   models whose signatures take strings (to find their tf.Example parse ops).

#![allow(missing_docs)]

use std::collections::HashMap;

pub use dlflow_common::tensor_proto::{TensorProto, TensorShapeProto};

/// `saved_model.pb` with only the MetaGraphs' `meta_info_def`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModelHeader {
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphHeader {
    #[prost(message, optional, tag = "1")]
    pub meta_info_def: Option<MetaInfoDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaInfoDef {
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(string, tag = "5")]
    pub tensorflow_version: String,
    #[prost(string, tag = "6")]
    pub tensorflow_git_version: String,
}

/// `saved_model.pb` with each MetaGraph's tags and the op types of its graph's nodes, to tell
/// whether a model without `variables/` needs them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SavedModelOps {
    #[prost(message, repeated, tag = "2")]
    pub meta_graphs: Vec<MetaGraphOps>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphOps {
    #[prost(message, optional, tag = "1")]
    pub meta_info_def: Option<MetaInfoDef>,
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphOps>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphOps {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeOp {
    #[prost(string, tag = "2")]
    pub op: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphDef {
    #[prost(message, optional, tag = "1")]
    pub meta_info_def: Option<MetaInfoDef>,
    #[prost(map = "string, message", tag = "5")]
    pub signature_def: HashMap<String, SignatureDef>,
}

/// A MetaGraphDef with its graph: nodes, attributes and the function library.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetaGraphWithGraph {
    #[prost(message, optional, tag = "2")]
    pub graph_def: Option<GraphDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SignatureDef {
    #[prost(map = "string, message", tag = "1")]
    pub inputs: HashMap<String, TensorInfo>,
    #[prost(map = "string, message", tag = "2")]
    pub outputs: HashMap<String, TensorInfo>,
    #[prost(string, tag = "3")]
    pub method_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorInfo {
    /// The graph tensor, `op_name:index`; empty for sparse or composite tensors.
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "2")]
    pub dtype: i32,
    /// Absent in signatures written by TensorFlow 1.0: the shape is then unknown.
    #[prost(message, optional, tag = "3")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Set for a `tf.SparseTensor` input or output (three graph tensors).
    #[prost(message, optional, tag = "4")]
    pub coo_sparse: Option<CooSparse>,
    /// Set for other composite tensors (ragged tensors, TF2 sparse tensors); only its
    /// presence matters here.
    #[prost(message, optional, tag = "5")]
    pub composite_tensor: Option<CompositeTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CooSparse {
    #[prost(string, tag = "1")]
    pub values_tensor_name: String,
    #[prost(string, tag = "2")]
    pub indices_tensor_name: String,
    #[prost(string, tag = "3")]
    pub dense_shape_tensor_name: String,
}

/// `TensorInfo.CompositeTensor`, none of whose fields dlflow reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompositeTensor {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeDef>,
    #[prost(message, optional, tag = "2")]
    pub library: Option<FunctionDefLibrary>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub op: String,
    /// `node`, `node:index` (graphs) or `node:output_arg:index` (function bodies), `^node`
    /// for control inputs.
    #[prost(string, repeated, tag = "3")]
    pub input: Vec<String>,
    #[prost(map = "string, message", tag = "5")]
    pub attr: HashMap<String, AttrValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDefLibrary {
    #[prost(message, repeated, tag = "1")]
    pub function: Vec<FunctionDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDef {
    #[prost(message, optional, tag = "1")]
    pub signature: Option<OpDef>,
    #[prost(message, repeated, tag = "3")]
    pub node_def: Vec<NodeDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OpDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub input_arg: Vec<ArgDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArgDef {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrValue {
    #[prost(oneof = "attr_value::Value", tags = "1, 2, 3, 4, 5, 6, 7, 8, 10")]
    pub value: Option<attr_value::Value>,
}

pub mod attr_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        List(super::ListValue),
        #[prost(bytes, tag = "2")]
        S(Vec<u8>),
        #[prost(int64, tag = "3")]
        I(i64),
        #[prost(float, tag = "4")]
        F(f32),
        #[prost(bool, tag = "5")]
        B(bool),
        #[prost(int32, tag = "6")]
        Type(i32),
        #[prost(message, tag = "7")]
        Shape(super::TensorShapeProto),
        #[prost(message, tag = "8")]
        Tensor(super::TensorProto),
        #[prost(message, tag = "10")]
        Func(super::NameAttrList),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub s: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "3")]
    pub i: Vec<i64>,
    #[prost(int32, repeated, tag = "6")]
    pub r#type: Vec<i32>,
    #[prost(message, repeated, tag = "7")]
    pub shape: Vec<TensorShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NameAttrList {
    #[prost(string, tag = "1")]
    pub name: String,
}
