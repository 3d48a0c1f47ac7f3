//! `demo-state.json`: what the demo keeps between runs — the mail client passwords
//! (the keystores hold only their hashes), the ports, the welcome message's progress —
//! written atomically with mode 0600 in a directory only its owner can enter.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{io, DemoError, STATE_FILE};
use crate::smimp::address::Address;

/// What `demo-state.json` keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) accounts: Vec<StoredLogin>,
    pub(super) ports: Ports,
    /// The welcome message's queue row, while it may still be waiting for delivery.
    pub(super) welcome_queue_id: Option<i64>,
    /// Its SMIMP message id once sent, to find it in the INBOX on later runs.
    pub(super) welcome_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredLogin {
    pub(super) address: String,
    pub(super) username: String,
    pub(super) password: String,
}

/// The ports of the last run (0: none yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Ports {
    pub(super) server: u16,
    pub(super) smtp: u16,
    pub(super) smtp_tls: u16,
    pub(super) imap: u16,
    pub(super) imap_tls: u16,
}

impl State {
    pub(super) fn load(dir: &Path) -> Result<Self, DemoError> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DemoError::State {
                path: path.clone(),
                dir: dir.into(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(DemoError::Io { action: "read", path, source }),
        }
    }

    pub(super) fn save(&self, dir: &Path) -> Result<(), DemoError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| DemoError::State {
            path: dir.join(STATE_FILE),
            dir: dir.into(),
            reason: e.to_string(),
        })?;
        write_private(&dir.join(STATE_FILE), &bytes)
    }

    pub(super) fn login(&self, address: &Address) -> Option<&StoredLogin> {
        self.accounts.iter().find(|l| l.address == address.to_email())
    }

    pub(super) fn set_login(&mut self, login: StoredLogin) {
        self.accounts.retain(|l| l.address != login.address);
        self.accounts.push(login);
    }
}

/// Writes a file only its owner can read (0600), atomically: a crash leaves the old
/// file or the new one, never half of the passwords.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io("create", &temporary))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(io("replace", path))
}

/// Creates a directory only its owner can enter (0700): it holds keys and passwords.
pub(super) fn private_dir(path: &Path) -> Result<(), DemoError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(io("create", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io("restrict", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_a_restart_and_only_its_owner_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = super::super::tests::temp("state");
        assert_eq!(State::load(&dir).unwrap(), State::default(), "no file: a fresh state");
        let mut state = State::default();
        state.set_login(StoredLogin {
            address: "alice@example.test".into(),
            username: "a".into(),
            password: "p".into(),
        });
        state.set_login(StoredLogin {
            address: "alice@example.test".into(),
            username: "a".into(),
            password: "q".into(),
        });
        state.ports.smtp = 2525;
        state.save(&dir).unwrap();
        let loaded = State::load(&dir).unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.accounts.len(), 1, "one login per address");
        assert_eq!(loaded.accounts[0].password, "q");
        let mode = std::fs::metadata(dir.join(STATE_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(dir.join(STATE_FILE), "{not json").unwrap();
        let err = State::load(&dir).unwrap_err().to_string();
        assert!(err.contains(STATE_FILE) && err.contains("start afresh"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
