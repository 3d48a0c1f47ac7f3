//! Fuzzes the IMAP front-end with a mail client's bytes: the input is one connection's
//! stream, framed and parsed as the gateway does it (imap-codec's fragmentizer with the
//! gateway's literal limit, then its command codec), and every command parsed runs
//! through the project's code that takes its untrusted parts: LIST/LSUB patterns,
//! mailbox names, sequence and UID sets against a fixed view of 1,000 messages, SEARCH
//! keys, FETCH items and APPENDed messages. The property checked: no input panics, and
//! none allocates without bound (libFuzzer's -rss_limit_mb and -malloc_limit_mb).
//! The work is in `smimp_gateway::imap::fuzz_command` (src/imap/fuzz_entry.rs), as
//! that code is crate-private.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smimp_gateway::imap::fuzz_command(data);
});
