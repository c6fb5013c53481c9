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
    // In 15 s the flow table's pages are still being touched for the first time as
    // new flows land in them (the table is allocated whole, touched lazily): a lower
    // churn keeps that first touch from passing for growth. The ten-minute run in the
    // README uses 2000 a second.
    let options = SoakOptions {
        minutes: 0.25,
        churn_flows_per_sec: 500,
        xdp_mode: XdpMode::Native,
    };
    let report = soak_with(std::path::Path::new(BIN), &options).unwrap();
    assert!(report.failures.is_empty(), "{report:#?}");
    assert!(
        report.pings_sent >= 50 && report.tcp_transfers > 0 && report.port_cycles > 0,
        "{report:#?}"
    );
}
