//! The record codec every durable backend shares: how one fact becomes a framed,
//! checksummed, hash-chained record and back, and how a snapshot is framed.
//!
//! RocksDB stores one frame per key; etcd packs a commit's frames into one value. Both go
//! through these functions, so a record means the same bytes in either store and the
//! tamper checks are written once. Everything here is pure (bytes in, typed results out)
//! and never panics on bad input: every slice access goes through `get`, because these
//! bytes come from a disk or a network.
//!
//! # Record frame (format version 1)
//!
//! Every integer is big-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | format version ([`FORMAT_VERSION`]) |
//! | 2 | 4 | payload length |
//! | 6 | 8 | the record's own sequence |
//! | 14 | 32 | chain hash of this record |
//! | 46 | 4 | crc32c of bytes `0..46` followed by the payload |
//! | 50 | n | payload: the `postcard` encoding of a [`Fact`] |
//!
//! The chain hash of record `n` is `blake3(hash(n-1) ‖ n as u64 ‖ payload)`, with
//! [`GENESIS_HASH`] standing in for the hash of record 0. Storing each record's own hash
//! (rather than its predecessor's) means a record whose fact was altered is caught at its
//! own sequence, even when its checksum was recomputed.
//!
//! # Snapshot value
//!
//! format version (`u16`) ‖ crc32c of the sequence (`u64`) followed by the bytes (`u32`) ‖
//! the snapshot's bytes. Binding the checksum to the sequence catches a snapshot stored
//! under another sequence's key.
//!
//! ```
//! use reconf_core::{AuthorityId, Change, Fact, SessionId};
//! use reconf_effects::codec::{self, GENESIS_HASH};
//! # fn main() -> Result<(), reconf_effects::JournalError> {
//! let fact = Fact::new(Change::SessionClosed { session: SessionId::from_u128(1), authority: AuthorityId::from_label("a") });
//! let payload = codec::encode_fact(&fact)?;
//! let (bytes, hash) = codec::encode_record(1, &GENESIS_HASH, &payload)?;
//!
//! let frame = codec::decode_record(1, &bytes)?;
//! codec::check_chain(1, &GENESIS_HASH, &frame)?;
//! assert_eq!((frame.hash, codec::decode_fact(1, frame.payload)?), (hash, fact));
//! # Ok(()) }
//! ```

use reconf_core::{Fact, FACT_SCHEMA_VERSION};

use crate::journal::{Corruption, JournalError, Sequence};

/// The record format version this build writes (and the only one it reads).
pub const FORMAT_VERSION: u16 = 1;
/// Size of a record frame's header; the payload follows it.
pub const RECORD_HEADER_LEN: usize = 50;
/// Offset of the payload length in a record frame.
pub const RECORD_LENGTH_OFFSET: usize = 2;
/// Offset of the record's sequence in a record frame.
pub const RECORD_SEQUENCE_OFFSET: usize = 6;
/// Offset of the chain hash in a record frame.
pub const RECORD_HASH_OFFSET: usize = 14;
/// Offset of the checksum in a record frame.
pub const RECORD_CHECKSUM_OFFSET: usize = 46;
/// Size of a snapshot value's header; the snapshot's bytes follow it.
pub const SNAPSHOT_HEADER_LEN: usize = 6;
/// The chain hash standing in for the predecessor of record 1.
pub const GENESIS_HASH: Hash = [0; 32];

/// A chain hash.
pub type Hash = [u8; 32];

/// [`JournalError::Corrupt`] at `sequence`.
pub fn corrupt(sequence: Sequence, corruption: Corruption) -> JournalError {
    JournalError::Corrupt { sequence, corruption }
}

/// [`JournalError::Corrupt`] with [`Corruption::Metadata`] at `sequence`.
pub fn metadata(sequence: Sequence, reason: impl Into<String>) -> JournalError {
    corrupt(sequence, Corruption::Metadata { reason: reason.into() })
}

/// `blake3(prev ‖ sequence ‖ payload)`.
pub fn chain_hash(prev: &Hash, sequence: Sequence, payload: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(&sequence.to_be_bytes());
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// Frames `payload` as record `sequence` following a record whose chain hash is `prev`;
/// returns the frame and the new record's chain hash.
///
/// # Errors
/// [`JournalError::Encode`] for a payload over 4 GiB.
pub fn encode_record(
    sequence: Sequence,
    prev: &Hash,
    payload: &[u8],
) -> Result<(Vec<u8>, Hash), JournalError> {
    let length = u32::try_from(payload.len()).map_err(|_| JournalError::Encode {
        reason: format!("a fact of {} bytes exceeds the 4 GiB frame limit", payload.len()),
    })?;
    let hash = chain_hash(prev, sequence, payload);
    let mut frame = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    frame.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&sequence.to_be_bytes());
    frame.extend_from_slice(&hash);
    let mut crc = crc32c::crc32c(&frame);
    crc = crc32c::crc32c_append(crc, payload);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok((frame, hash))
}

/// A record frame whose layout and checksum were verified (its chain was not).
#[derive(Debug)]
pub struct Frame<'a> {
    /// The chain hash the frame claims for its record.
    pub hash: Hash,
    /// The payload (a fact's encoding).
    pub payload: &'a [u8],
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset + N).and_then(|s| <[u8; N]>::try_from(s).ok())
}

/// Checks the frame expected to be record `key`: size, format version, length, checksum,
/// and that the frame names that sequence.
///
/// # Errors
/// [`JournalError::Corrupt`] naming what is wrong.
pub fn decode_record(key: Sequence, bytes: &[u8]) -> Result<Frame<'_>, JournalError> {
    let bad_frame = || corrupt(key, Corruption::BadFrame);
    // The version decides the layout of the rest, so it is read before anything else.
    let version = u16::from_be_bytes(array(bytes, 0).ok_or_else(bad_frame)?);
    if version != FORMAT_VERSION {
        return Err(corrupt(key, Corruption::UnknownFormatVersion { version }));
    }
    let (Some(header), Some(payload)) = (bytes.get(..RECORD_HEADER_LEN), bytes.get(RECORD_HEADER_LEN..))
    else {
        return Err(bad_frame());
    };
    let length = u32::from_be_bytes(array(header, RECORD_LENGTH_OFFSET).ok_or_else(bad_frame)?);
    if usize::try_from(length).ok() != Some(payload.len()) {
        return Err(bad_frame());
    }
    let stored_crc = u32::from_be_bytes(array(header, RECORD_CHECKSUM_OFFSET).ok_or_else(bad_frame)?);
    let covered = header.get(..RECORD_CHECKSUM_OFFSET).ok_or_else(bad_frame)?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(covered), payload);
    if crc != stored_crc {
        return Err(corrupt(key, Corruption::ChecksumMismatch));
    }
    let claimed = u64::from_be_bytes(array(header, RECORD_SEQUENCE_OFFSET).ok_or_else(bad_frame)?);
    if claimed != key {
        return Err(corrupt(claimed, Corruption::KeyMismatch { key }));
    }
    let hash = array(header, RECORD_HASH_OFFSET).ok_or_else(bad_frame)?;
    Ok(Frame { hash, payload })
}

/// Checks that `frame`, record `sequence`, chains to `prev`.
///
/// # Errors
/// [`JournalError::Corrupt`] with [`Corruption::BrokenChain`].
pub fn check_chain(sequence: Sequence, prev: &Hash, frame: &Frame<'_>) -> Result<(), JournalError> {
    if chain_hash(prev, sequence, frame.payload) == frame.hash {
        Ok(())
    } else {
        Err(corrupt(sequence, Corruption::BrokenChain))
    }
}

/// Encodes a fact as a record payload.
///
/// # Errors
/// [`JournalError::Encode`] when the encoder fails.
pub fn encode_fact(fact: &Fact) -> Result<Vec<u8>, JournalError> {
    postcard::to_allocvec(fact).map_err(|e| JournalError::Encode { reason: e.to_string() })
}

/// Decodes the payload of record `sequence`. Trailing bytes and facts of a newer schema
/// are refused rather than half-understood.
///
/// # Errors
/// [`JournalError::Corrupt`] for an undecodable payload, [`JournalError::NewerFact`] for a
/// newer schema.
pub fn decode_fact(sequence: Sequence, payload: &[u8]) -> Result<Fact, JournalError> {
    let undecodable = |reason: String| corrupt(sequence, Corruption::UndecodableFact { reason });
    let (fact, rest) = postcard::take_from_bytes::<Fact>(payload).map_err(|e| undecodable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(undecodable(format!("{} trailing bytes after the fact", rest.len())));
    }
    if fact.schema_version > FACT_SCHEMA_VERSION {
        return Err(JournalError::NewerFact {
            sequence,
            found: fact.schema_version,
            supported: FACT_SCHEMA_VERSION,
        });
    }
    Ok(fact)
}

fn snapshot_crc(sequence: Sequence, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&sequence.to_be_bytes()), bytes)
}

/// Frames a snapshot taken at `sequence`.
pub fn encode_snapshot(sequence: Sequence, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + bytes.len());
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&snapshot_crc(sequence, bytes).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Checks and unframes the snapshot stored under `sequence`.
///
/// # Errors
/// [`JournalError::Corrupt`] with [`Corruption::Metadata`] at `sequence`.
pub fn decode_snapshot(sequence: Sequence, value: &[u8]) -> Result<Vec<u8>, JournalError> {
    let bad = |what: &str| metadata(sequence, format!("snapshot at {sequence}: {what}"));
    let version = u16::from_be_bytes(array(value, 0).ok_or_else(|| bad("truncated header"))?);
    if version != FORMAT_VERSION {
        return Err(bad(&format!("unknown format version {version}")));
    }
    let crc = u32::from_be_bytes(array(value, 2).ok_or_else(|| bad("truncated header"))?);
    let bytes = value.get(SNAPSHOT_HEADER_LEN..).ok_or_else(|| bad("truncated header"))?;
    if snapshot_crc(sequence, bytes) != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use reconf_core::{AuthorityId, Change, SessionId};

    fn fact(n: u128) -> Fact {
        Fact::new(Change::SessionClosed { session: SessionId::from_u128(n), authority: AuthorityId([7; 32]) })
    }

    #[test]
    fn record_round_trips() {
        let payload = encode_fact(&fact(1)).unwrap();
        let (bytes, hash) = encode_record(1, &GENESIS_HASH, &payload).unwrap();
        let frame = decode_record(1, &bytes).unwrap();
        assert_eq!(frame.hash, hash);
        check_chain(1, &GENESIS_HASH, &frame).unwrap();
        assert_eq!(decode_fact(1, frame.payload).unwrap(), fact(1));
    }

    #[test]
    fn every_single_byte_flip_is_caught_without_panicking() {
        let payload = encode_fact(&fact(2)).unwrap();
        let (bytes, _) = encode_record(5, &GENESIS_HASH, &payload).unwrap();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let outcome = decode_record(5, &bad).and_then(|f| check_chain(5, &GENESIS_HASH, &f));
            assert!(matches!(outcome, Err(JournalError::Corrupt { .. })), "flip at {i} accepted");
        }
    }

    #[test]
    fn truncations_are_bad_frames_not_panics() {
        let payload = encode_fact(&fact(3)).unwrap();
        let (bytes, _) = encode_record(9, &GENESIS_HASH, &payload).unwrap();
        for len in 0..bytes.len() {
            assert!(decode_record(9, &bytes[..len]).is_err(), "truncation to {len} accepted");
        }
    }

    #[test]
    fn key_mismatch_names_both_sequences() {
        let (bytes, _) = encode_record(4, &GENESIS_HASH, b"x").unwrap();
        let err = decode_record(6, &bytes).unwrap_err();
        assert_eq!(err, corrupt(4, Corruption::KeyMismatch { key: 6 }));
    }

    #[test]
    fn undecodable_and_trailing_payloads_are_refused() {
        assert!(matches!(
            decode_fact(3, &[0xff; 3]),
            Err(JournalError::Corrupt { sequence: 3, corruption: Corruption::UndecodableFact { .. } })
        ));
        let mut payload = encode_fact(&fact(1)).unwrap();
        payload.push(0);
        assert!(matches!(
            decode_fact(3, &payload),
            Err(JournalError::Corrupt { corruption: Corruption::UndecodableFact { .. }, .. })
        ));
    }

    #[test]
    fn snapshots_round_trip_and_are_bound_to_their_sequence() {
        let snap = encode_snapshot(7, b"state");
        assert_eq!(decode_snapshot(7, &snap).unwrap(), b"state");
        assert!(decode_snapshot(8, &snap).is_err());
    }
}
