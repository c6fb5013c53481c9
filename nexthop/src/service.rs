//! Services as native load balancers: a service address and port in a VRF, its
//! backends, and the address and port translation a flow to it gets (Contrail's ECMP
//! native load balancer: the flow does the destination NAT, its reverse entry the
//! source NAT of the replies).
//!
//! A translation carries an IPv4 address itself; an IPv6 address by [`NatAddr`], an
//! index into the snapshot's address arena ([`Services::nat_addresses`]). The arena
//! only grows (an address keeps its index for the life of the process), so a
//! translation a flow cached never names another address, whatever changed since.

use crate::VrfId;
use std::net::IpAddr;

/// The snapshot's services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Services {
    /// Service ports by VRF, address, protocol and port (empty without services: a
    /// new flow's check is one length test).
    pub by_key: crate::FastMap<ServiceKey, ServiceEntry>,
    /// The addresses translations name, by [`NatAddr`]; it only grows.
    pub nat_addresses: std::sync::Arc<Vec<IpAddr>>,
    /// The VRF of each service port reached from outside the cluster, by address,
    /// protocol and port (node ports on the fabric address, external IPs): where a
    /// packet for it from the fabric is looked up.
    pub external: crate::FastMap<(IpAddr, u8, u16), VrfId>,
}

impl Services {
    /// The service ports reached from outside the cluster, by address, protocol and
    /// port, with their VRF.
    pub fn external_of(by_key: &crate::FastMap<ServiceKey, ServiceEntry>) -> crate::FastMap<(IpAddr, u8, u16), VrfId> {
        by_key
            .iter()
            .filter(|(_, e)| e.external)
            .map(|(k, _)| ((k.ip, k.proto, k.port), k.vrf))
            .collect()
    }
}

/// An address in the snapshot's NAT address arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatAddr(pub u32);

/// What a flow's first packet is matched against: a service's address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// The VRF the service is in.
    pub vrf: VrfId,
    /// The service address (ClusterIP, external or load-balancer IP).
    pub ip: IpAddr,
    /// IP protocol (TCP 6, UDP 17).
    pub proto: u8,
    /// The service port.
    pub port: u16,
}

/// One service port's backends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEntry {
    /// The service's name (for the views).
    pub name: std::sync::Arc<str>,
    /// The service address, in the arena (the source of translated replies).
    pub ip: Option<NatAddr>,
    /// The port on the backends (Kubernetes' targetPort).
    pub target_port: u16,
    /// The backends' addresses, in the arena.
    pub backends: Vec<NatAddr>,
    /// Each backend's rendezvous identity (from its address): a backend removed
    /// moves only its own flows, one added takes an even share of new ones.
    pub ids: Vec<u64>,
    /// Client-address affinity (Kubernetes' `sessionAffinity: ClientIP`): a client's
    /// new connections go to its last backend for this many seconds; 0: none.
    pub affinity_timeout_secs: u32,
    /// Reached from outside the cluster (a node port on the fabric address, an
    /// external or load-balancer IP): packets for it on the fabric are the vrouter's.
    pub external: bool,
    /// Backends its health check took out (not in `backends`; for the views).
    pub down: Vec<NatAddr>,
}

impl ServiceEntry {
    /// The backend a flow with hash `flow_hash` goes to; `None` without backends.
    #[inline]
    pub fn backend(&self, flow_hash: u64) -> Option<NatAddr> {
        crate::ecmp::select(&self.ids, flow_hash).map(|i| self.backends[i])
    }
}

/// Which end of a packet a translation rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NatSide {
    /// The destination (a flow to a service: to the backend).
    Destination = 1,
    /// The source (a backend's reply: from the service).
    Source = 2,
    /// Hairpin (a pod reaching itself through its service): the addresses swap (the
    /// packet comes back to the pod from the service's address, which its kernel
    /// takes, where its own address as a source it would not), the destination
    /// port becomes the target port.
    HairpinOut = 3,
    /// The hairpin's reply: the addresses swap back, the source port becomes the
    /// service's port.
    HairpinBack = 4,
    /// A floating IP's destination: the floating address becomes the pod's (the port
    /// is kept). Rewrites as [`NatSide::Destination`]; a flow so translated is set up
    /// anew, not patched, when its decision no longer holds.
    FloatingDestination = 5,
    /// A floating IP's source: the pod's address becomes the floating one.
    FloatingSource = 6,
    /// Fabric source NAT, leaving: the pod's address and port become the node's
    /// fabric address and a port of its range.
    FabricSource = 7,
    /// Fabric source NAT, the reply: the node's address and port become the pod's.
    FabricBack = 8,
    /// Both ends (a pod behind a floating IP reaching a service of the floating
    /// address's network, the seed's rule d): the packet takes the addresses and ports
    /// of its pair entry's key turned round (Contrail's way: the reverse flow's key is
    /// the translated tuple). Its target names that entry: [`NatTarget::Pair`].
    Both = 9,
}

impl NatSide {
    /// The sides whose IPv4 translation rewrites one end's address and port, what a
    /// [`NatWord::v4_one_end`] holds (hairpin and both ends do more).
    pub const ONE_END: [NatSide; 6] = [
        NatSide::Destination,
        NatSide::Source,
        NatSide::FloatingDestination,
        NatSide::FloatingSource,
        NatSide::FabricSource,
        NatSide::FabricBack,
    ];

    /// True if the destination end is rewritten (else the source, or both: hairpin).
    #[inline]
    pub fn rewrites_destination(self) -> bool {
        matches!(
            self,
            NatSide::Destination | NatSide::HairpinOut | NatSide::FloatingDestination | NatSide::FabricBack
        )
    }

    /// True for fabric source NAT's translations.
    #[inline]
    pub fn is_fabric(self) -> bool {
        matches!(self, NatSide::FabricSource | NatSide::FabricBack)
    }

    /// True for a floating IP's translations (both ends' included).
    #[inline]
    pub fn is_floating(self) -> bool {
        matches!(
            self,
            NatSide::FloatingDestination | NatSide::FloatingSource | NatSide::Both
        )
    }
}

/// The address a translation puts in: an IPv4 address itself (it fits the word, and
/// the packet path reads no table for it), or an IPv6 address's arena index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatTarget {
    /// This IPv4 address.
    V4(std::net::Ipv4Addr),
    /// The IPv6 address at this index of the arena.
    V6(NatAddr),
    /// The pair entry of the flow (at this index of the flow table) whose key,
    /// turned round, is the translated tuple ([`NatSide::Both`]). Not stored: the
    /// entry's own link gives it when the flow is hit.
    Pair(u32),
}

/// A flow's translation: one end of its packets becomes `target`:`port`. Packed into
/// the flow entry's transform word (0 is "none"): the side in the top byte, an IPv4
/// address and the port as they lie in a packet (network order), and two bits that
/// say what the packet path does without decoding ([`NatWord::v4_one_end`]). The word
/// lives in memory only (never stored or sent), so its byte order is the machine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nat {
    /// The end rewritten.
    pub side: NatSide,
    /// The new address.
    pub target: NatTarget,
    /// The new port (for ICMP echo: the identifier).
    pub port: u16,
}

const SIDE_SHIFT: u32 = 56;
/// The side of each value of a transform word's top byte (its discriminant).
const SIDES: [Option<NatSide>; 10] = [
    None,
    Some(NatSide::Destination),
    Some(NatSide::Source),
    Some(NatSide::HairpinOut),
    Some(NatSide::HairpinBack),
    Some(NatSide::FloatingDestination),
    Some(NatSide::FloatingSource),
    Some(NatSide::FabricSource),
    Some(NatSide::FabricBack),
    Some(NatSide::Both),
];
/// Set when the low 32 bits are an IPv4 address (else an IPv6 arena index).
const V4_TARGET: u64 = 1 << 48;
/// Set for an IPv4 rewrite of one end ([`NatWord::v4_one_end`]).
const V4_ONE_END: u64 = 1 << 49;
/// Set when that rewrite is the destination's.
const V4_DESTINATION: u64 = 1 << 50;

impl Nat {
    /// Both ends' translation, through the flow's pair entry at `index`.
    #[inline]
    pub fn with_pair(self, index: u32) -> Self {
        Self {
            target: NatTarget::Pair(index),
            ..self
        }
    }

    /// The transform word.
    #[inline]
    pub fn encode(self) -> u64 {
        let side = self.side as u64;
        let target = match self.target {
            NatTarget::V4(a) if ONE_END & 1 << side != 0 => {
                let destination = if self.side.rewrites_destination() {
                    V4_DESTINATION
                } else {
                    0
                };
                V4_TARGET | V4_ONE_END | destination | u64::from(u32::from_ne_bytes(a.octets()))
            }
            NatTarget::V4(a) => V4_TARGET | u64::from(u32::from_ne_bytes(a.octets())),
            NatTarget::V6(i) => u64::from(i.0),
            NatTarget::Pair(_) => 0,
        };
        side << SIDE_SHIFT | u64::from(u16::from_ne_bytes(self.port.to_be_bytes())) << 32 | target
    }

    /// The translation in a transform word; `None` for 0 or anything else. Both
    /// ends' names no pair yet: the flow hit fills it in ([`Nat::with_pair`]).
    // Always inlined: every established translated packet decodes its entry's word.
    #[inline(always)]
    pub fn decode(word: u64) -> Option<Self> {
        let side = (*SIDES.get((word >> SIDE_SHIFT) as usize)?)?;
        let target = if side == NatSide::Both {
            NatTarget::Pair(u32::MAX)
        } else if word & V4_TARGET != 0 {
            NatTarget::V4((word as u32).to_ne_bytes().into())
        } else {
            NatTarget::V6(NatAddr(word as u32))
        };
        Some(Self {
            side,
            target,
            port: u16::from_be_bytes(((word >> 32) as u16).to_ne_bytes()),
        })
    }
}

/// A translation as the packet path carries it: its transform word ([`Nat::encode`]),
/// which a both-ends translation completes with its pair entry's index in the low 32
/// bits. One register: a flow hit passes it on undecoded, and the IPv4 rewrite of one
/// end (what every established service, floating IP and source NAT flow takes) reads
/// its address and port straight from it ([`NatWord::v4_one_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatWord(u64);

/// [`NatSide::ONE_END`], a bit per side.
const ONE_END: u64 = side_mask(&NatSide::ONE_END);

/// A bit per side, at its discriminant.
const fn side_mask(sides: &[NatSide]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < sides.len() {
        mask |= 1 << sides[i] as u64;
        i += 1;
    }
    mask
}

/// The IPv4 rewrite of one end a [`NatWord`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4OneEnd {
    /// True if the destination is rewritten (else the source).
    pub destination: bool,
    /// The new address, as it lies in the packet.
    pub address: [u8; 4],
    /// The new port (for ICMP echo: the identifier), as it lies in the packet.
    pub port: [u8; 2],
}

impl NatWord {
    /// The word of `nat` (a both-ends translation's with its pair's index).
    pub fn of(nat: Nat) -> Self {
        match nat.target {
            NatTarget::Pair(index) => Self(nat.encode() | u64::from(index)),
            _ => Self(nat.encode()),
        }
    }

    /// A flow entry's transform word, if it holds a translation (0 is none).
    #[inline(always)]
    pub fn stored(word: u64) -> Option<Self> {
        (word != 0).then_some(Self(word))
    }

    /// The translation; `None` if the word holds none.
    pub fn nat(self) -> Option<Nat> {
        let nat = Nat::decode(self.0)?;
        Some(if nat.side == NatSide::Both {
            nat.with_pair(self.0 as u32)
        } else {
            nat
        })
    }

    /// True for both ends' translation, which names its pair ([`NatWord::with_pair`]).
    #[inline(always)]
    pub fn is_both(self) -> bool {
        self.0 >> SIDE_SHIFT == NatSide::Both as u64
    }

    /// Both ends' translation through the pair entry at `index`.
    #[inline]
    pub fn with_pair(self, index: u32) -> Self {
        Self(self.0 & !u64::from(u32::MAX) | u64::from(index))
    }

    /// The IPv4 rewrite of one end this word holds, if that is what it holds.
    #[inline(always)]
    pub fn v4_one_end(self) -> Option<V4OneEnd> {
        (self.0 & V4_ONE_END != 0).then(|| V4OneEnd {
            destination: self.0 & V4_DESTINATION != 0,
            address: (self.0 as u32).to_ne_bytes(),
            port: ((self.0 >> 32) as u16).to_ne_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_translation_survives_its_word_and_zero_is_none() {
        for nat in [
            Nat {
                side: NatSide::Destination,
                target: NatTarget::V6(NatAddr(7)),
                port: 9376,
            },
            Nat {
                side: NatSide::Source,
                target: NatTarget::V6(NatAddr(u32::MAX)),
                port: u16::MAX,
            },
            Nat {
                side: NatSide::Destination,
                target: NatTarget::V4([198, 18, 1, 3].into()),
                port: 0,
            },
            Nat {
                side: NatSide::Source,
                target: NatTarget::V4([255, 255, 255, 255].into()),
                port: 1,
            },
            Nat {
                side: NatSide::HairpinOut,
                target: NatTarget::V4([198, 18, 100, 10].into()),
                port: 9376,
            },
            Nat {
                side: NatSide::HairpinBack,
                target: NatTarget::V6(NatAddr(3)),
                port: 80,
            },
            Nat {
                side: NatSide::FloatingDestination,
                target: NatTarget::V4([198, 18, 7, 7].into()),
                port: 443,
            },
            Nat {
                side: NatSide::FloatingSource,
                target: NatTarget::V6(NatAddr(9)),
                port: 0,
            },
            Nat {
                side: NatSide::FabricSource,
                target: NatTarget::V4([198, 18, 0, 1].into()),
                port: 57_000,
            },
            Nat {
                side: NatSide::FabricBack,
                target: NatTarget::V4([198, 18, 1, 2].into()),
                port: 40_000,
            },
        ] {
            assert_ne!(nat.encode(), 0);
            assert_eq!(Nat::decode(nat.encode()), Some(nat));
        }
        // Both ends' word names no pair: the flow's own link does.
        let both = Nat {
            side: NatSide::Both,
            target: NatTarget::Pair(12),
            port: 0,
        };
        assert_ne!(both.encode(), 0);
        assert_eq!(Nat::decode(both.encode()).map(|n| n.with_pair(12)), Some(both));
        assert_eq!(Nat::decode(0), None);
        assert_eq!(Nat::decode(10 << SIDE_SHIFT), None);
    }

    #[test]
    fn a_removed_backend_moves_only_its_own_flows() {
        let ids: Vec<u64> = (1..=4u64).map(|b| crate::ecmp::member_id(&[b])).collect();
        let four = ServiceEntry {
            name: "default/web".into(),
            ip: Some(NatAddr(0)),
            target_port: 80,
            backends: (1..=4).map(NatAddr).collect(),
            ids: ids.clone(),
            affinity_timeout_secs: 0,
            external: false,
            down: Vec::new(),
        };
        let three = ServiceEntry {
            backends: vec![NatAddr(1), NatAddr(2), NatAddr(4)],
            ids: vec![ids[0], ids[1], ids[3]],
            ..four.clone()
        };
        let mut moved = 0;
        for h in 0..10_000u64 {
            let flow = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let (before, after) = (four.backend(flow).unwrap(), three.backend(flow).unwrap());
            if before == NatAddr(3) {
                moved += 1;
            } else {
                assert_eq!(before, after, "a surviving backend's flow moved");
            }
        }
        assert!((2000..3000).contains(&moved), "{moved} of 10000 on the removed backend");
        assert_eq!(ServiceEntry::default().backend(1), None);
    }

    #[test]
    fn a_nat_word_gives_its_translation_back_and_its_ipv4_end_only_for_one_end() {
        let sides = [
            NatSide::Destination,
            NatSide::Source,
            NatSide::HairpinOut,
            NatSide::HairpinBack,
            NatSide::FloatingDestination,
            NatSide::FloatingSource,
            NatSide::FabricSource,
            NatSide::FabricBack,
        ];
        for side in sides {
            let nat = Nat {
                side,
                target: NatTarget::V4([198, 18, 0, 9].into()),
                port: 9376,
            };
            let word = NatWord::of(nat);
            assert_eq!(word.nat(), Some(nat));
            assert!(!word.is_both());
            let hairpin = matches!(side, NatSide::HairpinOut | NatSide::HairpinBack);
            assert_eq!(
                word.v4_one_end(),
                (!hairpin).then_some(V4OneEnd {
                    destination: side.rewrites_destination(),
                    address: [198, 18, 0, 9],
                    port: 9376u16.to_be_bytes(),
                }),
                "{side:?}"
            );
            let v6 = NatWord::of(Nat {
                target: NatTarget::V6(NatAddr(3)),
                ..nat
            });
            assert_eq!(v6.v4_one_end(), None, "an IPv6 target is no IPv4 rewrite");
        }
        let both = NatWord::of(Nat {
            side: NatSide::Both,
            target: NatTarget::Pair(u32::MAX),
            port: 0,
        });
        assert!(both.is_both());
        assert_eq!(both.v4_one_end(), None);
        assert_eq!(both.with_pair(12).nat().map(|n| n.target), Some(NatTarget::Pair(12)));
        assert_eq!(NatWord::stored(0), None, "0 is no translation");
    }
}
