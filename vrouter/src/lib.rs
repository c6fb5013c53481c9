//! The vrouter: a userspace AF_XDP virtual router.
//!
//! Contract: this crate turns a [`config::Config`] into running forwarding workers
//! (one pinned thread per forwarding core, each owning its AF_XDP sockets and UMEM)
//! fed by forwarding snapshots that the control thread publishes. Packet processing
//! ([`packet`]) is pure and runs the same over AF_XDP or an in-memory port. Unsafe
//! code lives only in [`afxdp`].
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod afxdp;
pub mod api;
pub mod config;
pub mod control;
pub mod store;
pub mod datapath;
pub mod packet;
pub mod run;
pub mod stats;
pub mod worker;
