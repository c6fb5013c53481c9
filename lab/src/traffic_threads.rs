//! Threads that run inside a network namespace, off the forwarding cores.

use std::thread::JoinHandle;

/// Keeps a traffic thread off the forwarding cores (the highest cores, as the lab
/// configures them), as a cluster keeps pods off the vrouter's cores.
pub(super) fn stay_off_forwarding_cores() {
    if let Some(first) = vrouter::run::available_cores().first() {
        core_affinity::set_for_current(core_affinity::CoreId { id: *first });
    }
}

/// Moves the calling thread into `ns` and off the forwarding cores.
pub(super) fn enter(ns: &str) -> anyhow::Result<()> {
    stay_off_forwarding_cores();
    super::netns::enter_by_name(ns)
}

/// Runs `body` on a thread inside the namespace `ns`.
pub(super) fn in_namespace<T: Send + 'static>(
    ns: &str,
    body: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> JoinHandle<anyhow::Result<T>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns)?;
        body()
    })
}
