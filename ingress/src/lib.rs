//! Kubernetes Ingress the way Contrail runs it: an haproxy L7 load balancer per
//! ingress, in a network namespace attached to the vrouter as a local interface
//! holding the VIP, on two nodes in active-standby.
//!
//! Contract:
//! - [`haproxy::config`] is pure: an [`IngressSpec`](control_client::IngressSpec)
//!   gives the same configuration, byte for byte (golden-tested, checked with
//!   `haproxy -c`).
#![forbid(unsafe_code)]

pub mod haproxy;
