//! `TF_Status`, owned, turned into a `Result` right after each C call.

use std::ffi::CStr;

use crate::ffi::{TF_Status, TF_OK};
use crate::library::TensorFlow;

/// An owned `TF_Status`.
pub(crate) struct Status {
    tf: &'static TensorFlow,
    pub(crate) raw: *mut TF_Status,
}

impl Status {
    pub(crate) fn new(tf: &'static TensorFlow) -> Status {
        // SAFETY: TF_NewStatus has no preconditions.
        Status { tf, raw: unsafe { (tf.api.TF_NewStatus)() } }
    }

    /// `Err(message)` when the last call set an error code.
    pub(crate) fn check(&self) -> Result<(), String> {
        // SAFETY: raw is a live status.
        let code = unsafe { (self.tf.api.TF_GetCode)(self.raw) };
        if code == TF_OK {
            return Ok(());
        }
        // SAFETY: TF_Message returns a NUL-terminated string owned by the status.
        let message = unsafe { CStr::from_ptr((self.tf.api.TF_Message)(self.raw)) };
        Err(message.to_string_lossy().into_owned())
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        // SAFETY: raw came from TF_NewStatus and is deleted once.
        unsafe { (self.tf.api.TF_DeleteStatus)(self.raw) }
    }
}
