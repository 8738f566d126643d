//! The on-disk layout, published so that tools and tests can inspect a journal with plain
//! RocksDB. Every integer is big-endian.
//!
//! # Column families
//!
//! | column family | key | value |
//! |---|---|---|
//! | [`RECORDS_CF`] | sequence (`u64`, 8 bytes) | a record frame (below) |
//! | [`META_CF`] | [`META_FORMAT_KEY`] | the store's format version (`u16`) |
//! | [`META_CF`] | [`META_HEAD_KEY`] | head sequence (`u64`) ‖ chain hash at head (32) ‖ crc32c of the 40 bytes before it (`u32`) |
//! | [`SNAPSHOTS_CF`] | sequence (`u64`) | format version (`u16`) ‖ crc32c of sequence ‖ bytes (`u32`) ‖ the snapshot's bytes |
//!
//! # Record frame (format version 1)
//!
//! The frame is the shared one of [`reconf_effects::codec`], one frame per key:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | format version ([`FORMAT_VERSION`]) |
//! | 2 | 4 | payload length |
//! | 6 | 8 | the record's own sequence (must equal its key) |
//! | 14 | 32 | chain hash of this record |
//! | 46 | 4 | crc32c of bytes `0..46` followed by the payload |
//! | 50 | n | payload: the `postcard` encoding of a [`reconf_core::Fact`] |
//!
//! The chain hash of record `n` is `blake3(hash(n-1) ‖ n as u64 ‖ payload)`, with
//! [`GENESIS_HASH`] standing in for the hash of record 0. Storing each record's own hash
//! (rather than its predecessor's) means a record whose fact was altered is caught at its
//! own sequence, even when its checksum was recomputed.

pub use reconf_effects::codec::{
    FORMAT_VERSION, GENESIS_HASH, RECORD_CHECKSUM_OFFSET, RECORD_HASH_OFFSET, RECORD_HEADER_LEN,
    RECORD_LENGTH_OFFSET, RECORD_SEQUENCE_OFFSET, SNAPSHOT_HEADER_LEN,
};

/// Column family of the records.
pub const RECORDS_CF: &str = "records";
/// Column family of the metadata (format version, head).
pub const META_CF: &str = "meta";
/// Column family of the snapshots.
pub const SNAPSHOTS_CF: &str = "snapshots";

/// Metadata key of the format version.
pub const META_FORMAT_KEY: &[u8] = b"format_version";
/// Metadata key of the head (sequence and chain hash, checksummed).
pub const META_HEAD_KEY: &[u8] = b"head";
