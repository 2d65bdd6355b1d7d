//! TensorFlow's `TensorProto` and `TensorShapeProto`, declared by hand with prost so that no
//! `protoc` is needed to build. Field numbers follow tensorflow/core/framework/tensor.proto and
//! tensor_shape.proto; fields not declared here are skipped by the decoder.
//!
//! SavedModel signatures (constants in graphs) and TensorBoard event files (scalars) both
//! carry tensors in this form.

#![allow(missing_docs)]

/// A tensor: dtype, shape, and its values in one of several encodings.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// A [`tf_code`](crate::types::tf_code).
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// Values in TensorFlow's in-memory layout (little-endian numbers); used instead of the
    /// typed fields below by larger tensors.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    #[prost(bool, repeated, tag = "11")]
    pub bool_val: Vec<bool>,
    /// float16 and bfloat16 values, one per int32.
    #[prost(int32, repeated, tag = "13")]
    pub half_val: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
    #[prost(bool, tag = "3")]
    pub unknown_rank: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

impl TensorShapeProto {
    /// The dimensions, `None` for unknown rank.
    ///
    /// ```
    /// use dlflow_common::tensor_proto::{Dim, TensorShapeProto};
    /// let shape = TensorShapeProto { dim: vec![Dim { size: -1 }, Dim { size: 3 }], unknown_rank: false };
    /// assert_eq!(shape.dims(), Some(vec![-1, 3]));
    /// ```
    pub fn dims(&self) -> Option<Vec<i64>> {
        (!self.unknown_rank).then(|| self.dim.iter().map(|d| d.size).collect())
    }
}

impl TensorProto {
    /// Number of elements its shape says it holds (1 without a shape: a scalar).
    pub fn element_count(&self) -> i64 {
        self.tensor_shape.as_ref().and_then(|s| s.dims()).map(|dims| dims.iter().product()).unwrap_or(1)
    }
}
