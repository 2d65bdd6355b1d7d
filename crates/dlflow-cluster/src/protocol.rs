//! The wire protocol between the coordinator and a node: length-prefixed frames over TCP.
//!
//! `kind: u8 | length: u32 LE | payload`. JSON payloads for control, a whole Arrow IPC stream
//! for rows (pyarrow reads it without a copy). The Python twin is `python/dlflow/_protocol.py`;
//! change both together: the test `tables_agree` compares their [`KINDS`] and [`MAX_FRAME`].

use std::io::{self, Read, Write};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

/// Node -> coordinator: `{token, node_type, index, port, pid}`.
pub const HELLO: u8 = 1;
/// Coordinator -> node: the cluster spec and the node's task ([`crate::NodeSpec`]).
pub const SPEC: u8 = 2;
/// Both ways: rows as an Arrow IPC stream.
pub const BATCH: u8 = 4;
/// Coordinator -> node: the epoch has no more rows for this node.
pub const EPOCH_END: u8 = 5;
/// Coordinator -> node: no more epochs.
pub const INPUT_END: u8 = 6;
/// Node -> coordinator: the process is alive.
pub const HEARTBEAT: u8 = 7;
/// Node -> coordinator: the entry returned.
pub const DONE: u8 = 8;
/// Node -> coordinator: the entry raised, `{error, traceback}`.
pub const FAILED: u8 = 9;
/// Coordinator -> node: the declared output schema, as an Arrow IPC stream without batches.
pub const OUTPUT_SCHEMA: u8 = 10;
/// Node -> coordinator: something to report, `{event, ...}`.
pub const NOTICE: u8 = 11;
/// Node -> coordinator: where its restored checkpoint had trained to, `{attempt, epoch, rows,
/// step}`, or `{}` without a checkpoint; sent before it reads its first row.
pub const POSITION: u8 = 12;
/// Feed -> node, first frame of the feed: `{start_epoch}`, the epoch the input starts at.
pub const REPLAY: u8 = 13;
/// Node -> its process's feed listener: `{token, node_type, index}`.
pub const FEED_HELLO: u8 = 14;
/// Coordinator -> node: send your Python stack (a `stack` notice); the node seems frozen.
pub const STACK: u8 = 15;

/// Every frame kind by its name in both twins, for the test that compares them.
pub const KINDS: [(&str, u8); 14] = [
    ("HELLO", HELLO),
    ("SPEC", SPEC),
    ("BATCH", BATCH),
    ("EPOCH_END", EPOCH_END),
    ("INPUT_END", INPUT_END),
    ("HEARTBEAT", HEARTBEAT),
    ("DONE", DONE),
    ("FAILED", FAILED),
    ("OUTPUT_SCHEMA", OUTPUT_SCHEMA),
    ("NOTICE", NOTICE),
    ("POSITION", POSITION),
    ("REPLAY", REPLAY),
    ("FEED_HELLO", FEED_HELLO),
    ("STACK", STACK),
];

/// The largest payload either side writes or reads: a garbage length must not allocate
/// gigabytes, and a writer must not send what the reader refuses.
pub const MAX_FRAME: u32 = 1 << 30;

/// One frame.
#[derive(Debug)]
pub struct Frame {
    /// What the payload is (the constants of this module).
    pub kind: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Writes one frame (unbuffered callers should wrap the stream in a `BufWriter` and flush).
pub fn write_frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).ok().filter(|len| *len <= MAX_FRAME).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a frame of {} bytes is over the protocol's limit of {MAX_FRAME} bytes; send fewer rows per batch", payload.len()),
        )
    })?;
    out.write_all(&[kind])?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(payload)
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut header = [0u8; 5];
    match input.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is over the limit")));
    }
    let mut payload = vec![0u8; len as usize];
    input.read_exact(&mut payload)?;
    Ok(Some(Frame { kind: header[0], payload }))
}

/// A batch as a one-batch Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut buffer = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut buffer, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(buffer)
}

/// A schema as an Arrow IPC stream without batches.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut buffer = Vec::new();
    let mut writer = StreamWriter::try_new(&mut buffer, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(buffer)
}

/// The batches of an Arrow IPC stream.
pub fn decode_batches(payload: &[u8]) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    StreamReader::try_new(payload, None)?.collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float32Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn frames_and_batches_round_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float32, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Float32Array::from(vec![1.0, 2.5])), Arc::new(StringArray::from(vec!["a", "b"]))],
        )
        .expect("batch");
        let mut wire = Vec::new();
        write_frame(&mut wire, BATCH, &encode_batch(&batch).expect("encode")).expect("write");
        write_frame(&mut wire, DONE, &[]).expect("write");
        let mut input = wire.as_slice();
        let frame = read_frame(&mut input).expect("read").expect("a frame");
        assert_eq!(frame.kind, BATCH);
        assert_eq!(decode_batches(&frame.payload).expect("decode"), vec![batch]);
        let done = read_frame(&mut input).expect("read").expect("a frame");
        assert_eq!((done.kind, done.payload.len()), (DONE, 0));
        assert!(read_frame(&mut input).expect("clean end").is_none());
    }

    #[test]
    fn a_garbage_length_is_refused() {
        let mut input: &[u8] = &[BATCH, 0xff, 0xff, 0xff, 0xff];
        let error = read_frame(&mut input).expect_err("refused");
        assert!(error.to_string().contains("over the limit"), "{error}");
    }

    #[test]
    fn the_writer_refuses_what_the_reader_would() {
        // Zeroed allocations are not touched: the gigabyte costs no memory.
        let payload = vec![0u8; MAX_FRAME as usize + 1];
        let mut out = Vec::new();
        let error = write_frame(&mut out, BATCH, &payload).expect_err("over the limit");
        assert!(error.to_string().contains(&format!("{} bytes is over the protocol's limit", payload.len())), "{error}");
        assert!(out.is_empty(), "nothing written");
    }
}
