//! # reconf-store-rocksdb
//!
//! The durable journal of reconf on RocksDB: framed, checksummed, hash-chained records,
//! group-committed with synced writes. It must not know about the manager.
#![forbid(unsafe_code)]
