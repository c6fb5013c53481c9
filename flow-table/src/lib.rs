//! Lock-free flow table shared by all forwarding workers.
//!
//! Contract:
//! - [`FlowTable::lookup`] never blocks and never allocates; it returns a consistent
//!   copy of an entry or `None`. [`FlowTable::lookup_batch`] hashes and prefetches a
//!   batch before probing.
//! - [`FlowTable::insert_pair`] creates the forward and reverse entries of a flow,
//!   linked to each other, with CAS on index slots and no lock anywhere. A key is
//!   never present twice once concurrent inserts of it have returned; the loser gets
//!   [`Insert::Exists`]. A full table returns [`Insert::Full`] and changes nothing.
//! - Deleted entries are recycled, never unmapped; a sequence number in every entry
//!   lets readers detect a change or reuse under them (seqlock + generation scheme).
//! - Memory is allocated once, at creation: about 100 bytes per entry (see
//!   [`FlowTable::memory_bytes`]).
//!
//! The table stores an opaque decision word per entry; the vrouter encodes its
//! forwarding, NAT, policy and ECMP decisions in it.
#![deny(unsafe_code)]

mod key;
mod memory;
#[allow(unsafe_code)]
mod prefetch;
mod sync;
mod table;

pub use key::FlowKey;
pub use table::{FlowActivity, FlowRef, FlowTable, FlowValue, Insert, TableStats};

#[cfg(all(test, not(loom)))]
mod tests;
