//! Event files that used to abort the process: a record whose length (with a matching
//! checksum) is larger than memory (issue 14, point 5).

use dlflow_tensorboard::record::{RecordReader, masked_crc32c};

#[test]
fn a_huge_record_length_is_a_corrupt_file_not_an_allocation_abort() {
    for length in [1u64 << 40, 1 << 62, u64::MAX >> 1] {
        let mut file = length.to_le_bytes().to_vec();
        file.extend_from_slice(&masked_crc32c(&length.to_le_bytes()).to_le_bytes());
        file.extend_from_slice(b"only a few bytes follow");
        let error = RecordReader::new(&file[..]).next().expect("one item").expect_err("corrupt").to_string();
        assert!(error.contains("ends inside a record") || error.contains("larger than memory"), "{length}: {error}");
    }
}
