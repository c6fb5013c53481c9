use super::*;

const CORES: &[usize] = &[0, 1, 2, 3];

fn base(extra: &str) -> String {
    format!("{extra}\n[fabric]\ninterface = \"eth0\"\nip = \"198.18.0.1/24\"\n")
}

fn error_of(text: &str) -> String {
    match Config::parse(text, Path::new("t.toml")).and_then(|c| c.validate(CORES).map(|_| c)) {
        Ok(_) => panic!("config accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn masks_parse_as_hex_and_lists() {
    assert_eq!(CoreMask::parse("0x6").unwrap().0, [1, 2].into());
    assert_eq!(CoreMask::parse("1-3,5").unwrap().0, [1, 2, 3, 5].into());
    assert_eq!(CoreMask::parse(" 0 ").unwrap().0, [0].into());
    for bad in ["", "0x", "0x0", "0xZ", "3-1", "a", "1,,2", "-1", "99999"] {
        assert!(CoreMask::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn defaults_fill_everything_but_the_fabric() {
    let c = Config::parse(&base(""), Path::new("t.toml")).unwrap();
    let cores = c.validate(CORES).unwrap();
    assert_eq!(cores.forwarding, vec![3]);
    assert_eq!(cores.control, vec![0, 1, 2]);
    assert_eq!(c.dataplane.batch_size, 64);
    assert_eq!(c.vrouter_mac.to_string(), "00:00:5e:00:01:00");
}

#[test]
fn full_file_is_accepted() {
    let text = base(
        r#"
vrouter_mac = "02:00:5e:00:01:00"
state_dir = "/tmp/vr"
api_socket = "/tmp/vr.sock"
log_level = "debug"
log_format = "json"
[cores]
forwarding = 0x6
control = "0"
[dataplane]
batch_size = 128
xdp_mode = "generic"
poll_mode = "adaptive"
umem_frames = 8192
ring_size = 1024
[tables]
interfaces = 256
routes = 1000
[flows]
entries = 4194304
max_per_interface = 100000
idle_timeout_secs = 60
tcp_closed_timeout_secs = 2
drop_timeout_secs = 3
[metrics]
listen = "[::1]:9470"
[flow_export]
ipfix_collector = "198.18.0.10:4739"
active_timeout_secs = 30
observation_domain = 7
"#,
    );
    let c = Config::parse(&text, Path::new("t.toml")).unwrap();
    let cores = c.validate(CORES).unwrap();
    assert_eq!(cores.forwarding, vec![1, 2]);
    assert_eq!(cores.control, vec![0]);
    assert_eq!(c.dataplane.xdp_mode, XdpMode::Generic);
    assert_eq!(c.metrics.listen, Some("[::1]:9470".parse().unwrap()));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.flow_export.ipfix_collector, Some("198.18.0.10:4739".parse().unwrap()));
    assert_eq!(
        (c.flow_export.active_timeout_secs, c.flow_export.observation_domain),
        (30, 7)
    );
}

/// Each bad file gives one error that names the key at fault.
#[test]
fn each_bad_file_names_its_key() {
    let cases: &[(&str, &str)] = &[
        ("bogus = 1", "bogus"),
        ("[dataplane]\nbatchsize = 3", "batchsize"),
        ("[cores]\nforwarding = \"0xZZ\"", "forwarding"),
        ("[cores]\nforwarding = \"3-1\"", "forwarding"),
        ("[cores]\nforwarding = \"7\"", "cores.forwarding"),
        ("[cores]\nforwarding = \"1\"\ncontrol = \"0x80\"", "cores.control"),
        ("[cores]\nforwarding = \"1-2\"\ncontrol = \"2-3\"", "cores.control"),
        ("[cores]\nforwarding = \"0-3\"", "cores.control"),
        ("[dataplane]\nbatch_size = 0", "dataplane.batch_size"),
        ("[dataplane]\nring_size = 1000", "dataplane.ring_size"),
        ("[dataplane]\numem_frames = 100", "dataplane.umem_frames"),
        ("[dataplane]\nfill_frames = 8", "dataplane.fill_frames"),
        ("[dataplane]\nfill_frames = 4096", "dataplane.fill_frames"),
        (
            "[dataplane]\numem_frames = 4096\nfill_frames = 2048",
            "dataplane.umem_frames",
        ),
        ("[dataplane]\nxdp_mode = \"turbo\"", "xdp_mode"),
        ("[tables]\ninterfaces = 1", "tables.interfaces"),
        ("vrouter_mac = \"01:00:5e:00:00:01\"", "vrouter_mac"),
        ("vrouter_mac = \"nonsense\"", "vrouter_mac"),
        ("[flows]\nentries = 1", "flows.entries"),
        ("[flows]\nidle_timeout_secs = 0", "flows.idle_timeout_secs"),
        ("[flows]\nagingtime = 3", "agingtime"),
        ("[metrics]\nlisten = \"127.0.0.1:0\"", "metrics.listen"),
        ("[metrics]\nlisten = \"localhost\"", "listen"),
        ("[metrics]\nport = 9470", "port"),
        ("log_format = \"xml\"", "log_format"),
        (
            "[flow_export]\nipfix_collector = \"10.0.0.1:0\"",
            "flow_export.ipfix_collector",
        ),
        (
            "[flow_export]\nactive_timeout_secs = 0",
            "flow_export.active_timeout_secs",
        ),
        ("[flow_export]\nrecent_records = 2000000", "flow_export.recent_records"),
        ("[flow_export]\ncollector = \"10.0.0.1:4739\"", "collector"),
    ];
    for (extra, key) in cases {
        let msg = error_of(&base(extra));
        assert!(msg.contains(key), "error for {extra:?} does not name {key:?}: {msg}");
    }
    let msg = error_of("[fabric]\ninterface = \"eth0\"\nip = \"300.1.1.1/24\"");
    assert!(msg.contains("ip"), "{msg}");
    let msg = error_of("[fabric]\ninterface = \"has/slash\"\nip = \"198.18.0.1/24\"");
    assert!(msg.contains("fabric.interface"), "{msg}");
    let msg = error_of("log_level = \"info\"");
    assert!(msg.contains("fabric"), "{msg}");
}

/// The fenced blocks of `lang` in the README.
fn readme_blocks(lang: &str) -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim() == format!("```{lang}") => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_toml_example_in_the_readme_parses_and_validates() {
    let blocks = readme_blocks("toml");
    assert!(!blocks.is_empty());
    for block in blocks {
        let c = Config::parse(&block, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}\n{block}"));
        c.validate(CORES).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
}

#[test]
fn the_xmpp_section_is_checked_key_by_key() {
    let c = Config::parse(&base(""), Path::new("t.toml")).unwrap();
    assert!(c.xmpp.servers.is_empty(), "no control node unless configured");
    assert_eq!(c.xmpp.hold_time_secs, 90);
    let text = base(
        "[xmpp]\nservers = [\"198.18.0.10:5269\", \"[2001:db8::10]:5269\"]\nhost = \"node-1\"\nhold_time_secs = 30",
    );
    let c = Config::parse(&text, Path::new("t.toml")).unwrap();
    c.validate(CORES).unwrap();
    assert_eq!(c.xmpp.server_addrs().unwrap().len(), 2);
    assert_eq!(c.xmpp.host_name(), "node-1");
    let three = "[xmpp]\nservers = [\"198.18.0.10:5269\", \"198.18.0.11:5269\", \"198.18.0.12:5269\"]";
    assert!(error_of(&base(three)).contains("xmpp.servers"));
    assert!(error_of(&base("[xmpp]\nservers = [\"cn1\"]")).contains("xmpp.servers"));
    assert!(error_of(&base("[xmpp]\nhold_time_secs = 1")).contains("xmpp.hold_time_secs"));
    assert!(error_of(&base("[xmpp]\ngraceful_restart_secs = 0")).contains("xmpp.graceful_restart_secs"));
    assert!(error_of(&base("[xmpp]\nhost = \"a b\"")).contains("xmpp.host"));
    assert!(error_of(&base("[xmpp]\nport = 5269")).contains("port"));
}

#[test]
fn the_ingress_section_is_checked_key_by_key() {
    let c = Config::parse(&base(""), Path::new("t.toml")).unwrap();
    assert_eq!(c.ingress.role, None, "no instance unless configured");
    let text = base("[ingress]\nrole = \"standby\"\ngateway = \"198.18.1.1\"\nprobe_interval_ms = 100");
    let c = Config::parse(&text, Path::new("t.toml")).unwrap();
    c.validate(CORES).unwrap();
    assert_eq!(c.ingress.role.map(|r| r.local_preference()), Some(100));
    assert_eq!((c.ingress.probe_interval_ms, c.ingress.probe_failures), (100, 3));
    assert!(error_of(&base("[ingress]\nrole = \"active\"")).contains("ingress.gateway"));
    assert!(error_of(&base("[ingress]\nrole = \"primary\"")).contains("role"));
    assert!(error_of(&base("[ingress]\nprobe_interval_ms = 5")).contains("ingress.probe_interval_ms"));
    assert!(error_of(&base("[ingress]\nprobe_failures = 0")).contains("ingress.probe_failures"));
    assert!(error_of(&base("[ingress]\nmtu = 100")).contains("ingress.mtu"));
    assert!(error_of(&base("[ingress]\nvip = \"198.18.1.1\"")).contains("vip"));
}

#[test]
fn tls_keys_are_checked_and_their_files_read() {
    assert!(error_of(&base("[xmpp]\ntls = true")).contains("xmpp.tls_ca"));
    assert!(error_of(&base("[xmpp]\ntls_ca = \"/x.pem\"")).contains("without xmpp.tls"));
    let missing = error_of(&base("[xmpp]\ntls = true\ntls_ca = \"/nonexistent/ca.pem\""));
    assert!(
        missing.contains("xmpp.tls_ca") && missing.contains("/nonexistent/ca.pem"),
        "{missing}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let text = format!("[xmpp]\ntls = true\ntls_ca = {:?}", empty.display().to_string());
    assert!(error_of(&base(&text)).contains("no certificate"));
    let text = format!(
        "[xmpp]\ntls = true\ntls_ca = {:?}\ntls_cert = {:?}",
        empty.display().to_string(),
        empty.display().to_string()
    );
    assert!(error_of(&base(&text)).contains("xmpp.tls_ca"));
}
