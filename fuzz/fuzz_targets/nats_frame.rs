#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_backends::fuzzing::nats_frame(data));
