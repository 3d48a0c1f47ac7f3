//! The IMAP session states as data (RFC 3501 §3): not authenticated, authenticated,
//! selected and logout; which commands each state permits; and [`State::apply`], the
//! one place where a [`Transition`] changes the state. Handlers return transitions;
//! they never assign the state themselves.
//!
//! Pure: depends only on std, imap-codec's command type and the view.

use imap_codec::imap_types::command::CommandBody;

use super::view::View;

/// Where a session is (RFC 3501 §3, figure in §3.4).
#[derive(Debug)]
pub enum State<A> {
    NotAuthenticated,
    Authenticated { account: A, user: String },
    Selected { account: A, user: String, view: View },
    Logout,
}

/// A change of state a command asks for.
#[derive(Debug)]
pub enum Transition<A> {
    None,
    /// LOGIN or AUTHENTICATE succeeded.
    Authenticate {
        account: A,
        user: String,
    },
    /// SELECT or EXAMINE succeeded.
    Select(View),
    /// CLOSE, UNSELECT, or a SELECT that failed.
    Unselect,
    Logout,
}

/// A transition that does not fit the state (a bug in a handler, never the client's
/// doing: commands are checked against the state first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transition {transition} is not valid in state {state}")]
pub struct InvalidTransition {
    pub state: &'static str,
    pub transition: &'static str,
}

/// The state a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Any,
    NotAuthenticated,
    Authenticated,
    Selected,
}

/// The state `command` may be given in (RFC 3501 §6; extensions per their RFCs).
pub fn needs(command: &CommandBody<'_>) -> Needs {
    use CommandBody as C;
    match command {
        C::Capability | C::Noop | C::Logout | C::Id { .. } => Needs::Any,
        C::StartTLS | C::Authenticate { .. } | C::Login { .. } => Needs::NotAuthenticated,
        C::Check
        | C::Close
        | C::Unselect
        | C::Expunge
        | C::ExpungeUid { .. }
        | C::Search { .. }
        | C::Fetch { .. }
        | C::Store { .. }
        | C::Copy { .. }
        | C::Move { .. } => Needs::Selected,
        _ => Needs::Authenticated,
    }
}

impl<A> State<A> {
    pub fn name(&self) -> &'static str {
        match self {
            State::NotAuthenticated => "not authenticated",
            State::Authenticated { .. } => "authenticated",
            State::Selected { .. } => "selected",
            State::Logout => "logout",
        }
    }

    /// Whether a command needing `needs` may run now; the refusal says why.
    pub fn permits(&self, needs: Needs) -> Result<(), &'static str> {
        match (needs, self) {
            (_, State::Logout) => Err("the session is logging out"),
            (Needs::Any, _) => Ok(()),
            (Needs::NotAuthenticated, State::NotAuthenticated) => Ok(()),
            (Needs::NotAuthenticated, _) => Err("already authenticated"),
            (Needs::Authenticated | Needs::Selected, State::NotAuthenticated) => Err("log in first"),
            (Needs::Authenticated, _) => Ok(()),
            (Needs::Selected, State::Selected { .. }) => Ok(()),
            (Needs::Selected, _) => Err("select a mailbox first"),
        }
    }

    /// The account and user name once authenticated.
    pub fn account(&self) -> Option<(&A, &str)> {
        match self {
            State::Authenticated { account, user } | State::Selected { account, user, .. } => {
                Some((account, user.as_str()))
            }
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn view(&self) -> Option<&View> {
        match self {
            State::Selected { view, .. } => Some(view),
            _ => None,
        }
    }

    /// The account, user name and the selected mailbox's view once selected.
    pub fn selected_mut(&mut self) -> Option<(&A, &str, &mut View)> {
        match self {
            State::Selected { account, user, view } => Some((account, user.as_str(), view)),
            _ => None,
        }
    }

    /// Applies a transition: the only place the state changes.
    pub fn apply(&mut self, transition: Transition<A>) -> Result<(), InvalidTransition> {
        let current = std::mem::replace(self, State::Logout);
        let (next, result) = match (current, transition) {
            (current, Transition::None) => (current, Ok(())),
            (_, Transition::Logout) => (State::Logout, Ok(())),
            (State::NotAuthenticated, Transition::Authenticate { account, user }) => {
                (State::Authenticated { account, user }, Ok(()))
            }
            (
                State::Authenticated { account, user } | State::Selected { account, user, .. },
                Transition::Select(view),
            ) => (State::Selected { account, user, view }, Ok(())),
            (State::Selected { account, user, .. }, Transition::Unselect) => {
                (State::Authenticated { account, user }, Ok(()))
            }
            (current @ State::Authenticated { .. }, Transition::Unselect) => (current, Ok(())),
            (current, transition) => {
                let state = current.name();
                let transition = match transition {
                    Transition::Authenticate { .. } => "authenticate",
                    Transition::Select(_) => "select",
                    Transition::Unselect => "unselect",
                    Transition::None | Transition::Logout => "none",
                };
                (current, Err(InvalidTransition { state, transition }))
            }
        };
        *self = next;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::Snapshot;
    use imap_codec::{decode::Decoder, CommandCodec};

    fn view() -> View {
        View::new(
            "INBOX".into(),
            false,
            Snapshot { uid_validity: 1, uid_next: 1, highest_modseq: 1, messages: vec![] },
            0,
        )
    }

    fn needs_of(line: &str) -> Needs {
        let line = format!("a {line}\r\n");
        let (_, command) = CommandCodec::default().decode(line.as_bytes()).unwrap();
        needs(&command.body)
    }

    #[test]
    fn commands_need_their_states() {
        assert_eq!(needs_of("NOOP"), Needs::Any);
        assert_eq!(needs_of("LOGIN a b"), Needs::NotAuthenticated);
        assert_eq!(needs_of("STARTTLS"), Needs::NotAuthenticated);
        assert_eq!(needs_of("LIST \"\" *"), Needs::Authenticated);
        assert_eq!(needs_of("IDLE"), Needs::Authenticated);
        assert_eq!(needs_of("UID FETCH 1 FLAGS"), Needs::Selected);
        assert_eq!(needs_of("UID EXPUNGE 1"), Needs::Selected);
        let state: State<u8> = State::NotAuthenticated;
        assert_eq!(state.permits(Needs::Selected), Err("log in first"));
        assert_eq!(state.permits(Needs::NotAuthenticated), Ok(()));
    }

    #[test]
    fn transitions_follow_rfc_3501() {
        let mut state: State<u8> = State::NotAuthenticated;
        assert!(state.apply(Transition::Select(view())).is_err());
        assert_eq!(state.name(), "not authenticated");
        state.apply(Transition::Authenticate { account: 7, user: "ann".into() }).unwrap();
        assert_eq!(state.account(), Some((&7, "ann")));
        assert!(state.permits(Needs::NotAuthenticated).is_err());
        state.apply(Transition::Select(view())).unwrap();
        assert_eq!(state.view().map(|v| v.mailbox.as_str()), Some("INBOX"));
        state.apply(Transition::Select(view())).unwrap();
        state.apply(Transition::Unselect).unwrap();
        assert_eq!(state.name(), "authenticated");
        state.apply(Transition::Unselect).unwrap();
        assert!(state.apply(Transition::Authenticate { account: 8, user: "x".into() }).is_err());
        assert_eq!(state.account(), Some((&7, "ann")));
        state.apply(Transition::Logout).unwrap();
        assert_eq!(state.permits(Needs::Any), Err("the session is logging out"));
    }
}
