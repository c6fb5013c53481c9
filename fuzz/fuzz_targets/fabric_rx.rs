//! Fuzzes the fabric receive path: any frame arriving on the fabric goes through the
//! whole pipeline (outer parse, label / VNI lookup, the label's VRF check, inner
//! parse, delivery). It must never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use vrouter::packet::PipelineContext;

fuzz_target!(|data: &[u8]| {
    let mut ctx = PipelineContext::default();
    common::run_frame(0, data, &mut ctx);
});
