//! `vrouter-lab bench` measures every device of the comparison in one run and prints a
//! row per device with what the sink received and the forwarding core's cycles.

use system_tests::{require_root, serial};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");

/// The numbers after the device name on its row of the throughput table.
fn row<'a>(out: &'a str, device: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| l.starts_with(device))
        .unwrap_or_else(|| panic!("no row for {device} in:\n{out}"));
    line[device.len()..].split_whitespace().collect()
}

#[test]
fn bench_measures_vrouter_kernel_open_vswitch_and_the_limit_in_one_run() {
    let _machine = serial();
    require_root();
    let out = std::process::Command::new(LAB)
        .args([
            "--vrouter",
            BIN,
            "bench",
            "--devices",
            "vrouter-mplsoudp,kernel,ovs,minimal",
            "--traffic",
            "udp6",
            "--flows",
            "100",
            "--sizes",
            "imix",
            "--ecmp",
            "2",
            "--seconds",
            "1",
            "--latency-rate",
            "20000",
            "--runs",
            "2",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("failed:"), "{text}");
    for device in [
        "vrouter MPLSoUDP",
        "kernel VXLAN",
        "OVS AF_XDP VXLAN",
        "minimal AF_XDP fwd",
    ] {
        let r = row(&text, device);
        // proto flows size ecmp offered received loss% /kernel /ovs /limit cyc/pkt
        assert_eq!(&r[0..4], ["udp6", "100", "imix", "2"], "{text}");
        let received: f64 = r[5].parse().unwrap();
        assert!(received > 1000.0, "{device} delivered {received} pps:\n{text}");
        if device != "kernel VXLAN" {
            let cycles: f64 = r[10].parse().unwrap_or_else(|_| panic!("{device} cycles:\n{text}"));
            assert!(cycles > 100.0, "{device}: {cycles} cycles per packet:\n{text}");
        }
        // The two runs' lowest and highest rate hold the median between them.
        let (lo, hi) = r[11]
            .split_once('-')
            .unwrap_or_else(|| panic!("{device} range:\n{text}"));
        let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert!(
            lo <= received && received <= hi,
            "{device}: {received} outside {lo}-{hi}\n{text}"
        );
    }
    // The ratios are against the peers measured in the same run.
    assert_eq!(row(&text, "kernel VXLAN")[7], "1.00x", "{text}");
    assert_eq!(row(&text, "OVS AF_XDP VXLAN")[8], "1.00x", "{text}");
    assert_eq!(row(&text, "minimal AF_XDP fwd")[9], "1.00x", "{text}");
    let latency = &text[text.find("one-way latency").expect("latency table")..];
    for device in [
        "vrouter MPLSoUDP",
        "kernel VXLAN",
        "OVS AF_XDP VXLAN",
        "minimal AF_XDP fwd",
    ] {
        let r = row(latency, device);
        // Latency is measured in every case, with the case's stream.
        assert_eq!(&r[0..4], ["udp6", "100", "imix", "2"], "{text}");
        let packets: u64 = r[4].parse().unwrap();
        assert!(packets > 10_000, "{device}: {packets} latency samples:\n{text}");
        let p99: f64 = r[7].parse().unwrap();
        let (lo, hi) = r[10]
            .split_once('-')
            .unwrap_or_else(|| panic!("{device} p99 range:\n{text}"));
        let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert!(lo <= p99 && p99 <= hi, "{device}: p99 {p99} outside {lo}-{hi}\n{text}");
    }
}

const PLUGIN: &str = env!("CARGO_BIN_EXE_vrouter-cni-under-test");

#[test]
fn cni_bench_attaches_pods_with_both_plugins_and_reports_latency_and_rate() {
    let _machine = serial();
    require_root();
    let out = std::process::Command::new(LAB)
        .args(["--vrouter", BIN, "cni-bench", "--pods", "4", "--plugin", PLUGIN])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for plugin in ["vrouter-cni", "ptp (kernel routed veth)"] {
        // p50 p99 max ADDs/s DEL-all
        let r: Vec<f64> = row(&text, plugin).iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(r.len(), 5, "{text}");
        assert!(r[0] > 0.0 && r[0] <= r[1] && r[1] <= r[2], "{plugin}: {r:?}\n{text}");
        assert!(r[3] > 0.0 && r[4] > 0.0, "{plugin}: {r:?}\n{text}");
    }
    assert!(text.contains("ratio vrouter-cni / ptp"), "{text}");
}

/// The cells of `path`'s row in tcp-bench's table.
fn tcp_row<'a>(out: &'a str, path: &str) -> Vec<&'a str> {
    let prefix = format!("| {path} |");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row for {path} in:\n{out}"));
    line.trim_matches('|').split('|').skip(1).map(str::trim).collect()
}

/// `vrouter-lab tcp-bench` measures pod-to-pod TCP through the vrouter on one node and
/// across two, and through the kernel's paths of the same kinds, in one run: every
/// path carries iperf3's stream, opens connections and answers requests, and each
/// vrouter path is compared with its kernel path.
#[test]
fn tcp_bench_measures_the_vrouter_beside_the_kernel_on_one_node_and_across_two() {
    let _machine = serial();
    require_root();
    let out = std::process::Command::new(LAB)
        .args([
            "--vrouter",
            BIN,
            "tcp-bench",
            "--paths",
            "vrouter,kernel,vrouter-vxlan,kernel-vxlan",
        ])
        .args(["--streams", "1", "--seconds", "1", "--runs", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for path in ["vrouter", "kernel", "vrouter-vxlan", "kernel-vxlan"] {
        let cells = tcp_row(&text, path);
        let numbers: Vec<f64> = cells.iter().map(|c| c.parse().unwrap_or(f64::NAN)).collect();
        // Gbit/s, connections/s, RR p50 µs, RR p99 µs.
        assert!(numbers[0] > 0.05, "{path}: {} Gbit/s\n{text}", numbers[0]);
        assert!(numbers[1] > 50.0, "{path}: {} connections/s\n{text}", numbers[1]);
        assert!(numbers[2] > 0.0 && numbers[2] <= numbers[3], "{path}: latency\n{text}");
    }
    assert!(text.contains("- vrouter / kernel: 1 stream(s) "), "{text}");
    assert!(text.contains("- vrouter-vxlan / kernel-vxlan: 1 stream(s) "), "{text}");
}
