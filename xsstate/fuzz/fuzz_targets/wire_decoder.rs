//! Fuzz target: arbitrary bytes in arbitrary chunkings through the wire decoder.
#![no_main]

#[path = "common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::wire_decoder(data));
