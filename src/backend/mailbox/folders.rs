//! Mailboxes ↔ SMIMP folders: the account's `email` folders are its mailboxes (the root
//! folder is INBOX, a folder's parent chain is its IMAP path), the special mailboxes are
//! created on the server the first time, and CREATE, DELETE and RENAME change folders
//! on the server, so every device of the account sees them.

use std::collections::{HashMap, HashSet};

use rand_core::OsRng;

use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::client::SessionClient;
use crate::clock::unix_now;
use crate::smimp::encoding::Id32;
use crate::smimp::message::MessageType;
use crate::smimp::wire::{ErrorCode, Folder, FolderName};
use crate::store::MailboxRow;

/// The special mailboxes every account has: (IMAP name, SMIMP folder_name, SPECIAL-USE).
pub const SPECIAL_MAILBOXES: [(&str, &str, &str); 5] = [
    ("Sent", "sent", "\\Sent"),
    ("Drafts", "drafts", "\\Drafts"),
    ("Trash", "trash", "\\Trash"),
    ("Junk", "junk", "\\Junk"),
    ("Archive", "archive", "\\Archive"),
];

/// A `[a-z0-9-]` folder name for a new mailbox: a readable stem and a random suffix,
/// so two mailboxes of one display name never collide.
fn new_folder_name(display: &str) -> Result<FolderName, MailboxError> {
    let stem: String = display
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(c)
        })
        .take(40)
        .collect();
    let suffix = &Id32::random(&mut OsRng).to_hex()[..8];
    let name = if stem.is_empty() { format!("box-{suffix}") } else { format!("{stem}-{suffix}") };
    FolderName::parse(&name).map_err(|source| MailboxError::NoFolderName { display: display.to_string(), source })
}

pub(super) fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// A folder of type `email` for a new mailbox.
fn email_folder(display: &str, folder_name: FolderName, parent: Option<FolderName>) -> Folder {
    Folder { display_name: display.to_string(), folder_name, parent, message_type: MessageType::Email }
}

impl Mailboxes {
    /// Every mailbox, after reconciling with the server's folders (creating the special
    /// ones the first time).
    pub async fn list(&self, account: &Account) -> Result<Vec<MailboxRow>, MailboxError> {
        self.reconcile_folders(account).await?;
        Ok(self.store.mailboxes(&account.sender.address).await?)
    }

    /// The server's `email` folders, with the special ones created where missing.
    async fn server_folders(&self, client: &SessionClient) -> Result<Vec<Folder>, MailboxError> {
        let listed = client.list_folders(MessageType::Email).await?;
        let mut folders: Vec<Folder> = listed.into_iter().filter(|f| f.message_type == MessageType::Email).collect();
        for (display, folder_name, _) in SPECIAL_MAILBOXES {
            if !folders.iter().any(|f| f.folder_name.as_str() == folder_name && f.parent.is_none()) {
                let folder = email_folder(
                    display,
                    FolderName::parse(folder_name)
                        .map_err(|source| MailboxError::NoFolderName { display: display.to_string(), source })?,
                    None,
                );
                match client.create_folder(&folder).await {
                    Ok(created) => folders.push(created),
                    Err(err) if err.code() == Some(ErrorCode::Conflict) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(folders)
    }

    /// Makes the account's mailbox rows match the server's folders: new folders get
    /// rows, renamed ones their new path, removed ones lose theirs.
    async fn reconcile_folders(&self, account: &Account) -> Result<(), MailboxError> {
        let address = &account.sender.address;
        self.index.forget_account(address);
        let client = self.client(account).await?;
        let folders = self.server_folders(&client).await?;
        let paths = folder_paths(&folders);
        let now = unix_now();
        if self.store.mailbox_for_folder(address, None).await?.is_none() {
            self.store.add_mailbox(address, "INBOX", None, now).await?;
        }
        for row in self.store.mailboxes(address).await? {
            let Some(folder) = &row.folder else { continue };
            match paths.get(folder) {
                None => self.store.remove_mailbox(row.id).await?,
                Some(path) if path != &row.name => self.store.rename_mailbox_row(row.id, path).await?,
                Some(_) => {}
            }
        }
        for (folder, path) in &paths {
            if self.store.mailbox_for_folder(address, Some(folder)).await?.is_none() {
                self.store.add_mailbox(address, path, Some(folder), now).await?;
            }
        }
        Ok(())
    }

    /// The mailbox named `name` (INBOX in any case), reconciling with the server once if
    /// the store does not know it.
    pub(super) async fn mailbox(&self, account: &Account, name: &str) -> Result<MailboxRow, MailboxError> {
        let find = |rows: Vec<MailboxRow>| {
            rows.into_iter().find(|r| if is_inbox(name) { r.folder.is_none() } else { r.name == name })
        };
        if let Some(row) = find(self.store.mailboxes(&account.sender.address).await?) {
            return Ok(row);
        }
        find(self.list(account).await?).ok_or_else(|| MailboxError::NoMailbox(name.to_string()))
    }

    /// CREATE: a folder on the server (and its missing parents).
    pub async fn create(&self, account: &Account, name: &str) -> Result<(), MailboxError> {
        let name = name.trim_end_matches('/');
        if is_inbox(name) || name.is_empty() {
            return Err(MailboxError::Exists(name.to_string()));
        }
        let rows = self.list(account).await?;
        if rows.iter().any(|r| r.name == name) {
            return Err(MailboxError::Exists(name.to_string()));
        }
        let client = self.client(account).await?;
        let mut parent: Option<FolderName> = None;
        let mut path = String::new();
        let mut created = Vec::new();
        for part in name.split('/') {
            if part.is_empty() {
                return Err(MailboxError::EmptyLevel(name.to_string()));
            }
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            if let Some(row) = rows.iter().find(|r| r.name == path) {
                parent = Some(row.folder.clone().ok_or(MailboxError::InboxNoChildren)?);
                continue;
            }
            let folder = email_folder(part, new_folder_name(part)?, parent.clone());
            parent = Some(client.create_folder(&folder).await?.folder_name);
            created.push(path.clone());
        }
        self.reconcile_folders(account).await?;
        // CREATE does not subscribe (RFC 3501 §6.3.3, §6.3.9): LSUB shows only what
        // the client subscribed to; folders found on the server start subscribed.
        for row in self.store.mailboxes(&account.sender.address).await? {
            if created.contains(&row.name) {
                self.store.set_subscribed(row.id, false).await?;
            }
        }
        self.notify(account);
        Ok(())
    }

    /// DELETE: the mailbox's messages, then its folder. INBOX, the special mailboxes and
    /// mailboxes with children stay.
    pub async fn delete(&self, account: &Account, name: &str) -> Result<(), MailboxError> {
        let row = self.mailbox(account, name).await?;
        let Some(folder) = row.folder.clone() else {
            return Err(MailboxError::InboxDelete);
        };
        if SPECIAL_MAILBOXES.iter().any(|(_, f, _)| *f == folder.as_str()) {
            return Err(MailboxError::Special(name.to_string()));
        }
        let rows = self.store.mailboxes(&account.sender.address).await?;
        if rows.iter().any(|r| r.name.starts_with(&format!("{}/", row.name))) {
            return Err(MailboxError::HasChildren(name.to_string()));
        }
        let client = self.client(account).await?;
        for message in client.list_messages(MessageType::Email, Some(folder.clone())).await? {
            client.delete_message(message.message_id).await?;
        }
        client.delete_folder(MessageType::Email, folder).await?;
        self.store.remove_mailbox(row.id).await?;
        self.index.forget_account(&account.sender.address);
        self.notify(account);
        Ok(())
    }

    /// RENAME: the folder's display name and parent change; its UIDs stay.
    pub async fn rename(&self, account: &Account, from: &str, to: &str) -> Result<(), MailboxError> {
        let to = to.trim_end_matches('/');
        let row = self.mailbox(account, from).await?;
        let Some(folder) = row.folder.clone() else {
            return Err(MailboxError::InboxRename);
        };
        let rows = self.store.mailboxes(&account.sender.address).await?;
        if is_inbox(to) || rows.iter().any(|r| r.name == to) {
            return Err(MailboxError::Exists(to.to_string()));
        }
        let (parent, display) = match to.rsplit_once('/') {
            Some((path, display)) => (Some(self.parent_folder(account, &rows, path).await?), display),
            None => (None, to),
        };
        let update = email_folder(display, folder.clone(), parent);
        self.client(account).await?.update_folder(folder, &update).await?;
        self.reconcile_folders(account).await?;
        self.notify(account);
        Ok(())
    }

    /// The folder of the mailbox at `path` (created if missing), to hold another.
    async fn parent_folder(
        &self,
        account: &Account,
        rows: &[MailboxRow],
        path: &str,
    ) -> Result<FolderName, MailboxError> {
        if !rows.iter().any(|r| r.name == path) {
            self.create(account, path).await?;
        }
        self.mailbox(account, path).await?.folder.ok_or(MailboxError::InboxNotParent)
    }

    pub async fn set_subscribed(&self, account: &Account, name: &str, subscribed: bool) -> Result<(), MailboxError> {
        let row = self.mailbox(account, name).await?;
        self.store.set_subscribed(row.id, subscribed).await?;
        Ok(())
    }
}

/// The IMAP name of every folder: display names along the parent chain, joined by '/'.
/// A folder whose chain is broken or loops is shown at the top level.
fn folder_paths(folders: &[Folder]) -> HashMap<FolderName, String> {
    let by_name: HashMap<&FolderName, &Folder> = folders.iter().map(|f| (&f.folder_name, f)).collect();
    let clean = |display: &str, fallback: &str| {
        let text: String = display.chars().filter(|c| !c.is_control() && *c != '/' && *c != '*' && *c != '%').collect();
        let text = text.trim().to_string();
        if text.is_empty() || is_inbox(&text) {
            fallback.to_string()
        } else {
            text
        }
    };
    let mut paths = HashMap::new();
    for folder in folders {
        let mut parts = vec![clean(&folder.display_name, folder.folder_name.as_str())];
        let mut seen = HashSet::from([&folder.folder_name]);
        let mut parent = folder.parent.as_ref();
        while let Some(name) = parent {
            let Some(up) = by_name.get(name) else { break };
            if !seen.insert(&up.folder_name) {
                break;
            }
            parts.push(clean(&up.display_name, up.folder_name.as_str()));
            parent = up.parent.as_ref();
        }
        parts.reverse();
        paths.insert(folder.folder_name.clone(), parts.join("/"));
    }
    // Two folders shown under one name: the later ones get their folder name added.
    let mut taken: HashSet<String> = HashSet::new();
    let mut names: Vec<(FolderName, String)> = paths.into_iter().collect();
    names.sort();
    names
        .into_iter()
        .map(|(folder, path)| {
            let path = if taken.contains(&path) { format!("{path} ({folder})") } else { path };
            taken.insert(path.clone());
            (folder, path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, display: &str, parent: Option<&str>) -> Folder {
        Folder {
            display_name: display.into(),
            folder_name: FolderName::parse(name).unwrap(),
            parent: parent.map(|p| FolderName::parse(p).unwrap()),
            message_type: MessageType::Email,
        }
    }

    #[test]
    fn folder_paths_follow_parents_and_survive_loops_and_clashes() {
        let folders = [
            folder("work", "Work", None),
            folder("acme", "Acme", Some("work")),
            folder("a", "Loop", Some("b")),
            folder("b", "Back", Some("a")),
            folder("x1", "Same", None),
            folder("x2", "Same", None),
            folder("odd", "in/box*", None),
        ];
        let paths = folder_paths(&folders);
        let path = |name: &str| paths[&FolderName::parse(name).unwrap()].as_str();
        assert_eq!(path("work"), "Work");
        assert_eq!(path("acme"), "Work/Acme");
        assert_eq!(path("a"), "Back/Loop");
        assert_eq!(path("b"), "Loop/Back");
        assert_eq!(path("x1"), "Same");
        assert_eq!(path("x2"), "Same (x2)");
        assert_eq!(path("odd"), "odd", "a name that cleans to INBOX shows as its folder name");
    }

    #[test]
    fn new_folder_names_are_valid_and_distinct() {
        let a = new_folder_name("Projects 2026!").unwrap();
        let b = new_folder_name("Projects 2026!").unwrap();
        assert!(a.as_str().starts_with("projects2026-"));
        assert_ne!(a, b);
        assert!(new_folder_name("Ünïcödé ✉").unwrap().as_str().starts_with("ncd-"));
        assert!(new_folder_name("✉").unwrap().as_str().starts_with("box-"));
    }
}
