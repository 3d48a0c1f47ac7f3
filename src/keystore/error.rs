//! The keystore's one error type. Every variant names the file or source it is
//! about and says what the operator can do, because these errors end the gateway's
//! start-up and are read by a person, not handled by code.
//!
//! Depends only on std and thiserror.

use std::path::PathBuf;

/// Why a keystore could not be loaded, saved, or unlocked.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase verifier does not match: the passphrase is not the one the file
    /// was saved with (or the KDF fields of the header were changed, which no
    /// passphrase can then tell apart).
    #[error(
        "wrong passphrase for keystore {path}: check the passphrase file, environment variable or \
         credential that the configuration names"
    )]
    WrongPassphrase { path: PathBuf },

    /// The passphrase is right but the contents or the header were changed after the
    /// file was written.
    #[error(
        "keystore {path} was altered after it was written (authentication failed although the \
         passphrase is right): restore it from a backup and find out who changed it"
    )]
    Tampered { path: PathBuf },

    /// The file is not a keystore this code can parse (truncated, garbled, not ours).
    #[error("keystore {path} is unreadable ({reason}): restore it from a backup")]
    Corrupt { path: PathBuf, reason: String },

    /// A keystore written by a newer (or unknown) format version.
    #[error(
        "keystore {path} has format version {found}, but this build reads only version {supported}: \
         run a newer smimp-gateway"
    )]
    UnsupportedVersion { path: PathBuf, found: u64, supported: u64 },

    /// Reading, writing, syncing or renaming a file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The configured passphrase source gave no usable passphrase.
    #[error("cannot get the keystore passphrase from {what}: {reason}")]
    PassphraseSource { what: String, reason: String },

    /// KDF parameters outside the range this code accepts.
    #[error("keystore KDF parameters refused: {reason}")]
    KdfParams { reason: String },

    /// Another command (or the running gateway) holds the keystore's lock.
    #[error("another smimp-gateway command is changing {keystore}; wait for it to finish")]
    Busy { keystore: PathBuf },

    /// The local SMTP/IMAP password could not be hashed.
    #[error("cannot hash the local password: {reason}")]
    LocalPassword { reason: String },
}

impl KeystoreError {
    pub(crate) fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Corrupt { path: path.to_path_buf(), reason: reason.into() }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { action, path, source }
    }
}
