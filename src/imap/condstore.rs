//! CONDSTORE and QRESYNC (RFC 7162) in the front-end's terms: which of them the
//! session has on, what a SELECT's parameters ask for, which messages a CHANGEDSINCE
//! names, which an UNCHANGEDSINCE must leave alone, and which expunged UIDs a
//! resynchronising client is told of. Handlers in `command/` call these; views carry
//! the per-mailbox state (`view.rs`) and `response.rs` writes the lines.
//!
//! The backend keeps every expunged UID with the modseq of its expunge, so the
//! seq-match data of `SELECT … (QRESYNC (…))` (§3.2.5.2, an aid for servers that forget
//! expunges) is accepted and not needed. Pure: depends only on std, imap-codec's types
//! and the sibling pure modules.

use imap_codec::imap_types::command::{FetchModifier, SelectParameter, StoreModifier};
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::response::ImapError;
use super::view::View;

/// What the session has turned on (RFC 7162 §3.1, §3.2.3); once on, on until logout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
}

impl Enabled {
    /// ENABLE: turns on what it names that is offered (QRESYNC implies CONDSTORE) and
    /// returns the names for `* ENABLED`, only those newly on (RFC 5161 §3.1).
    pub fn enable(&mut self, names: &[CapabilityEnable<'_>]) -> Vec<&'static str> {
        let mut newly = Vec::new();
        for name in names {
            let qresync = match name {
                CapabilityEnable::CondStore => false,
                other @ CapabilityEnable::Other(_) if other.to_string().eq_ignore_ascii_case("QRESYNC") => true,
                _ => continue,
            };
            if !self.condstore {
                self.condstore = true;
                newly.push("CONDSTORE");
            }
            if qresync && !self.qresync {
                self.qresync = true;
                newly.push("QRESYNC");
            }
        }
        newly
    }

    /// Brings the session and the selected view to the same state: a command in the
    /// selected state may have turned CONDSTORE on in the view, an ENABLE in the session.
    pub fn share(&mut self, view: &mut View) {
        self.condstore |= view.condstore;
        self.qresync |= view.qresync;
        (view.condstore, view.qresync) = (self.condstore, self.qresync);
    }
}

/// `SELECT … (QRESYNC (uidvalidity modseq [known-uids [seq-match]]))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

/// What a SELECT or EXAMINE's parameters ask for; turns CONDSTORE on when named.
pub fn select_parameters(parameters: &[SelectParameter], enabled: &mut Enabled) -> Result<Option<Resync>, ImapError> {
    let mut resync = None;
    for parameter in parameters {
        match parameter {
            SelectParameter::CondStore => enabled.condstore = true,
            SelectParameter::QResync { uid_validity, mod_sequence_value, known_uids, .. } => {
                if !enabled.qresync {
                    // RFC 7162 §3.2.5: BAD unless QRESYNC was enabled first.
                    return Err(ImapError::Syntax("enable QRESYNC first (ENABLE QRESYNC), then SELECT with it".into()));
                }
                resync = Some(Resync {
                    uid_validity: uid_validity.get(),
                    modseq: mod_sequence_value.get(),
                    known_uids: known_uids.clone(),
                });
            }
        }
    }
    Ok(resync)
}

/// FETCH's modifiers: CHANGEDSINCE's modseq, and whether VANISHED was asked for,
/// checked against RFC 7162 §3.2.6's rules (UID FETCH, with CHANGEDSINCE, QRESYNC on).
pub fn fetch_modifiers(modifiers: &[FetchModifier], uid: bool, view: &View) -> Result<(Option<u64>, bool), ImapError> {
    let mut changed_since = None;
    let mut vanished = false;
    for modifier in modifiers {
        match modifier {
            FetchModifier::ChangedSince(modseq) => changed_since = Some(modseq.get()),
            FetchModifier::Vanished => vanished = true,
        }
    }
    if vanished {
        let why = if !uid {
            Some("VANISHED is for UID FETCH only")
        } else if changed_since.is_none() {
            Some("VANISHED needs CHANGEDSINCE")
        } else if !view.qresync {
            Some("enable QRESYNC first (ENABLE QRESYNC) to ask for VANISHED")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ImapError::Syntax(why.into()));
        }
    }
    Ok((changed_since, vanished))
}

/// STORE's UNCHANGEDSINCE modseq, if given.
pub fn unchanged_since(modifiers: &[StoreModifier]) -> Option<u64> {
    modifiers.iter().map(|StoreModifier::UnchangedSince(modseq)| *modseq).next_back()
}

/// The view indices a CHANGEDSINCE keeps: messages changed after `modseq`.
pub fn changed_after(view: &View, indices: Vec<usize>, modseq: u64) -> Vec<usize> {
    indices.into_iter().filter(|&i| view.messages.get(i).is_some_and(|m| m.modseq > modseq)).collect()
}

/// Splits UNCHANGEDSINCE's messages (view indices) by the modseqs the backend has now
/// (`current`, by UID): those that may change, and those changed since (MODIFIED).
pub fn split_unchanged(
    view: &View,
    indices: Vec<usize>,
    modseq: u64,
    current: &dyn Fn(u32) -> Option<u64>,
) -> (Vec<usize>, Vec<usize>) {
    indices
        .into_iter()
        .partition(|&i| view.messages.get(i).is_some_and(|m| current(m.uid).unwrap_or(m.modseq) <= modseq))
}

/// The expunged UIDs to report that `set` names (all when `None`); `*` is not
/// allowed in known-uids, so it reads as the largest UID.
pub fn in_known(expunged: Vec<u32>, set: Option<&SequenceSet>) -> Vec<u32> {
    let Some(set) = set else { return expunged };
    let ranges: &Vec1<Sequence> = &set.0;
    let bound = |s: &SeqOrUid| match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => u32::MAX,
    };
    expunged
        .into_iter()
        .filter(|uid| {
            ranges.as_ref().iter().any(|sequence| {
                let (a, b) = match sequence {
                    Sequence::Single(s) => (bound(s), bound(s)),
                    Sequence::Range(a, b) => (bound(a), bound(b)),
                };
                (a.min(b)..=a.max(b)).contains(uid)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::{MessageMeta, Snapshot};

    fn view() -> View {
        let meta = |uid: u32, modseq| MessageMeta { uid, flags: vec![], internal_date: 0, size: 1, modseq };
        let snapshot = Snapshot {
            uid_validity: 9,
            uid_next: 10,
            highest_modseq: 30,
            messages: vec![meta(2, 5), meta(4, 20), meta(7, 30)],
        };
        View::new("INBOX".into(), false, snapshot, 0)
    }

    #[test]
    fn enable_turns_on_once_and_qresync_brings_condstore() {
        let mut enabled = Enabled::default();
        let qresync = CapabilityEnable::try_from("qresync").unwrap();
        let condstore = CapabilityEnable::try_from("CONDSTORE").unwrap();
        let other = CapabilityEnable::try_from("UTF8=ACCEPT").unwrap();
        assert_eq!(enabled.enable(std::slice::from_ref(&other)), Vec::<&str>::new());
        assert_eq!(enabled.enable(&[qresync.clone(), condstore.clone()]), ["CONDSTORE", "QRESYNC"]);
        assert_eq!(enabled.enable(&[qresync, condstore]), Vec::<&str>::new(), "already on");
    }

    #[test]
    fn changedsince_and_unchangedsince_pick_by_modseq() {
        let view = view();
        assert_eq!(changed_after(&view, vec![0, 1, 2], 5), [1, 2]);
        assert_eq!(changed_after(&view, vec![0, 1, 2], 30), Vec::<usize>::new());
        let now = |uid| (uid == 2).then_some(25);
        let (ok, modified) = split_unchanged(&view, vec![0, 1, 2], 20, &now);
        assert_eq!((ok, modified), (vec![1], vec![0, 2]), "uid 2 changed since the view was told");
        assert_eq!(unchanged_since(&[StoreModifier::UnchangedSince(4)]), Some(4));
    }

    #[test]
    fn vanished_is_limited_to_the_known_uids() {
        let known = SequenceSet::try_from("1:3,8").unwrap();
        assert_eq!(in_known(vec![1, 3, 5, 8, 9], Some(&known)), [1, 3, 8]);
        assert_eq!(in_known(vec![1, 5], None), [1, 5]);
    }

    #[test]
    fn vanished_needs_uid_fetch_changedsince_and_qresync() {
        let mut view = view();
        let since = FetchModifier::ChangedSince(std::num::NonZeroU64::new(3).unwrap());
        assert_eq!(fetch_modifiers(std::slice::from_ref(&since), false, &view).unwrap(), (Some(3), false));
        assert!(fetch_modifiers(&[since.clone(), FetchModifier::Vanished], true, &view).is_err());
        view.qresync = true;
        assert!(fetch_modifiers(&[since.clone(), FetchModifier::Vanished], false, &view).is_err());
        assert!(fetch_modifiers(&[FetchModifier::Vanished], true, &view).is_err());
        assert_eq!(fetch_modifiers(&[since, FetchModifier::Vanished], true, &view).unwrap(), (Some(3), true));
    }
}
