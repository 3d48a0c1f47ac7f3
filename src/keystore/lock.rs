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

/// Creates the directory a keystore file (or its lock) goes in, when missing, and
/// makes it 0700 (readable by its owner only) whatever the umask.
pub fn create_parent_dir(file: &Path) -> Result<(), KeystoreError> {
    let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    private_dir(dir).map_err(|source| KeystoreError::Io { action: "create", path: dir.into(), source })
}

/// Creates `dir` 0700 and tightens it to 0700 when it exists, unless it is a shared
/// directory (sticky bit, such as /tmp), which is never changed.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o1000 != 0 {
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
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
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "the keystore directory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
