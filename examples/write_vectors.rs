//! Writes fixtures/vectors/rust.json: the Rust side of the cross-implementation
//! vectors, which `tools/vectors/generate.py --check` verifies with libsodium.
//! Deterministic: re-running writes the same bytes (tests/vectors.rs checks that).

use smimp_gateway::smimp::vectors::{describe, generate_rust_document};

fn main() -> std::process::ExitCode {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vectors/rust.json");
    let doc = generate_rust_document();
    let text = smimp_gateway::smimp::vectors::render(&doc);
    if let Err(err) = std::fs::write(&path, text) {
        eprintln!("write_vectors: cannot write {}: {err}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    println!("wrote {}: {}", path.display(), describe(&doc));
    std::process::ExitCode::SUCCESS
}
