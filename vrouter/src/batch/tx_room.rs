//! The room before a frame sent from a UMEM registered with transmit metadata: every
//! frame starts at least [`TX_METADATA_LEN`] bytes into its chunk, and a TCP or UDP
//! packet's room asks the kernel to finish its checksum
//! ([`crate::packet::tx_checksum`]).

use crate::packet;
use xsk::{request_tx_checksum, TX_METADATA_LEN};

/// Readies the packet at `offset` (`len` bytes) in `chunk` to leave from a UMEM with
/// transmit metadata: at least [`TX_METADATA_LEN`] bytes into its chunk (a packet an
/// answer grew to the chunk's start moves back), and, if `finish`, its TCP or UDP
/// checksum asked to be finished (`encapsulated`: the inner packet's). Its offset
/// then and whether it asks; `None` if the chunk has no room for it.
#[inline]
pub(super) fn with_metadata_room(
    chunk: &mut [u8],
    offset: usize,
    len: usize,
    finish: bool,
    encapsulated: bool,
) -> Option<(usize, bool)> {
    let offset = if offset >= TX_METADATA_LEN {
        offset
    } else {
        moved_for_metadata(chunk, offset, len)?
    };
    if !finish {
        return Some((offset, false));
    }
    let (room, packet) = chunk.split_at_mut(offset);
    let request = packet
        .get_mut(..len)
        .and_then(|p| packet::tx_checksum::prepare(p, encapsulated));
    let room = room.last_chunk_mut::<TX_METADATA_LEN>();
    match (request, room) {
        (Some(r), Some(room)) => {
            request_tx_checksum(room, r.start, r.offset);
            Some((offset, true))
        }
        _ => Some((offset, false)),
    }
}

/// Moves a packet that starts too near its chunk's start back by the metadata's
/// room; its new offset, `None` if the chunk cannot hold it there. Out of line:
/// received packets start 256 bytes in, so only an answer grown past that comes here.
#[cold]
#[inline(never)]
fn moved_for_metadata(chunk: &mut [u8], offset: usize, len: usize) -> Option<usize> {
    if TX_METADATA_LEN + len > chunk.len() {
        return None;
    }
    chunk.copy_within(offset..offset + len, TX_METADATA_LEN);
    Some(TX_METADATA_LEN)
}
