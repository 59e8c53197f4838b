//! The byte layout of an exchange object.
//!
//! ```text
//! [partition 0: Arrow IPC stream][partition 1: Arrow IPC stream]...[index JSON][index length: u64 LE]["SQX1"]
//! ```
//! Empty partitions take no bytes. The index is written into the object so an
//! object is self-describing (for debugging and recovery), and it is returned in
//! the task report so readers never need to fetch it.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ShuffleError};

/// Trailing magic of every exchange object.
pub const MAGIC: &[u8; 4] = b"SQX1";
const TRAILER_BYTES: usize = 8 + MAGIC.len();

/// Where one output partition sits inside a map object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    pub offset: u64,
    pub len_bytes: u64,
    pub rows: u64,
    /// CRC-32 of the partition's bytes, checked by every reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

/// The index of one map object: a range per output partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeIndex {
    pub partitions: Vec<PartitionRange>,
}

impl ExchangeIndex {
    /// Total data bytes (without the index itself).
    pub fn data_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.len_bytes).sum()
    }

    /// Total rows in all partitions.
    pub fn rows(&self) -> u64 {
        self.partitions.iter().map(|p| p.rows).sum()
    }

    /// Encodes the index plus trailer, to be appended after the data.
    pub fn encode_trailer(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).expect("index serializes");
        let len = out.len() as u64;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(MAGIC);
        out
    }

    /// Decodes the index from a whole object's bytes.
    pub fn decode_from_object(url: &str, object: &[u8]) -> Result<Self> {
        let corrupt = |reason: &str| ShuffleError::Corrupt {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if object.len() < TRAILER_BYTES || &object[object.len() - MAGIC.len()..] != MAGIC {
            return Err(corrupt("missing trailer magic"));
        }
        let len_at = object.len() - TRAILER_BYTES;
        let len = u64::from_le_bytes(
            object[len_at..len_at + 8]
                .try_into()
                .map_err(|_| corrupt("short trailer"))?,
        ) as usize;
        if len > len_at {
            return Err(corrupt("index length exceeds object size"));
        }
        let index: Self = serde_json::from_slice(&object[len_at - len..len_at])
            .map_err(|e| corrupt(&format!("index is not valid: {e}")))?;
        let data_end = (len_at - len) as u64;
        if index
            .partitions
            .iter()
            .any(|p| p.offset + p.len_bytes > data_end)
        {
            return Err(corrupt("a partition range points past the data"));
        }
        Ok(index)
    }
}

/// One byte range of one object that a reader partition must read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRange {
    /// Full object URL (`file:///...`, `s3://bucket/key`).
    pub url: String,
    pub start: u64,
    pub end: u64,
    /// CRC-32 the range's bytes must have, when its writer recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

impl ObjectRange {
    /// Bytes in the range.
    pub fn len_bytes(&self) -> u64 {
        self.end - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_through_the_trailer() {
        let index = ExchangeIndex {
            partitions: vec![
                PartitionRange {
                    offset: 0,
                    len_bytes: 10,
                    rows: 3,
                    crc32: Some(0x1234_5678),
                },
                PartitionRange {
                    offset: 10,
                    len_bytes: 0,
                    rows: 0,
                    crc32: None,
                },
                PartitionRange {
                    offset: 10,
                    len_bytes: 5,
                    rows: 1,
                    crc32: None,
                },
            ],
        };
        let mut object = vec![7u8; 15];
        object.extend(index.encode_trailer());
        assert_eq!(
            ExchangeIndex::decode_from_object("x", &object).unwrap(),
            index
        );
    }

    #[test]
    fn truncated_object_is_corrupt() {
        let index = ExchangeIndex {
            partitions: vec![PartitionRange::default()],
        };
        let object = index.encode_trailer();
        let err = ExchangeIndex::decode_from_object("s3://b/k", &object[1..]).unwrap_err();
        assert!(err.to_string().contains("s3://b/k"), "{err}");
    }

    #[test]
    fn range_past_data_is_corrupt() {
        let index = ExchangeIndex {
            partitions: vec![PartitionRange {
                offset: 0,
                len_bytes: 100,
                rows: 1,
                crc32: None,
            }],
        };
        let object = index.encode_trailer();
        assert!(ExchangeIndex::decode_from_object("x", &object).is_err());
    }
}
