//! The vrouter's local API, without the daemon: what the CLI, the CNI plugin, the lab
//! and the tests link.
//!
//! Contract:
//! - Transport: JSON lines over a Unix socket; one [`Request`] per line, one answer per
//!   line: `{"ok": VALUE}` or `{"error": MESSAGE, "code": CODE}`.
//! - Every answer value is a typed view of this crate ([`InterfaceView`],
//!   [`FlowView`], ...); nothing a caller needs is only in a message string.
//! - Every error carries an [`ErrorCode`] whose spelling is stable across releases
//!   (callers branch on it, never on the message).
//! - Lists that can grow with traffic or configuration are bounded per answer
//!   ([`MAX_FLOWS_PER_ANSWER`], [`MAX_ROUTES_PER_ANSWER`]) and paged.
//!
//! No unsafe code; no dependency on the daemon.
#![forbid(unsafe_code)]

mod client;
mod error;
mod request;
mod views;

pub use client::{ApiClient, ClientError};
pub use error::{ApiError, ErrorCode};
pub use request::{FlowFilter, Request, RouteCursor, DEFAULT_FLOW_LIMIT, MAX_FLOWS_PER_ANSWER, MAX_ROUTES_PER_ANSWER};
pub use views::{
    from_hex, to_hex, AttachedView, CapturedPacketView, CapturedPacketsView, ConfigInterfaceView, ConfigView,
    DropStatsView, FloatingIpView, FlowActionView, FlowNatView, FlowPolicyView, FlowRecordView, FlowRecordsView,
    FlowStatsView, FlowView, FragmentCounts, IngressBackendStats, IngressInstanceView, IngressView, InterfaceView,
    NextHopView, PolicyView, PortBindingView, RouteView, ServiceChainView, ServiceView, SnatPortsView, SnatView,
    StatusView, TunnelTotals, VifTotals, WorkerView, XmppChannelView,
};
