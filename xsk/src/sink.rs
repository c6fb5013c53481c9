//! The benchmark sink: an XDP program that counts and drops (bpf/steer.c,
//! `vrouter_count_drop`).

use super::xdp::{chain, load_program, XdpError};
use crate::XdpMode;
use aya::maps::PerCpuArray;
use aya::Ebpf;

/// The counting program attached to an interface; detached on drop.
pub struct CountingSink {
    ebpf: Ebpf,
}

impl std::fmt::Debug for CountingSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingSink").finish()
    }
}

impl CountingSink {
    /// Attaches to `ifname`.
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<Self, XdpError> {
        Ok(Self {
            ebpf: load_program(ifname, "vrouter_count_drop", mode)?,
        })
    }

    /// Packets and bytes counted so far, all CPUs.
    pub fn counts(&self) -> Result<(u64, u64), XdpError> {
        let map = self
            .ebpf
            .map("sink_counts")
            .ok_or_else(|| XdpError::Load("map sink_counts missing".into()))?;
        let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| XdpError::Load(chain(&e)))?;
        let sum = |k: u32| -> Result<u64, XdpError> {
            Ok(array.get(&k, 0).map_err(|e| XdpError::Load(chain(&e)))?.iter().sum())
        };
        Ok((sum(0)?, sum(1)?))
    }
}
