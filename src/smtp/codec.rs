//! The SMTP submission codec (pure): bytes in, typed inputs out. Frames lines with a
//! length limit, parses commands with smtp-proto, and hands DATA bytes to the
//! [`DataDecoder`]. Which of the three the session wants next is its input mode; this
//! module keeps only the bytes not yet decoded.
//!
//! RFC 5321 §4.1 (commands), §4.5.3.1.4 (command line length), RFC 1870 (SIZE),
//! RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 4954 (AUTH and its initial response).
//! Command lines may end in CRLF or a bare LF; a CR anywhere else in a command line is
//! refused. Depends only on std and smtp-proto.

use std::borrow::Cow;
use std::fmt;

use smtp_proto::Request;

use super::data::{DataDecoder, DataError};

/// The longest SASL response line (RFC 4954 §4: at least 12288 octets).
pub(crate) const MAX_SASL_LINE: usize = 12288;

/// Why a command line was not a usable command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("command not recognised")]
    Unknown,
    #[error("syntax: {0}")]
    Syntax(&'static str),
    #[error("bad sender address")]
    BadSender,
    #[error("bad recipient address")]
    BadRecipient,
    #[error("invalid value for {0}")]
    BadParameter(&'static str),
    #[error("parameter {0} is not supported")]
    UnsupportedParameter(String),
    #[error("line longer than {0} octets")]
    LineTooLong(usize),
    #[error("bare CR in a command line")]
    BareCr,
    #[error("command line is not UTF-8")]
    NotUtf8,
}

/// A line longer than the limit; the rest of it, up to its LF, is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {0} octets")]
pub(crate) struct LineTooLong(pub(crate) usize);

/// AUTH mechanisms, as far as this server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
    Other,
}

/// A SASL response as sent (base64); Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SaslData(pub(crate) Vec<u8>);

impl fmt::Debug for SaslData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SaslData(<{} octets>)", self.0.len())
    }
}

impl Drop for SaslData {
    fn drop(&mut self) {
        super::sasl::wipe(&mut self.0);
    }
}

/// `MAIL FROM` with the parameters this server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailFrom {
    /// Empty for the null reverse-path `<>`.
    pub(crate) address: String,
    /// `SIZE=` (RFC 1870), if given.
    pub(crate) size: Option<usize>,
    /// `SMTPUTF8` (RFC 6531).
    pub(crate) smtputf8: bool,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Ehlo(String),
    Helo(String),
    StartTls,
    /// `initial` is `None` without an initial response, empty for `=` (RFC 4954 §4).
    Auth {
        mechanism: Mechanism,
        initial: Option<SaslData>,
    },
    Mail(MailFrom),
    Rcpt(String),
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    /// A command smtp-proto knows that this server does not offer (LHLO, ETRN, ...).
    NotOffered(&'static str),
}

impl Command {
    /// The command's name, for logs and spans.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy => "VRFY",
            Command::Expn => "EXPN",
            Command::Help => "HELP",
            Command::NotOffered(name) => name,
        }
    }
}

/// The bytes received and not yet decoded.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    /// Skipping the rest of a line that was too long.
    skipping: bool,
}

impl Decoder {
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops everything buffered (after STARTTLS: plaintext sent ahead of the TLS
    /// handshake must never be read as if it came over TLS — RFC 3207 §4.2). Returns how
    /// many bytes were dropped.
    pub(crate) fn discard(&mut self) -> usize {
        let dropped = self.buf.len();
        super::sasl::wipe(&mut self.buf);
        self.buf.clear();
        self.skipping = false;
        dropped
    }

    /// The next line, with its LF and the CR before it, if any, still on; `None` until
    /// a whole line (or more than `limit` octets of one) has arrived.
    fn next_raw_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, LineTooLong>> {
        loop {
            let newline = self.buf.iter().position(|&b| b == b'\n');
            if self.skipping {
                match newline {
                    Some(at) => {
                        self.buf.drain(..=at);
                        self.skipping = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            return match newline {
                Some(at) if at < limit => Some(Ok(self.buf.drain(..=at).collect())),
                Some(at) => {
                    self.buf.drain(..=at);
                    Some(Err(LineTooLong(limit)))
                }
                None if self.buf.len() > limit => {
                    self.buf.clear();
                    self.skipping = true;
                    Some(Err(LineTooLong(limit)))
                }
                None => None,
            };
        }
    }

    /// The next line without its line end (a SASL response).
    pub(crate) fn next_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, LineTooLong>> {
        self.next_raw_line(limit).map(|line| {
            line.map(|mut line| {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                line
            })
        })
    }

    /// The next command; `limit` is the longest command line with its CRLF.
    pub(crate) fn next_command(&mut self, limit: usize) -> Option<Result<Command, CommandError>> {
        let line = match self.next_raw_line(limit)? {
            Ok(line) => line,
            Err(LineTooLong(limit)) => return Some(Err(CommandError::LineTooLong(limit))),
        };
        let result = parse_command(&line);
        let mut line = line;
        super::sasl::wipe(&mut line);
        Some(result)
    }

    /// Feeds the buffered bytes to the DATA decoder; `Some` once the message has ended.
    /// What follows the end stays buffered.
    pub(crate) fn next_message(&mut self, data: &mut DataDecoder) -> Option<Result<Vec<u8>, DataError>> {
        if self.buf.is_empty() {
            return None;
        }
        let (used, outcome) = data.feed(&self.buf);
        self.buf.drain(..used);
        outcome
    }
}

/// Parses one command line (ending in LF) with smtp-proto.
pub(crate) fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    check_line(line)?;
    let request = Request::parse(&mut line.iter()).map_err(command_error)?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo(host.into_owned()),
        Request::Helo { host } => Command::Helo(host.into_owned()),
        Request::StartTls => Command::StartTls,
        Request::Auth { mechanism, initial_response } => auth_command(mechanism, &initial_response),
        Request::Mail { from } => mail_command(from)?,
        Request::Rcpt { to } => rcpt_command(to)?,
        Request::Data => Command::Data,
        Request::Bdat { .. } => Command::Bdat,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Quit => Command::Quit,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Expn { .. } => Command::Expn,
        Request::Help { .. } => Command::Help,
        Request::Lhlo { .. } => Command::NotOffered("LHLO"),
        Request::Etrn { .. } => Command::NotOffered("ETRN"),
        Request::Atrn { .. } => Command::NotOffered("ATRN"),
        Request::Burl { .. } => Command::NotOffered("BURL"),
    })
}

/// Refuses a command line with a CR or LF before its line end, or that is not UTF-8.
fn check_line(line: &[u8]) -> Result<(), CommandError> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let content = content.strip_suffix(b"\r").unwrap_or(content);
    if content.contains(&b'\r') || content.contains(&b'\n') {
        return Err(CommandError::BareCr);
    }
    if std::str::from_utf8(content).is_err() {
        return Err(CommandError::NotUtf8);
    }
    Ok(())
}

/// smtp-proto's parse error as this codec's.
fn command_error(error: smtp_proto::Error) -> CommandError {
    match error {
        smtp_proto::Error::UnknownCommand => CommandError::Unknown,
        smtp_proto::Error::InvalidSenderAddress => CommandError::BadSender,
        smtp_proto::Error::InvalidRecipientAddress => CommandError::BadRecipient,
        smtp_proto::Error::SyntaxError { syntax } => CommandError::Syntax(syntax),
        smtp_proto::Error::InvalidParameter { param } => CommandError::BadParameter(param),
        smtp_proto::Error::UnsupportedParameter { param } => CommandError::UnsupportedParameter(param),
        _ => CommandError::Syntax("a command line"),
    }
}

/// `AUTH`: the mechanism, and the initial response (`=` is an empty one).
fn auth_command(mechanism: u64, initial_response: &str) -> Command {
    Command::Auth {
        mechanism: match mechanism {
            smtp_proto::AUTH_PLAIN => Mechanism::Plain,
            smtp_proto::AUTH_LOGIN => Mechanism::Login,
            _ => Mechanism::Other,
        },
        initial: match initial_response {
            "" => None,
            "=" => Some(SaslData(Vec::new())),
            response => Some(SaslData(response.as_bytes().to_vec())),
        },
    }
}

/// `MAIL FROM`, refusing the extensions' parameters this server does not offer.
fn mail_command(from: smtp_proto::MailFrom<Cow<'_, str>>) -> Result<Command, CommandError> {
    if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
        return Err(CommandError::UnsupportedParameter("BODY=BINARYMIME".into()));
    }
    let unsupported = [
        (from.flags & (smtp_proto::MAIL_RET_FULL | smtp_proto::MAIL_RET_HDRS) != 0, "RET"),
        (from.env_id.is_some(), "ENVID"),
        (from.flags & smtp_proto::MAIL_REQUIRETLS != 0, "REQUIRETLS"),
        (from.flags & smtp_proto::MAIL_CONPERM != 0, "CONPERM"),
        (from.by != 0, "BY"),
        (from.trans_id.is_some(), "TRANSID"),
        (from.solicit.is_some(), "SOLICIT"),
        (from.mtrk.is_some(), "MTRK"),
        (from.hold_for != 0 || from.hold_until != 0, "FUTURERELEASE"),
        (from.mt_priority != 0, "MT-PRIORITY"),
    ];
    if let Some((_, name)) = unsupported.iter().find(|(present, _)| *present) {
        return Err(CommandError::UnsupportedParameter((*name).into()));
    }
    Ok(Command::Mail(MailFrom {
        address: from.address.into_owned(),
        size: (from.size > 0).then_some(from.size),
        smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
    }))
}

/// `RCPT TO`, refusing the extensions' parameters this server does not offer and an
/// empty address.
fn rcpt_command(to: smtp_proto::RcptTo<Cow<'_, str>>) -> Result<Command, CommandError> {
    let unsupported = [
        (
            to.flags & !(smtp_proto::RCPT_CONNEG | smtp_proto::RCPT_RRVS_REJECT | smtp_proto::RCPT_RRVS_CONTINUE) != 0,
            "NOTIFY",
        ),
        (to.orcpt.is_some(), "ORCPT"),
        (to.flags & smtp_proto::RCPT_CONNEG != 0, "CONNEG"),
        (to.rrvs != 0 || to.flags & (smtp_proto::RCPT_RRVS_REJECT | smtp_proto::RCPT_RRVS_CONTINUE) != 0, "RRVS"),
    ];
    if let Some((_, name)) = unsupported.iter().find(|(present, _)| *present) {
        return Err(CommandError::UnsupportedParameter((*name).into()));
    }
    if to.address.is_empty() {
        return Err(CommandError::BadRecipient);
    }
    Ok(Command::Rcpt(to.address.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::data::DataLimits;

    const LIMIT: usize = 512;

    fn mail(address: &str, size: Option<usize>, smtputf8: bool) -> Command {
        Command::Mail(MailFrom { address: address.into(), size, smtputf8 })
    }

    /// Decodes `input` fed whole, in chunks and byte by byte; every way must agree.
    fn commands(input: &[u8]) -> Vec<Result<Command, CommandError>> {
        let decode = |step: usize| {
            let mut decoder = Decoder::default();
            let mut out = Vec::new();
            for piece in input.chunks(step.max(1)) {
                decoder.feed(piece);
                while let Some(command) = decoder.next_command(LIMIT) {
                    out.push(command);
                }
            }
            out
        };
        let whole = decode(input.len());
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(decode(step), whole, "step {step}");
        }
        whole
    }

    #[test]
    fn commands_parse_whole_in_chunks_and_byte_by_byte() {
        let input = concat!(
            "EHLO client.example\r\n",
            "helo client\r\n",
            "STARTTLS\r\n",
            "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            "AUTH LOGIN\r\n",
            "AUTH PLAIN =\r\n",
            "AUTH CRAM-MD5\r\n",
            "MAIL FROM:<alice@example.org> SIZE=1000 BODY=8BITMIME\r\n",
            "MAIL FROM:<> SMTPUTF8\r\n",
            "mail from:<jörg@example.org> smtputf8\r\n",
            "RCPT TO:<bob@example.org>\r\n",
            "DATA\r\n",
            "RSET\r\n",
            "NOOP hello\r\n",
            "VRFY bob\r\n",
            "EXPN list\r\n",
            "HELP\r\n",
            "BDAT 10 LAST\r\n",
            "LHLO x\r\n",
            "QUIT\n",
        );
        let expected = vec![
            Ok(Command::Ehlo("client.example".into())),
            Ok(Command::Helo("client".into())),
            Ok(Command::StartTls),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial: Some(SaslData(b"AGFsaWNlAHNlY3JldA==".to_vec())),
            }),
            Ok(Command::Auth { mechanism: Mechanism::Login, initial: None }),
            Ok(Command::Auth { mechanism: Mechanism::Plain, initial: Some(SaslData(Vec::new())) }),
            Ok(Command::Auth { mechanism: Mechanism::Other, initial: None }),
            Ok(mail("alice@example.org", Some(1000), false)),
            Ok(mail("", None, true)),
            Ok(mail("jörg@example.org", None, true)),
            Ok(Command::Rcpt("bob@example.org".into())),
            Ok(Command::Data),
            Ok(Command::Rset),
            Ok(Command::Noop),
            Ok(Command::Vrfy),
            Ok(Command::Expn),
            Ok(Command::Help),
            Ok(Command::Bdat),
            Ok(Command::NotOffered("LHLO")),
            Ok(Command::Quit),
        ];
        assert_eq!(commands(input.as_bytes()), expected);
    }

    #[test]
    fn bad_commands_are_typed_errors() {
        let cases: &[(&str, CommandError)] = &[
            ("FOO bar\r\n", CommandError::Unknown),
            ("EHLO\r\n", CommandError::Syntax("EHLO domain")),
            ("MAIL TO:<a@b.c>\r\n", CommandError::Syntax("MAIL FROM:<reverse-path> [parameters]")),
            ("MAIL FROM:<a..b@c>\r\n", CommandError::BadSender),
            ("RCPT TO:<postmaster>\r\n", CommandError::BadRecipient),
            ("RCPT TO:<bob@example.org> NOTIFY=NEVER\r\n", CommandError::UnsupportedParameter("NOTIFY".into())),
            ("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n", CommandError::UnsupportedParameter("BODY=BINARYMIME".into())),
            ("MAIL FROM:<a@b.c> RET=FULL\r\n", CommandError::UnsupportedParameter("RET".into())),
            ("MAIL FROM:<a@b.c> BODY=9BIT\r\n", CommandError::BadParameter("BODY")),
            ("NOOP a\rb\r\n", CommandError::BareCr),
        ];
        for (line, error) in cases {
            assert_eq!(commands(line.as_bytes()), vec![Err(error.clone())], "{line:?}");
        }
        assert_eq!(commands(b"NOOP \xff\r\n"), vec![Err(CommandError::NotUtf8)]);
    }

    #[test]
    fn a_long_line_is_one_error_and_its_tail_is_never_a_command() {
        let long = format!("NOOP {}MAIL FROM:<mallory@evil.example>\r\nRSET\r\n", "x".repeat(LIMIT));
        assert_eq!(commands(long.as_bytes()), vec![Err(CommandError::LineTooLong(LIMIT)), Ok(Command::Rset)]);
        // Exactly the limit, CRLF included, is fine.
        let fits = format!("NOOP {}\r\n", "x".repeat(LIMIT - 7));
        assert_eq!(commands(fits.as_bytes()), vec![Ok(Command::Noop)]);
        let over = format!("NOOP {}\r\n", "x".repeat(LIMIT - 6));
        assert_eq!(commands(over.as_bytes()), vec![Err(CommandError::LineTooLong(LIMIT))]);
    }

    #[test]
    fn sasl_lines_lose_their_line_end_and_redact_debug() {
        let mut decoder = Decoder::default();
        decoder.feed(b"YWxpY2U=\r\n*\n");
        assert_eq!(decoder.next_line(MAX_SASL_LINE), Some(Ok(b"YWxpY2U=".to_vec())));
        assert_eq!(decoder.next_line(MAX_SASL_LINE), Some(Ok(b"*".to_vec())));
        assert_eq!(decoder.next_line(MAX_SASL_LINE), None);
        assert_eq!(format!("{:?}", SaslData(b"secret".to_vec())), "SaslData(<6 octets>)");
    }

    #[test]
    fn data_follows_the_data_command_and_commands_follow_the_data() {
        let input = b"DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
        for step in [input.len(), 1, 4] {
            let mut decoder = Decoder::default();
            let mut data: Option<DataDecoder> = None;
            let mut events = Vec::new();
            for piece in input.chunks(step) {
                decoder.feed(piece);
                loop {
                    if let Some(d) = data.as_mut() {
                        match decoder.next_message(d) {
                            Some(message) => {
                                events.push(format!("{:?}", message.map(|m| String::from_utf8(m).unwrap())));
                                data = None;
                            }
                            None => break,
                        }
                    } else {
                        match decoder.next_command(LIMIT) {
                            Some(Ok(Command::Data)) => {
                                events.push("DATA".into());
                                data = Some(DataDecoder::new(DataLimits { max_size: 1000, max_line: 1000 }));
                            }
                            Some(other) => events.push(format!("{other:?}")),
                            None => break,
                        }
                    }
                }
            }
            assert_eq!(events, ["DATA", "Ok(\"Subject: x\\r\\n\\r\\n.dot\\r\\n\")", "Ok(Quit)"], "step {step}");
        }
    }

    #[test]
    fn discard_drops_pipelined_plaintext() {
        let mut decoder = Decoder::default();
        decoder.feed(b"STARTTLS\r\nMAIL FROM:<a@b.c>\r\n");
        assert_eq!(decoder.next_command(LIMIT), Some(Ok(Command::StartTls)));
        assert_eq!(decoder.discard(), "MAIL FROM:<a@b.c>\r\n".len());
        assert_eq!(decoder.next_command(LIMIT), None);
    }
}
