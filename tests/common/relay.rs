//! A legacy SMTP relay for the gateway's relay path: it takes AUTH as
//! relayuser/relaypass, refuses `refused@` recipients with a 550 and records everything
//! else it accepts, so a test can compare what the relay saw with what was submitted.

use std::sync::Mutex;

use smimp_gateway::smtp::{RecipientOk, Refusal, Submission};

/// What the relay took: envelope sender, envelope recipients, message bytes.
pub type Taken = (String, Vec<String>, Vec<u8>);

/// The relay's side of the SMTP conversation.
#[derive(Default)]
pub struct RecordingRelay {
    pub taken: Mutex<Vec<Taken>>,
}

impl Submission for RecordingRelay {
    type Account = ();

    async fn authenticate(&self, username: &str, password: &str) -> Option<()> {
        (username == "relayuser" && password == "relaypass").then_some(())
    }

    async fn check_recipient(&self, _account: &(), recipient: &str) -> Result<RecipientOk, Refusal> {
        if recipient.starts_with("refused@") {
            return Err(Refusal::new(550, [5, 1, 1], format!("{recipient}: no such mailbox here")));
        }
        Ok(RecipientOk::ok())
    }

    async fn accept(&self, _account: &(), from: &str, recipients: &[String], message: Vec<u8>) -> Result<(), Refusal> {
        self.taken.lock().unwrap().push((from.to_string(), recipients.to_vec(), message));
        Ok(())
    }
}
