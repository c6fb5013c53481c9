//! Forwarding tables for the vrouter data plane.
//!
//! Contract:
//! - [`LpmTable`] is a longest-prefix-match table for IPv4 (`u32` keys) and IPv6
//!   (`u128` keys); lookups never allocate and never fail except by returning `None`.
//! - [`NextHop`] says what happens to a routed packet (deliver to a local interface,
//!   hand to the vrouter itself, discard).
//! - [`Snapshot`] is the complete, immutable forwarding state (interfaces, VRFs with
//!   their route tables, next hops). The control side builds a new one for every
//!   change and publishes it atomically; forwarding workers only ever read it. A
//!   [`RoutePatch`] brings a copy of it forward when only routes changed.
//! - [`Snapshot::decision_holds`] tells whether a flow's cached decision survives the
//!   publications since it was made (route slots and their stamps, see [`Route`]).
//!
//! This crate has no unsafe code and no I/O.
#![forbid(unsafe_code)]

pub mod ecmp;
pub mod encap;
mod floating;
mod ids;
mod lpm;
mod nexthop;
pub mod policy;
mod route;
pub mod service;
mod snapshot;
pub mod snat;

pub use floating::{FloatingEntry, FloatingIps};
pub use lpm::{v4_key, v6_key, LpmKey, LpmTable};
pub use nexthop::{NextHop, NextHopId};
pub use policy::Policies;
pub use route::{Route, RouteSlot, MAX_ROUTE_SLOTS, VOLATILE_SLOT};
pub use service::{Nat, NatAddr, NatSide, NatTarget, NatWord, ServiceEntry, ServiceKey, Services, V4OneEnd};
pub use snapshot::{
    Composite, FabricInfo, FastMap, HostPort, Interface, InterfaceKind, MacAddr, RoutePatch, ServiceChain, Snapshot,
    Vif, VlanTag, Vrf, VrfId,
};
pub use snat::{PortRange, Snat, SnatRanges};
