//! One record per attachment in the state directory, written *before* anything is
//! created: whatever an interrupted ADD left, DEL and GC find and remove. The names
//! the plugin gives (host interface, MAC) follow from the container and interface
//! alone, so DEL finds them even without a record.

use crate::env::Attachment;
use crate::spec::{CniError, ErrorCode};
use nexthop::MacAddr;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Prefix of the host ends this plugin creates (`vc` + 12 hex digits).
pub const HOST_IF_PREFIX: &str = "vc";

/// An attachment's lock, released when dropped.
#[derive(Debug)]
pub struct AttachmentLock {
    _file: std::fs::File,
}

/// What one attachment holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
    /// The network (configuration name) it belongs to.
    pub network: String,
    /// The VRF it was attached to.
    pub vrf: String,
    /// The host end of its veth (the vrouter's port name).
    pub host_if: String,
    /// The pod's namespace path at ADD.
    pub netns: PathBuf,
    /// DEL could not reach the vrouter: the port is still to be removed there (GC
    /// and the next DEL try again).
    #[serde(default)]
    pub vrouter_removal_pending: bool,
    /// The pod end's MAC when it is not the one derived from the attachment (the
    /// vrouter's configuration gave it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Record {
    /// The record of attachment `a` of the configuration's network, its pod in
    /// `netns` (empty when unknown), its host end named as [`host_ifname`] names it.
    pub fn new(conf: &crate::config::Loaded, a: &Attachment, netns: PathBuf) -> Self {
        Record {
            container_id: a.container_id.clone(),
            ifname: a.ifname.clone(),
            network: conf.conf.name.clone(),
            vrf: conf.vrf().to_string(),
            host_if: host_ifname(a),
            netns,
            vrouter_removal_pending: false,
            mac: None,
        }
    }
}

/// 64-bit FNV-1a: a stable hash (the names derived from it must not change between
/// releases of the plugin, or DEL after an upgrade would miss them).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator no id or name holds: ("ab", "c") and ("a", "bc") differ.
            h ^= 0xff;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The host end's name for an attachment.
pub fn host_ifname(a: &Attachment) -> String {
    format!(
        "{HOST_IF_PREFIX}{:012x}",
        fnv1a(&[&a.container_id, &a.ifname]) & 0xffff_ffff_ffff
    )
}

/// The pod end's MAC: locally administered, unicast, stable for the attachment.
pub fn pod_mac(a: &Attachment) -> MacAddr {
    let h = fnv1a(&[&a.container_id, &a.ifname, "mac"]).to_be_bytes();
    MacAddr([0x02, h[0], h[1], h[2], h[3], h[4]])
}

fn io(msg: String, e: std::io::Error) -> CniError {
    CniError::new(ErrorCode::Io, msg).with_details(e.to_string())
}

/// The records of one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// `CONTAINER:IFNAME`: neither part holds a `:` (env.rs checks both), so no two
    /// attachments share a file.
    fn key(a: &Attachment) -> String {
        format!("{}:{}", a.container_id, a.ifname)
    }

    fn path(&self, a: &Attachment) -> PathBuf {
        self.dir.join(format!("{}.json", Self::key(a)))
    }

    /// Holds the attachment's lock (waiting for it): ADD, DEL and CHECK of one
    /// attachment never run at once, and GC leaves alone what one of them holds.
    pub fn lock(&self, a: &Attachment) -> Result<AttachmentLock, CniError> {
        let file = self.lock_file(a)?;
        file.lock()
            .map_err(|e| io(format!("locking the attachment {}", Self::key(a)), e))?;
        Ok(AttachmentLock { _file: file })
    }

    /// The attachment's lock if nobody holds it.
    pub fn try_lock(&self, a: &Attachment) -> Result<Option<AttachmentLock>, CniError> {
        let file = self.lock_file(a)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(AttachmentLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io(format!("locking the attachment {}", Self::key(a)), e)),
        }
    }

    fn lock_path(&self, a: &Attachment) -> PathBuf {
        self.dir.join("locks").join(format!("{}.lock", Self::key(a)))
    }

    fn lock_file(&self, a: &Attachment) -> Result<std::fs::File, CniError> {
        let dir = self.dir.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
        let path = self.lock_path(a);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(format!("opening {}", path.display()), e))
    }

    /// Removes the attachment's lock file (once it is released; the caller holds the
    /// lock, and runtimes do not run two verbs of one attachment at once).
    pub fn remove_lock_file(&self, a: &Attachment) {
        let _ = std::fs::remove_file(self.lock_path(a));
    }

    /// Writes a record (atomically: a reader sees the old or the new one).
    pub fn save(&self, r: &Record) -> Result<(), CniError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(format!("creating {}", self.dir.display()), e))?;
        let a = Attachment {
            container_id: r.container_id.clone(),
            ifname: r.ifname.clone(),
        };
        let path = self.path(&a);
        let tmp = self.dir.join(format!(".{}.{}.tmp", Self::key(&a), std::process::id()));
        let text = serde_json::to_vec_pretty(r).map_err(|e| CniError::new(ErrorCode::Io, e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(format!("renaming {}", tmp.display()), e))
    }

    /// The record of an attachment, if any (an unreadable one counts as none: DEL
    /// still removes what the names point to).
    pub fn load(&self, a: &Attachment) -> Option<Record> {
        let text = std::fs::read(self.path(a)).ok()?;
        let r: Record = serde_json::from_slice(&text).ok()?;
        (r.container_id == a.container_id && r.ifname == a.ifname).then_some(r)
    }

    /// Removes a record; an absent one is no error.
    pub fn remove(&self, a: &Attachment) -> Result<(), CniError> {
        match std::fs::remove_file(self.path(a)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("removing the record of {}", a.container_id), e))
            }
            _ => Ok(()),
        }
    }

    /// Every readable record.
    pub fn all(&self) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(c: &str, i: &str) -> Attachment {
        Attachment {
            container_id: c.into(),
            ifname: i.into(),
        }
    }

    #[test]
    fn names_are_stable_valid_and_distinct() {
        let a = att("0123456789abcdef", "eth0");
        assert_eq!(host_ifname(&a), host_ifname(&a.clone()));
        assert_eq!(host_ifname(&a).len(), 14);
        assert!(crate::env::valid_ifname(&host_ifname(&a)));
        assert_ne!(host_ifname(&a), host_ifname(&att("0123456789abcdef", "eth1")));
        assert_ne!(host_ifname(&att("ab", "c")), host_ifname(&att("a", "bc")));
        assert_ne!(host_ifname(&att("a-b", "c")), host_ifname(&att("a", "b-c")));
        // Pinned: a new release must name an old attachment's interface the same.
        assert_eq!(host_ifname(&att("c1", "eth0")), "vc78a1816a5823");
        let mac = pod_mac(&a);
        assert_eq!(mac.0[0] & 0x03, 0x02, "locally administered unicast");
    }

    #[test]
    fn records_round_trip_and_absent_ones_are_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("state"));
        let a = att("c1", "eth0");
        assert!(store.load(&a).is_none());
        store.remove(&a).unwrap();
        let r = Record {
            container_id: "c1".into(),
            ifname: "eth0".into(),
            network: "n".into(),
            vrf: "red".into(),
            host_if: host_ifname(&a),
            netns: "/run/netns/p".into(),
            vrouter_removal_pending: false,
            mac: None,
        };
        store.save(&r).unwrap();
        assert_eq!(store.load(&a), Some(r.clone()));
        assert_eq!(store.all(), vec![r.clone()]);
        std::fs::write(dir.path().join("state/junk.json"), "{").unwrap();
        assert_eq!(store.all().len(), 1, "an unreadable file is skipped");
        // Another attachment whose parts join to the same text is another record.
        let (x, y) = (att("a-b", "c"), att("a", "b-c"));
        for (owner, other) in [(&x, &y), (&y, &x)] {
            let mut r = r.clone();
            r.container_id = owner.container_id.clone();
            r.ifname = owner.ifname.clone();
            store.save(&r).unwrap();
            assert!(store.load(other).is_none() || store.load(other).unwrap().container_id == other.container_id);
        }
        assert_eq!(store.load(&x).unwrap().container_id, "a-b");
        assert_eq!(store.load(&y).unwrap().container_id, "a");
        store.remove(&a).unwrap();
        assert!(store.load(&a).is_none());
    }

    #[test]
    fn an_attachment_is_locked_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = att("c1", "eth0");
        let held = store.lock(&a).unwrap();
        assert!(store.try_lock(&a).unwrap().is_none(), "a second holder got the lock");
        assert!(
            store.try_lock(&att("c2", "eth0")).unwrap().is_some(),
            "another attachment is free"
        );
        drop(held);
        assert!(store.try_lock(&a).unwrap().is_some());
    }
}
