//! What one route added through the control side costs as the table grows: the
//! change validated and applied to the model, recorded durably in the state
//! directory (journal), and the snapshot published. Prints the time per add over
//! the last 1000 adds at each size (`cargo run --release -p benches --bin route-adds`).

use control_client::{DesiredState, InterfaceSpec, RouteSpec, RouteTarget};
use nexthop::MacAddr;
use std::time::Instant;
use vrouter::control::Control;
use vrouter::store::StateStore;

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 30_000]
    } else {
        sizes
    };
    let dir = tempfile::tempdir()?;
    let store = StateStore::open(dir.path())?;
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    // No data plane: the routes are what is measured.
    let (mut control, _publisher) = Control::detached(model, store, 1 << 20);
    control.add_interface(InterfaceSpec {
        name: "p".into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 2]),
        ..InterfaceSpec::default()
    })?;
    let mut added = 0usize;
    println!("routes  us per add (last 1000)");
    for size in sizes {
        let mut last = Instant::now();
        while added < size {
            // Host routes in 198.18.0.0/15 (131,072 of them).
            let prefix = format!("198.{}.{}.{}/32", 18 + added / 65_536, added / 256 % 256, added % 256);
            if added + 1000 == size {
                last = Instant::now();
            }
            control.add_route(RouteSpec {
                vrf: "red".into(),
                prefix: prefix.parse()?,
                target: RouteTarget::Discard,
            })?;
            added += 1;
        }
        println!("{size:>6}  {:.0}", last.elapsed().as_secs_f64() * 1e6 / 1000.0);
    }
    let stats = control.publication_stats();
    println!(
        "publications: {} patched in place, {} patched on a copy, {} full builds",
        stats.patched_in_place, stats.patched_copy, stats.full
    );
    Ok(())
}
