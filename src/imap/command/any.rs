//! Commands valid in any state (RFC 3501 §6.1, RFC 2971 ID): they need nothing of the
//! session but its capability list and the output.

use imap_codec::imap_types::command::CommandBody;

use super::Outcome;
use crate::imap::flow::Transition;
use crate::imap::response::{Flow, ImapError};

/// CAPABILITY, NOOP, LOGOUT and ID; `capabilities` is what the connection offers now.
pub(super) fn handle<A>(
    capabilities: &str,
    out: &mut Vec<u8>,
    body: CommandBody<'static>,
) -> Result<Outcome<A>, ImapError> {
    match body {
        CommandBody::Capability => {
            out.extend_from_slice(format!("* CAPABILITY {capabilities}\r\n").as_bytes());
            Ok(Outcome::ok("CAPABILITY completed"))
        }
        // The view is brought up to date after every command; NOOP asks for no more.
        CommandBody::Noop => Ok(Outcome::ok("NOOP completed")),
        CommandBody::Logout => {
            out.extend_from_slice(b"* BYE smimp-gateway logging out\r\n");
            Ok(Outcome::ok("LOGOUT completed").with(Transition::Logout).then(Flow::Close))
        }
        CommandBody::Id { .. } => {
            let version = env!("CARGO_PKG_VERSION");
            out.extend_from_slice(
                format!("* ID (\"name\" \"smimp-gateway\" \"version\" \"{version}\")\r\n").as_bytes(),
            );
            Ok(Outcome::ok("ID completed"))
        }
        other => Err(ImapError::Unsupported(other.name())),
    }
}
