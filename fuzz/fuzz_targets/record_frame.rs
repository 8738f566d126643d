#![no_main]
// See `reconf_fuzz::record_frame` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::record_frame(data));
