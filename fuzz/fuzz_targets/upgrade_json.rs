#![no_main]
// See `reconf_fuzz::upgrade_json` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::upgrade_json(data));
