//! Golden and round-trip tests of the mail conversion, over the samples in
//! fixtures/mail/: each `NAME.eml` has a `NAME.json` holding the conversion's inputs
//! (envelope recipients, the time, the RNG seed, known Message-IDs) and its expected
//! result. Thread ids are pinned by a seeded RNG. The expected results were produced by
//! the code and then read line by line against the .eml. Because the code wrote them,
//! an independent parser reviews them too: `python3 tools/mail_fields.py fixtures/mail`
//! prints what Python's `email` package reads in each .eml, and tests/mail_goldens.rs
//! fails when a golden disagrees with it on a field that matters.

use std::collections::HashMap;

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use super::inbound::{email_from_rfc5322, Converted, KnownMessage, NoThreads};
use super::outbound::{rfc5322_from_email, warning_message, RenderMeta};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::timestamp::Timestamp;

/// A deterministic random source for tests (SplitMix64); never for keys.
struct SeededRng(u64);

impl rand_core::RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for SeededRng {}

struct Fixture {
    name: &'static str,
    eml: &'static [u8],
    golden: &'static str,
}

macro_rules! fixture {
    ($name:literal) => {
        Fixture {
            name: $name,
            eml: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mail/", $name, ".eml")),
            golden: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mail/", $name, ".json")),
        }
    };
}

const FIXTURES: &[Fixture] = &[
    fixture!("plain"),
    fixture!("html-only"),
    fixture!("alternative"),
    fixture!("attachments"),
    fixture!("rfc2047"),
    fixture!("reply"),
    fixture!("bcc"),
];

#[derive(Deserialize)]
struct Golden {
    envelope: Vec<Address>,
    now: Timestamp,
    seed: u64,
    #[serde(default)]
    known: HashMap<String, KnownMessage>,
    expected: Value,
}

fn golden(fixture: &Fixture) -> Golden {
    serde_json::from_str(fixture.golden).unwrap_or_else(|e| panic!("{}.json: {e}", fixture.name))
}

fn convert(fixture: &Fixture, raw: &[u8]) -> Converted {
    let golden = golden(fixture);
    email_from_rfc5322(raw, &golden.envelope, &golden.known, golden.now, &mut SeededRng(golden.seed))
        .unwrap_or_else(|e| panic!("{}: {e}", fixture.name))
}

fn as_json(converted: &Converted) -> Value {
    json!({
        "payload": converted.email,
        "recipients": converted.recipients,
        "bcc": converted.bcc,
        "from": converted.from,
        "original_message_id": converted.original_message_id,
    })
}

/// The .eml as stored (LF) and as SMTP delivers it (CRLF).
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for &b in raw {
        if b == b'\n' && out.last() != Some(&b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn fixtures_convert_to_their_golden_payloads() {
    for fixture in FIXTURES {
        let expected = golden(fixture).expected;
        for raw in [fixture.eml.to_vec(), crlf(fixture.eml)] {
            let actual = as_json(&convert(fixture, &raw));
            assert_eq!(
                actual,
                expected,
                "{}: the conversion differs from {}.json; it now gives:\n{}",
                fixture.name,
                fixture.name,
                serde_json::to_string_pretty(&actual).unwrap_or_default()
            );
        }
    }
}

#[test]
fn the_payload_never_carries_bcc() {
    let fixture = FIXTURES.iter().find(|f| f.name == "bcc").unwrap();
    let converted = convert(fixture, fixture.eml);
    let bytes = serde_json::to_string(&converted.email).unwrap();
    for hidden in ["dave", "erin", "first.last", "Not Mapped", "Bcc", "bcc"] {
        assert!(!bytes.contains(hidden), "{hidden} leaked into the payload: {bytes}");
    }
    let names: Vec<&str> = converted.bcc.iter().map(Address::as_str).collect();
    assert_eq!(names, ["dave#example.org", "erin#example.org"]);
    assert_eq!(converted.recipients.len(), 3, "bob is listed twice in the envelope but gets one copy");
}

fn meta(converted: &Converted) -> RenderMeta {
    RenderMeta {
        message_id: Id32([0x5a; 32]),
        sender: Address::from_email(converted.from.as_deref().unwrap()).unwrap(),
        sender_name: None,
        recipient: converted.recipients[0].clone(),
        received_at: Timestamp::parse("2026-01-02 03:04:06").unwrap(),
        verification: "pass".into(),
    }
}

#[test]
fn rendering_then_reparsing_gives_back_the_payload() {
    for fixture in FIXTURES {
        let first = convert(fixture, fixture.eml);
        let meta = meta(&first);
        let rendered = rfc5322_from_email(&first.email, &meta);
        let text = String::from_utf8_lossy(&rendered);
        assert!(!text.contains("\nBcc:") && !text.starts_with("Bcc:"), "{}: {text}", fixture.name);

        // Threading comes back through the gateway's own id forms, without any map.
        let again = email_from_rfc5322(&rendered, &first.recipients, &NoThreads, meta.received_at, &mut SeededRng(99))
            .unwrap_or_else(|e| panic!("{}: the rendering does not parse: {e}\n{text}", fixture.name));
        let (a, b) = (&first.email, &again.email);
        let name = fixture.name;
        assert_eq!(b.subject, a.subject, "{name}");
        assert_eq!(b.to, a.to, "{name}");
        assert_eq!(b.cc, a.cc, "{name}");
        assert_eq!(b.reply_to, a.reply_to, "{name}");
        assert_eq!(b.date_sent, a.date_sent, "{name}");
        assert_eq!(b.body, a.body, "{name}");
        assert_eq!(b.signature_text, a.signature_text, "{name}");
        assert_eq!(b.attachments, a.attachments, "{name}");
        assert_eq!(b.thread_id, a.thread_id, "{name}: the thread survives the round trip");
        assert_eq!(again.bcc, first.bcc, "{name}");
        assert_eq!(again.from.as_deref(), Some(meta.sender.to_email().as_str()), "{name}");

        // And directly with mail-parser: the headers a client reads.
        let parsed = mail_parser::MessageParser::new().parse(&rendered[..]).expect("parses");
        assert_eq!(parsed.message_id(), Some(format!("{}@smimp.invalid", "5a".repeat(32)).as_str()), "{name}");
        let name_shown = parsed.from().and_then(|f| f.first()).and_then(|f| f.name()).map(str::to_string);
        let original_name =
            a.extensions_data.as_ref().and_then(|x| x["x-rfc5322"].get("from_name")).and_then(Value::as_str);
        assert_eq!(name_shown.as_deref(), original_name, "{name}");
    }
}

#[test]
fn addressees_without_an_smimp_form_are_shown_to_every_recipient() {
    let raw = b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>, <first.last@legacy.example>\r\n\
Cc: <ops+alerts@legacy.example>\r\nSubject: mixed\r\n\r\nhello\r\n";
    let bob = [Address::from_email("bob@example.net").unwrap()];
    let converted =
        email_from_rfc5322(raw, &bob, &NoThreads, Timestamp::parse("2026-01-02 03:04:05").unwrap(), &mut SeededRng(1))
            .unwrap();
    let rendered = rfc5322_from_email(&converted.email, &meta(&converted));
    let parsed = mail_parser::MessageParser::new().parse(&rendered[..]).expect("parses");
    let shown = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        list.map(|l| l.iter().filter_map(|a| a.address()).map(str::to_string).collect()).unwrap_or_default()
    };
    assert_eq!(shown(parsed.to()), ["bob@example.net", "first.last@legacy.example"]);
    assert_eq!(shown(parsed.cc()), ["ops+alerts@legacy.example"]);
}

#[test]
fn a_reply_names_its_parent_and_keeps_the_thread() {
    let fixture = FIXTURES.iter().find(|f| f.name == "reply").unwrap();
    let converted = convert(fixture, fixture.eml);
    assert_eq!(converted.email.thread_id, Id32([0xab; 32]));
    assert_eq!(converted.email.reply_to_message_id, Some(Id32([0xcd; 32])));
    let rendered = String::from_utf8(rfc5322_from_email(&converted.email, &meta(&converted))).unwrap();
    let parent = format!("<{}@smimp.invalid>", "cd".repeat(32));
    assert!(rendered.contains(&format!("In-Reply-To: {parent}\r\n")), "{rendered}");
    let thread = format!("<{}@thread.smimp.invalid>", "ab".repeat(32));
    assert!(rendered.contains(&format!("References: {thread}")), "{rendered}");
    assert!(rendered.contains("<root-0@alice.example.org>"), "original references are kept: {rendered}");
    let references = rendered.split("References: ").nth(1).unwrap().split("\r\n\r\n").next().unwrap();
    assert!(references.find(&thread) < references.find(&parent), "oldest first: {references}");
}

#[test]
fn an_unverified_message_is_replaced_without_its_content() {
    let fixture = FIXTURES.iter().find(|f| f.name == "plain").unwrap();
    let converted = convert(fixture, fixture.eml);
    let mut meta = meta(&converted);
    meta.verification = "fail; signature does not verify".into();
    let rendered = warning_message("the message hash is not signed by the sender's key", &meta);
    let parsed = mail_parser::MessageParser::new().parse(&rendered[..]).expect("parses");
    let body = parsed.body_text(0).unwrap().to_string();
    assert!(body.contains("not signed by the sender's key"), "{body}");
    assert!(!body.contains("Lunch") && !parsed.subject().unwrap_or_default().contains("Lunch"));
    assert_eq!(parsed.header_raw("X-SMIMP-Verified").map(str::trim), Some("fail; signature does not verify"));
    assert_eq!(parsed.attachment_count(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_inbound_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let envelope = [Address::parse("bob#example.org").unwrap()];
        let now = Timestamp::parse("2026-01-02 03:04:05").unwrap();
        let _ = email_from_rfc5322(&bytes, &envelope, &NoThreads, now, &mut SeededRng(1));
    }

    #[test]
    fn mail_shaped_input_never_panics(
        headers in proptest::collection::vec(
            ("(To|Cc|Bcc|From|Reply-To|Subject|Date|Message-ID|In-Reply-To|References|Content-Type|Content-Transfer-Encoding|Content-Disposition|Content-ID)",
             "[ -~\u{e9}\u{2603}]{0,60}"),
            0..8),
        body in "(--[a-z]{1,3}(--)?\r?\n|[ -~\u{e9}<>&;=]{0,40}\r?\n){0,20}",
    ) {
        let mut raw = String::new();
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("Content-Type: multipart/mixed; boundary=a\r\n\r\n");
        raw.push_str(&body);
        let envelope = [Address::parse("bob#example.org").unwrap()];
        let now = Timestamp::parse("2026-01-02 03:04:05").unwrap();
        if let Ok(converted) = email_from_rfc5322(raw.as_bytes(), &envelope, &NoThreads, now, &mut SeededRng(1)) {
            // Whatever was accepted renders, and the rendering parses again.
            let rendered = rfc5322_from_email(&converted.email, &RenderMeta {
                message_id: Id32([1; 32]),
                sender: envelope[0].clone(),
                sender_name: None,
                recipient: envelope[0].clone(),
                received_at: now,
                verification: "pass".into(),
            });
            prop_assert!(email_from_rfc5322(&rendered, &envelope, &NoThreads, now, &mut SeededRng(1)).is_ok());
        }
    }

    #[test]
    fn any_subject_survives_the_round_trip(subject in "\\PC{0,120}") {
        let envelope = [Address::parse("bob#example.org").unwrap()];
        let now = Timestamp::parse("2026-01-02 03:04:05").unwrap();
        let email = crate::smimp::message::Email {
            to: envelope.to_vec(),
            cc: vec![],
            subject: subject.clone(),
            thread_id: Id32([2; 32]),
            reply_to_message_id: None,
            date_sent: now,
            body: "x\n".into(),
            signature_text: None,
            attachments: vec![],
            extensions_data: None,
            reply_to: None,
            auto_reply_address: None,
        };
        let meta = RenderMeta {
            message_id: Id32([1; 32]),
            sender: envelope[0].clone(),
            sender_name: None,
            recipient: envelope[0].clone(),
            received_at: now,
            verification: "pass".into(),
        };
        let rendered = rfc5322_from_email(&email, &meta);
        let again = email_from_rfc5322(&rendered, &envelope, &NoThreads, now, &mut SeededRng(1)).unwrap();
        let collapsed: Vec<&str> = subject.split_whitespace().collect();
        let back: Vec<&str> = again.email.subject.split_whitespace().collect();
        prop_assert_eq!(back, collapsed);
    }
}
