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

/// The longest LIST pattern (reference and pattern joined) accepted, in characters.
/// Matching costs at most the pattern's length times the name's, so this bounds it.
pub const MAX_PATTERN_CHARS: usize = 1024;

/// A LIST pattern over [`MAX_PATTERN_CHARS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the LIST pattern has {0} characters; at most {MAX_PATTERN_CHARS} are accepted")]
pub struct PatternTooLong(pub usize);

/// Whether `name` matches `pattern` (`*` anything, `%` anything but the delimiter).
/// INBOX matches case-insensitively, as its name is (RFC 3501 §5.1).
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern = canonical_inbox(pattern);
    let name = canonical_inbox(name);
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    wildcard(&p, &n)
}

/// A wildcard that may absorb more of the name if what follows it fails: where the
/// pattern goes on after it, and where in the name its match ends now.
#[derive(Clone, Copy)]
struct Resume {
    pattern: usize,
    name: usize,
}

/// Iterative two-pointer matching with star backtracking: on a mismatch the latest
/// `%` absorbs one more character, unless that would be the delimiter; then the latest
/// `*` does. Only these two points are kept. A `*` makes every earlier point useless
/// (it can absorb whatever they could), and every match of the stretch before a `%`
/// ends on the same hierarchy level (a `%` never crosses the delimiter and literal
/// delimiters are fixed), so its earliest end leaves the `%` the most room. No
/// recursion, and at most `p.len() × n.len()` steps.
fn wildcard(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<Resume> = None;
    let mut percent: Option<Resume> = None;
    loop {
        match p.get(pi) {
            Some('*') => {
                pi += 1;
                star = Some(Resume { pattern: pi, name: ni });
                percent = None;
                continue;
            }
            Some('%') => {
                pi += 1;
                percent = Some(Resume { pattern: pi, name: ni });
                continue;
            }
            Some(&c) if n.get(ni) == Some(&c) => {
                pi += 1;
                ni += 1;
                continue;
            }
            None if ni == n.len() => return true,
            _ => {}
        }
        // A mismatch (or the pattern ended early): let a wildcard absorb one more.
        if let Some(resume) = percent.as_mut().filter(|r| n.get(r.name).is_some_and(|&c| c != DELIMITER)) {
            resume.name += 1;
            (pi, ni) = (resume.pattern, resume.name);
            continue;
        }
        percent = None;
        match star.as_mut().filter(|r| r.name < n.len()) {
            Some(resume) => {
                resume.name += 1;
                (pi, ni) = (resume.pattern, resume.name);
            }
            None => return false,
        }
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
/// Refused when the joined pattern is over [`MAX_PATTERN_CHARS`].
pub fn list(
    mailboxes: &[MailboxInfo],
    reference: &str,
    pattern: &str,
    lsub: bool,
) -> Result<Vec<Vec<u8>>, PatternTooLong> {
    let command = if lsub { "LSUB" } else { "LIST" };
    let length = reference.chars().count() + pattern.chars().count();
    if length > MAX_PATTERN_CHARS {
        return Err(PatternTooLong(length));
    }
    if pattern.is_empty() {
        // The hierarchy delimiter and root name (RFC 3501 §6.3.8).
        return Ok(vec![format!("* {command} (\\Noselect) \"/\" \"\"\r\n").into_bytes()]);
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
    Ok(lines)
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
        list(&mailboxes(), reference, pattern, lsub)
            .unwrap()
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
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

    /// The recursive definition the iterative matcher must agree with.
    fn reference(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| reference(&p[1..], &n[i..])),
            Some('%') => {
                let limit = n.iter().position(|&c| c == DELIMITER).unwrap_or(n.len());
                (0..=limit).any(|i| reference(&p[1..], &n[i..]))
            }
            Some(&c) => n.first() == Some(&c) && reference(&p[1..], &n[1..]),
        }
    }

    /// Every string of up to `max` characters from `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<Vec<char>> {
        let mut all = vec![vec![]];
        let mut last = vec![vec![]];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s: &Vec<char>| {
                    alphabet.iter().map(move |&c| {
                        let mut t = s.clone();
                        t.push(c);
                        t
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn iterative_matching_agrees_with_the_definition() {
        let patterns = strings(&['a', 'b', '/', '*', '%'], 5);
        let names = strings(&['a', 'b', '/'], 6);
        for p in &patterns {
            for n in &names {
                assert_eq!(
                    wildcard(p, n),
                    reference(p, n),
                    "pattern {:?} name {:?}",
                    p.iter().collect::<String>(),
                    n.iter().collect::<String>()
                );
            }
        }
    }

    #[test]
    fn adversarial_patterns_are_cheap() {
        // 50,000 `*` overflowed the stack of the recursive matcher.
        let stars = "*".repeat(50_000);
        assert!(matches(&stars, "INBOX"));
        // 200 `*` then `z` against a name without `z` took hours.
        let pattern = format!("{}z", "*".repeat(200));
        let name = "a".repeat(200);
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &name));
        let mixed = format!("{}z", "%*".repeat(100));
        assert!(!matches(&mixed, &format!("{}/b", "a".repeat(200))));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    #[test]
    fn long_patterns_are_refused() {
        let long = "*".repeat(MAX_PATTERN_CHARS);
        assert!(list(&mailboxes(), "", &long, false).is_ok());
        assert_eq!(list(&mailboxes(), "a", &long, false), Err(PatternTooLong(MAX_PATTERN_CHARS + 1)));
        assert_eq!(PatternTooLong(2000).to_string(), "the LIST pattern has 2000 characters; at most 1024 are accepted");
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
