//! What every line-based stream partition shares: counting offsets, skipping CSV headers,
//! decoding chunks, ending on a stop request.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::decode::{RecordDecoder, RecordFormat};
use super::stop;
use crate::error::Result;

/// Offsets and headers of one partition's lines.
pub(crate) struct LineCounter {
    pub(crate) decoder: RecordDecoder,
    /// Offset of the next line.
    pub(crate) next_offset: i64,
    /// Header lines still to skip on the current connection or file.
    header_left: usize,
}

impl LineCounter {
    pub(crate) fn new(decoder: RecordDecoder) -> LineCounter {
        let mut counter = LineCounter { decoder, next_offset: 0, header_left: 0 };
        counter.restart();
        counter
    }

    /// A new connection or file begins: CSV with a header skips its first line again.
    pub(crate) fn restart(&mut self) {
        self.header_left = usize::from(matches!(self.decoder.format(), RecordFormat::Csv { has_header: true }));
    }

    /// Decodes `text`, whole lines each ending in `\n` (the last one may not); offsets go on
    /// counting (header lines included).
    pub(crate) fn decode(&mut self, text: &[u8]) -> Result<Option<RecordBatch>> {
        let lines = super::lines::split_lines(text);
        let skip = self.header_left.min(lines.len());
        self.header_left -= skip;
        let first = self.next_offset + skip as i64;
        self.next_offset += lines.len() as i64;
        let records = &lines[skip..];
        // The text after the skipped header lines, for the decoder to read in one go.
        let body = match records.first() {
            Some(first_record) => &text[first_record.as_ptr() as usize - text.as_ptr() as usize..],
            None => return Ok(None),
        };
        let offsets: Vec<i64> = (first..first + records.len() as i64).collect();
        self.decoder.decode_text_of(body, records, &offsets)
    }
}

/// A record batch stream from an async "next batch" step, ending when the step says so, on an
/// error, or when a stop is requested (after the batch being read, never in the middle of one).
pub(crate) fn batch_stream<S, F, Fut>(schema: SchemaRef, state: S, step: F) -> SendableRecordBatchStream
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<(RecordBatch, S)>>> + Send + 'static,
{
    let step = Arc::new(step);
    let batches = futures::stream::unfold(Some(state), move |state| {
        let step = step.clone();
        async move {
            match step(state?).await {
                Ok(Some((batch, state))) => Some((Ok(batch), Some(state))),
                Ok(None) => None,
                Err(error) => Some((Err(DataFusionError::from(error)), None)),
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, read_ahead(stop::until_stopped(Box::pin(batches)))))
}

/// Batches decoded ahead at most, waiting for the plan above to take them.
const READ_AHEAD: usize = 2;

/// Drives `batches` in a task of its own, so that reading and decoding the next records (one
/// core) goes on while the plan above runs the model and writes the results (the other): a
/// source read in the consumer's task would leave one of them idle. A stop request ends
/// `batches` in that task; the batches it already read still come out here, none is dropped.
/// The task ends when this stream is dropped.
fn read_ahead<S>(batches: S) -> impl futures::Stream<Item = std::result::Result<RecordBatch, DataFusionError>> + Send
where
    S: futures::Stream<Item = std::result::Result<RecordBatch, DataFusionError>> + Send + 'static,
{
    use futures::StreamExt;
    futures::stream::once(async move {
        let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
        let task = tokio::spawn(async move {
            let mut batches = std::pin::pin!(batches);
            while let Some(item) = batches.next().await {
                if sender.send(item).await.is_err() {
                    break;
                }
            }
        });
        futures::stream::unfold((receiver, AbortOnDrop(task)), |(mut receiver, task)| async move {
            receiver.recv().await.map(|item| (item, (receiver, task)))
        })
    })
    .flatten()
}

/// Ends a task when its reader goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stream partitions being read right now in this process.
static OPEN_SOURCES: AtomicUsize = AtomicUsize::new(0);

/// How many stream source partitions are being read now: the CLI stops them gracefully on
/// Ctrl-C (the records read so far are still written) when there are any.
pub fn open_sources() -> usize {
    OPEN_SOURCES.load(Ordering::SeqCst)
}

/// Counts one open source partition while it lives.
pub(crate) struct OpenSource;

impl OpenSource {
    pub(crate) fn new() -> OpenSource {
        OPEN_SOURCES.fetch_add(1, Ordering::SeqCst);
        OpenSource
    }
}

impl Drop for OpenSource {
    fn drop(&mut self) {
        OPEN_SOURCES.fetch_sub(1, Ordering::SeqCst);
    }
}
