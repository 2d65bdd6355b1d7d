//! TFRecord framing: the container TensorBoard event files use.
//!
//! Each record is
//!
//! ```text
//! u64 length (little endian) | u32 masked crc32c(length bytes) | data[length] | u32 masked crc32c(data)
//! ```
//!
//! The checksum of the length is checked before anything is allocated, so a corrupt file
//! cannot make the reader allocate a garbage size.

use std::io::{ErrorKind, Read};

/// What TensorFlow adds to a crc32c before storing it ("masking"), so that a checksum of data
/// that itself holds checksums is not trivially zero.
const MASK_DELTA: u32 = 0xa282_ead8;

/// The masked crc32c of `data`, as TFRecord files store it.
///
/// ```
/// // crc32c("123456789") = 0xe3069283, masked.
/// let crc: u32 = 0xe306_9283;
/// assert_eq!(dlflow_tensorboard::record::masked_crc32c(b"123456789"), ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8));
/// ```
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading the underlying file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid record.
    #[error("corrupt record at byte {offset}: {what}")]
    Corrupt {
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

/// Reads records one by one from a TFRecord stream.
///
/// ```
/// use dlflow_tensorboard::record::{RecordReader, masked_crc32c};
///
/// let data = b"hello";
/// let mut file = Vec::new();
/// file.extend((data.len() as u64).to_le_bytes());
/// file.extend(masked_crc32c(&(data.len() as u64).to_le_bytes()).to_le_bytes());
/// file.extend(data);
/// file.extend(masked_crc32c(data).to_le_bytes());
/// let records: Vec<Vec<u8>> = RecordReader::new(&file[..]).collect::<Result<_, _>>()?;
/// assert_eq!(records, vec![b"hello".to_vec()]);
/// # Ok::<(), dlflow_tensorboard::record::RecordError>(())
/// ```
pub struct RecordReader<R> {
    input: R,
    offset: u64,
    done: bool,
}

impl<R: Read> RecordReader<R> {
    /// A reader over `input`, positioned at a record boundary.
    pub fn new(input: R) -> RecordReader<R> {
        RecordReader { input, offset: 0, done: false }
    }

    fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordError> {
        let start = self.offset;
        let corrupt = |what| RecordError::Corrupt { offset: start, what };
        let mut header = [0u8; 12];
        match read_full(&mut self.input, &mut header)? {
            0 => return Ok(None),
            12 => {}
            _ => return Err(corrupt("the file ends inside a record header")),
        }
        let (length_bytes, crc_bytes) = header.split_at(8);
        if masked_crc32c(length_bytes) != u32::from_le_bytes(crc_bytes.try_into().map_err(|_| corrupt("header"))?) {
            return Err(corrupt("the length's checksum does not match"));
        }
        let length = u64::from_le_bytes(length_bytes.try_into().map_err(|_| corrupt("header"))?);
        let length = usize::try_from(length).map_err(|_| corrupt("the record is larger than memory"))?;
        // Grown as the bytes arrive, not allocated up front: a length from a damaged or
        // hostile file (its checksum can match) must not abort the process on allocation.
        let mut data = Vec::new();
        (&mut self.input).take(length as u64).read_to_end(&mut data)?;
        if data.len() != length {
            return Err(corrupt("the file ends inside a record"));
        }
        let mut footer = [0u8; 4];
        if read_full(&mut self.input, &mut footer)? != 4 {
            return Err(corrupt("the file ends before the record's checksum"));
        }
        if masked_crc32c(&data) != u32::from_le_bytes(footer) {
            return Err(corrupt("the data's checksum does not match"));
        }
        self.offset += 16 + length as u64;
        Ok(Some(data))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Vec<u8>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let record = self.next_record().transpose();
        // After an error the position is unknown: nothing more can be read reliably.
        if !matches!(record, Some(Ok(_))) {
            self.done = true;
        }
        record
    }
}

/// Fills `buffer` as far as the input goes; returns how many bytes were read.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &[u8]) -> Vec<u8> {
        let length = (data.len() as u64).to_le_bytes();
        let mut out = length.to_vec();
        out.extend(masked_crc32c(&length).to_le_bytes());
        out.extend(data);
        out.extend(masked_crc32c(data).to_le_bytes());
        out
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn records_are_read_in_order_and_an_empty_input_has_none() {
        let mut file = record(b"one");
        file.extend(record(b""));
        file.extend(record(b"three"));
        let records: Vec<Vec<u8>> = RecordReader::new(&file[..]).collect::<Result<_, _>>().expect("records");
        assert_eq!(records, vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        assert_eq!(RecordReader::new(&[][..]).count(), 0);
    }

    #[test]
    fn corruption_and_truncation_are_errors_naming_the_offset() {
        let good = record(b"first");
        let mut flipped = good.clone();
        flipped.extend(record(b"second"));
        let last = flipped.len() - 6;
        flipped[last] ^= 1; // a data byte of the second record
        let results: Vec<_> = RecordReader::new(&flipped[..]).collect();
        assert_eq!(results.len(), 2);
        let error = results[1].as_ref().expect_err("checksum").to_string();
        assert!(error.contains(&format!("byte {}", good.len())) && error.contains("checksum"), "{error}");

        let truncated = &good[..good.len() - 2];
        let error = RecordReader::new(truncated).next().expect("one item").expect_err("truncated").to_string();
        assert!(error.contains("ends before the record's checksum"), "{error}");

        let mut bad_length = good.clone();
        bad_length[0] = 0xff;
        let error = RecordReader::new(&bad_length[..]).next().expect("one item").expect_err("length").to_string();
        assert!(error.contains("length's checksum"), "{error}");
    }
}
