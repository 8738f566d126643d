//! The keys and values under the journal's prefix, published so tools and tests can
//! inspect a journal with plain etcd. Every integer is big-endian.
//!
//! | key | value |
//! |---|---|
//! | `{prefix}/format` | the store's format version (`u16`) |
//! | `{prefix}/head` | head sequence (`u64`) ‖ chain hash at head (32) ‖ id of the commit that wrote it (16) ‖ crc32c of the 56 bytes before it (`u32`) |
//! | `{prefix}/r/{last}` | one commit's records (a *chunk*, below), keyed by its last sequence |
//! | `{prefix}/s/{sequence}` | a snapshot's manifest (below) |
//! | `{prefix}/p/{sequence}/{write}/{part}` | the parts of a snapshot's bytes |
//! | `{prefix}/o/{session}` | a live session's owner record (the runtime's encoding), bound to its node's lease |
//!
//! `{last}`, `{sequence}` and `{part}` are 16 lower-case hex digits, so key order is numeric
//! order; `{write}` is the 32 hex digits of the snapshot write's id.
//!
//! # Chunk
//!
//! A commit is one etcd transaction that writes one chunk and the head, so a commit is
//! never split and etcd's 128-operations-per-transaction limit never applies. Keying by the
//! *last* sequence means a range read from `r/{n}` meets the chunk holding `n` first.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | format version ([`FORMAT_VERSION`]) |
//! | 2 | 16 | id of the commit |
//! | 18 | 8 | first sequence |
//! | 26 | 4 | number of records `n` |
//! | 30 | 4 | crc32c of bytes `0..30` |
//! | 34 | … | `n` times: frame length (`u32`) ‖ a record frame of [`reconf_effects::codec`] |
//!
//! # Snapshot manifest
//!
//! id of the write (16) ‖ number of parts (`u32`) ‖ a snapshot header of
//! [`reconf_effects::codec`] over the whole bytes (version, crc bound to the sequence). A
//! snapshot is larger than one etcd request may be, so its parts are written first (in as
//! many transactions as needed) and the manifest last: a reader that sees the manifest sees
//! every part.

use reconf_effects::codec::{self, Hash, GENESIS_HASH};
use reconf_effects::{JournalError, Sequence};

pub use reconf_effects::codec::FORMAT_VERSION;

/// The id a commit writes into its chunk and the head, to recognise its own write when
/// the reply was lost.
pub type CommitId = [u8; 16];

const HEAD_LEN: usize = 8 + 32 + 16 + 4;
const CHUNK_HEADER_LEN: usize = 34;
const MANIFEST_LEN: usize = 16 + 4 + codec::SNAPSHOT_HEADER_LEN;

/// The keys of one journal.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_end_matches('/').to_owned() }
    }

    pub(crate) fn format(&self) -> String {
        format!("{}/format", self.prefix)
    }

    pub(crate) fn head(&self) -> String {
        format!("{}/head", self.prefix)
    }

    pub(crate) fn records(&self) -> String {
        format!("{}/r/", self.prefix)
    }

    pub(crate) fn chunk(&self, last: Sequence) -> String {
        format!("{}/r/{last:016x}", self.prefix)
    }

    pub(crate) fn owners(&self) -> String {
        format!("{}/o/", self.prefix)
    }

    pub(crate) fn owner(&self, session: &reconf_core::SessionId) -> String {
        format!("{}/o/{session}", self.prefix)
    }

    /// The session a live-owner key names.
    pub(crate) fn owner_session(&self, key: &[u8]) -> Option<reconf_core::SessionId> {
        std::str::from_utf8(key).ok()?.strip_prefix(&self.owners())?.parse().ok()
    }

    pub(crate) fn manifests(&self) -> String {
        format!("{}/s/", self.prefix)
    }

    pub(crate) fn manifest(&self, sequence: Sequence) -> String {
        format!("{}/s/{sequence:016x}", self.prefix)
    }

    pub(crate) fn parts_of(&self, sequence: Sequence) -> String {
        format!("{}/p/{sequence:016x}/", self.prefix)
    }

    pub(crate) fn parts(&self, sequence: Sequence, write: &CommitId) -> String {
        format!("{}{}/", self.parts_of(sequence), hex(write))
    }

    pub(crate) fn part(&self, sequence: Sequence, write: &CommitId, part: u64) -> String {
        format!("{}{part:016x}", self.parts(sequence, write))
    }

    /// The sequence in a chunk or manifest key.
    pub(crate) fn sequence_in(&self, key: &[u8], under: &str) -> Option<Sequence> {
        let digits = key.strip_prefix(under.as_bytes())?;
        let digits = std::str::from_utf8(digits).ok()?;
        (digits.len() == 16).then(|| u64::from_str_radix(digits, 16).ok()).flatten()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset + N).and_then(|s| <[u8; N]>::try_from(s).ok())
}

/// The journal's head as stored: sequence 0 (with the genesis hash) is an empty journal
/// whose head was fenced by an ambiguous commit's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) sequence: Sequence,
    pub(crate) hash: Hash,
    pub(crate) commit: CommitId,
}

impl Head {
    pub(crate) fn fenced_empty(commit: CommitId) -> Self {
        Self { sequence: 0, hash: GENESIS_HASH, commit }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_LEN);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.commit);
        out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, JournalError> {
        let bad = |what: &str| codec::metadata(0, format!("head: {what}"));
        if bytes.len() != HEAD_LEN {
            return Err(bad(&format!("{} bytes, expected {HEAD_LEN}", bytes.len())));
        }
        let (Some(sequence), Some(hash), Some(commit), Some(crc), Some(covered)) = (
            array::<8>(bytes, 0),
            array::<32>(bytes, 8),
            array::<16>(bytes, 40),
            array::<4>(bytes, 56),
            bytes.get(..56),
        ) else {
            return Err(bad("truncated"));
        };
        if crc32c::crc32c(covered) != u32::from_be_bytes(crc) {
            return Err(bad("checksum mismatch"));
        }
        Ok(Self { sequence: u64::from_be_bytes(sequence), hash, commit })
    }
}

/// Encodes the format version value.
pub(crate) fn encode_format(version: u16) -> Vec<u8> {
    version.to_be_bytes().to_vec()
}

/// Decodes the format version value.
pub(crate) fn decode_format(bytes: &[u8]) -> Result<u16, JournalError> {
    array::<2>(bytes, 0)
        .filter(|_| bytes.len() == 2)
        .map(u16::from_be_bytes)
        .ok_or_else(|| codec::metadata(0, format!("format version is {} bytes, expected 2", bytes.len())))
}

/// One commit's records, framed, and the chain hash after its last.
pub(crate) struct EncodedChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) hash: Hash,
}

/// Frames `payloads` as records `first..` after a record with chain hash `prev`.
pub(crate) fn encode_chunk(
    commit: &CommitId,
    first: Sequence,
    prev: &Hash,
    payloads: &[Vec<u8>],
) -> Result<EncodedChunk, JournalError> {
    let count = u32::try_from(payloads.len())
        .map_err(|_| JournalError::Encode { reason: format!("{} facts in one commit", payloads.len()) })?;
    let size: usize = payloads.iter().map(|p| p.len() + codec::RECORD_HEADER_LEN + 4).sum();
    let mut bytes = Vec::with_capacity(CHUNK_HEADER_LEN + size);
    bytes.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    bytes.extend_from_slice(commit);
    bytes.extend_from_slice(&first.to_be_bytes());
    bytes.extend_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let mut hash = *prev;
    for (payload, sequence) in payloads.iter().zip(first..) {
        let (frame, next) = codec::encode_record(sequence, &hash, payload)?;
        let len = u32::try_from(frame.len())
            .map_err(|_| JournalError::Encode { reason: format!("a record of {} bytes", frame.len()) })?;
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&frame);
        hash = next;
    }
    Ok(EncodedChunk { bytes, hash })
}

/// A chunk whose header was checked, with its frames (each still to be checked).
#[derive(Debug)]
pub(crate) struct Chunk<'a> {
    pub(crate) commit: CommitId,
    pub(crate) first: Sequence,
    pub(crate) frames: Vec<&'a [u8]>,
}

/// Checks the chunk stored under the key of sequence `last`: header, checksum, that the
/// frames fill it exactly, and that its last sequence is the one its key names.
pub(crate) fn decode_chunk(last: Sequence, bytes: &[u8]) -> Result<Chunk<'_>, JournalError> {
    let bad = || codec::corrupt(last, reconf_effects::Corruption::BadFrame);
    let version = u16::from_be_bytes(array(bytes, 0).ok_or_else(bad)?);
    if version != FORMAT_VERSION {
        return Err(codec::corrupt(last, reconf_effects::Corruption::UnknownFormatVersion { version }));
    }
    let (Some(commit), Some(first), Some(count), Some(crc), Some(covered)) = (
        array::<16>(bytes, 2),
        array::<8>(bytes, 18),
        array::<4>(bytes, 26),
        array::<4>(bytes, 30),
        bytes.get(..30),
    ) else {
        return Err(bad());
    };
    if crc32c::crc32c(covered) != u32::from_be_bytes(crc) {
        return Err(codec::corrupt(last, reconf_effects::Corruption::ChecksumMismatch));
    }
    let first = u64::from_be_bytes(first);
    let count = u32::from_be_bytes(count);
    if count == 0 || first.checked_add(u64::from(count) - 1) != Some(last) {
        return Err(codec::corrupt(first, reconf_effects::Corruption::KeyMismatch { key: last }));
    }
    let mut frames = Vec::with_capacity(count as usize);
    let mut at = CHUNK_HEADER_LEN;
    for _ in 0..count {
        let len = u32::from_be_bytes(array(bytes, at).ok_or_else(bad)?) as usize;
        let frame = bytes.get(at + 4..at + 4 + len).ok_or_else(bad)?;
        frames.push(frame);
        at += 4 + len;
    }
    if at != bytes.len() {
        return Err(bad());
    }
    Ok(Chunk { commit, first, frames })
}

/// A snapshot manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) write: CommitId,
    pub(crate) parts: u32,
    /// The codec's snapshot header over the whole bytes.
    pub(crate) header: Vec<u8>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MANIFEST_LEN);
        out.extend_from_slice(&self.write);
        out.extend_from_slice(&self.parts.to_be_bytes());
        out.extend_from_slice(&self.header);
        out
    }

    pub(crate) fn decode(sequence: Sequence, bytes: &[u8]) -> Result<Self, JournalError> {
        let (Some(write), Some(parts), Some(header), true) =
            (array::<16>(bytes, 0), array::<4>(bytes, 16), bytes.get(20..), bytes.len() == MANIFEST_LEN)
        else {
            return Err(codec::metadata(sequence, format!("snapshot manifest at {sequence} is malformed")));
        };
        Ok(Self { write, parts: u32::from_be_bytes(parts), header: header.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn head_round_trips_and_every_flip_is_caught() {
        let head = Head { sequence: 42, hash: [7; 32], commit: [3; 16] };
        let bytes = head.encode();
        assert_eq!(Head::decode(&bytes).unwrap(), head);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(Head::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert!(Head::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn chunks_round_trip_and_chain() {
        let payloads = vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()];
        let chunk = encode_chunk(&[1; 16], 5, &[9; 32], &payloads).unwrap();
        let decoded = decode_chunk(7, &chunk.bytes).unwrap();
        assert_eq!((decoded.commit, decoded.first, decoded.frames.len()), ([1; 16], 5, 3));
        let mut prev = [9; 32];
        for (frame, sequence) in decoded.frames.iter().zip(5..) {
            let frame = codec::decode_record(sequence, frame).unwrap();
            codec::check_chain(sequence, &prev, &frame).unwrap();
            prev = frame.hash;
        }
        assert_eq!(prev, chunk.hash);
    }

    #[test]
    fn a_chunk_under_the_wrong_key_or_damaged_is_refused() {
        let chunk = encode_chunk(&[1; 16], 5, &[9; 32], &[b"x".to_vec(), b"y".to_vec()]).unwrap();
        assert!(decode_chunk(7, &chunk.bytes).is_err());
        for len in 0..chunk.bytes.len() {
            assert!(decode_chunk(6, &chunk.bytes[..len]).is_err(), "truncation to {len} accepted");
        }
        for i in 0..CHUNK_HEADER_LEN {
            let mut bad = chunk.bytes.clone();
            bad[i] ^= 0x04;
            assert!(decode_chunk(6, &bad).is_err(), "header flip at {i} accepted");
        }
    }

    #[test]
    fn keys_sort_numerically_and_parse_back() {
        let keys = Keys::new("/reconf/");
        assert_eq!(keys.chunk(255), "/reconf/r/00000000000000ff");
        assert!(keys.chunk(9) < keys.chunk(10));
        assert_eq!(keys.sequence_in(keys.chunk(300).as_bytes(), &keys.records()), Some(300));
        assert_eq!(keys.sequence_in(b"/reconf/r/zz", &keys.records()), None);
        assert_eq!(
            keys.part(1, &[0xab; 16], 2),
            format!("/reconf/p/0000000000000001/{}/0000000000000002", "ab".repeat(16))
        );
    }
}
