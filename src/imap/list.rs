//! Pure LIST and LSUB (RFC 3501 §6.3.8-9, RFC 3348 CHILDREN, RFC 6154 SPECIAL-USE):
//! reference and pattern joined, `*` and `%` matched against the hierarchy, parents
//! that do not exist shown as `\Noselect`, `\HasChildren`/`\HasNoChildren` on every
//! name, special-use attributes, and LSUB's rule for unsubscribed parents.
//!
//! Depends only on std and the sibling `wire`.

use std::collections::BTreeMap;

use super::wire::{mailbox_to_wire, string};
use super::MailboxInfo;

/// The hierarchy delimiter.
pub const DELIMITER: char = '/';

/// Whether `name` matches `pattern` (`*` anything, `%` anything but the delimiter).
/// INBOX matches case-insensitively, as its name is (RFC 3501 §5.1).
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern = canonical_inbox(pattern);
    let name = canonical_inbox(name);
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    wildcard(&p, &n)
}

fn wildcard(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| wildcard(&p[1..], &n[i..])),
        Some('%') => {
            let limit = n.iter().position(|&c| c == DELIMITER).unwrap_or(n.len());
            (0..=limit).any(|i| wildcard(&p[1..], &n[i..]))
        }
        Some(&c) => n.first() == Some(&c) && wildcard(&p[1..], &n[1..]),
    }
}

/// `INBOX` in any case, alone or as the first level, written as `INBOX`.
pub fn canonical_inbox(name: &str) -> String {
    let head = name.split(DELIMITER).next().unwrap_or_default();
    if head.eq_ignore_ascii_case("INBOX") {
        format!("INBOX{}", &name[head.len()..])
    } else {
        name.to_string()
    }
}

/// One listed name: attributes and the name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    exists: bool,
    info: Option<MailboxInfo>,
    children: bool,
}

fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(DELIMITER).map(move |(i, _)| &name[..i]).filter(|p| !p.is_empty())
}

/// The `* LIST` (or `* LSUB`) lines for `reference` and `pattern`.
pub fn list(mailboxes: &[MailboxInfo], reference: &str, pattern: &str, lsub: bool) -> Vec<Vec<u8>> {
    let command = if lsub { "LSUB" } else { "LIST" };
    if pattern.is_empty() {
        // The hierarchy delimiter and root name (RFC 3501 §6.3.8).
        return vec![format!("* {command} (\\Noselect) \"/\" \"\"\r\n").into_bytes()];
    }
    let full = format!("{reference}{pattern}");
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for info in mailboxes {
        let name = canonical_inbox(&info.name);
        entries.insert(name, Entry { exists: true, info: Some(info.clone()), children: false });
    }
    let names: Vec<String> = entries.keys().cloned().collect();
    for name in &names {
        for parent in ancestors(name) {
            entries
                .entry(parent.to_string())
                .or_insert(Entry { exists: false, info: None, children: false })
                .children = true;
        }
    }
    let mut lines = Vec::new();
    let mut ordered: Vec<(&String, &Entry)> = entries.iter().collect();
    // INBOX first, as clients expect.
    ordered.sort_by_key(|(name, _)| (name.as_str() != "INBOX", (*name).clone()));
    for (name, entry) in ordered {
        if !matches(&full, name) {
            continue;
        }
        let mut attributes: Vec<&str> = Vec::new();
        if lsub {
            let subscribed = entry.info.as_ref().is_some_and(|i| i.subscribed);
            if !subscribed {
                // An unsubscribed parent is listed only when `%` hides a subscribed
                // child (RFC 3501 §6.3.9).
                let prefix = format!("{name}{DELIMITER}");
                let hidden_child = entries.iter().any(|(child, e)| {
                    child.starts_with(&prefix)
                        && e.info.as_ref().is_some_and(|i| i.subscribed)
                        && !matches(&full, child)
                });
                if !hidden_child {
                    continue;
                }
                attributes.push("\\Noselect");
            }
        } else {
            if !entry.exists {
                attributes.push("\\Noselect");
            }
            attributes.push(if entry.children { "\\HasChildren" } else { "\\HasNoChildren" });
            if let Some(special) = entry.info.as_ref().and_then(|i| i.special_use) {
                attributes.push(special.attribute());
            }
        }
        let mut line = format!("* {command} ({}) \"/\" ", attributes.join(" ")).into_bytes();
        string(&mut line, mailbox_to_wire(name).as_bytes());
        line.extend_from_slice(b"\r\n");
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::SpecialUse;

    fn info(name: &str, special_use: Option<SpecialUse>, subscribed: bool) -> MailboxInfo {
        MailboxInfo { name: name.into(), special_use, subscribed }
    }

    fn mailboxes() -> Vec<MailboxInfo> {
        vec![
            info("INBOX", None, true),
            info("Sent", Some(SpecialUse::Sent), true),
            info("Work/Projects/Alpha", None, true),
            info("Work/Reports", None, false),
            info("Archiv/Entwürfe", None, false),
        ]
    }

    fn lines(reference: &str, pattern: &str, lsub: bool) -> Vec<String> {
        list(&mailboxes(), reference, pattern, lsub).into_iter().map(|l| String::from_utf8(l).unwrap()).collect()
    }

    #[test]
    fn patterns_match() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "abc"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(matches("a%c", "abbc"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/x"));
        assert!(!matches("sent", "Sent"));
        assert!(matches("W*s", "Work/Reports"));
    }

    #[test]
    fn list_shows_the_hierarchy() {
        assert_eq!(
            lines("", "*", false),
            [
                "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n",
                "* LIST (\\Noselect \\HasChildren) \"/\" \"Archiv\"\r\n",
                "* LIST (\\HasNoChildren) \"/\" \"Archiv/Entw&APw-rfe\"\r\n",
                "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n",
                "* LIST (\\Noselect \\HasChildren) \"/\" \"Work\"\r\n",
                "* LIST (\\Noselect \\HasChildren) \"/\" \"Work/Projects\"\r\n",
                "* LIST (\\HasNoChildren) \"/\" \"Work/Projects/Alpha\"\r\n",
                "* LIST (\\HasNoChildren) \"/\" \"Work/Reports\"\r\n",
            ]
        );
        assert_eq!(
            lines("Work/", "%", false),
            [
                "* LIST (\\Noselect \\HasChildren) \"/\" \"Work/Projects\"\r\n",
                "* LIST (\\HasNoChildren) \"/\" \"Work/Reports\"\r\n",
            ]
        );
        assert_eq!(lines("", "", false), ["* LIST (\\Noselect) \"/\" \"\"\r\n"]);
        assert_eq!(lines("", "nothing", false), Vec::<String>::new());
    }

    #[test]
    fn lsub_shows_subscriptions_and_hidden_parents() {
        assert_eq!(
            lines("", "*", true),
            [
                "* LSUB () \"/\" \"INBOX\"\r\n",
                "* LSUB () \"/\" \"Sent\"\r\n",
                "* LSUB () \"/\" \"Work/Projects/Alpha\"\r\n",
            ]
        );
        assert_eq!(
            lines("", "%", true),
            ["* LSUB () \"/\" \"INBOX\"\r\n", "* LSUB () \"/\" \"Sent\"\r\n", "* LSUB (\\Noselect) \"/\" \"Work\"\r\n",]
        );
    }
}
