//! The keystore's advisory lock: held while a command or the running gateway changes a
//! keystore, so two writers never interleave their load → change → save → upload
//! (which could publish a key whose secret was lost).

use std::path::Path;

use super::KeystoreError;

/// Held while a keystore is being changed; the lock lasts as long as the open file.
pub struct KeystoreLock {
    _file: std::fs::File,
}

impl KeystoreLock {
    /// Takes the lock of `keystore` (a `.lock` file beside it), or says another
    /// command holds it.
    pub fn take(keystore: &Path) -> Result<Self, KeystoreError> {
        let path = keystore.with_extension("lock");
        create_parent_dir(&path)?;
        let file = std::fs::File::create(&path).map_err(|source| KeystoreError::Io {
            action: "create",
            path: path.clone(),
            source,
        })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(_) => Err(KeystoreError::Busy { keystore: keystore.into() }),
        }
    }
}

/// Creates the directory a keystore file (or its lock) goes in, when missing.
pub fn create_parent_dir(file: &Path) -> Result<(), KeystoreError> {
    let Some(dir) = file.parent() else { return Ok(()) };
    std::fs::create_dir_all(dir).map_err(|source| KeystoreError::Io { action: "create", path: dir.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_told_the_keystore_is_busy_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("keystore-lock-{}", std::process::id()));
        let keystore = dir.join("alice.keystore");
        let first = KeystoreLock::take(&keystore).unwrap();
        let err = KeystoreLock::take(&keystore).err().unwrap().to_string();
        assert!(err.contains("another smimp-gateway command is changing") && err.contains("alice.keystore"), "{err}");
        drop(first);
        assert!(KeystoreLock::take(&keystore).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
