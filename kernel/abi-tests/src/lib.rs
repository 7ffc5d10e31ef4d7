//! The stub kernel's pure Xen ABI code, compiled for the host so that it can be tested: the
//! kernel crate is a `no_std`, `no_main` binary with `test = false`, so its files that need no
//! hypercall (`kernel/src/xen/domctl_abi.rs`, `kernel/src/xen/ring_intro.rs`) are included
//! here by path, the very files the kernel builds. The tests are in `tests/`.
#![no_std]

#[path = "../../src/xen/domctl_abi.rs"]
pub mod domctl_abi;

#[path = "../../src/xen/ring_intro.rs"]
pub mod ring_intro;
