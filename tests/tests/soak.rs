//! A short soak (the `vrouter soak` command): pings, TCP, flow churn, route churn,
//! port churn and an API client at once; memory, descriptors, drops and API latency
//! hold. The README states a ten-minute run's result.

use system_tests::{require_root, serial};
use vrouter::config::XdpMode;
use vrouter_lab::soak::{soak_with, SoakOptions};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

#[test]
fn a_short_soak_passes() {
    let _machine = serial();
    require_root();
    let options = SoakOptions {
        minutes: 0.25,
        churn_flows_per_sec: 2000,
        xdp_mode: XdpMode::Native,
    };
    let report = soak_with(std::path::Path::new(BIN), &options).unwrap();
    assert!(report.failures.is_empty(), "{report:#?}");
    assert!(
        report.pings_sent >= 50 && report.tcp_transfers > 0 && report.port_cycles > 0,
        "{report:#?}"
    );
}
