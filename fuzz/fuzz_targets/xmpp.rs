//! Fuzzes what a control node (or anyone on its address) can send: the bytes go to
//! an XMPP session in chunks whose sizes the input also picks, with the clock moving;
//! framing, parsing and decoding must never panic, and a stanza in progress stays
//! within the session's bound. Config stanzas go on into the Contrail object graph
//! and its compilation, and route messages into the route changes they ask for.
#![no_main]

use control_client::contrail::{compile, ifmap, ConfigGraph};
use control_client::xmpp::routes::{changes, Local};
use control_client::xmpp::{Event, Incoming, Session, SessionConfig};
use control_client::DesiredState;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let t0 = Instant::now();
    let config = SessionConfig {
        host: "fuzz".into(),
        hold_time: Duration::from_secs(9),
        max_stanza: 4096,
        // The chunk size's low bit also says whether STARTTLS is negotiated.
        tls: chunk % 2 == 1,
    };
    let mut session = Session::new(config, t0);
    let mut graph = ConfigGraph::new();
    let mut state = DesiredState::new(16);
    state.set_fabric("fabric0");
    for (i, piece) in rest.chunks(chunk).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 700);
        session.handle_input(piece, now);
        session.handle_timeout(now);
        while let Some(event) = session.poll_event() {
            match event {
                Event::Received(Incoming::Config(config)) => {
                    let (ops, _) = ifmap::decode(&config);
                    graph.apply(ops);
                    let _ = compile(&graph, "fuzz");
                }
                Event::Received(Incoming::Routes(update)) => {
                    let local = Local {
                        fabric_ip: Some([198, 18, 0, 1].into()),
                        state: &state,
                    };
                    let _ = changes(&update, local);
                }
                _ => {}
            }
        }
        let _ = session.poll_transmit();
    }
});
