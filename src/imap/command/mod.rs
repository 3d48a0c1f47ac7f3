//! Answering one command: the state gate, then a handler from the group of the state
//! the command is valid in (RFC 3501 §6: any state, not authenticated, authenticated,
//! selected; IDLE apart), given what that state guarantees — the account, the selected
//! mailbox's view — resolved once here, so that no handler checks it again. Handlers
//! return an [`Outcome`] or an [`ImapError`]; here the outcome's [`Transition`] is
//! applied through `flow`, the view brought up to date and the tagged response written.
//!
//! RFC 3501 §5.2 and §7.4.1 (updates after a command; no EXPUNGE after FETCH, STORE or
//! SEARCH), §6.3.1 (a failed SELECT leaves no mailbox selected).

use std::io;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::flag::Flag as WireFlag;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::imap::condstore::Enabled;
use crate::imap::connection::{Link, Session, Shared};
use crate::imap::flow::{needs, Needs, State, Transition};
use crate::imap::response::{self, Flow, ImapError};
use crate::imap::view::View;
use crate::imap::wire::mailbox_from_wire;
use crate::imap::{list, Flag, MailStore};

mod any;
mod auth;
mod idle;
mod mailbox;
mod selected;

/// A command's success: the text after `OK` (with a response code if any), the
/// transition it asks for and what the connection does next.
pub(crate) struct Outcome<A> {
    text: String,
    transition: Transition<A>,
    flow: Flow,
}

impl<A> Outcome<A> {
    fn ok(text: impl Into<String>) -> Self {
        Outcome { text: text.into(), transition: Transition::None, flow: Flow::Continue }
    }

    fn with(mut self, transition: Transition<A>) -> Self {
        self.transition = transition;
        self
    }

    fn then(mut self, flow: Flow) -> Self {
        self.flow = flow;
        self
    }
}

/// What a command valid once logged in works with.
pub(crate) struct Authenticated<'c, S: MailStore> {
    shared: &'c Shared<S>,
    account: &'c S::Account,
    /// CONDSTORE and QRESYNC as the session has them (ENABLE, SELECT's parameters).
    enabled: &'c mut Enabled,
    out: &'c mut Vec<u8>,
}

impl<'c, S: MailStore> Authenticated<'c, S> {
    fn of(
        shared: &'c Shared<S>,
        state: &'c State<S::Account>,
        enabled: &'c mut Enabled,
        out: &'c mut Vec<u8>,
    ) -> Option<Self> {
        let (account, _) = state.account()?;
        Some(Authenticated { shared, account, enabled, out })
    }
}

/// What a command valid with a mailbox selected works with.
pub(crate) struct Selected<'c, S: MailStore> {
    shared: &'c Shared<S>,
    account: &'c S::Account,
    view: &'c mut View,
    out: &'c mut Vec<u8>,
}

impl<'c, S: MailStore> Selected<'c, S> {
    fn of(shared: &'c Shared<S>, state: &'c mut State<S::Account>, out: &'c mut Vec<u8>) -> Option<Self> {
        let (account, _, view) = state.selected_mut()?;
        Some(Selected { shared, account, view, out })
    }

    /// Brings the view up to date with the backend (asking it to sync first when
    /// `sync`) and writes the updates; EXPUNGEs wait unless `allow_expunge`.
    async fn refresh(&mut self, sync: bool, allow_expunge: bool) {
        let snapshot = match self.shared.store.snapshot(self.account, &self.view.mailbox, sync).await {
            Ok(snapshot) => snapshot,
            Err(no) => {
                tracing::debug!(refusal = %no, "could not refresh the selected mailbox");
                return;
            }
        };
        let highest = snapshot.messages.last().map_or(0, |m| m.uid);
        // A read-only session reads the claims without claiming (RFC 3501 §6.3.2); nor
        // does a view that cannot take the messages yet (a new UIDVALIDITY waits for a
        // command that allows EXPUNGE), so they are still recent when it does.
        let waits = snapshot.uid_validity != self.view.uid_validity && !allow_expunge;
        let claim = if self.view.read_only || waits { 0 } else { highest };
        let recent_above =
            self.shared.store.recent(self.account).claim(&self.view.mailbox, snapshot.uid_validity, claim);
        if claim > recent_above {
            self.shared.store.keep_recent(self.account, &self.view.mailbox, claim).await;
        }
        let updates = self.view.update(snapshot, allow_expunge, recent_above);
        response::updates(self.out, &updates);
    }
}

/// Brings the selected mailbox's view up to date, if one is selected.
async fn refresh<S: MailStore>(
    shared: &Shared<S>,
    state: &mut State<S::Account>,
    out: &mut Vec<u8>,
    sync: bool,
    allow_expunge: bool,
) {
    if let Some(mut selected) = Selected::of(shared, state, out) {
        selected.refresh(sync, allow_expunge).await;
    }
}

/// Answers one command: the state gate, the handler, the transition, the updates and
/// the tagged response. Only an I/O failure is an `Err`.
pub(crate) async fn dispatch<IO, S>(
    session: &mut Session<S>,
    link: &mut Link<IO>,
    tag: String,
    body: CommandBody<'static>,
) -> io::Result<Flow>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    let needs = needs(&body);
    if let Err(why) = session.state.permits(needs) {
        let error = ImapError::WrongState { command: body.name(), why };
        return Ok(session.fail(&mut link.out, Some(&tag), &error));
    }
    // When the view may be brought up to date afterwards, and how.
    let (sync, allow_expunge) = match &body {
        CommandBody::Noop | CommandBody::Check => (true, true),
        CommandBody::Fetch { uid: false, .. }
        | CommandBody::Store { uid: false, .. }
        | CommandBody::Search { uid: false, .. } => (false, false),
        _ => (false, true),
    };
    let is_select = matches!(body, CommandBody::Select { .. } | CommandBody::Examine { .. });
    if is_select && session.enabled.qresync && matches!(session.state, State::Selected { .. }) {
        // RFC 7162 §3.2.11: with QRESYNC the client is told where one mailbox's responses end.
        link.out.extend_from_slice(b"* OK [CLOSED] the previous mailbox is closed\r\n");
    }
    let (transition, response, flow) = match handle(session, link, needs, body).await {
        Ok(outcome) => (outcome.transition, Some(format!("{tag} OK {}\r\n", outcome.text)), outcome.flow),
        Err(ImapError::Io(err)) => return Err(err),
        Err(error) => {
            tracing::debug!(%error, "command failed");
            let flow = session.fail(&mut link.out, Some(&tag), &error);
            // A SELECT that fails leaves no mailbox selected (RFC 3501 §6.3.1).
            let transition = if is_select { Transition::Unselect } else { Transition::None };
            (transition, None, flow)
        }
    };
    let select = matches!(transition, Transition::Select(_));
    // A command may have turned CONDSTORE or QRESYNC on, in the view or the session.
    if let Some((_, _, view)) = session.state.selected_mut() {
        session.enabled.share(view);
    }
    if let Err(err) = session.state.apply(transition) {
        tracing::error!(error = %err, "invalid state transition");
    }
    if let Some(response) = response {
        if !select {
            refresh(&session.shared, &mut session.state, &mut link.out, sync, allow_expunge).await;
        }
        link.out.extend_from_slice(response.as_bytes());
    }
    Ok(flow)
}

/// Runs the handler of the group `needs` names, with the context that state gives.
async fn handle<IO, S>(
    session: &mut Session<S>,
    link: &mut Link<IO>,
    needs: Needs,
    body: CommandBody<'static>,
) -> Result<Outcome<S::Account>, ImapError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    // The gate has let the command through, so its state's context is there.
    let command = body.name();
    let gone = |why| move || ImapError::WrongState { command, why };
    match needs {
        Needs::Any => any::handle(&session.capabilities(), &mut link.out, body),
        Needs::NotAuthenticated => {
            let guest = auth::Guest {
                shared: &session.shared,
                auth_allowed: session.auth_allowed(),
                starttls_offered: session.starttls_offered && !session.tls,
                auth_failures: &mut session.auth_failures,
            };
            auth::handle(guest, link, body).await
        }
        Needs::Authenticated if matches!(body, CommandBody::Idle) => {
            idle::idle(&session.shared, &mut session.state, link).await
        }
        Needs::Authenticated => {
            let cx = Authenticated::of(&session.shared, &session.state, &mut session.enabled, &mut link.out)
                .ok_or_else(gone("log in first"))?;
            mailbox::handle(cx, body).await
        }
        Needs::Selected => {
            let cx = Selected::of(&session.shared, &mut session.state, &mut link.out)
                .ok_or_else(gone("select a mailbox first"))?;
            selected::handle(cx, &mut link.io, body).await
        }
    }
}

/// A mailbox name from the wire, with any case of INBOX as "INBOX".
fn mailbox_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => list::canonical_inbox(&mailbox_from_wire(other.as_ref())),
    }
}

fn convert_flags(flags: &[WireFlag<'_>]) -> Result<Vec<Flag>, ImapError> {
    flags
        .iter()
        .map(|flag| match flag {
            WireFlag::Seen => Ok(Flag::Seen),
            WireFlag::Answered => Ok(Flag::Answered),
            WireFlag::Flagged => Ok(Flag::Flagged),
            WireFlag::Deleted => Ok(Flag::Deleted),
            WireFlag::Draft => Ok(Flag::Draft),
            // NIL is the nil value, never a flag keyword (RFC 3501 §9).
            WireFlag::Keyword(atom) if atom.as_ref().eq_ignore_ascii_case("NIL") => {
                Err(ImapError::Syntax("NIL is not a flag".into()))
            }
            WireFlag::Keyword(atom) => Ok(Flag::Keyword(atom.as_ref().to_string())),
            other @ WireFlag::Extension(_) => Err(ImapError::Syntax(format!("the flag {other} cannot be stored"))),
        })
        .collect()
}

/// The LIST reference as given (it is joined to the pattern, not a mailbox).
fn list_reference(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => mailbox_from_wire(other.as_ref()),
    }
}

fn list_pattern(pattern: &ListMailbox<'_>) -> String {
    let bytes: &[u8] = match pattern {
        ListMailbox::Token(token) => token.as_ref(),
        ListMailbox::String(string) => string.as_ref(),
    };
    mailbox_from_wire(bytes)
}
