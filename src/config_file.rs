//! Reading TOML configuration files (leaf utility, used by the gateway's and the
//! server's configuration): one error type that always names the file, and the key
//! when the problem is a value; relative paths taken from the file's directory.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The TOML parser's message gives the line, column and key.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key {key}: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

/// Reads and parses a file (types use `deny_unknown_fields`, so typos are errors).
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    parse_toml(&text, path)
}

/// Parses TOML text read from `path`.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
}

/// An error about one key of `path`.
pub fn invalid(path: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.into(), key: key.into(), message: message.into() }
}

/// Makes a relative path relative to the configuration file's directory.
pub fn anchor(config_file: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = config_file.parent().unwrap_or(Path::new(".")).join(&*path);
    }
}
