//! The protobuf messages of an event file that carry scalars, declared by hand with prost so
//! that no `protoc` is needed to build (as `dlflow-tf` does for SavedModel signatures).
//!
//! Field numbers follow tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto
//! and (through `dlflow_common::tensor_proto`) tensor.proto. Everything else in an event (graphs, histograms, images, run metadata) is
//! skipped by the decoder.

#![allow(missing_docs)]

pub use dlflow_common::tensor_proto::{Dim, TensorProto, TensorShapeProto};
use dlflow_common::types::tf_code;

/// One record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// The first record of a file: `brain.Event:2`.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value`: a TF1 `simple_value`, or a TF2 `tensor` (what `tf.summary.scalar` writes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// `scalars` for `tf.summary.scalar`; `histograms`, `images`, `text`, ... otherwise.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
}

/// The value of a tensor with exactly one numeric element, whatever way it is stored;
/// `None` for anything else (strings, histograms, images: not scalars).
pub fn scalar(tensor: &TensorProto) -> Option<f64> {
    let elements = tensor.tensor_shape.as_ref().map_or(1, |shape| shape.dim.iter().map(|d| d.size).product::<i64>());
    if elements != 1 {
        return None;
    }
    let content = &tensor.tensor_content;
    match tensor.dtype {
        tf_code::FLOAT => tensor.float_val.first().map(|v| f64::from(*v)).or_else(|| Some(f64::from(f32::from_le_bytes(bytes(content)?)))),
        tf_code::DOUBLE => tensor.double_val.first().copied().or_else(|| Some(f64::from_le_bytes(bytes(content)?))),
        tf_code::INT32 => tensor.int_val.first().map(|v| f64::from(*v)).or_else(|| Some(f64::from(i32::from_le_bytes(bytes(content)?)))),
        tf_code::INT64 => tensor.int64_val.first().map(|v| *v as f64).or_else(|| Some(i64::from_le_bytes(bytes(content)?) as f64)),
        tf_code::BOOL => tensor.bool_val.first().map(|v| f64::from(u8::from(*v))).or_else(|| Some(f64::from(content.first().copied()?))),
        tf_code::HALF => {
            let bits = tensor.half_val.first().map(|v| *v as u16).or_else(|| Some(u16::from_le_bytes(bytes(content)?)))?;
            Some(f64::from(f16_to_f32(bits)))
        }
        tf_code::BFLOAT16 => {
            let bits = tensor.half_val.first().map(|v| *v as u16).or_else(|| Some(u16::from_le_bytes(bytes(content)?)))?;
            Some(f64::from(f32::from_bits(u32::from(bits) << 16)))
        }
        _ => None,
    }
}

/// The first `N` bytes of `content`, if it has exactly `N`.
fn bytes<const N: usize>(content: &[u8]) -> Option<[u8; N]> {
    content.try_into().ok()
}

/// IEEE 754 half precision to single precision.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: value = mantissa * 2^-24.
        (0, m) => {
            let value = m as f32 * 2f32.powi(-24);
            return if sign == 0 { value } else { -value };
        }
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_tensor(dtype: i32) -> TensorProto {
        TensorProto { dtype, ..TensorProto::default() }
    }

    #[test]
    fn scalars_are_read_from_every_storage() {
        let t = TensorProto { float_val: vec![0.25], ..scalar_tensor(tf_code::FLOAT) };
        assert_eq!(scalar(&t), Some(0.25));
        let t = TensorProto { tensor_content: 0.5f32.to_le_bytes().to_vec(), ..scalar_tensor(tf_code::FLOAT) };
        assert_eq!(scalar(&t), Some(0.5));
        let t = TensorProto { tensor_content: 1.5f64.to_le_bytes().to_vec(), ..scalar_tensor(tf_code::DOUBLE) };
        assert_eq!(scalar(&t), Some(1.5));
        let t = TensorProto { int64_val: vec![7], ..scalar_tensor(tf_code::INT64) };
        assert_eq!(scalar(&t), Some(7.0));
        let t = TensorProto { half_val: vec![0x3c00], ..scalar_tensor(tf_code::HALF) }; // 1.0
        assert_eq!(scalar(&t), Some(1.0));
        let t = TensorProto { half_val: vec![0xc100], ..scalar_tensor(tf_code::HALF) }; // -2.5
        assert_eq!(scalar(&t), Some(-2.5));
        let t = TensorProto { half_val: vec![0x3fc0], ..scalar_tensor(tf_code::BFLOAT16) }; // 1.5
        assert_eq!(scalar(&t), Some(1.5));
    }

    #[test]
    fn tensors_that_are_not_one_number_are_not_scalars() {
        let two = TensorProto {
            float_val: vec![1.0, 2.0],
            tensor_shape: Some(TensorShapeProto { dim: vec![Dim { size: 2 }], unknown_rank: false }),
            ..scalar_tensor(tf_code::FLOAT)
        };
        assert_eq!(scalar(&two), None);
        assert_eq!(scalar(&scalar_tensor(tf_code::STRING)), None);
        assert_eq!(scalar(&scalar_tensor(tf_code::FLOAT)), None, "no value at all");
    }
}
