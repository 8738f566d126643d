#![no_main]
// See `reconf_fuzz::etcd_layout` for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| reconf_fuzz::etcd_layout(data));
