//! The RocksDB-specific encodings: keys, the head metadata and the format value. Record
//! frames and snapshot values come from the shared [`reconf_effects::codec`].
//!
//! Everything here is pure: bytes in, typed results out. Nothing panics on bad input.

pub(crate) use reconf_effects::codec::{
    check_chain, corrupt, decode_fact, decode_record, decode_snapshot, encode_fact, encode_record,
    encode_snapshot, metadata, Hash,
};
use reconf_effects::Sequence;

const HEAD_LEN: usize = 8 + 32 + 4;

/// The RocksDB key of a sequence: big-endian, so byte order is numeric order.
pub(crate) fn key(sequence: Sequence) -> [u8; 8] {
    sequence.to_be_bytes()
}

/// The sequence of a key, or `None` when the key is not 8 bytes.
pub(crate) fn sequence_of_key(key: &[u8]) -> Option<Sequence> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset + N).and_then(|s| <[u8; N]>::try_from(s).ok())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn head_round_trips_and_detects_flips() {
        let head = encode_head(42, &[9; 32]);
        assert_eq!(decode_head(&head).unwrap(), (42, [9; 32]));
        let mut bad = head;
        bad[3] ^= 1;
        assert!(decode_head(&bad).is_err());
        assert_eq!(decode_format(&[0, 1]).unwrap(), 1);
        assert!(decode_format(&[0, 1, 2]).is_err());
    }

    #[test]
    fn keys_are_big_endian_sequences() {
        assert_eq!(sequence_of_key(&key(0x0102)), Some(0x0102));
        assert_eq!(key(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(sequence_of_key(b"short"), None);
    }
}
