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
