#![no_main]
// See `reconf_fuzz::state_snapshot` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::state_snapshot(data));
