//! A walk of one message through the SMIMP protocol core, in this process only: two
//! new identities, their signed histories and pins, a signed message key, proof of
//! work on all cores, seal, verify and open. No server, no network.
//!
//! `cargo run --release --example protocol_walk -- [ZERO_BITS]` (default 20).

use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rand_core::OsRng;

use smimp_gateway::clock::unix_now;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{
    login_token_hash, Ciphertext, HashContext, ReceivedVia, ServerFields, StoredEnvelope, PROTOCOL_VERSION,
};
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::{Email, MessageType, Payload};
use smimp_gateway::smimp::pow::{leading_zero_bits, PowParams, Preimage, SolveControl};
use smimp_gateway::smimp::profile::{verify_history, ProfileFields, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;

fn main() -> Result<()> {
    let zero_bits = match std::env::args().nth(1) {
        Some(bits) => bits.parse().context("the argument is the proof-of-work difficulty in zero bits (0-40)")?,
        None => 20,
    };
    if zero_bits > 40 {
        bail!("at most 40 zero bits");
    }
    walk(zero_bits)
}

fn now() -> Result<Timestamp> {
    Timestamp::from_unix(unix_now()).context("the system clock is outside the years 0000-9999")
}

fn walk(zero_bits: u32) -> Result<()> {
    let alice = Address::from_email("alice@example.org")?;
    let bob = Address::from_email("bob@example.org")?;
    let at = now()?;

    let alice_key = MasterKey::generate(&mut OsRng);
    let bob_key = MasterKey::generate(&mut OsRng);
    let alice_history = [ProfileRecord::initial(&alice_key, &alice, ProfileFields::default(), at)];
    let bob_history = [ProfileRecord::initial(&bob_key, &bob, ProfileFields::default(), at)];
    let bob_pin = verify_history(&bob, &bob_history)?.pin();
    let alice_pin = verify_history(&alice, &alice_history)?.pin();
    println!("identities: {alice} key {}, {bob} key {}", alice_key.public(), bob_key.public());
    println!("histories verified and pinned (first key = latest key, {} record each)", bob_pin.length);

    let (bob_secret, bob_message_key) = SignedMessageKey::generate(&bob_key, &bob, KeyKind::Ephemeral, &mut OsRng);
    bob_message_key.verify(&bob, &bob_pin.latest_key)?;
    println!("message key {} verified against bob's pinned key", bob_message_key.public_key);

    let email = Email {
        to: vec![bob.clone()],
        cc: vec![],
        subject: "Welcome".into(),
        thread_id: Id32::random(&mut OsRng),
        reply_to_message_id: None,
        date_sent: at,
        body: "This message was **sealed**, worked for and opened by the SMIMP core.".into(),
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    };
    let payload = Payload::Email(Box::new(email)).to_bytes();
    let token_hash = login_token_hash(&Id32::random(&mut OsRng));
    let context = HashContext { sender: &alice, recipient: &bob, login_token_hash: &token_hash };
    let sealed = Ciphertext::seal(
        &payload,
        MessageType::Email,
        BoxNonce::random(&mut OsRng),
        &bob_message_key.public_key,
        &alice_key,
    );

    let params = PowParams { zero_bits, nonce: Id32::random(&mut OsRng) };
    let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let control = SolveControl::default();
    let started = Instant::now();
    let pow = Preimage::new(&sealed.pow_input(&context), &params.nonce).solve(
        zero_bits,
        &Id32::random(&mut OsRng),
        threads,
        &control,
    )?;
    let elapsed = started.elapsed();
    let attempts = control.attempts.load(Ordering::Relaxed);
    println!(
        "proof of work: {} zero bits wanted, {} found, {attempts} hashes on {threads} threads in {:.2?} ({:.1} M hashes/s)",
        zero_bits,
        leading_zero_bits(&pow.hash),
        elapsed,
        attempts as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
    );

    let stored = StoredEnvelope {
        sent: sealed.into_envelope(&alice_key, &context, Some(pow)),
        server: ServerFields {
            recipient: bob.clone(),
            sender: alice.clone(),
            sender_public_key: alice_key.public(),
            received_at: at,
            pow_params: Some(params),
            message_id: Id32::random(&mut OsRng),
            login_token_hash: token_hash,
            received_via: ReceivedVia::SmimpClient,
            read: false,
            extensions_data: None,
            protocol_version: PROTOCOL_VERSION.into(),
        },
    };
    let wire = serde_json::to_string(&stored)?;
    println!("envelope: {} bytes of JSON, signed message hash {}", wire.len(), stored.sent.message_hash);

    let received: StoredEnvelope = serde_json::from_str(&wire)?;
    let opened = received.open(&alice_pin.latest_key, &bob_key.public(), &bob_secret)?;
    let Payload::Email(email) = Payload::parse(&received.sent.message_type, &opened)? else {
        bail!("the opened payload is not an email");
    };
    println!("opened by bob after every check: subject {:?}, body {:?}", email.subject, email.body);
    Ok(())
}
