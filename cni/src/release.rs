//! DEL and GC: the vrouter's port, the veth and the addresses of an attachment are
//! released, whatever is already gone. DEL succeeds when the vrouter is down or the
//! pod's namespace has vanished; a port the vrouter could not be told about is kept
//! in the record, and the next DEL or GC removes it.

use crate::config::Loaded;
use crate::env::{Attachment, CniEnv};
use crate::ipam::Delegate;
use crate::link::Netns;
use crate::spec::{CniError, CniVersion, ErrorCode};
use crate::state::{host_ifname, Record, Store};
use crate::vrouter;

/// Releases one attachment; `record` is what ADD wrote, if anything; `host` is None
/// when the namespace of the vrouter's ports is gone (its links went with it). Every
/// step is tried whatever the others did; the first failure is returned.
pub fn release(
    conf: &Loaded,
    delegate: Option<&Delegate>,
    a: &Attachment,
    record: Option<&Record>,
    host: Option<&Netns>,
) -> Result<(), CniError> {
    let host_if = record.map(|r| r.host_if.clone()).unwrap_or_else(|| host_ifname(a));
    let store = Store::new(&conf.conf.state_dir);
    let mut first_error = None;
    let mut keep = |r: Result<(), CniError>| {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    };
    let removed = vrouter::remove_port(&vrouter::client(conf), &host_if);
    // The host end takes the pod end with it.
    if let Some(host) = host {
        keep(host.delete_link(&host_if).map(drop));
    }
    if let Some(d) = delegate {
        keep(d.run("DEL", a).map(drop));
    }
    let recorded = match removed {
        Ok(true) => store.remove(a),
        Ok(false) | Err(_) => {
            let pending = Record {
                vrouter_removal_pending: true,
                ..record
                    .cloned()
                    .unwrap_or_else(|| Record::new(conf, a, Default::default()))
            };
            store.save(&pending)
        }
    };
    keep(removed.map(drop));
    keep(recorded);
    first_error.map_or(Ok(()), Err)
}

/// The namespace of the vrouter's ports for a release: None when a configured one is
/// gone (its links are gone with it, and that is no reason for DEL to fail).
fn release_host(conf: &Loaded) -> Option<Netns> {
    vrouter::host_netns(conf).ok()
}

/// DEL.
pub fn del(conf: &Loaded, env: &CniEnv) -> Result<(), CniError> {
    let a = env.attachment()?;
    let store = Store::new(&conf.conf.state_dir);
    let _lock = store.lock(&a)?;
    let record = store.load(&a);
    let delegate = Delegate::find(conf, env)?;
    let released = release(
        conf,
        delegate.as_ref(),
        &a,
        record.as_ref(),
        release_host(conf).as_ref(),
    );
    if released.is_ok() && store.load(&a).is_none() {
        store.remove_lock_file(&a);
    }
    released
}

/// GC: releases every attachment of this network that the runtime no longer lists
/// in `cni.dev/valid-attachments` (1.1.0 configurations only). All are tried; the
/// first failure is returned.
pub fn gc(conf: &Loaded, env: &CniEnv) -> Result<(), CniError> {
    if conf.version < CniVersion::V110 {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            "GC needs cniVersion 1.1.0",
        ));
    }
    let valid = conf
        .conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| CniError::new(ErrorCode::InvalidConfig, "GC needs \"cni.dev/valid-attachments\""))?;
    let host = release_host(conf);
    let delegate = Delegate::find(conf, env)?;
    let store = Store::new(&conf.conf.state_dir);
    let mut first_error = None;
    for record in store.all() {
        let known = valid
            .iter()
            .any(|v| v.container_id == record.container_id && v.ifname == record.ifname);
        if record.network != conf.conf.name || known {
            continue;
        }
        let a = Attachment {
            container_id: record.container_id.clone(),
            ifname: record.ifname.clone(),
        };
        // An attachment an ADD, DEL or CHECK holds is theirs to finish.
        let Some(_lock) = store.try_lock(&a)? else {
            continue;
        };
        if let Err(e) = release(conf, delegate.as_ref(), &a, Some(&record), host.as_ref()) {
            first_error.get_or_insert(e);
        }
    }
    // The delegate's own GC, when it speaks 1.1.0 (leases without a record).
    if let Some(d) = delegate.as_ref().filter(|d| d.speaks_1_1()) {
        if let Err(e) = d.run_unattached("GC") {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
