//! The benchmark tooling measures what it claims: the AF_XDP generator sends the
//! packets it reports, and the counting XDP sink counts every one of them.

use system_tests::{require_root, serial};
use vrouter::config::XdpMode;
use vrouter_lab::gen::{FrameSize, GenOptions};
use vrouter_lab::netns::{enter_by_name, Netns};

#[test]
fn generator_and_counting_sink_agree_over_a_veth_pair() {
    let _machine = serial();
    require_root();
    let tx = Netns::create("gen").unwrap();
    let rx = Netns::create("sink").unwrap();
    tx.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        rx.name(),
    ])
    .unwrap();
    for ns in [&tx, &rx] {
        ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    }
    let rx_name = rx.name().to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sink = std::thread::spawn(move || {
        enter_by_name(&rx_name).unwrap();
        vrouter_lab::gen::sink("eth0", XdpMode::Native, 20.0, 20_000, move || {
            ready_tx.send(()).unwrap()
        })
    });
    ready_rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    let tx_name = tx.name().to_string();
    let sent = std::thread::spawn(move || {
        enter_by_name(&tx_name).unwrap();
        vrouter_lab::gen::generate(&GenOptions {
            flows: 1000,
            size: FrameSize::Fixed(128),
            rate: 50_000,
            count: 20_000,
            seconds: 10.0,
            ..GenOptions::udp(
                "eth0",
                (
                    "02:00:00:00:00:01".parse().unwrap(),
                    "02:00:00:00:00:02".parse().unwrap(),
                ),
                "198.18.1.2".parse().unwrap(),
                "198.18.2.2".parse().unwrap(),
            )
        })
    })
    .join()
    .unwrap()
    .unwrap();
    let got = sink.join().unwrap().unwrap();
    assert_eq!(sent.packets, 20_000);
    assert_eq!(got.packets, 20_000, "the sink counted {} of 20000", got.packets);
    assert_eq!(got.bytes, 20_000 * 128);
    assert!(
        (sent.pps - 50_000.0).abs() < 5_000.0,
        "paced at {} pps, asked 50000",
        sent.pps
    );
}
