#![no_main]
// See `reconf_fuzz::ids` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::ids(data));
