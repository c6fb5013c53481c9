//! The basic ids and addresses, in a module of their own so that every table can use
//! them without depending on another.

use serde::{Deserialize, Serialize};

/// Interface index inside the vrouter (Tungsten's "vif" number); the fabric is
/// vif 0. A newtype, so that it cannot be mixed up with the other ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Vif(pub u32);

impl Vif {
    /// The fabric interface.
    pub const FABRIC: Vif = Vif(0);

    /// As an index into per-interface tables.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Debug for Vif {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vif{}", self.0)
    }
}

impl std::fmt::Display for Vif {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A VRF's index. Sixteen bits from end to end: the flow key holds it as is, and at
/// most [`VrfId::MAX_VRFS`] VRFs exist at once. A freed id is reused (lowest first);
/// the snapshot builder renews the flow epoch when an id changes meaning, so no flow
/// of a deleted VRF holds in the VRF that takes its id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VrfId(pub u16);

impl VrfId {
    /// The fabric's VRF.
    pub const FABRIC: VrfId = VrfId(0);
    /// VRFs that can exist at once, the fabric's included.
    pub const MAX_VRFS: usize = 1 << 16;

    /// As an index into the snapshot's VRF table.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Debug for VrfId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vrf{}", self.0)
    }
}

impl std::fmt::Display for VrfId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(into = "String", try_from = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
}

impl std::fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| format!("MAC address {s:?} has fewer than 6 bytes"))?;
            if part.len() != 2 {
                return Err(format!("MAC address {s:?}: byte {part:?} is not two hex digits"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("MAC address {s:?}: byte {part:?} is not hex"))?;
        }
        if parts.next().is_some() {
            return Err(format!("MAC address {s:?} has more than 6 bytes"));
        }
        Ok(MacAddr(out))
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for MacAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "00:00:5e:00:01:00".parse().unwrap();
        assert_eq!(m.0, [0, 0, 0x5e, 0, 1, 0]);
        assert_eq!(m.to_string(), "00:00:5e:00:01:00");
        assert!("00:00:5e:00:01".parse::<MacAddr>().is_err());
        assert!("00:00:5e:00:01:00:11".parse::<MacAddr>().is_err());
        assert!("00:00:5e:00:01:zz".parse::<MacAddr>().is_err());
    }
}
