//! A file that asks the kernel to start writing its pages to disk as it goes.
//!
//! Every file dlflow writes is `fsync`ed before it is renamed into place (a crash must never
//! leave a complete-looking but empty file). Left to itself, the kernel keeps a freshly
//! written file's pages dirty in memory for up to 30 seconds, so that final `fsync` wrote the
//! whole file at once while the job waited: about 0.2-0.3 s for a 630 MB Parquet file on this
//! project's benchmark machine, with both cores idle. Starting the write-back of each few
//! megabytes as soon as they are written lets the disk work while the job computes, and the
//! final `fsync` only waits for the last of it.

use std::fs::File;
use std::io::{self, Write};

/// Bytes written between two requests to start write-back: large enough that the request
/// costs nothing next to the writing, small enough that the tail left to `fsync` is short.
const WRITEBACK_CHUNK: u64 = 8 * 1024 * 1024;

/// A [`File`] written front to back that starts the write-back of every
/// [`WRITEBACK_CHUNK`] bytes once they are written (Linux's `sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`: it queues the pages for the disk and returns; it waits for
/// nothing and makes no promise of durability, which the final `fsync` still gives).
pub(crate) struct WritebackFile {
    file: File,
    written: u64,
    /// Where the write-back requested so far ends.
    requested: u64,
}

impl WritebackFile {
    pub(crate) fn new(file: File) -> Self {
        WritebackFile { file, written: 0, requested: 0 }
    }

    fn start_writeback(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let length = self.written - self.requested;
            // SAFETY: a plain syscall on a file descriptor this struct owns. Its result is
            // ignored on purpose: it is only a hint (a filesystem that does not support it
            // leaves the pages to the final fsync, as before).
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.requested as libc::off64_t,
                    length as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.requested = self.written;
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.requested >= WRITEBACK_CHUNK {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_reaches_the_file_across_several_writeback_requests() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data.bin");
        let mut file = WritebackFile::new(File::create(&path).expect("create the file"));
        let block: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 * 1024 + 17).collect();
        for _ in 0..7 {
            file.write_all(&block).expect("write");
        }
        file.flush().expect("flush");
        assert_eq!(file.written, 7 * block.len() as u64);
        // A request after every third write (3 x 3 MiB >= 8 MiB): after the 3rd and the 6th.
        assert_eq!(file.requested, 6 * block.len() as u64);
        let read = std::fs::read(&path).expect("read the file back");
        assert_eq!(read.len(), 7 * block.len());
        assert!(read.chunks(block.len()).all(|chunk| chunk == block.as_slice()));
    }
}
