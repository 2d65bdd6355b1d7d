//! [`ArrowBatch`]: a `RecordBatch` that can cross timely's exchange channels.

use arrow::array::RecordBatch;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record batch in a timely stream.
///
/// Within one process timely moves it by pointer; between processes it travels as an Arrow
/// IPC stream (the serde impls), the same format the nodes read.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrowBatch(pub RecordBatch);

impl Serialize for ArrowBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &self.0.schema())
            .map_err(serde::ser::Error::custom)?;
        writer.write(&self.0).map_err(serde::ser::Error::custom)?;
        writer.finish().map_err(serde::ser::Error::custom)?;
        drop(writer);
        bytes.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ArrowBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = Vec::<u8>::deserialize(deserializer)?;
        let mut reader =
            arrow::ipc::reader::StreamReader::try_new(bytes.as_slice(), None).map_err(serde::de::Error::custom)?;
        match reader.next() {
            Some(batch) => batch.map(ArrowBatch).map_err(serde::de::Error::custom),
            None => Err(serde::de::Error::custom("an Arrow IPC stream without a batch")),
        }
    }
}
