//! Fuzzes what a pod can send: the first byte picks the sending pod, the rest is a
//! frame through the whole pipeline (anti-spoofing, ARP / ND / echo answers, flow
//! setup and hits, MTU, encapsulation, ICMP errors). The flow table persists across
//! inputs, as it does in a worker, so later inputs hit flows earlier ones made. It
//! must never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use vrouter::packet::PipelineContext;

thread_local! {
    static CTX: RefCell<PipelineContext> = RefCell::new(PipelineContext::default());
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let vif = u32::from(pick % 4); // 1..=3 are pods, 0 the fabric
    CTX.with(|ctx| common::run_frame(vif, frame, &mut ctx.borrow_mut()));
});
