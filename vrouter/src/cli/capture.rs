//! `vrouter capture`: the packets of one interface as the vrouter sees them, written
//! as pcapng (to a file, or to stdout for `tshark -r -`): each packet marked in its
//! comment and direction flag as received (as it arrived), dropped (with the reason)
//! or sent (as it left, after rewrite). Stops after `--count` packets, `--seconds`,
//! or SIGINT / SIGTERM, and stops the capture in the vrouter on the way out.

use crate::api::{ApiClient, CapturedPacketView, CapturedPacketsView, Request};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to capture and where to write it.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// The interface (its vif, as `vif list` shows).
    #[arg(long)]
    pub vif: u32,
    /// Stop after this many packets.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Bytes kept of each packet.
    #[arg(long, default_value_t = 65535)]
    pub snaplen: u32,
    /// Only packets to or from this address (inner header of a pod's frame, outer of
    /// a fabric frame).
    #[arg(long)]
    pub host: Option<std::net::IpAddr>,
    /// Only this IP protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    #[arg(long)]
    pub proto: Option<u8>,
    /// Only packets from or to this TCP or UDP port.
    #[arg(long)]
    pub port: Option<u16>,
    /// The pcapng file; `-`: stdout (not a terminal).
    #[arg(short = 'w', long, default_value = "-")]
    pub write: String,
}

/// True if `bytes` (an Ethernet frame) passes the filters of `args`.
fn wanted(args: &CaptureArgs, bytes: &[u8]) -> bool {
    if args.host.is_none() && args.proto.is_none() && args.port.is_none() {
        return true;
    }
    let Ok(p) = etherparse::SlicedPacket::from_ethernet(bytes) else {
        return false;
    };
    let (src, dst, proto) = match &p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => (
            std::net::IpAddr::from(ip.header().source_addr()),
            std::net::IpAddr::from(ip.header().destination_addr()),
            ip.header().protocol().0,
        ),
        Some(etherparse::NetSlice::Ipv6(ip)) => (
            std::net::IpAddr::from(ip.header().source_addr()),
            std::net::IpAddr::from(ip.header().destination_addr()),
            ip.payload().ip_number.0,
        ),
        _ => return false,
    };
    let ports = match &p.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => Some((t.source_port(), t.destination_port())),
        Some(etherparse::TransportSlice::Udp(u)) => Some((u.source_port(), u.destination_port())),
        _ => None,
    };
    args.host.is_none_or(|h| h == src || h == dst)
        && args.proto.is_none_or(|x| x == proto)
        && args.port.is_none_or(|x| ports.is_some_and(|(s, d)| s == x || d == x))
}

/// The pcapng block of `p`: its comment says where it was seen, its flags the
/// direction (inbound: received or dropped; outbound: sent).
fn block(p: &CapturedPacketView, bytes: Vec<u8>) -> EnhancedPacketBlock<'static> {
    let (comment, inbound) = match (p.stage.as_str(), &p.drop_reason) {
        ("dropped", Some(reason)) => (format!("dropped: {reason} (worker {})", p.worker), true),
        ("sent", _) => (format!("sent, after rewrite (worker {})", p.worker), false),
        (stage, _) => (format!("{stage} (worker {})", p.worker), true),
    };
    EnhancedPacketBlock {
        interface_id: 0,
        timestamp: Duration::from_nanos(p.at_ns),
        original_len: p.len,
        data: bytes.into(),
        options: vec![
            EnhancedPacketOption::Comment(comment.into()),
            EnhancedPacketOption::Flags(if inbound { 1 } else { 2 }),
        ],
    }
}

/// Runs the capture.
pub fn run(api: &ApiClient, args: &CaptureArgs) -> anyhow::Result<()> {
    let out: Box<dyn Write> = if args.write == "-" {
        if std::io::stdout().is_terminal() {
            anyhow::bail!("pcapng is binary: write it to a file (-w FILE) or a pipe (| tshark -r -)");
        }
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(&args.write).map_err(|e| anyhow::anyhow!("{}: {e}", args.write))?)
    };
    let mut writer = PcapNgWriter::new(std::io::BufWriter::new(out))?;
    writer.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: args.snaplen.clamp(64, crate::capture::MAX_SNAPLEN),
        options: vec![
            InterfaceDescriptionOption::IfName(format!("vif{}", args.vif).into()),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    })?;
    writer.get_mut().flush()?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second one ends the process at once (a stalled pipe cannot hold it).
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let id: u64 = api.call(&Request::CaptureStart {
        vif: args.vif,
        snaplen: args.snaplen,
    })?;
    let deadline = args.seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let (mut written, mut lost) = (0u64, 0u64);
    let result = (|| -> anyhow::Result<()> {
        let mut last_read = false;
        loop {
            // After the stop (signal or time), one more read takes what the rings hold.
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                if last_read {
                    return Ok(());
                }
                last_read = true;
            }
            let answer: CapturedPacketsView = api.call(&Request::CaptureRead { id, limit: 10_000 }).map_err(|e| {
                anyhow::anyhow!("capture ended: {e} (a capture not read for 5 s stops: was the output stalled?)")
            })?;
            lost += answer.lost;
            for p in &answer.packets {
                let Some(bytes) = vrouter_api::from_hex(&p.hex) else {
                    continue;
                };
                if !wanted(args, &bytes) {
                    continue;
                }
                writer.write_pcapng_block(block(p, bytes))?;
                written += 1;
                if args.count.is_some_and(|c| written >= c) {
                    return Ok(());
                }
            }
            // Every packet is in the file as soon as it is read: a capture cut short
            // still leaves a readable file.
            writer.get_mut().flush()?;
            if answer.packets.is_empty() && !last_read {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })();
    let _ = api.call::<()>(&Request::CaptureStop { id });
    let flushed = writer.get_mut().flush();
    eprintln!("vrouter capture: {written} packets written, {lost} lost (the capture's memory was full)");
    result?;
    Ok(flushed?)
}
