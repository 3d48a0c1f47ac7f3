//! Fuzzes the SMIMP parsers and verifiers with untrusted documents: the first byte
//! picks the document kind, the rest is its text. The only property checked is the
//! core's rule that no input makes a parser or verifier panic. The fixed keys are
//! those of the `envelope` entry in fixtures/vectors/libsodium.json, so the seeds in
//! fuzz/seeds/json_documents/ get past the signature checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxSecretKey, MasterKey, MasterPublicKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::StoredEnvelope;
use smimp_gateway::smimp::keys::SignedMessageKey;
use smimp_gateway::smimp::message::{MessageType, Payload};
use smimp_gateway::smimp::pow::PowSolution;
use smimp_gateway::smimp::profile::{verify_history, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;
use std::sync::OnceLock;

const ALICE_SEED: &str = "5993129c740da66669666e6100d898c0dad63ceb1f0b17266b18bce865ae0c7c";
const BOB_SEED: &str = "00bfef1230f3f5800a4269792b38d443bce0fa388b536d8da491a257e36c352a";
const BOB_MESSAGE_SECRET: &str = "7d53cbe1ae9cee5ecd90fcebc1c2388c624cabe51db2ffc08e8e8c18c722d278";

/// Alice's and Bob's master public keys and Bob's message secret, derived once.
fn keys() -> &'static (MasterPublicKey, MasterPublicKey, BoxSecretKey) {
    static KEYS: OnceLock<(MasterPublicKey, MasterPublicKey, BoxSecretKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let bytes = |h: &str| h.parse::<Id32>().expect("a 32-byte hex constant").0;
        let master = |h: &str| MasterKey::from_seed(&bytes(h)).public();
        (master(ALICE_SEED), master(BOB_SEED), BoxSecretKey::from_bytes(bytes(BOB_MESSAGE_SECRET)))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let text = std::str::from_utf8(body).ok();
    let alice = || Address::parse("alice#example.org").unwrap();
    let (alice_key, bob_key, bob_secret) = keys();
    match selector % 7 {
        0 => {
            let Some(text) = text else { return };
            for address in [Address::parse(text), Address::from_email(text)].into_iter().flatten() {
                let _ = (address.to_email(), address.to_string(), address.local(), address.domain());
            }
        }
        1 => {
            if let Ok(records) = serde_json::from_slice::<Vec<ProfileRecord>>(body) {
                if let Ok(history) = verify_history(&alice(), &records) {
                    let _ = (history.pin(), history.latest(), history.current_key());
                }
            }
        }
        2 => {
            if let Ok(key) = serde_json::from_slice::<SignedMessageKey>(body) {
                let _ = key.verify(&alice(), alice_key);
            }
        }
        3 => {
            if let Ok(envelope) = serde_json::from_slice::<StoredEnvelope>(body) {
                let _ = envelope.open(alice_key, bob_key, bob_secret);
            }
        }
        4 => {
            let kinds = [
                MessageType::Email,
                MessageType::ShortMessage,
                MessageType::SecretEd25519,
                MessageType::SecretCurve25519,
                MessageType::SecretXsalsa20,
                MessageType::Custom("x-custom-fuzz".into()),
            ];
            for kind in kinds {
                if let Ok(payload) = Payload::parse(&kind, body) {
                    let _ = payload.to_bytes();
                }
            }
        }
        5 => {
            let _ = text.map(|t| t.parse::<PowSolution>().map(|s| s.to_string()));
        }
        _ => {
            let _ = text.map(|t| Timestamp::parse(t).map(|t| (t.to_wire(), t.unix())));
        }
    }
});
