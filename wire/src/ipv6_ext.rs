//! IPv6 extension headers (RFC 8200 section 4): where a packet's upper-layer header
//! is, past hop-by-hop, routing, fragment, destination options and authentication
//! headers, and the fragment header's fields. The walk is etherparse's; a packet
//! without extension headers (nearly every one) never reaches it.

/// The fragment header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The datagram's identification.
    pub ident: u32,
    /// Offset of this fragment's data, in 8-octet units (0: the first fragment).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// The header after the fragment header: the same in every fragment of the
    /// datagram (the upper layer, or an extension header of the fragmentable part,
    /// which only the first fragment carries).
    pub next_header: u8,
}

impl Fragment {
    /// True for a fragment other than the first (it carries no upper-layer header).
    pub fn is_later(&self) -> bool {
        self.offset != 0
    }
}

/// Where an IPv6 packet's upper-layer header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Its protocol (the last next-header value). For a later fragment, the
    /// fragment header's next header: its data is no header at all.
    pub proto: u8,
    /// Its offset in the payload (the bytes of the extension headers before it).
    pub offset: usize,
    /// The fragment header, if the packet is a fragment (offset or more set).
    pub fragment: Option<Fragment>,
}

/// Extension headers walked at most: more is an attack, not a packet.
const MAX_EXTENSION_HEADERS: usize = 8;

/// True for the next-header values of the extension headers walked here.
#[inline(always)]
pub fn is_extension(next_header: u8) -> bool {
    matches!(next_header, 0 | 43 | 44 | 51 | 60)
}

/// The upper layer of a payload that starts with `next_header`; `None` if its
/// extension headers are malformed or cut short (hop-by-hop not first, a length past
/// the end, more than eight of them).
#[inline(always)]
pub fn upper_layer(next_header: u8, payload: &[u8]) -> Option<UpperLayer> {
    if !is_extension(next_header) {
        return Some(UpperLayer {
            proto: next_header,
            offset: 0,
            fragment: None,
        });
    }
    walk(next_header, payload)
}

/// The walk, header by header (etherparse's slices read each one), stopping at a
/// later fragment's fragment header: what follows it is data.
#[cold]
fn walk(first: u8, payload: &[u8]) -> Option<UpperLayer> {
    use etherparse::{IpAuthHeaderSlice, Ipv6FragmentHeaderSlice, Ipv6RawExtHeaderSlice};
    let (mut next, mut offset, mut fragment) = (first, 0usize, None);
    for n in 0..MAX_EXTENSION_HEADERS {
        let rest = payload.get(offset..)?;
        let (len, after) = match next {
            0 if n > 0 => return None,
            0 | 43 | 60 => {
                let h = Ipv6RawExtHeaderSlice::from_slice(rest).ok()?;
                (h.slice().len(), h.next_header().0)
            }
            51 => {
                let h = IpAuthHeaderSlice::from_slice(rest).ok()?;
                (h.slice().len(), h.next_header().0)
            }
            44 => {
                let f = Ipv6FragmentHeaderSlice::from_slice(rest).ok()?;
                let after = f.next_header().0;
                if f.is_fragmenting_payload() {
                    let this = Fragment {
                        ident: f.identification(),
                        offset: f.fragment_offset().value(),
                        more: f.more_fragments(),
                        next_header: after,
                    };
                    fragment = Some(this);
                    if this.is_later() {
                        return Some(UpperLayer {
                            proto: after,
                            offset: offset + f.slice().len(),
                            fragment,
                        });
                    }
                }
                (f.slice().len(), after)
            }
            proto => {
                return Some(UpperLayer {
                    proto,
                    offset,
                    fragment,
                })
            }
        };
        offset += len;
        next = after;
    }
    // The last header walked may have been followed by the upper layer.
    (!is_extension(next)).then_some(UpperLayer {
        proto: next,
        offset,
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6FragmentHeader, Ipv6RawExtHeader};

    #[test]
    fn the_upper_layer_is_found_past_every_extension_header() {
        let udp = [0x12, 0x34, 0x00, 0x35, 0, 8, 0, 0];
        assert_eq!(
            upper_layer(17, &udp),
            Some(UpperLayer {
                proto: 17,
                offset: 0,
                fragment: None
            })
        );
        // Destination options (8 bytes), then a fragment header, then UDP.
        let options = Ipv6RawExtHeader::new_raw(IpNumber::IPV6_FRAGMENTATION_HEADER, &[0; 6]).unwrap();
        let fragment = Ipv6FragmentHeader::new(IpNumber::UDP, 0.try_into().unwrap(), true, 0xdead_beef);
        let mut payload = options.to_bytes().to_vec();
        payload.extend_from_slice(&fragment.to_bytes());
        payload.extend_from_slice(&udp);
        let found = upper_layer(60, &payload).unwrap();
        assert_eq!((found.proto, found.offset), (17, 16));
        assert_eq!(
            found.fragment,
            Some(Fragment {
                ident: 0xdead_beef,
                offset: 0,
                more: true,
                next_header: 17
            })
        );
        assert!(!found.fragment.unwrap().is_later());
        // A later fragment: offset 185 (1480 bytes).
        let later = Ipv6FragmentHeader::new(IpNumber::UDP, 185.try_into().unwrap(), false, 7);
        let found = upper_layer(44, &later.to_bytes()).unwrap();
        assert_eq!(found.fragment.map(|f| (f.is_later(), f.ident)), Some((true, 7)));
        // A later fragment of a datagram with destination options after its
        // fragment header: its data is not read as one.
        let later = Ipv6FragmentHeader::new(IpNumber(60), 3.try_into().unwrap(), false, 8);
        let mut data = later.to_bytes().to_vec();
        data.extend_from_slice(&[0, 200, 1, 2, 3, 4, 5, 6]);
        let found = upper_layer(44, &data).unwrap();
        assert_eq!((found.proto, found.offset), (60, 8));
        assert_eq!(found.fragment.map(|f| (f.is_later(), f.next_header)), Some((true, 60)));
        // Cut short, and hop-by-hop where it may not be.
        assert_eq!(upper_layer(60, &payload[..5]), None);
        let hop = Ipv6RawExtHeader::new_raw(IpNumber::IPV6_HEADER_HOP_BY_HOP, &[0; 6]).unwrap();
        assert_eq!(upper_layer(60, &hop.to_bytes()), None);
    }
}
