//! The xenstore engine: a pure state machine with no I/O.
#![no_std]
#![forbid(unsafe_code)]
extern crate alloc;
