#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrodns_fuzz::template(data));
