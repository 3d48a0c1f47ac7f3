//! The protocol core against libsodium itself: every entry of the committed
//! libsodium-made vectors is recomputed byte for byte, and the committed Rust-made
//! vectors (which the generator verifies with libsodium) are what this code makes now.

use smimp_gateway::smimp::vectors::{check_document, generate_rust_document, render, VectorDocument};

fn load(name: &str) -> (String, VectorDocument) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, doc)
}

#[test]
fn libsodium_vectors_are_reproduced_byte_for_byte() {
    let (_, doc) = load("libsodium.json");
    assert_eq!(doc.generator, "tools/vectors/generate.py");
    let report = check_document(&doc);
    assert!(report.failures.is_empty(), "failures: {:#?}", report.failures);
    assert!(report.passed >= 100, "only {} checks ran", report.passed);
}

#[test]
fn committed_rust_vectors_match_what_the_code_makes_now() {
    let (text, _) = load("rust.json");
    let fresh = generate_rust_document();
    assert_eq!(text, render(&fresh), "run `cargo run --example write_vectors` and let generate.py --check verify it");
    let report = check_document(&fresh);
    assert!(report.failures.is_empty(), "failures: {:#?}", report.failures);
}

#[test]
fn a_tampered_vector_is_caught() {
    let (_, mut doc) = load("libsodium.json");
    doc.boxes[1].ciphertext[5] ^= 1;
    doc.envelope.sent.message[0] ^= 1;
    doc.profile_history.history[1].data.insert(1, ' ');
    let report = check_document(&doc);
    let joined = report.failures.join("\n");
    assert!(joined.contains("boxes[1]: identical ciphertext"), "{joined}");
    assert!(joined.contains("envelope: opens"), "{joined}");
    assert!(joined.contains("profile_history: verifies"), "{joined}");
}
