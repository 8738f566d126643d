#![no_main]
// See `reconf_fuzz::choreo_spec` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::choreo_spec(data));
