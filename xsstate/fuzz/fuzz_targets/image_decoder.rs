//! Fuzz target: the migration-image reader (both layouts) and engine restore on arbitrary bytes.
#![no_main]

#[path = "common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::image_decoder(data));
