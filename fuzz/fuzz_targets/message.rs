#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_backends::fuzzing::message(data));
