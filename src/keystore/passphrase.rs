//! The keystore passphrase and where it comes from: a file (its first line), an
//! environment variable, or a systemd credential (`$CREDENTIALS_DIRECTORY/<name>`,
//! systemd.exec(5) "Credentials"). Never from the command line, where every local
//! user can read it in the process list.
//!
//! In a TOML config the source is one of `passphrase_file = "…"`,
//! `passphrase_env = "…"` or `passphrase_credential = "…"` ([`PassphraseConfig`]).
//!
//! Depends only on std and crates; the bytes zeroize on drop and never print.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::KeystoreError;

/// Longest passphrase file read; a passphrase is one line, far shorter.
const MAX_FILE_LEN: usize = 64 * 1024;

/// The variable systemd sets to the directory of a service's credentials.
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A keystore passphrase. Zeroized on drop; `Debug` shows nothing of it. Cloned only
/// by `run`, which reopens keystores that another command changed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// A passphrase typed at a prompt (`init`) or built by a test. Takes the
    /// string's buffer over without copying it.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text.into_bytes()))
    }

    /// Reads the passphrase from where the configuration says. Refuses an empty one.
    pub fn from_source(source: &PassphraseSource) -> Result<Self, KeystoreError> {
        Self::from_source_with(source, &|name| std::env::var_os(name))
    }

    /// [`Self::from_source`] with the environment as a parameter, so tests need not
    /// change the process environment.
    fn from_source_with(
        source: &PassphraseSource,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, KeystoreError> {
        source.validate()?;
        let passphrase = match source {
            PassphraseSource::File(path) => read_first_line(path, &format!("passphrase file {}", path.display()))?,
            PassphraseSource::Env(name) => {
                let what = || format!("environment variable {name}");
                let value = env(name).ok_or_else(|| refused(what(), "it is not set"))?;
                Self(Zeroizing::new(value.into_vec()))
            }
            PassphraseSource::Credential(name) => {
                let what = || format!("systemd credential {name:?}");
                let dir = env(CREDENTIALS_DIRECTORY).ok_or_else(|| {
                    refused(
                        what(),
                        format!(
                            "{CREDENTIALS_DIRECTORY} is not set: run the gateway as a systemd service with \
                             LoadCredential={name}:<file>, or configure passphrase_file instead"
                        ),
                    )
                })?;
                let path = PathBuf::from(dir).join(name);
                read_first_line(&path, &format!("{} ({})", what(), path.display()))?
            }
        };
        if passphrase.0.is_empty() {
            return Err(refused(source.describe(), "the passphrase is empty"));
        }
        Ok(passphrase)
    }

    /// The bytes, for the KDF only.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(redacted)")
    }
}

fn refused(what: String, reason: impl Into<String>) -> KeystoreError {
    KeystoreError::PassphraseSource { what, reason: reason.into() }
}

/// The first line of a file, without its `\n` (or `\r\n`).
fn read_first_line(path: &Path, what: &str) -> Result<Passphrase, KeystoreError> {
    let file = std::fs::File::open(path).map_err(|e| refused(what.to_string(), e.to_string()))?;
    // Room for everything `take` lets through, so the buffer never reallocates
    // and leaves a copy behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN + 64));
    file.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut bytes).map_err(|e| refused(what.to_string(), e.to_string()))?;
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => bytes.truncate(end),
        None if bytes.len() > MAX_FILE_LEN => {
            return Err(refused(what.to_string(), format!("the first line is longer than {MAX_FILE_LEN} bytes")))
        }
        None => {}
    }
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Ok(Passphrase(bytes))
}

/// Where the passphrase is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PassphraseConfig", into = "PassphraseConfig")]
pub enum PassphraseSource {
    /// The first line of this file.
    File(PathBuf),
    /// This environment variable's value.
    Env(String),
    /// This systemd credential, `$CREDENTIALS_DIRECTORY/<name>`.
    Credential(String),
}

impl PassphraseSource {
    /// Refuses names that could not be what the operator meant: an empty path, a
    /// variable name with `=` or NUL, a credential name that is a path.
    pub fn validate(&self) -> Result<(), KeystoreError> {
        let bad = |reason: &str| Err(refused(self.describe(), reason));
        match self {
            PassphraseSource::File(path) if path.as_os_str().is_empty() => bad("the path is empty"),
            PassphraseSource::Env(name) if name.is_empty() || name.contains(['=', '\0']) => {
                bad("a variable name must be non-empty and contain no '=' or NUL")
            }
            PassphraseSource::Credential(name)
                if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) =>
            {
                bad("a credential name is a plain file name, without '/'")
            }
            _ => Ok(()),
        }
    }

    /// The source in words, for errors.
    pub fn describe(&self) -> String {
        match self {
            PassphraseSource::File(path) => format!("passphrase file {}", path.display()),
            PassphraseSource::Env(name) => format!("environment variable {name}"),
            PassphraseSource::Credential(name) => format!("systemd credential {name:?}"),
        }
    }
}

/// The config form of a [`PassphraseSource`]: exactly one of the three keys. Embed its
/// fields in a config section, or flatten it (serde's `flatten` does not combine with
/// `deny_unknown_fields` on the outer struct), and call [`PassphraseConfig::source`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassphraseConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_credential: Option<String>,
}

impl PassphraseConfig {
    /// The one source configured, validated.
    pub fn source(&self) -> Result<PassphraseSource, KeystoreError> {
        let source = match (&self.passphrase_file, &self.passphrase_env, &self.passphrase_credential) {
            (Some(path), None, None) => PassphraseSource::File(path.clone()),
            (None, Some(name), None) => PassphraseSource::Env(name.clone()),
            (None, None, Some(name)) => PassphraseSource::Credential(name.clone()),
            _ => {
                return Err(refused(
                    "the configuration".to_string(),
                    "set exactly one of passphrase_file, passphrase_env and passphrase_credential",
                ))
            }
        };
        source.validate()?;
        Ok(source)
    }
}

impl TryFrom<PassphraseConfig> for PassphraseSource {
    type Error = KeystoreError;
    fn try_from(config: PassphraseConfig) -> Result<Self, Self::Error> {
        config.source()
    }
}

impl From<PassphraseSource> for PassphraseConfig {
    fn from(source: PassphraseSource) -> Self {
        match source {
            PassphraseSource::File(path) => Self { passphrase_file: Some(path), ..Self::default() },
            PassphraseSource::Env(name) => Self { passphrase_env: Some(name), ..Self::default() },
            PassphraseSource::Credential(name) => Self { passphrase_credential: Some(name), ..Self::default() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{OsRng, RngCore};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let mut suffix = [0u8; 8];
            OsRng.fill_bytes(&mut suffix);
            let dir =
                std::env::temp_dir().join(format!("smimp-passphrase-{}-{}", std::process::id(), hex::encode(suffix)));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn file_gives_its_first_line_without_the_newline() {
        let dir = TempDir::new();
        let cases: [(&[u8], &[u8]); 5] = [
            (b"secret\n", b"secret"),
            (b"secret", b"secret"),
            (b"secret\r\n", b"secret"),
            (b"first line\nsecond line\n", b"first line"),
            (b" spaces kept \n", b" spaces kept "),
        ];
        for (contents, expected) in cases {
            let path = dir.0.join("passphrase");
            std::fs::write(&path, contents).unwrap();
            let passphrase = Passphrase::from_source(&PassphraseSource::File(path)).unwrap();
            assert_eq!(passphrase.expose(), expected);
        }
    }

    #[test]
    fn empty_missing_or_huge_sources_are_refused_by_name() {
        let dir = TempDir::new();
        let empty = dir.0.join("empty");
        std::fs::write(&empty, "\nsecond").unwrap();
        let huge = dir.0.join("huge");
        std::fs::write(&huge, vec![b'a'; MAX_FILE_LEN + 1]).unwrap();
        for path in [empty, huge, dir.0.join("missing")] {
            let error = Passphrase::from_source(&PassphraseSource::File(path.clone())).unwrap_err();
            assert!(matches!(error, KeystoreError::PassphraseSource { .. }), "{error:?}");
            assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        }
    }

    #[test]
    fn env_variable_is_read_whole() {
        let env = |name: &str| (name == "KS_PASS").then(|| OsString::from("pass word\n"));
        let passphrase = Passphrase::from_source_with(&PassphraseSource::Env("KS_PASS".into()), &env).unwrap();
        assert_eq!(passphrase.expose(), b"pass word\n");
        let error = Passphrase::from_source_with(&PassphraseSource::Env("OTHER".into()), &env).unwrap_err();
        assert!(error.to_string().contains("OTHER"), "{error}");
        let empty = |_: &str| Some(OsString::new());
        assert!(Passphrase::from_source_with(&PassphraseSource::Env("KS_PASS".into()), &empty).is_err());
    }

    #[test]
    fn credential_is_read_from_the_credentials_directory() {
        let dir = TempDir::new();
        std::fs::write(dir.0.join("keystore"), "from systemd\n").unwrap();
        let credentials = dir.0.clone().into_os_string();
        let env = move |name: &str| (name == CREDENTIALS_DIRECTORY).then(|| credentials.clone());
        let source = PassphraseSource::Credential("keystore".into());
        assert_eq!(Passphrase::from_source_with(&source, &env).unwrap().expose(), b"from systemd");
        let error = Passphrase::from_source_with(&source, &no_env).unwrap_err();
        assert!(error.to_string().contains("LoadCredential=keystore"), "{error}");
        for bad in ["../keystore", "a/b", "", ".."] {
            let source = PassphraseSource::Credential(bad.into());
            assert!(Passphrase::from_source_with(&source, &env).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn toml_config_names_exactly_one_source() {
        #[derive(Debug, Deserialize)]
        struct Section {
            passphrase: PassphraseSource,
        }
        let parse = |text: &str| toml::from_str::<Section>(text).map(|s| s.passphrase);
        assert_eq!(
            parse("passphrase = { passphrase_file = \"/etc/smimp/pass\" }").unwrap(),
            PassphraseSource::File("/etc/smimp/pass".into())
        );
        assert_eq!(parse("passphrase = { passphrase_env = \"KS\" }").unwrap(), PassphraseSource::Env("KS".into()));
        assert_eq!(
            parse("passphrase = { passphrase_credential = \"ks\" }").unwrap(),
            PassphraseSource::Credential("ks".into())
        );
        for bad in [
            "passphrase = {}",
            "passphrase = { passphrase_env = \"A\", passphrase_file = \"/b\" }",
            "passphrase = { passphrase = \"on the command line\" }",
            "passphrase = { passphrase_credential = \"a/b\" }",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // The flat form: the three keys directly in a section.
        let config: PassphraseConfig = toml::from_str("passphrase_env = \"KS\"").unwrap();
        assert_eq!(config.source().unwrap(), PassphraseSource::Env("KS".into()));
        let round = toml::to_string(&PassphraseConfig::from(PassphraseSource::File("/p".into()))).unwrap();
        assert_eq!(round.trim(), "passphrase_file = \"/p\"");
    }

    #[test]
    fn debug_shows_nothing_of_the_passphrase() {
        let text = format!("{:?}", Passphrase::new("hunter2".to_string()));
        assert_eq!(text, "Passphrase(redacted)");
    }
}
