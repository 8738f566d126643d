//! Encoding and checking of record frames, the head metadata and snapshot values.
//!
//! Everything here is pure: bytes in, typed results out. Nothing panics on bad input —
//! every slice access goes through `get`, because these bytes come from disk.

use reconf_core::{Fact, FACT_SCHEMA_VERSION};
use reconf_effects::{Corruption, JournalError, Sequence};

use crate::layout::{
    FORMAT_VERSION, RECORD_CHECKSUM_OFFSET, RECORD_HASH_OFFSET, RECORD_HEADER_LEN, RECORD_LENGTH_OFFSET,
    RECORD_SEQUENCE_OFFSET, SNAPSHOT_HEADER_LEN,
};

/// A chain hash.
pub(crate) type Hash = [u8; 32];

const HEAD_LEN: usize = 8 + 32 + 4;

pub(crate) fn corrupt(sequence: Sequence, corruption: Corruption) -> JournalError {
    JournalError::Corrupt { sequence, corruption }
}

pub(crate) fn metadata(sequence: Sequence, reason: impl Into<String>) -> JournalError {
    corrupt(sequence, Corruption::Metadata { reason: reason.into() })
}

/// The RocksDB key of a sequence: big-endian, so byte order is numeric order.
pub(crate) fn key(sequence: Sequence) -> [u8; 8] {
    sequence.to_be_bytes()
}

/// The sequence of a key, or `None` when the key is not 8 bytes.
pub(crate) fn sequence_of_key(key: &[u8]) -> Option<Sequence> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// `blake3(prev ‖ sequence ‖ payload)`.
pub(crate) fn chain_hash(prev: &Hash, sequence: Sequence, payload: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(&sequence.to_be_bytes());
    hasher.update(payload);
    *hasher.finalize().as_bytes()
}

/// Frames `payload` as record `sequence` following a record whose chain hash is `prev`;
/// returns the frame and the new record's chain hash.
pub(crate) fn encode_record(
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
pub(crate) struct Frame<'a> {
    pub(crate) hash: Hash,
    pub(crate) payload: &'a [u8],
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset + N).and_then(|s| <[u8; N]>::try_from(s).ok())
}

/// Checks the frame stored under `key`: size, format version, length, checksum, and that
/// the frame names the sequence it is stored under.
pub(crate) fn decode_record(key: Sequence, bytes: &[u8]) -> Result<Frame<'_>, JournalError> {
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

/// Checks that `frame`, stored as record `sequence`, chains to `prev`.
pub(crate) fn check_chain(sequence: Sequence, prev: &Hash, frame: &Frame<'_>) -> Result<(), JournalError> {
    if chain_hash(prev, sequence, frame.payload) == frame.hash {
        Ok(())
    } else {
        Err(corrupt(sequence, Corruption::BrokenChain))
    }
}

/// Encodes a fact as a record payload.
pub(crate) fn encode_fact(fact: &Fact) -> Result<Vec<u8>, JournalError> {
    postcard::to_allocvec(fact).map_err(|e| JournalError::Encode { reason: e.to_string() })
}

/// Decodes the payload of record `sequence`. Trailing bytes and facts of a newer schema
/// are refused rather than half-understood.
pub(crate) fn decode_fact(sequence: Sequence, payload: &[u8]) -> Result<Fact, JournalError> {
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

/// The checksummed head metadata value.
pub(crate) fn encode_head(sequence: Sequence, hash: &Hash) -> [u8; HEAD_LEN] {
    let mut out = [0u8; HEAD_LEN];
    out[..8].copy_from_slice(&sequence.to_be_bytes());
    out[8..40].copy_from_slice(hash);
    let crc = crc32c::crc32c(&out[..40]);
    out[40..].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes the head metadata value. `Err` carries the reason it is unreadable.
pub(crate) fn decode_head(bytes: &[u8]) -> Result<(Sequence, Hash), String> {
    if bytes.len() != HEAD_LEN {
        return Err(format!("head metadata is {} bytes, expected {HEAD_LEN}", bytes.len()));
    }
    let (Some(sequence), Some(hash), Some(crc), Some(covered)) =
        (array::<8>(bytes, 0), array::<32>(bytes, 8), array::<4>(bytes, 40), bytes.get(..40))
    else {
        return Err("head metadata is truncated".to_owned());
    };
    if crc32c::crc32c(covered) != u32::from_be_bytes(crc) {
        return Err("head metadata checksum mismatch".to_owned());
    }
    Ok((u64::from_be_bytes(sequence), hash))
}

/// Decodes the format version metadata value.
pub(crate) fn decode_format(bytes: &[u8]) -> Result<u16, String> {
    array::<2>(bytes, 0)
        .filter(|_| bytes.len() == 2)
        .map(u16::from_be_bytes)
        .ok_or_else(|| format!("format version metadata is {} bytes, expected 2", bytes.len()))
}

fn snapshot_crc(sequence: Sequence, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&sequence.to_be_bytes()), bytes)
}

/// Frames a snapshot taken at `sequence`.
pub(crate) fn encode_snapshot(sequence: Sequence, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + bytes.len());
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&snapshot_crc(sequence, bytes).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Checks and unframes the snapshot stored under `sequence`.
pub(crate) fn decode_snapshot(sequence: Sequence, value: &[u8]) -> Result<Vec<u8>, JournalError> {
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
    use crate::layout::GENESIS_HASH;
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
    fn head_and_snapshot_round_trip_and_detect_flips() {
        let head = encode_head(42, &[9; 32]);
        assert_eq!(decode_head(&head).unwrap(), (42, [9; 32]));
        let mut bad = head;
        bad[3] ^= 1;
        assert!(decode_head(&bad).is_err());
        let snap = encode_snapshot(7, b"state");
        assert_eq!(decode_snapshot(7, &snap).unwrap(), b"state");
        assert!(decode_snapshot(8, &snap).is_err());
        assert_eq!(decode_format(&[0, 1]).unwrap(), 1);
        assert!(decode_format(&[0, 1, 2]).is_err());
    }
}
