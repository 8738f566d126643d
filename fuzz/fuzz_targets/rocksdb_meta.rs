#![no_main]
// See `reconf_fuzz::rocksdb_meta` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::rocksdb_meta(data));
