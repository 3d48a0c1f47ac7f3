//! Commands valid before login (RFC 3501 §6.2): STARTTLS, LOGIN and AUTHENTICATE
//! PLAIN (RFC 4616, with SASL-IR, RFC 4959). Logging in needs TLS unless plain auth on
//! loopback is allowed; failures are answered alike whatever failed, slower each time,
//! and close the connection after the configured number. Passwords are held in
//! buffers wiped when dropped.

use std::time::Duration;

use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::AuthenticateDataCodec;
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use super::Outcome;
use crate::imap::connection::{Link, Read, Shared};
use crate::imap::flow::Transition;
use crate::imap::response::{Flow, ImapError, AUTHENTICATED_CAPABILITIES};
use crate::imap::MailStore;

/// What the commands before login work with.
pub(super) struct Guest<'c, S: MailStore> {
    pub shared: &'c Shared<S>,
    /// LOGIN and AUTHENTICATE may be used on this connection.
    pub auth_allowed: bool,
    /// STARTTLS is offered and TLS is not on yet.
    pub starttls_offered: bool,
    /// Failed logins so far on this connection.
    pub auth_failures: &'c mut u32,
}

/// STARTTLS, LOGIN and AUTHENTICATE.
pub(super) async fn handle<IO, S>(
    mut guest: Guest<'_, S>,
    link: &mut Link<IO>,
    body: CommandBody<'static>,
) -> Result<Outcome<S::Account>, ImapError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    match body {
        CommandBody::StartTLS => {
            if guest.starttls_offered {
                Ok(Outcome::ok("Begin TLS negotiation now").then(Flow::StartTls))
            } else {
                Err(ImapError::WrongState { command: "STARTTLS", why: "TLS is not offered here or already on" })
            }
        }
        CommandBody::Login { username, password } => {
            let user = String::from_utf8_lossy(username.as_ref()).into_owned();
            let password = Zeroizing::new(String::from_utf8_lossy(password.declassify().as_ref()).into_owned());
            guest.login(user, password).await
        }
        CommandBody::Authenticate { mechanism, initial_response } => {
            let initial = initial_response.map(|r| Zeroizing::new(r.declassify().to_vec()));
            guest.authenticate(link, mechanism, initial).await
        }
        other => Err(ImapError::Unsupported(other.name())),
    }
}

impl<S: MailStore> Guest<'_, S> {
    async fn login(&mut self, user: String, password: Zeroizing<String>) -> Result<Outcome<S::Account>, ImapError> {
        if !self.auth_allowed {
            return Err(ImapError::PrivacyRequired);
        }
        if let Some(account) = self.shared.store.authenticate(&user, &password).await {
            tracing::info!(user = %user, "logged in");
            let caps = AUTHENTICATED_CAPABILITIES;
            return Ok(
                Outcome::ok(format!("[CAPABILITY {caps}] logged in")).with(Transition::Authenticate { account, user })
            );
        }
        *self.auth_failures += 1;
        let failures = *self.auth_failures;
        tracing::info!(failures, "authentication failed");
        let config = &self.shared.config;
        let exponent = failures.saturating_sub(1).min(16);
        let delay = config.auth_failure_delay.saturating_mul(1 << exponent).min(Duration::from_secs(30));
        tokio::time::sleep(delay).await;
        if failures >= config.max_auth_failures {
            Err(ImapError::TooManyAuthFailures)
        } else {
            Err(ImapError::AuthFailed)
        }
    }

    /// AUTHENTICATE PLAIN, with the initial response in the command (SASL-IR) or after
    /// a `+` continuation.
    async fn authenticate<IO>(
        &mut self,
        link: &mut Link<IO>,
        mechanism: AuthMechanism<'static>,
        initial: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Outcome<S::Account>, ImapError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        if mechanism != AuthMechanism::Plain {
            return Err(ImapError::UnsupportedMechanism);
        }
        if !self.auth_allowed {
            return Err(ImapError::PrivacyRequired);
        }
        let response = match initial {
            Some(response) => response,
            None => {
                link.out.extend_from_slice(b"+ \r\n");
                let timeout = self.shared.config.login_timeout.min(self.shared.config.command_timeout);
                if !matches!(link.read_message(timeout).await?, Read::Message) {
                    return Err(ImapError::AuthCancelled);
                }
                match link.fragmentizer.decode_message(&AuthenticateDataCodec::default()) {
                    Ok(AuthenticateData::Continue(data)) => Zeroizing::new(data.declassify().to_vec()),
                    Ok(AuthenticateData::Cancel) => return Err(ImapError::AuthCancelled),
                    Err(_) => return Err(ImapError::Syntax("cannot decode the SASL response".into())),
                }
            }
        };
        let mut fields = response.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(ImapError::Syntax("a PLAIN response has three NUL-separated fields".into()));
        };
        let user = String::from_utf8_lossy(authcid).into_owned();
        let password = Zeroizing::new(String::from_utf8_lossy(password).into_owned());
        if !authzid.is_empty() && authzid != authcid {
            // Acting for someone else is not offered: fail like a wrong password.
            return self.login(user, Zeroizing::default()).await.and(Err(ImapError::AuthFailed));
        }
        self.login(user, password).await
    }
}
