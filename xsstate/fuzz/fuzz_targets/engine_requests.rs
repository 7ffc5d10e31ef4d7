//! Fuzz target: request sequences from dom0 sockets and guest domains through the engine.
#![no_main]

#[path = "common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::engine_requests(data));
