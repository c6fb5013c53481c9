//! Fuzzes what a control node (or anyone on its address) can send: the bytes go to
//! an XMPP session in chunks whose sizes the input also picks, with the clock moving;
//! framing, parsing and decoding must never panic, and a stanza in progress stays
//! within the session's bound.
#![no_main]

use control_client::xmpp::{Session, SessionConfig};
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
    };
    let mut session = Session::new(config, t0);
    for (i, piece) in rest.chunks(chunk).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 700);
        session.handle_input(piece, now);
        session.handle_timeout(now);
        while session.poll_event().is_some() {}
        let _ = session.poll_transmit();
    }
});
