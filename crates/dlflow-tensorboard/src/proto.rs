//! The protobuf messages of an event file that carry scalars, declared by hand with prost so
//! that no `protoc` is needed to build (as `dlflow-tf` does for SavedModel signatures).
//!
//! Field numbers follow tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto
//! and tensor.proto. Everything else in an event (graphs, histograms, images, run metadata) is
//! skipped by the decoder.

#![allow(missing_docs)]

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

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// tensorflow.DataType.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    /// The values as raw little-endian bytes (one of the ways a tensor is stored).
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
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
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// tensorflow.DataType values a scalar summary can have.
pub mod dtype {
    pub const FLOAT: i32 = 1;
    pub const DOUBLE: i32 = 2;
    pub const INT32: i32 = 3;
    pub const INT64: i32 = 9;
    pub const BOOL: i32 = 10;
    pub const BFLOAT16: i32 = 14;
    pub const HALF: i32 = 19;
}

impl TensorProto {
    /// The value of a tensor with exactly one numeric element, whatever way it is stored;
    /// `None` for anything else (strings, histograms, images: not scalars).
    pub fn scalar(&self) -> Option<f64> {
        let elements = self.tensor_shape.as_ref().map_or(1, |shape| shape.dim.iter().map(|d| d.size).product::<i64>());
        if elements != 1 {
            return None;
        }
        let content = &self.tensor_content;
        match self.dtype {
            dtype::FLOAT => self.float_val.first().map(|v| f64::from(*v)).or_else(|| Some(f64::from(f32::from_le_bytes(bytes(content)?)))),
            dtype::DOUBLE => self.double_val.first().copied().or_else(|| Some(f64::from_le_bytes(bytes(content)?))),
            dtype::INT32 => self.int_val.first().map(|v| f64::from(*v)).or_else(|| Some(f64::from(i32::from_le_bytes(bytes(content)?)))),
            dtype::INT64 => self.int64_val.first().map(|v| *v as f64).or_else(|| Some(i64::from_le_bytes(bytes(content)?) as f64)),
            dtype::BOOL => self.bool_val.first().map(|v| f64::from(u8::from(*v))).or_else(|| Some(f64::from(content.first().copied()?))),
            dtype::HALF => {
                let bits = self.half_val.first().map(|v| *v as u16).or_else(|| Some(u16::from_le_bytes(bytes(content)?)))?;
                Some(f64::from(f16_to_f32(bits)))
            }
            dtype::BFLOAT16 => {
                let bits = self.half_val.first().map(|v| *v as u16).or_else(|| Some(u16::from_le_bytes(bytes(content)?)))?;
                Some(f64::from(f32::from_bits(u32::from(bits) << 16)))
            }
            _ => None,
        }
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
        let t = TensorProto { float_val: vec![0.25], ..scalar_tensor(dtype::FLOAT) };
        assert_eq!(t.scalar(), Some(0.25));
        let t = TensorProto { tensor_content: 0.5f32.to_le_bytes().to_vec(), ..scalar_tensor(dtype::FLOAT) };
        assert_eq!(t.scalar(), Some(0.5));
        let t = TensorProto { tensor_content: 1.5f64.to_le_bytes().to_vec(), ..scalar_tensor(dtype::DOUBLE) };
        assert_eq!(t.scalar(), Some(1.5));
        let t = TensorProto { int64_val: vec![7], ..scalar_tensor(dtype::INT64) };
        assert_eq!(t.scalar(), Some(7.0));
        let t = TensorProto { half_val: vec![0x3c00], ..scalar_tensor(dtype::HALF) }; // 1.0
        assert_eq!(t.scalar(), Some(1.0));
        let t = TensorProto { half_val: vec![0xc100], ..scalar_tensor(dtype::HALF) }; // -2.5
        assert_eq!(t.scalar(), Some(-2.5));
        let t = TensorProto { half_val: vec![0x3fc0], ..scalar_tensor(dtype::BFLOAT16) }; // 1.5
        assert_eq!(t.scalar(), Some(1.5));
    }

    #[test]
    fn tensors_that_are_not_one_number_are_not_scalars() {
        let two = TensorProto {
            float_val: vec![1.0, 2.0],
            tensor_shape: Some(TensorShapeProto { dim: vec![Dim { size: 2 }] }),
            ..scalar_tensor(dtype::FLOAT)
        };
        assert_eq!(two.scalar(), None);
        assert_eq!(scalar_tensor(7 /* DT_STRING */).scalar(), None);
        assert_eq!(scalar_tensor(dtype::FLOAT).scalar(), None, "no value at all");
    }
}
