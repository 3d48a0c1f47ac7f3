//! STORE: flags change in the gateway's view at once and on the server, so the
//! account's other devices see them — \Seen as the message's read status, every other
//! flag in its sealed extensions data (the server never reads them).

use std::collections::HashSet;

use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::backend::inbound::{seal_extras, MessageExtras};
use crate::client::{ClientError, SessionClient};
use crate::smimp::encoding::Id32;
use crate::store::{Flag, Flags, Uid};

/// How `store_flags` changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Add,
    Remove,
    Replace,
}

impl FlagChange {
    /// `before` changed by `flags`.
    fn apply(self, before: &Flags, flags: &Flags) -> Flags {
        let mut after = match self {
            FlagChange::Replace => Flags::default(),
            FlagChange::Add | FlagChange::Remove => before.clone(),
        };
        for flag in flags.iter() {
            match self {
                FlagChange::Add | FlagChange::Replace => after.insert(flag.clone()),
                FlagChange::Remove => after.remove(flag),
            }
        }
        after
    }
}

/// The words of every flag but \Seen, which the extensions data keeps.
fn extras(flags: &Flags) -> Vec<String> {
    flags.words_without(&Flag::Seen)
}

/// Writes `flags` to the server: the read status, and the other flags sealed in the
/// extensions data. `before` (the flags the server has) saves calls that change nothing.
pub(super) async fn write_flags(
    client: &SessionClient,
    account: &Account,
    message_id: Id32,
    before: &Flags,
    flags: &Flags,
) -> Result<(), ClientError> {
    if before.contains(&Flag::Seen) != flags.contains(&Flag::Seen) {
        client.set_read(message_id, flags.contains(&Flag::Seen)).await?;
    }
    if extras(before) != extras(flags) {
        let sealed = seal_extras(&MessageExtras { flags: extras(flags) }, &account.keystore());
        client.set_extensions(message_id, sealed).await?;
    }
    Ok(())
}

impl Mailboxes {
    /// STORE: local flags change at once; \Seen goes to the server's read status, the
    /// other flags to the message's sealed extensions data, so other devices see them.
    pub async fn store_flags(
        &self,
        account: &Account,
        name: &str,
        uids: &[Uid],
        change: FlagChange,
        flags: &Flags,
    ) -> Result<Vec<(Uid, Flags)>, MailboxError> {
        let row = self.mailbox(account, name).await?;
        let messages = self.store.mailbox_messages(row.id).await?;
        let wanted: HashSet<Uid> = uids.iter().copied().collect();
        let client = self.client(account).await?;
        let mut out = Vec::new();
        for message in messages.iter().filter(|m| wanted.contains(&m.uid)) {
            let after = change.apply(&message.flags, flags);
            write_flags(&client, account, message.message_id, &message.flags, &after).await?;
            self.store.set_message_flags(row.id, message.uid, &after).await?;
            out.push((message.uid, after));
        }
        if !out.is_empty() {
            self.notify(account);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_add_remove_and_replace_as_sets() {
        let before = Flags::from_column("\\Seen $Work");
        let given = Flags::from_column("$work \\Flagged");
        assert_eq!(FlagChange::Add.apply(&before, &given).to_column(), "\\Seen $Work \\Flagged");
        assert_eq!(FlagChange::Remove.apply(&before, &given).to_column(), "\\Seen");
        assert_eq!(FlagChange::Replace.apply(&before, &given).to_column(), "$work \\Flagged");
        assert_eq!(extras(&Flags::from_column("\\Seen $B $A")), vec!["$A", "$B"]);
    }
}
