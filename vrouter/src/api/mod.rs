//! The local API as the daemon serves it: the types of the `vrouter-api` crate
//! (re-exported here), flow filter matching, and the server.

mod server;

pub use server::{serve, ApiListener, ServerLimits};
pub use vrouter_api::*;

/// True if the flow `key` (in VRF `vrf`) matches `filter`.
pub fn flow_matches(filter: &FlowFilter, key: &flow_table::FlowKey, vrf: Option<&str>) -> bool {
    let (src, dst) = (key.src_addr(), key.dst_addr());
    filter.vrf.as_deref().is_none_or(|v| Some(v) == vrf)
        && filter.ip.is_none_or(|a| a == src || a == dst)
        && filter.src.is_none_or(|a| a == src)
        && filter.dst.is_none_or(|a| a == dst)
        && filter.proto.is_none_or(|p| p == key.proto())
        && filter.port.is_none_or(|p| p == key.src_port() || p == key.dst_port())
}
