//! Kubernetes Ingress the way Contrail runs it: an haproxy L7 load balancer per
//! ingress, in a network namespace attached to the vrouter as a local interface
//! holding the VIP, on two nodes in active-standby.
//!
//! Contract:
//! - [`haproxy::config`] is pure: an [`IngressSpec`](control_client::IngressSpec)
//!   gives the same configuration, byte for byte (golden-tested, checked with
//!   `haproxy -c`).
//! - [`instance`] sets an instance up on this node (namespace, veth, haproxy in
//!   master-worker mode), reloads, probes and removes it; names derive from the
//!   ingress's name, so what a crashed run left is found and replaced. The daemon
//!   decides when (its supervisor), and attaches the veth's host end as a port.
#![forbid(unsafe_code)]

pub mod haproxy;
pub mod instance;
