//! Fuzzes the configuration loader: any text is parsed and validated; it must never
//! panic, and an error must name something (a key or the file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vrouter::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(c) => {
            if let Err(e) = c.validate(&[0, 1]) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml")),
    }
});
