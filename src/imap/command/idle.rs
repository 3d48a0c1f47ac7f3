//! IDLE (RFC 2177): the one command that waits on the stream and the backend at once.
//! Changes are reported when the backend notifies or every poll interval, until the
//! client's DONE, the idle timeout or shutdown; it runs in the authenticated and the
//! selected state alike (with nothing selected there is nothing to report).

use std::sync::Arc;

use imap_codec::IdleDoneCodec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;

use super::{refresh, Outcome};
use crate::imap::connection::{Link, Shared};
use crate::imap::flow::State;
use crate::imap::response::{Flow, ImapError};
use crate::imap::MailStore;

/// Idles until DONE (a tagged OK follows), or ends the connection with a BYE when it
/// lasts too long, the server shuts down or the client goes away.
pub(super) async fn idle<IO, S>(
    shared: &Shared<S>,
    state: &mut State<S::Account>,
    link: &mut Link<IO>,
) -> Result<Outcome<S::Account>, ImapError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    let Some((account, _)) = state.account() else {
        return Err(ImapError::WrongState { command: "IDLE", why: "log in first" });
    };
    let notify = shared.store.changes(account);
    let mut notified = Box::pin(notify.notified());
    notified.as_mut().enable();
    link.out.extend_from_slice(b"+ idling\r\n");
    // News may have arrived since the last command.
    refresh(shared, state, &mut link.out, false, true).await;
    link.flush().await?;
    let config = Arc::clone(&shared.config);
    let deadline = Instant::now() + config.idle_timeout;
    let mut poll = tokio::time::interval_at(Instant::now() + config.poll_interval, config.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut chunk = vec![0u8; 1024];
    loop {
        if link.fragmentizer.progress().is_some() && link.fragmentizer.is_message_complete() {
            return match link.fragmentizer.decode_message(&IdleDoneCodec::default()) {
                Ok(_) => Ok(Outcome::ok("IDLE terminated")),
                Err(_) => Err(ImapError::Syntax("expected DONE".into())),
            };
        }
        tokio::select! {
            read = link.io.read(&mut chunk) => {
                let read = read?;
                if read == 0 {
                    return Ok(Outcome::ok("IDLE ended: connection closed").then(Flow::Close));
                }
                link.fragmentizer.enqueue_bytes(&chunk[..read]);
            }
            () = &mut notified => {
                notified = Box::pin(notify.notified());
                notified.as_mut().enable();
                refresh(shared, state, &mut link.out, false, true).await;
                link.flush().await?;
            }
            _ = poll.tick() => {
                refresh(shared, state, &mut link.out, true, true).await;
                link.flush().await?;
            }
            () = tokio::time::sleep_until(deadline) => {
                link.out.extend_from_slice(b"* BYE IDLE lasted too long\r\n");
                return Ok(Outcome::ok("IDLE ended").then(Flow::Close));
            }
            () = link.shutdown.requested() => {
                link.out.extend_from_slice(b"* BYE server shutting down\r\n");
                return Ok(Outcome::ok("IDLE ended").then(Flow::Close));
            }
        }
    }
}
