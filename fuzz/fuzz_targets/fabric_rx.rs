//! Fuzzes the fabric receive path: any frame arriving on the fabric goes through the
//! whole pipeline (outer parse, label / VNI lookup, the label's VRF check, inner
//! parse, delivery). It must never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use vrouter::packet::PipelineContext;

thread_local! {
    // Kept across inputs, as a worker keeps it: later inputs hit flows earlier ones made.
    static CTX: RefCell<PipelineContext> = RefCell::new(PipelineContext::default());
}

fuzz_target!(|data: &[u8]| {
    CTX.with(|ctx| common::run_frame(0, data, &mut ctx.borrow_mut()));
});
