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
    /// Its protocol (the last next-header value).
    pub proto: u8,
    /// Its offset in the payload (the bytes of the extension headers before it).
    pub offset: usize,
    /// The fragment header, if the packet is a fragment (offset or more set).
    pub fragment: Option<Fragment>,
}

/// True for the next-header values of the extension headers walked here.
#[inline(always)]
pub fn is_extension(next_header: u8) -> bool {
    matches!(next_header, 0 | 43 | 44 | 51 | 60)
}

/// The upper layer of a payload that starts with `next_header`; `None` if its
/// extension headers are malformed or cut short (hop-by-hop not first, a length past
/// the end).
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

#[cold]
fn walk(next_header: u8, payload: &[u8]) -> Option<UpperLayer> {
    use etherparse::{Ipv6ExtensionSlice, Ipv6ExtensionsSlice};
    let (exts, proto, rest) = Ipv6ExtensionsSlice::from_slice(next_header.into(), payload).ok()?;
    let fragment = exts.into_iter().find_map(|e| match e {
        Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => Some(Fragment {
            ident: f.identification(),
            offset: f.fragment_offset().value(),
            more: f.more_fragments(),
        }),
        _ => None,
    });
    Some(UpperLayer {
        proto: proto.0,
        offset: payload.len() - rest.len(),
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
                more: true
            })
        );
        assert!(!found.fragment.unwrap().is_later());
        // A later fragment: offset 185 (1480 bytes).
        let later = Ipv6FragmentHeader::new(IpNumber::UDP, 185.try_into().unwrap(), false, 7);
        let found = upper_layer(44, &later.to_bytes()).unwrap();
        assert_eq!(found.fragment.map(|f| (f.is_later(), f.ident)), Some((true, 7)));
        // Cut short, and hop-by-hop where it may not be.
        assert_eq!(upper_layer(60, &payload[..5]), None);
        let hop = Ipv6RawExtHeader::new_raw(IpNumber::IPV6_HEADER_HOP_BY_HOP, &[0; 6]).unwrap();
        assert_eq!(upper_layer(60, &hop.to_bytes()), None);
    }
}
