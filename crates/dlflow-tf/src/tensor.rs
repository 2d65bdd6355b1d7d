//! Owned TensorFlow tensors.
//!
//! Numeric tensors are plain byte buffers. String tensors hold one `TF_TString` per element;
//! TensorFlow's `TF_AllocateTensor` frees the buffer but not the strings' own heap parts, so a
//! string tensor that dlflow filled deallocates each element before the tensor is deleted.
//! Output tensors are deleted through TensorFlow, which runs the string destructors itself.

use std::ffi::c_int;

use crate::dtype::DType;
use crate::ffi::{TF_TString, TF_Tensor};
use crate::library::TensorFlow;

/// A tensor owned by Rust.
pub struct Tensor {
    tf: &'static TensorFlow,
    pub(crate) raw: *mut TF_Tensor,
    /// Whether we initialized its `TF_TString`s and must release them.
    owns_strings: bool,
}

// SAFETY: a TF_Tensor is a reference-counted buffer with no thread affinity; Tensor has
// exclusive ownership of its handle.
unsafe impl Send for Tensor {}

/// Bytes per element in a tensor buffer.
pub(crate) fn element_size(dtype: DType) -> Option<usize> {
    Some(match dtype {
        DType::Float | DType::Int32 => 4,
        DType::Double | DType::Int64 => 8,
        DType::UInt8 | DType::Int8 | DType::Bool => 1,
        DType::Int16 => 2,
        DType::String => std::mem::size_of::<TF_TString>(),
        DType::Other(_) => return None,
    })
}

impl Tensor {
    /// A tensor of `dims` whose bytes are left for the caller to fill (numeric types only).
    pub(crate) fn allocate(tf: &'static TensorFlow, dtype: DType, dims: &[i64]) -> Tensor {
        debug_assert!(dtype != DType::String, "use Tensor::strings");
        let count: i64 = dims.iter().product();
        let bytes = count as usize * element_size(dtype).unwrap_or(1);
        // SAFETY: dims has dims.len() entries; TF allocates `bytes` aligned bytes.
        let raw = unsafe { (tf.api.TF_AllocateTensor)(dtype.code(), dims.as_ptr(), dims.len() as c_int, bytes) };
        Tensor { tf, raw, owns_strings: false }
    }

    /// A string tensor of `dims` holding `values` (exactly `dims.product()` of them).
    pub(crate) fn strings<'a>(tf: &'static TensorFlow, dims: &[i64], values: impl Iterator<Item = &'a [u8]>) -> Tensor {
        let count: i64 = dims.iter().product();
        let bytes = count as usize * std::mem::size_of::<TF_TString>();
        // SAFETY: as in allocate.
        let raw = unsafe { (tf.api.TF_AllocateTensor)(DType::String.code(), dims.as_ptr(), dims.len() as c_int, bytes) };
        let tensor = Tensor { tf, raw, owns_strings: true };
        let base = tensor.data_ptr().cast::<TF_TString>();
        let mut filled = 0usize;
        for (i, value) in values.take(count as usize).enumerate() {
            // SAFETY: i < count, so the slot is inside the buffer; each slot is initialized
            // before it is copied into.
            unsafe {
                let slot = base.add(i);
                (tf.api.TF_StringInit)(slot);
                (tf.api.TF_StringCopy)(slot, value.as_ptr().cast(), value.len());
            }
            filled += 1;
        }
        // Slots not given a value still need to be valid (empty) strings.
        for i in filled..count as usize {
            // SAFETY: inside the buffer, as above.
            unsafe { (tf.api.TF_StringInit)(base.add(i)) };
        }
        tensor
    }

    /// Take ownership of a tensor TensorFlow handed out.
    ///
    /// # Safety
    /// `raw` must be a live tensor not owned by anything else.
    pub(crate) unsafe fn from_raw(tf: &'static TensorFlow, raw: *mut TF_Tensor) -> Tensor {
        Tensor { tf, raw, owns_strings: false }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        // SAFETY: raw is live.
        DType::from_code(unsafe { (self.tf.api.TF_TensorType)(self.raw) })
    }

    /// Dimensions.
    pub fn dims(&self) -> Vec<i64> {
        // SAFETY: raw is live; indices are below TF_NumDims.
        unsafe {
            let rank = (self.tf.api.TF_NumDims)(self.raw);
            (0..rank).map(|i| (self.tf.api.TF_Dim)(self.raw, i)).collect()
        }
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: raw is live.
        unsafe { (self.tf.api.TF_TensorData)(self.raw).cast() }
    }

    fn byte_len(&self) -> usize {
        // SAFETY: raw is live.
        unsafe { (self.tf.api.TF_TensorByteSize)(self.raw) }
    }

    /// The buffer as bytes.
    pub fn bytes(&self) -> &[u8] {
        let len = self.byte_len();
        if len == 0 {
            return &[];
        }
        // SAFETY: TF guarantees byte_len bytes at data.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), len) }
    }

    /// The buffer as bytes, for filling.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.byte_len();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: as in bytes; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    /// The elements of a string tensor, as bytes.
    pub fn string_values(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let count = if self.dtype() == DType::String { self.byte_len() / std::mem::size_of::<TF_TString>() } else { 0 };
        let base = self.data_ptr().cast::<TF_TString>();
        (0..count).map(move |i| {
            // SAFETY: i < count; every element of a string tensor is an initialized TF_TString
            // whose data pointer is valid for its size while the tensor lives.
            unsafe {
                let slot = base.add(i);
                let size = (self.tf.api.TF_StringGetSize)(slot);
                if size == 0 {
                    return &[][..];
                }
                std::slice::from_raw_parts((self.tf.api.TF_StringGetDataPointer)(slot).cast::<u8>(), size)
            }
        })
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: we own raw; string slots were initialized by Tensor::strings.
        unsafe {
            if self.owns_strings {
                let base = self.data_ptr().cast::<TF_TString>();
                for i in 0..self.byte_len() / std::mem::size_of::<TF_TString>() {
                    (self.tf.api.TF_StringDealloc)(base.add(i));
                }
            }
            (self.tf.api.TF_DeleteTensor)(self.raw);
        }
    }
}
