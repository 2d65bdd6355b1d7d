//! Owned TensorFlow tensors.
//!
//! Numeric tensors are plain byte buffers. String tensors hold one `TF_TString` per element;
//! TensorFlow's `TF_AllocateTensor` frees the buffer but not the strings' own heap parts, so a
//! string tensor that dlflow filled deallocates each element before the tensor is deleted.
//! Output tensors are deleted through TensorFlow, which runs the string destructors itself.
//!
//! A numeric input tensor can also share an Arrow buffer instead of copying it
//! ([`Tensor::sharing`]): TensorFlow keeps a reference to the buffer until it lets go of the
//! tensor. TensorFlow marks such memory as not its own, so no kernel writes into it in place
//! (it never forwards a buffer it does not own to an output). It reads the buffer in place when
//! it is aligned as its kernels need (64 bytes: Arrow's own allocations are), and copies it
//! itself otherwise (buffers that readers such as Parquet's build from plain vectors).

use std::ffi::{c_int, c_void};

use arrow::buffer::Buffer;

use crate::dtype::DType;
use crate::error::{Result, TfError};
use crate::ffi::{TF_TString, TF_Tensor};
use crate::library::TensorFlow;

/// A tensor owned by Rust.
pub struct Tensor {
    tf: &'static TensorFlow,
    pub(crate) raw: *mut TF_Tensor,
    /// Whether we initialized its `TF_TString`s and must release them.
    owns_strings: bool,
    /// Whether its bytes are an Arrow buffer shared with other arrays (never to be written).
    shared: bool,
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

/// Elements and bytes of a tensor of `dims`, or why TensorFlow must not be asked for it.
fn checked_size(dtype: DType, dims: &[i64], element: usize) -> Result<(usize, usize)> {
    if let Some(d) = dims.iter().find(|d| **d < 0) {
        return Err(allocation_error(dtype, dims, format!("dimension {d} is negative")));
    }
    let count = dims
        .iter()
        .try_fold(1usize, |n, d| usize::try_from(*d).ok().and_then(|d| n.checked_mul(d)))
        .filter(|n| i64::try_from(*n).is_ok());
    let bytes = count.and_then(|n| n.checked_mul(element));
    match (count, bytes) {
        (Some(count), Some(bytes)) => Ok((count, bytes)),
        _ => Err(allocation_error(dtype, dims, "the number of elements overflows".into())),
    }
}

/// The rank as TensorFlow takes it.
fn rank(dtype: DType, dims: &[i64]) -> Result<c_int> {
    c_int::try_from(dims.len()).map_err(|_| allocation_error(dtype, dims, format!("rank {} is too large", dims.len())))
}

fn allocation_error(dtype: DType, dims: &[i64], message: String) -> TfError {
    TfError::TensorAllocation { dtype: dtype.to_string(), dims: dims.to_vec(), message }
}

impl Tensor {
    /// A tensor of `dims` whose bytes are left for the caller to fill (numeric types only).
    ///
    /// Fails, instead of handing TensorFlow sizes it would abort on, when a dimension is
    /// negative or the size overflows; and when TensorFlow's allocator returns no tensor or
    /// no buffer (it returns null rather than failing loudly).
    pub(crate) fn allocate(tf: &'static TensorFlow, dtype: DType, dims: &[i64]) -> Result<Tensor> {
        if dtype == DType::String {
            return Err(allocation_error(dtype, dims, "a string tensor is made with Tensor::strings".into()));
        }
        let element = element_size(dtype).ok_or_else(|| allocation_error(dtype, dims, format!("{dtype} has no known element size")))?;
        let (_, bytes) = checked_size(dtype, dims, element)?;
        // SAFETY: dims has dims.len() entries, all checked non-negative with a product that
        // fits; TF allocates `bytes` aligned bytes (or returns null).
        let raw = unsafe { (tf.api.TF_AllocateTensor)(dtype.code(), dims.as_ptr(), rank(dtype, dims)?, bytes) };
        Tensor::checked(tf, raw, false, dtype, dims, bytes)
    }

    /// A numeric tensor of `dims` over `buffer`'s bytes, without copying them where TensorFlow
    /// can read them in place (see the [module docs](self)); `None` for an empty buffer, which
    /// the caller allocates.
    ///
    /// The buffer must hold exactly the tensor's bytes, as `dtype`'s numbers in row-major order.
    pub(crate) fn sharing(tf: &'static TensorFlow, dtype: DType, dims: &[i64], buffer: Buffer) -> Result<Option<Tensor>> {
        let element = match element_size(dtype) {
            Some(size) if dtype != DType::String => size,
            _ => return Err(allocation_error(dtype, dims, format!("{dtype} tensors cannot share an Arrow buffer"))),
        };
        let (_, bytes) = checked_size(dtype, dims, element)?;
        if bytes != buffer.len() {
            return Err(allocation_error(dtype, dims, format!("{} bytes of values for {bytes} bytes of tensor", buffer.len())));
        }
        if bytes == 0 {
            return Ok(None);
        }
        let data = buffer.as_ptr().cast_mut().cast::<c_void>();
        // The reference TensorFlow holds: released by `release_buffer` when it drops the tensor.
        let owner = Box::into_raw(Box::new(buffer)).cast::<c_void>();
        // SAFETY: dims checked as in allocate; `data` points at `bytes` bytes kept alive by
        // `owner` until TensorFlow calls `release_buffer` (exactly once); TensorFlow does not
        // write into memory it was lent (it does not own it, so kernels never forward it).
        let raw = unsafe { (tf.api.TF_NewTensor)(dtype.code(), dims.as_ptr(), rank(dtype, dims)?, data, bytes, Some(release_buffer), owner) };
        let mut tensor = Tensor::checked(tf, raw, false, dtype, dims, bytes)?;
        tensor.shared = true;
        Ok(Some(tensor))
    }

    /// A string tensor of `dims` holding `values` (exactly `dims.product()` of them).
    pub(crate) fn strings<'a>(tf: &'static TensorFlow, dims: &[i64], values: impl Iterator<Item = &'a [u8]>) -> Result<Tensor> {
        let (count, bytes) = checked_size(DType::String, dims, std::mem::size_of::<TF_TString>())?;
        // SAFETY: as in allocate.
        let raw = unsafe { (tf.api.TF_AllocateTensor)(DType::String.code(), dims.as_ptr(), rank(DType::String, dims)?, bytes) };
        // Not yet owning strings: the slots are uninitialized until the loops below.
        let mut tensor = Tensor::checked(tf, raw, false, DType::String, dims, bytes)?;
        let base = tensor.data_ptr().cast::<TF_TString>();
        let mut filled = 0usize;
        for (i, value) in values.take(count).enumerate() {
            // SAFETY: i < count, so the slot is inside the buffer (checked non-null with
            // `bytes` bytes); each slot is initialized before it is copied into.
            unsafe {
                let slot = base.add(i);
                (tf.api.TF_StringInit)(slot);
                (tf.api.TF_StringCopy)(slot, value.as_ptr().cast(), value.len());
            }
            filled += 1;
        }
        // Slots not given a value still need to be valid (empty) strings.
        for i in filled..count {
            // SAFETY: inside the buffer, as above.
            unsafe { (tf.api.TF_StringInit)(base.add(i)) };
        }
        tensor.owns_strings = true;
        Ok(tensor)
    }

    /// Wraps what `TF_AllocateTensor` returned, refusing a null tensor or a null buffer.
    fn checked(tf: &'static TensorFlow, raw: *mut TF_Tensor, owns_strings: bool, dtype: DType, dims: &[i64], bytes: usize) -> Result<Tensor> {
        if raw.is_null() {
            return Err(allocation_error(dtype, dims, format!("TensorFlow's allocator returned no tensor for {bytes} bytes")));
        }
        let tensor = Tensor { tf, raw, owns_strings, shared: false };
        if bytes > 0 && (tensor.data_ptr().is_null() || tensor.byte_len() < bytes) {
            return Err(allocation_error(dtype, dims, format!("TensorFlow's allocator returned no buffer of {bytes} bytes (out of memory?)")));
        }
        Ok(tensor)
    }

    /// Take ownership of a tensor TensorFlow handed out.
    ///
    /// # Safety
    /// `raw` must be a live tensor not owned by anything else.
    pub(crate) unsafe fn from_raw(tf: &'static TensorFlow, raw: *mut TF_Tensor) -> Tensor {
        Tensor { tf, raw, owns_strings: false, shared: false }
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

    /// The buffer as bytes, for filling (a tensor dlflow allocated, never a shared one).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        assert!(!self.shared, "a tensor sharing an Arrow buffer is read-only");
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

/// TensorFlow's deallocator for a shared Arrow buffer: drops the reference `Tensor::sharing`
/// boxed.
unsafe extern "C" fn release_buffer(_data: *mut c_void, _len: usize, owner: *mut c_void) {
    // SAFETY: `owner` is the Box<Buffer> leaked by Tensor::sharing; TensorFlow calls this once.
    drop(unsafe { Box::from_raw(owner.cast::<Buffer>()) });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf() -> &'static TensorFlow {
        TensorFlow::get().expect("TensorFlow (run the tests with scripts/test.sh)")
    }

    #[test]
    fn a_null_tensor_from_tensorflows_allocator_is_an_error_not_a_crash() {
        // TF_AllocateTensor returns null when the buffer is smaller than the shape needs.
        let dims = [4i64];
        // SAFETY: a valid dims pointer and rank; TensorFlow refuses the 0-byte buffer.
        let raw = unsafe { (tf().api.TF_AllocateTensor)(DType::Float.code(), dims.as_ptr(), 1, 0) };
        assert!(raw.is_null(), "TensorFlow returned a tensor for 4 floats in 0 bytes");
        let err = Tensor::checked(tf(), raw, false, DType::Float, &dims, 16).err().expect("null tensor");
        assert!(err.to_string().contains("returned no tensor"), "{err}");
    }

    #[test]
    fn a_shared_tensor_reads_the_arrow_buffer_in_place_and_lets_go_of_it() {
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        // Arrow's own allocation: 64-byte aligned.
        let buffer = Buffer::from_slice_ref(&values);
        assert_eq!(buffer.as_ptr() as usize % 64, 0);
        let tensor = Tensor::sharing(tf(), DType::Float, &[3, 4], buffer.clone()).expect("valid").expect("an aligned buffer is shared");
        assert_eq!(tensor.bytes().as_ptr(), buffer.as_ptr(), "the tensor copied the buffer");
        assert_eq!(tensor.bytes(), buffer.as_slice());
        assert_eq!(buffer.strong_count(), 2, "TensorFlow holds one reference");
        drop(tensor);
        assert_eq!(buffer.strong_count(), 1, "the reference was released with the tensor");

        // A slice that starts one float in is not aligned for TensorFlow's kernels: TensorFlow
        // copies it, and lets go of the buffer at once.
        let unaligned = buffer.slice_with_length(4, 8 * 4);
        let copied = Tensor::sharing(tf(), DType::Float, &[2, 4], unaligned.clone()).expect("valid").expect("a tensor");
        assert_eq!(copied.bytes(), unaligned.as_slice());
        assert_ne!(copied.bytes().as_ptr(), unaligned.as_ptr(), "TensorFlow kept an unaligned buffer");
        assert_eq!(buffer.strong_count(), 2, "TensorFlow kept a reference to a buffer it copied (only `unaligned` should)");
        drop(copied);
        // Sizes must agree; strings are never shared.
        let err = Tensor::sharing(tf(), DType::Float, &[5, 4], buffer.clone()).err().expect("too few bytes");
        assert!(err.to_string().contains("48 bytes of values for 80 bytes"), "{err}");
        assert!(Tensor::sharing(tf(), DType::String, &[1], buffer).is_err());
    }

    #[test]
    fn shapes_tensorflow_would_abort_on_are_refused_first() {
        for (dims, why) in [(vec![-1i64, 2], "negative"), (vec![1 << 40, 1 << 40], "overflows"), (vec![i64::MAX, 2], "overflows")] {
            let err = Tensor::allocate(tf(), DType::Float, &dims).err().expect("refused");
            assert!(err.to_string().contains(why), "{dims:?}: {err}");
            let err = Tensor::strings(tf(), &dims, std::iter::empty()).err().expect("refused");
            assert!(err.to_string().contains(why), "{dims:?}: {err}");
        }
        let empty = Tensor::allocate(tf(), DType::Double, &[0, 3]).expect("an empty tensor");
        assert_eq!((empty.dims(), empty.bytes().len()), (vec![0, 3], 0));
    }
}
