//! Helpers shared by the integration tests: facts, journals and raw database access.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use reconf_core::{AuthorityId, Change, Fact, SessionId};
use reconf_store_rocksdb::layout::{
    FORMAT_VERSION, META_CF, RECORDS_CF, RECORD_CHECKSUM_OFFSET, RECORD_HASH_OFFSET, RECORD_HEADER_LEN,
    SNAPSHOTS_CF,
};
use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions};
use rocksdb::{Options, DB};

/// A small fact identified by `n` (its session id).
pub fn fact(n: u128) -> Fact {
    Fact::new(Change::SessionClosed { session: SessionId::from_u128(n), authority: AuthorityId([3; 32]) })
}

/// The `n` a fact built by [`fact`] carries.
pub fn fact_id(fact: &Fact) -> u128 {
    match &fact.change {
        Change::SessionClosed { session, .. } => session.as_uuid().as_u128(),
        other => panic!("unexpected fact {other:?}"),
    }
}

pub fn open(path: &Path) -> RocksJournal {
    RocksJournal::open(path, RocksJournalOptions::default()).expect("open journal")
}

/// Opens the journal's database with plain RocksDB (the journal must be closed).
pub fn raw(path: &Path) -> DB {
    DB::open_cf(&Options::default(), path, [RECORDS_CF, META_CF, SNAPSHOTS_CF]).expect("open raw db")
}

pub fn key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

pub fn get_record(db: &DB, sequence: u64) -> Vec<u8> {
    db.get_cf(db.cf_handle(RECORDS_CF).unwrap(), key(sequence)).unwrap().expect("record present")
}

pub fn put_record(db: &DB, sequence: u64, value: &[u8]) {
    db.put_cf(db.cf_handle(RECORDS_CF).unwrap(), key(sequence), value).unwrap();
}

pub fn delete_record(db: &DB, sequence: u64) {
    db.delete_cf(db.cf_handle(RECORDS_CF).unwrap(), key(sequence)).unwrap();
}

/// The chain hash stored in a frame.
pub fn stored_hash(frame: &[u8]) -> [u8; 32] {
    frame[RECORD_HASH_OFFSET..RECORD_HASH_OFFSET + 32].try_into().unwrap()
}

/// An independent implementation of the documented frame layout (see `layout`), so the
/// tests also pin the format down: version ‖ length ‖ sequence ‖ hash ‖ crc32c ‖ payload.
pub fn frame(version: u16, sequence: u64, hash: [u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&hash);
    assert_eq!(out.len(), RECORD_CHECKSUM_OFFSET);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_be_bytes());
    assert_eq!(out.len(), RECORD_HEADER_LEN);
    out.extend_from_slice(payload);
    out
}

/// `blake3(prev ‖ sequence ‖ payload)`.
pub fn chain(prev: &[u8; 32], sequence: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&sequence.to_be_bytes());
    h.update(payload);
    *h.finalize().as_bytes()
}

pub fn payload(fact: &Fact) -> Vec<u8> {
    postcard::to_allocvec(fact).unwrap()
}

pub const V: u16 = FORMAT_VERSION;
