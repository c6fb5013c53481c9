//! Packet views for the vrouter's data plane, in the smoltcp style.
//!
//! Contract:
//! - A view (`ipv4::Packet<T: AsRef<[u8]>>`, ...) wraps a buffer. `new_checked` checks
//!   that the buffer holds the whole header (and, where the header states a length,
//!   that the length is consistent); after it returns `Ok`, no accessor of that view
//!   panics. `new_unchecked` is for buffers the caller has already checked or has just
//!   written (its accessors panic on a short buffer, as slice indexing does).
//! - Setters exist when the buffer is also `AsMut<[u8]>`; the ones that change a
//!   covered field can keep the checksum right incrementally (RFC 1624).
//! - A `Repr` per protocol is its header as plain values, with `parse` (from a checked
//!   view) and `emit` (into a view of at least `header_len()` bytes):
//!   `parse(emit(r)) == r`.
//! - Errors are a `Copy` enum ([`Error`]): the data plane maps them to drop counters.
//!
//! Every field's offset is written once, here; the pipeline reads and writes headers
//! only through these views. No unsafe code, no dependencies.
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6_ext;
pub mod mpls;
pub mod ndp;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

/// Why a buffer is not a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header, or than the length the header states.
    Truncated,
    /// A field holds a value the format does not allow (version, header length, ...).
    Malformed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated header",
            Error::Malformed => "malformed header",
        })
    }
}

impl std::error::Error for Error {}

/// What `new_checked` and `parse` return.
pub type Result<T> = std::result::Result<T, Error>;

/// Internet protocol numbers (IANA) the vrouter handles.
pub mod ip_proto {
    /// ICMP (RFC 792).
    pub const ICMP: u8 = 1;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// GRE (RFC 2784).
    pub const GRE: u8 = 47;
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 fragment header (RFC 8200).
    pub const IPV6_FRAGMENT: u8 = 44;
    /// SCTP (RFC 9260).
    pub const SCTP: u8 = 132;
}
