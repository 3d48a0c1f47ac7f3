//! Every example configuration in config/ parses and validates, so the documented
//! keys and defaults stay true to the code.

use std::path::Path;

use smimp_gateway::gateway::config::GatewayConfig;
use smimp_gateway::server::config::ServerConfig;

#[test]
fn every_config_file_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".toml") {
            continue;
        }
        match name.as_str() {
            "server.example.toml" => {
                let config = ServerConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(config.server.domain, "example.org");
                assert!(config.server.database.is_absolute(), "relative paths resolve against the file's directory");
            }
            "gateway.example.toml" => {
                let config = GatewayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(config.keys.ephemeral_target, 20);
                assert!(config.gateway.data_dir.is_absolute(), "relative paths resolve against the file's directory");
                assert!(config.keystore.passphrase_file.as_ref().is_some_and(|p| p.is_absolute()));
                assert!(config.relay.is_empty(), "the legacy relay is off unless configured");
            }
            other => panic!("config/{other} has no parser test: add one here"),
        }
        checked += 1;
    }
    assert!(checked >= 2, "no configuration files found in {}", dir.display());
}

/// The gateway serves plaintext mail to this machine's clients, so it refuses to listen
/// anywhere but loopback, on every one of its four ports, and names the key and why.
#[test]
fn the_gateway_refuses_to_listen_beyond_loopback() {
    let dir = std::env::temp_dir().join(format!("smimp-config-listen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("passphrase.txt"), "passphrase\n").unwrap();
    let base = "[gateway]\ndata_dir = \"data\"\n[keystore]\npassphrase_file = \"passphrase.txt\"\n";
    let path = dir.join("gateway.toml");
    let loopback = format!("{base}[smtp]\nlisten = \"127.0.0.1:2587\"\n[imap]\nlisten = \"[::1]:2143\"\n");
    std::fs::write(&path, &loopback).unwrap();
    GatewayConfig::load(&path).unwrap_or_else(|e| panic!("loopback is accepted: {e}"));
    for (section, key) in [("smtp", "listen"), ("smtp", "tls_listen"), ("imap", "listen"), ("imap", "tls_listen")] {
        for addr in ["0.0.0.0:2587", "192.0.2.10:2587", "[::]:2587", "[2001:db8::1]:2587"] {
            std::fs::write(&path, format!("{base}[{section}]\n{key} = \"{addr}\"\n")).unwrap();
            let err = GatewayConfig::load(&path).expect_err(&format!("{section}.{key} = {addr} must be refused"));
            let text = err.to_string();
            assert!(text.contains(&format!("{section}.{key}")), "the error names the key: {text}");
            assert!(text.contains("listen on 127.0.0.1 or ::1"), "the error says why: {text}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
