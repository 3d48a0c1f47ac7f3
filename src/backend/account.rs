//! One account the gateway serves, unlocked: its mail-client login, its keystore as
//! last read (reread when another command added keys), and what sending as it needs.
//! Both front-ends' backends (SMTP submission, the IMAP mailbox) and key upkeep share it.

use std::sync::Arc;

use crate::backend::outbound::Sender;
use crate::keystore::{Keystore, Passphrase};
use crate::smimp::crypto::MasterKey;

/// One account the gateway serves, unlocked.
pub struct Account {
    pub username: String,
    keystore: std::sync::RwLock<Arc<Keystore>>,
    /// Where the keystore lives and how to open it, so `run` can pick up message keys
    /// that `keys replenish` or `keys rotate` added while it runs.
    reopen: Option<(std::path::PathBuf, Passphrase)>,
    pub sender: Sender,
}

impl Account {
    /// An account from its unlocked keystore; `reopen` (its file and passphrase) lets
    /// [`Account::reload`] read it again.
    pub fn new(username: String, keystore: Keystore, reopen: Option<(std::path::PathBuf, Passphrase)>) -> Self {
        let sender = Sender::new(
            keystore.address().clone(),
            Arc::new(MasterKey::from_seed(&keystore.master().seed())),
            keystore.storage_key().clone(),
        );
        Self { username, keystore: std::sync::RwLock::new(Arc::new(keystore)), reopen, sender }
    }

    /// The keystore as last read.
    pub fn keystore(&self) -> Arc<Keystore> {
        self.keystore.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Checks the mail-client password against the keystore's hash, off the async
    /// threads (Argon2 is slow on purpose). False for any failure.
    pub async fn check_password(&self, password: &str) -> bool {
        let keystore = self.keystore();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || keystore.verify_local_password(&password)).await.unwrap_or(false)
    }

    /// The keystore's file and passphrase, when the account was opened from one.
    pub fn keystore_file(&self) -> Option<(&std::path::Path, &Passphrase)> {
        self.reopen.as_ref().map(|(path, passphrase)| (path.as_path(), passphrase))
    }

    /// Reads the keystore file again (for message keys another command added); keeps
    /// the one in memory when the file cannot be read.
    pub fn reload(&self) -> bool {
        let Some((path, passphrase)) = &self.reopen else { return false };
        match Keystore::load(path, passphrase) {
            Ok(fresh) if fresh.address() == &self.sender.address => {
                *self.keystore.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
                true
            }
            Ok(_) => false,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "the keystore could not be read again");
                false
            }
        }
    }
}
