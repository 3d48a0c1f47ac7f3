//! Seal and open of an envelope at 4 KB and 1 MB payloads: encryption, the message
//! field hash, the signed message hash, and on open every check before decryption.
//! Proof of work is measured separately (benches/pow.rs) and not included here.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, BoxSecretKey, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{
    login_token_hash, Ciphertext, HashContext, ReceivedVia, ServerFields, StoredEnvelope, PROTOCOL_VERSION,
};
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::timestamp::Timestamp;

fn envelope(c: &mut Criterion) {
    let alice = Address::parse("alice#example.org").expect("fixed address");
    let bob = Address::parse("bob#example.org").expect("fixed address");
    let alice_key = MasterKey::from_seed(&[1; 32]);
    let bob_key = MasterKey::from_seed(&[2; 32]);
    let bob_message = BoxSecretKey::from_bytes([3; 32]);
    let token_hash = login_token_hash(&Id32([4; 32]));
    let context = HashContext { sender: &alice, recipient: &bob, login_token_hash: &token_hash };
    let nonce = BoxNonce([5; 24]);

    let mut group = c.benchmark_group("envelope");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    for (name, size) in [("4KB", 4 * 1024), ("1MB", 1024 * 1024)] {
        let payload = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", name), &payload, |b, payload| {
            b.iter(|| {
                Ciphertext::seal(black_box(payload), MessageType::Email, nonce, &bob_message.public(), &alice_key)
                    .into_envelope(&alice_key, &context, None)
            })
        });
        let sent = Ciphertext::seal(&payload, MessageType::Email, nonce, &bob_message.public(), &alice_key)
            .into_envelope(&alice_key, &context, None);
        let stored = StoredEnvelope {
            sent,
            server: ServerFields {
                recipient: bob.clone(),
                sender: alice.clone(),
                sender_public_key: alice_key.public(),
                received_at: Timestamp::from_unix(0).expect("epoch"),
                pow_params: None,
                message_id: Id32([6; 32]),
                login_token_hash: token_hash,
                received_via: ReceivedVia::SmimpClient,
                read: false,
                extensions_data: None,
                protocol_version: PROTOCOL_VERSION.into(),
            },
        };
        group.bench_with_input(BenchmarkId::new("open", name), &stored, |b, stored| {
            b.iter(|| stored.open(&alice_key.public(), &bob_key.public(), &bob_message).expect("opens"))
        });
    }
    group.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
