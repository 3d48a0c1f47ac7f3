//! Pure per-session view of the selected mailbox (RFC 3501 §2.3.1, §5.2, §7.4.1):
//! the UIDs the client knows, in order, so that sequence numbers are stable between
//! the updates the session chooses to send; sequence and UID sets resolved against
//! it; and the diff of a fresh snapshot against it as EXPUNGE (renumbered), EXISTS,
//! RECENT and FETCH FLAGS updates — with MODSEQ once CONDSTORE is on, and expunges as
//! one VANISHED once QRESYNC is (RFC 7162 §3.1.4, §3.2.10).
//!
//! `\Recent` (RFC 3501 §2.3.2) is computed in-process: the first read-write session to
//! be told of a UID gets it ([`RecentClaims`], one per account, kept by the backend so
//! that every session of the account on every listener shares it). Depends only on std
//! and imap-codec's sequence types.

use std::collections::HashMap;
use std::sync::Mutex;

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::{Flag, MessageMeta, Snapshot};

/// One message as this session's client knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub uid: u32,
    pub flags: Vec<Flag>,
    pub internal_date: i64,
    pub size: u32,
    /// `\Recent` for this session.
    pub recent: bool,
    /// The modseq of its last change (RFC 7162).
    pub modseq: u64,
}

/// The selected mailbox as this session shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub mailbox: String,
    pub read_only: bool,
    pub uid_validity: u32,
    pub uid_next: u32,
    /// In ascending UID order: index + 1 is the sequence number.
    pub messages: Vec<Known>,
    /// The keywords the client has been told of (FLAGS, PERMANENTFLAGS), in the order
    /// they were first seen; a FETCH may show no other.
    pub keywords: Vec<String>,
    /// HIGHESTMODSEQ as last told (RFC 7162 §3.1.2.1).
    pub highest_modseq: u64,
    /// CONDSTORE is on for this session: flag updates carry MODSEQ.
    pub condstore: bool,
    /// QRESYNC is on for this session: expunges are announced as VANISHED.
    pub qresync: bool,
}

/// An unsolicited response that brings the client up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// `* n EXPUNGE`: the message with sequence number n is gone and later ones move down.
    Expunge(u32),
    /// `* VANISHED uids` (QRESYNC): these messages are gone.
    Vanished(Vec<u32>),
    Exists(u32),
    Recent(u32),
    /// `* FLAGS (...)` and, when writable, `* OK [PERMANENTFLAGS (...)]`: the
    /// mailbox's flags now that a keyword was added to them.
    Keywords {
        keywords: Vec<String>,
        read_only: bool,
    },
    /// `* n FETCH (FLAGS (...) UID u)` after another session changed them.
    Flags {
        seq: u32,
        uid: u32,
        flags: Vec<Flag>,
        recent: bool,
        /// With CONDSTORE on: the message's modseq, shown as `MODSEQ (m)`.
        modseq: Option<u64>,
    },
}

/// A sequence set that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("the mailbox is empty, so there is no message {0}")]
    Empty(&'static str),
    #[error("there is no message with sequence number {0}")]
    NoSuchMessage(u32),
    #[error("the set has {0} ranges; at most {MAX_SET_RANGES} are accepted")]
    TooManyRanges(usize),
}

/// Which UIDs of an account's mailboxes have been shown as `\Recent` already, per
/// mailbox: the highest UID a read-write session (SELECT, not EXAMINE) has been told
/// of. A message above it is recent in the first such session to be told of it, and
/// in no later one; EXAMINE and STATUS read it without claiming. Shared by every
/// session of the account ([`MailStore::recent`](super::MailStore::recent)).
#[derive(Debug, Default)]
pub struct RecentClaims {
    highest: Mutex<HashMap<String, (u32, u32)>>,
}

impl RecentClaims {
    /// Claims every UID up to `highest_uid` for the calling session and returns the
    /// highest UID claimed before: UIDs above it are `\Recent` for this session.
    pub fn claim(&self, mailbox: &str, uid_validity: u32, highest_uid: u32) -> u32 {
        let Ok(mut map) = self.highest.lock() else {
            return highest_uid;
        };
        let entry = map.entry(mailbox.to_string()).or_insert((uid_validity, 0));
        if entry.0 != uid_validity {
            *entry = (uid_validity, 0);
        }
        let before = entry.1;
        entry.1 = entry.1.max(highest_uid);
        before
    }

    /// How many of `uids` nobody has claimed yet (STATUS RECENT, which claims nothing).
    pub fn unclaimed(&self, mailbox: &str, uid_validity: u32, uids: impl Iterator<Item = u32>) -> u32 {
        let before = self
            .highest
            .lock()
            .ok()
            .and_then(|map| map.get(mailbox).copied())
            .filter(|(validity, _)| *validity == uid_validity)
            .map_or(0, |(_, uid)| uid);
        u32::try_from(uids.filter(|&u| u > before).count()).unwrap_or(u32::MAX)
    }
}

fn known(meta: MessageMeta, recent: bool) -> Known {
    let MessageMeta { uid, flags, internal_date, size, modseq } = meta;
    Known { uid, flags, internal_date, size, recent, modseq }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl View {
    /// The view right after SELECT/EXAMINE; UIDs above `recent_above` are `\Recent`.
    pub fn new(mailbox: String, read_only: bool, snapshot: Snapshot, recent_above: u32) -> View {
        let messages: Vec<Known> =
            snapshot.messages.into_iter().map(|m| known(m.clone(), m.uid > recent_above)).collect();
        let mut keywords = Vec::new();
        for message in &messages {
            learn_keywords(&mut keywords, &message.flags);
        }
        let (uid_validity, uid_next, highest_modseq) =
            (snapshot.uid_validity, snapshot.uid_next, snapshot.highest_modseq);
        View {
            mailbox,
            read_only,
            uid_validity,
            uid_next,
            messages,
            keywords,
            highest_modseq,
            condstore: false,
            qresync: false,
        }
    }

    /// Records the modseq a message's change (this session's STORE) took.
    pub fn set_modseq(&mut self, uid: u32, modseq: u64) {
        if let Some(index) = self.index_of(uid) {
            self.messages[index].modseq = modseq;
        }
        self.highest_modseq = self.highest_modseq.max(modseq);
    }

    /// The updates for messages leaving the view: EXPUNGEs from the highest sequence
    /// number down, or with QRESYNC one VANISHED (empty when none left).
    fn gone(&self, expunged: Vec<(u32, u32)>) -> Vec<Update> {
        if expunged.is_empty() {
            return Vec::new();
        }
        if self.qresync {
            let mut uids: Vec<u32> = expunged.into_iter().map(|(_, uid)| uid).collect();
            uids.sort_unstable();
            return vec![Update::Vanished(uids)];
        }
        expunged.into_iter().map(|(seq, _)| Update::Expunge(seq)).collect()
    }

    /// Records `flags` as the flags of the message with `uid` (a STORE, or FETCH setting
    /// \Seen) and returns the FLAGS update to send first if they hold a new keyword.
    pub fn set_flags(&mut self, uid: u32, flags: &[Flag]) -> Option<Update> {
        let index = self.index_of(uid)?;
        self.messages[index].flags = flags.to_vec();
        learn_keywords(&mut self.keywords, flags).then(|| self.keywords_update())
    }

    fn keywords_update(&self) -> Update {
        Update::Keywords { keywords: self.keywords.clone(), read_only: self.read_only }
    }

    pub fn exists(&self) -> u32 {
        count(self.messages.len())
    }

    pub fn recent(&self) -> u32 {
        count(self.messages.iter().filter(|m| m.recent).count())
    }

    /// The highest UID the view holds (0 when empty).
    pub fn highest_uid(&self) -> u32 {
        self.messages.last().map_or(0, |m| m.uid)
    }

    /// The sequence number of the first message without `\Seen`.
    pub fn first_unseen(&self) -> Option<u32> {
        self.messages.iter().position(|m| !m.flags.contains(&Flag::Seen)).map(|i| count(i + 1))
    }

    pub fn index_of(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// The indices (sequence number - 1) a set names, ascending and without repeats.
    /// Sequence numbers beyond the mailbox are an error (RFC 3501 §9 seq-number); UIDs
    /// that do not exist are skipped, and `n:*` always includes the last message.
    /// The ranges are merged before any is expanded, so the result never holds more
    /// than the mailbox's messages, however often a set repeats `1:*`.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, SetError> {
        let sequences = set.0.as_ref();
        check_ranges(sequences.len())?;
        // Half-open index ranges, before merging.
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(sequences.len());
        if uid {
            let largest = self.highest_uid();
            for sequence in sequences {
                let (lo, hi) = bounds(sequence, largest);
                let start = self.messages.partition_point(|m| m.uid < lo);
                let end = self.messages.partition_point(|m| m.uid <= hi);
                ranges.push((start, end));
            }
        } else {
            let largest = self.exists();
            if largest == 0 {
                return Err(SetError::Empty("in the sequence set"));
            }
            for sequence in sequences {
                let (lo, hi) = bounds(sequence, largest);
                if hi > largest {
                    return Err(SetError::NoSuchMessage(hi));
                }
                ranges.push((lo as usize - 1, hi as usize));
            }
        }
        Ok(expand(merge(ranges)))
    }

    /// Brings the view up to date with `snapshot` and returns what to tell the
    /// client. Without `allow_expunge` (during FETCH, STORE and SEARCH, RFC 3501
    /// §7.4.1) vanished messages stay in the view, to be reported later. New UIDs above
    /// `recent_above` are `\Recent` for this session.
    pub fn update(&mut self, snapshot: Snapshot, allow_expunge: bool, recent_above: u32) -> Vec<Update> {
        let mut updates = Vec::new();
        if snapshot.uid_validity != self.uid_validity {
            // Every UID the client knows is void: report them all gone.
            if !allow_expunge {
                return updates;
            }
            let all = self.messages.iter().enumerate().rev().map(|(i, m)| (count(i + 1), m.uid)).collect();
            updates.extend(self.gone(all));
            self.messages.clear();
            self.uid_validity = snapshot.uid_validity;
        }
        self.highest_modseq = self.highest_modseq.max(snapshot.highest_modseq);
        let mut fresh: HashMap<u32, MessageMeta> = snapshot.messages.into_iter().map(|m| (m.uid, m)).collect();
        // Expunges, from the highest sequence number down so each number is current.
        if allow_expunge {
            let mut expunged = Vec::new();
            for index in (0..self.messages.len()).rev() {
                if !fresh.contains_key(&self.messages[index].uid) {
                    let message = self.messages.remove(index);
                    expunged.push((count(index + 1), message.uid));
                }
            }
            updates.extend(self.gone(expunged));
        }
        // Flag changes made elsewhere.
        let mut learned = false;
        let condstore = self.condstore;
        for (index, message) in self.messages.iter_mut().enumerate() {
            if let Some(meta) = fresh.get(&message.uid) {
                message.modseq = meta.modseq;
                if !same_flags(&meta.flags, &message.flags) {
                    message.flags = meta.flags.clone();
                    learned |= learn_keywords(&mut self.keywords, &message.flags);
                    updates.push(Update::Flags {
                        seq: count(index + 1),
                        uid: message.uid,
                        flags: message.flags.clone(),
                        recent: message.recent,
                        modseq: condstore.then_some(meta.modseq),
                    });
                }
            }
        }
        // New messages: only above the highest known UID, so sequence numbers only grow.
        let highest = self.highest_uid();
        let mut new: Vec<MessageMeta> = fresh.drain().map(|(_, m)| m).filter(|m| m.uid > highest).collect();
        new.sort_by_key(|m| m.uid);
        let added = !new.is_empty();
        for meta in &new {
            learned |= learn_keywords(&mut self.keywords, &meta.flags);
        }
        if learned {
            // Before any FETCH that shows them (RFC 3501 §7.2.6).
            updates.insert(0, self.keywords_update());
        }
        for meta in new {
            let recent = meta.uid > recent_above;
            self.messages.push(known(meta, recent));
        }
        self.uid_next = self.uid_next.max(snapshot.uid_next);
        if added || updates.iter().any(|u| matches!(u, Update::Expunge(_) | Update::Vanished(_))) {
            updates.push(Update::Exists(self.exists()));
        }
        if added {
            updates.push(Update::Recent(self.recent()));
        }
        updates
    }

    /// Removes the given UIDs (this session's own EXPUNGE or MOVE) and returns the
    /// EXPUNGE updates, highest sequence number first.
    pub fn remove(&mut self, uids: &[u32]) -> Vec<Update> {
        let mut expunged = Vec::new();
        for index in (0..self.messages.len()).rev() {
            if uids.contains(&self.messages[index].uid) {
                let message = self.messages.remove(index);
                expunged.push((count(index + 1), message.uid));
            }
        }
        self.gone(expunged)
    }
}

/// The most ranges (comma-separated parts) one sequence set may have. Far more than a
/// client writes for any selection of messages; it bounds the work a set can ask for.
pub const MAX_SET_RANGES: usize = 10_000;

/// Refuses a set with more than [`MAX_SET_RANGES`] ranges.
pub fn check_ranges(count: usize) -> Result<(), SetError> {
    if count > MAX_SET_RANGES {
        return Err(SetError::TooManyRanges(count));
    }
    Ok(())
}

/// Half-open ranges sorted and merged where they overlap or touch.
fn merge(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.retain(|(start, end)| start < end);
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// The indices of disjoint, sorted half-open ranges.
fn expand(ranges: Vec<(usize, usize)>) -> Vec<usize> {
    ranges.into_iter().flat_map(|(start, end)| start..end).collect()
}

fn bounds(sequence: &Sequence, largest: u32) -> (u32, u32) {
    let value = |s: &SeqOrUid| match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    let (a, b) = match sequence {
        Sequence::Single(s) => (value(s), value(s)),
        Sequence::Range(a, b) => (value(a), value(b)),
    };
    (a.min(b), a.max(b))
}

/// Adds the keywords of `flags` not yet in `keywords`; true if there were any.
fn learn_keywords(keywords: &mut Vec<String>, flags: &[Flag]) -> bool {
    let mut learned = false;
    for flag in flags {
        if let Flag::Keyword(k) = flag {
            if !keywords.contains(k) {
                keywords.push(k.clone());
                learned = true;
            }
        }
    }
    learned
}

/// Flag lists compared as sets.
pub fn same_flags(a: &[Flag], b: &[Flag]) -> bool {
    a.len() == b.len() && a.iter().all(|f| b.contains(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::sequence::SequenceSet;

    fn meta(uid: u32, flags: Vec<Flag>) -> MessageMeta {
        MessageMeta { uid, flags, internal_date: 0, size: 10, modseq: u64::from(uid) }
    }

    fn snapshot(uids: &[u32]) -> Snapshot {
        Snapshot {
            uid_validity: 7,
            highest_modseq: 100,
            uid_next: uids.last().copied().unwrap_or(0) + 1,
            messages: uids.iter().map(|&u| meta(u, vec![])).collect(),
        }
    }

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    #[test]
    fn sequence_and_uid_sets_resolve() {
        let view = View::new("INBOX".into(), false, snapshot(&[3, 5, 9, 10]), 0);
        assert_eq!(view.resolve(&set("1:*"), false), Ok(vec![0, 1, 2, 3]));
        assert_eq!(view.resolve(&set("*:3"), false), Ok(vec![2, 3]));
        assert_eq!(view.resolve(&set("2,1,2"), false), Ok(vec![0, 1]));
        assert_eq!(view.resolve(&set("5"), false), Err(SetError::NoSuchMessage(5)));
        assert_eq!(view.resolve(&set("4:9"), true), Ok(vec![1, 2]));
        assert_eq!(view.resolve(&set("1,2,4"), true), Ok(vec![]));
        // n:* includes the highest UID even when n is above it.
        assert_eq!(view.resolve(&set("20:*"), true), Ok(vec![3]));
        assert_eq!(view.resolve(&set("*"), true), Ok(vec![3]));
        let empty = View::new("INBOX".into(), false, snapshot(&[]), 0);
        assert!(empty.resolve(&set("1:*"), false).is_err());
        assert_eq!(empty.resolve(&set("1:*"), true), Ok(vec![]));
    }

    #[test]
    fn repeated_ranges_are_merged_before_expanding() {
        // `FETCH 1:*,1:*,…` used to expand every range: ranges × messages indices.
        let uids: Vec<u32> = (1..=50_000).collect();
        let view = View::new("INBOX".into(), false, snapshot(&uids), 0);
        let text = vec!["1:*"; MAX_SET_RANGES].join(",");
        let started = std::time::Instant::now();
        let all: Vec<usize> = (0..50_000).collect();
        assert_eq!(view.resolve(&set(&text), false).as_ref(), Ok(&all));
        assert_eq!(view.resolve(&set(&text), true).as_ref(), Ok(&all));
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        assert_eq!(view.resolve(&set("5:3,1,2:2,9:7,4"), false), Ok(vec![0, 1, 2, 3, 4, 6, 7, 8]));
        assert_eq!(view.resolve(&set("3,2:1,10:*,*"), true).map(|i| i.len()), Ok(49_994));
    }

    #[test]
    fn sets_with_too_many_ranges_are_refused() {
        let view = View::new("INBOX".into(), false, snapshot(&[1, 2, 3]), 0);
        let text = vec!["1:*"; MAX_SET_RANGES + 1].join(",");
        let refused = Err(SetError::TooManyRanges(MAX_SET_RANGES + 1));
        assert_eq!(view.resolve(&set(&text), false), refused);
        assert_eq!(view.resolve(&set(&text), true), refused);
        assert_eq!(SetError::TooManyRanges(20_000).to_string(), "the set has 20000 ranges; at most 10000 are accepted");
    }

    #[test]
    fn expunges_are_renumbered_from_the_top() {
        let mut view = View::new("INBOX".into(), false, snapshot(&[1, 2, 3, 4, 5]), 10);
        let updates = view.update(snapshot(&[1, 3, 5, 6]), true, 5);
        assert_eq!(
            updates,
            vec![Update::Expunge(4), Update::Expunge(2), Update::Exists(4), Update::Recent(1)],
            "uid 4 was seq 4, then uid 2 seq 2; uid 6 is new and recent"
        );
        assert_eq!(view.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 3, 5, 6]);
        assert_eq!(view.resolve(&set("4"), false), Ok(vec![3]));
    }

    #[test]
    fn new_keywords_are_announced_once_and_first() {
        let k = |s: &str| Flag::Keyword(s.into());
        let mut first = snapshot(&[1, 2]);
        first.messages[0].flags = vec![k("$Old")];
        let mut view = View::new("INBOX".into(), false, first.clone(), 10);
        assert_eq!(view.keywords, ["$Old"]);
        assert_eq!(view.set_flags(2, &[k("$Old")]), None, "known already");
        let told = Some(Update::Keywords { keywords: vec!["$Old".into(), "$New".into()], read_only: false });
        assert_eq!(view.set_flags(2, &[k("$New")]), told);
        let mut next = first;
        next.messages[1].flags = vec![k("$New"), k("$Other")];
        let updates = view.update(next, true, 10);
        let all = vec!["$Old".to_string(), "$New".into(), "$Other".into()];
        assert_eq!(updates[0], Update::Keywords { keywords: all, read_only: false });
        assert!(matches!(updates[1], Update::Flags { uid: 2, .. }), "{updates:?}");
    }

    #[test]
    fn expunges_wait_when_not_allowed() {
        let mut view = View::new("INBOX".into(), false, snapshot(&[1, 2, 3]), 10);
        let updates = view.update(snapshot(&[1, 3, 4]), false, 10);
        assert_eq!(updates, vec![Update::Exists(4), Update::Recent(0)]);
        assert_eq!(view.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let updates = view.update(snapshot(&[1, 3, 4]), true, 10);
        assert_eq!(updates, vec![Update::Expunge(2), Update::Exists(3)]);
    }

    #[test]
    fn flag_changes_elsewhere_are_reported() {
        let mut view = View::new("INBOX".into(), false, snapshot(&[1, 2]), 0);
        assert_eq!(view.recent(), 2);
        let mut fresh = snapshot(&[1, 2]);
        fresh.messages[1].flags = vec![Flag::Seen, Flag::Flagged];
        let updates = view.update(fresh.clone(), false, 2);
        assert_eq!(
            updates,
            vec![Update::Flags { seq: 2, uid: 2, flags: vec![Flag::Seen, Flag::Flagged], recent: true, modseq: None }]
        );
        fresh.messages[1].flags = vec![Flag::Flagged, Flag::Seen];
        assert_eq!(view.update(fresh, true, 2), vec![], "order of flags does not matter");
        assert_eq!(view.first_unseen(), Some(1));
    }

    #[test]
    fn own_removals_and_recent_claims() {
        let mut view = View::new("INBOX".into(), false, snapshot(&[1, 2, 3, 4]), 0);
        assert_eq!(view.remove(&[2, 4]), vec![Update::Expunge(4), Update::Expunge(2)]);
        let claims = RecentClaims::default();
        assert_eq!(claims.claim("INBOX", 1, 5), 0);
        assert_eq!(claims.unclaimed("INBOX", 1, [4, 5, 6, 7].into_iter()), 2);
        assert_eq!(claims.claim("INBOX", 1, 0), 5, "EXAMINE reads without claiming");
        assert_eq!(claims.claim("INBOX", 1, 7), 5);
        assert_eq!(claims.unclaimed("Sent", 1, [1].into_iter()), 1, "each mailbox apart");
        assert_eq!(claims.claim("INBOX", 2, 3), 0, "a new UIDVALIDITY starts over");
    }

    #[test]
    fn with_qresync_expunges_are_one_vanished_and_with_condstore_flags_carry_modseq() {
        let mut view = View::new("INBOX".into(), false, snapshot(&[1, 2, 3, 4]), 0);
        view.condstore = true;
        view.qresync = true;
        assert_eq!(view.remove(&[4, 2]), vec![Update::Vanished(vec![2, 4])]);
        assert_eq!(view.remove(&[9]), vec![], "nothing gone, nothing said");
        let mut fresh = snapshot(&[3]);
        fresh.highest_modseq = 120;
        fresh.messages[0].flags = vec![Flag::Seen];
        fresh.messages[0].modseq = 117;
        let updates = view.update(fresh, true, 10);
        assert_eq!(
            updates,
            vec![
                Update::Vanished(vec![1]),
                Update::Flags { seq: 1, uid: 3, flags: vec![Flag::Seen], recent: true, modseq: Some(117) },
                Update::Exists(1)
            ]
        );
        assert_eq!((view.highest_modseq, view.messages[0].modseq), (120, 117));
        view.set_modseq(3, 121);
        assert_eq!((view.highest_modseq, view.messages[0].modseq), (121, 121));
    }
}
