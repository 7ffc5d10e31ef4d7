//! Fuzz target: the PVH kernel image validator (`xsstate::pvh::parse`) and `flatten`.
#![no_main]

#[path = "common/pvh_image.rs"]
mod pvh_image;

libfuzzer_sys::fuzz_target!(|data: &[u8]| pvh_image::pvh_image(data));
