//! A line typed at the prompt (or read from a script).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = healthchain_cli::command::parse(&String::from_utf8_lossy(data));
});
