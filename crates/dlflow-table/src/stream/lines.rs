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

    /// The next complete lines as one piece of text, each line ending in `\n`, or `None` at the
    /// end of the input. A last line without a line end counts as a line (one is added). The
    /// text is handed over whole, not line by line: the decoder reads it in one go.
    pub(crate) async fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.buffer[self.searched..].iter().rposition(|b| *b == b'\n').map(|p| p + self.searched) {
                let mut rest = Vec::with_capacity(READ_SIZE.max(self.buffer.len() - end - 1));
                rest.extend_from_slice(&self.buffer[end + 1..]);
                self.buffer.truncate(end + 1);
                let complete = std::mem::replace(&mut self.buffer, rest);
                self.searched = 0;
                return Ok(Some(complete));
            }
            self.searched = self.buffer.len();
            if self.eof {
                if self.buffer.is_empty() {
                    return Ok(None);
                }
                let mut last = std::mem::take(&mut self.buffer);
                last.push(b'\n');
                self.searched = 0;
                return Ok(Some(last));
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

/// The lines of `text` (each ending in `\n`, the last one possibly not), without `\n` or `\r\n`.
pub(crate) fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split(|b| *b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line)).collect()
}

/// `text` cut after every `lines`-th line end: pieces of whole lines, for decoding a large file
/// a batch at a time.
pub(crate) fn line_pieces(text: &[u8], lines: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut seen = 0;
        let end = rest
            .iter()
            .position(|b| {
                seen += usize::from(*b == b'\n');
                seen == lines.max(1)
            })
            .map_or(rest.len(), |p| p + 1);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
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
        assert_eq!(lines.next_chunk().await.expect("read"), Some(b"{\"a\":1}\n".to_vec()));
        assert_eq!(lines.pending(), 5);
        writer.write_all(b"2}\r\n{\"a\":3}").await.expect("write");
        drop(writer);
        let chunk = lines.next_chunk().await.expect("read").expect("a line");
        assert_eq!(split_lines(&chunk), vec![b"{\"a\":2}".as_slice()]);
        assert_eq!(lines.next_chunk().await.expect("read"), Some(b"{\"a\":3}\n".to_vec()));
        assert_eq!(lines.next_chunk().await.expect("read"), None);
    }

    #[test]
    fn pieces_hold_whole_lines_and_the_last_piece_the_rest() {
        let text = b"a\nb\nc\nd\ne";
        let pieces: Vec<&[u8]> = line_pieces(text, 2).collect();
        assert_eq!(pieces, vec![b"a\nb\n".as_slice(), b"c\nd\n", b"e"]);
        assert_eq!(split_lines(b"x\r\n\ny\n"), vec![b"x".as_slice(), b"", b"y"]);
        assert!(split_lines(b"").is_empty());
    }
}
