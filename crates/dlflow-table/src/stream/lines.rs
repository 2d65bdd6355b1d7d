//! Reading records one line each from a byte stream (stdin, a socket), as many as are ready.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read per call at most; a chunk of lines is what one read brought in.
const READ_SIZE: usize = 256 * 1024;

/// Complete lines from `reader`, returned as soon as a read brings at least one: a record that
/// arrives alone is not held back waiting for more, and when the reader of the lines is slow the
/// next chunk simply holds more lines.
pub(crate) struct LineChunks<R> {
    reader: R,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already searched for a line end.
    searched: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineChunks<R> {
    pub(crate) fn new(reader: R) -> Self {
        LineChunks { reader, buffer: Vec::with_capacity(READ_SIZE), searched: 0, eof: false }
    }

    /// The next complete lines (without their line ends), or `None` at the end of the input.
    /// A last line without a line end counts as a line.
    pub(crate) async fn next_chunk(&mut self) -> std::io::Result<Option<Vec<Vec<u8>>>> {
        loop {
            if let Some(end) = self.buffer[self.searched..].iter().rposition(|b| *b == b'\n').map(|p| p + self.searched) {
                let rest = self.buffer.split_off(end + 1);
                let complete = std::mem::replace(&mut self.buffer, rest);
                self.searched = 0;
                return Ok(Some(split_lines(&complete)));
            }
            self.searched = self.buffer.len();
            if self.eof {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                let last = std::mem::take(&mut self.buffer);
                self.searched = 0;
                return Ok(Some(split_lines(&last)));
            }
            self.buffer.reserve(READ_SIZE);
            if self.reader.read_buf(&mut self.buffer).await? == 0 {
                self.eof = true;
            }
        }
    }

    /// Bytes read but not yet returned (a line still being written).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// Lines of `bytes`, without `\n` or `\r\n`.
fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.split(|b| *b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_come_as_soon_as_complete_and_the_last_one_without_a_newline_counts() {
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut lines = LineChunks::new(reader);
        use tokio::io::AsyncWriteExt;
        writer.write_all(b"{\"a\":1}\n{\"a\":").await.expect("write");
        assert_eq!(lines.next_chunk().await.expect("read"), Some(vec![b"{\"a\":1}".to_vec()]));
        assert_eq!(lines.pending(), 5);
        writer.write_all(b"2}\r\n{\"a\":3}").await.expect("write");
        drop(writer);
        assert_eq!(lines.next_chunk().await.expect("read"), Some(vec![b"{\"a\":2}".to_vec()]));
        assert_eq!(lines.next_chunk().await.expect("read"), Some(vec![b"{\"a\":3}".to_vec()]));
        assert_eq!(lines.next_chunk().await.expect("read"), None);
    }
}
