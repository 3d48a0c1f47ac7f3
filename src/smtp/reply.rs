//! Reply formatting for the SMTP submission front-end (pure): a reply is a code, an
//! optional enhanced status code and text, written with smtp-proto's formatter.
//!
//! RFC 5321 §4.2 (reply syntax, multi-line replies), RFC 2034 and RFC 3463 (enhanced
//! status codes: on every 2xx, 4xx and 5xx reply except the greeting and the replies to
//! HELO and EHLO), RFC 4954 §4 (the `334` challenge). Depends only on std and smtp-proto.

use smtp_proto::{EhloResponse, Response};

/// The longest reply text line written (RFC 5321 §4.5.3.1.5 allows 512 octets with the
/// code and CRLF); longer text is cut at a character boundary.
const MAX_TEXT: usize = 480;

/// One SMTP reply. Text is sanitised when written: control characters (CR and LF
/// included) become spaces, so text from elsewhere can never inject a reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    code: u16,
    status: Option<[u8; 3]>,
    lines: Vec<String>,
}

impl Reply {
    /// A reply with an enhanced status code (RFC 3463), e.g. `250 2.1.0 Sender OK`.
    pub(crate) fn new(code: u16, status: [u8; 3], text: impl Into<String>) -> Self {
        Reply { code, status: Some(status), lines: vec![text.into()] }
    }

    /// A reply without an enhanced status code: the greeting, HELO, `354` and `334`.
    pub(crate) fn bare(code: u16, text: impl Into<String>) -> Self {
        Reply { code, status: None, lines: vec![text.into()] }
    }

    /// Adds a line, making this a multi-line reply.
    pub(crate) fn line(mut self, text: impl Into<String>) -> Self {
        self.lines.push(text.into());
        self
    }

    /// Appends the reply's wire form to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (index, text) in self.lines.iter().enumerate() {
            let text = sanitise(text);
            let start = out.len();
            match self.status {
                Some([class, subject, detail]) => {
                    // Writing into a Vec cannot fail.
                    let _ = Response::new(self.code, class, subject, detail, text).write(&mut *out);
                }
                None if text.is_empty() => out.extend_from_slice(format!("{} \r\n", self.code).as_bytes()),
                None => out.extend_from_slice(format!("{} {}\r\n", self.code, text).as_bytes()),
            }
            // A continuation line has `-` after the code (RFC 5321 §4.2.1).
            if index != last {
                if let Some(separator) = out.get_mut(start + 3) {
                    *separator = b'-';
                }
            }
        }
    }
}

/// The extensions the EHLO reply advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub(crate) max_message_size: usize,
    pub(crate) starttls: bool,
    pub(crate) auth: bool,
}

/// Appends the EHLO reply: PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME,
/// ENHANCEDSTATUSCODES (RFC 2034), SMTPUTF8 (RFC 6531), and STARTTLS (RFC 3207) and
/// AUTH PLAIN LOGIN (RFC 4954) when they are available on this connection.
pub(crate) fn write_ehlo(hostname: &str, capabilities: Capabilities, out: &mut Vec<u8>) {
    let mut ehlo = EhloResponse::new(sanitise(hostname));
    ehlo.capabilities = smtp_proto::EXT_PIPELINING
        | smtp_proto::EXT_SIZE
        | smtp_proto::EXT_8BIT_MIME
        | smtp_proto::EXT_ENHANCED_STATUS_CODES
        | smtp_proto::EXT_SMTP_UTF8;
    ehlo.size = capabilities.max_message_size;
    if capabilities.starttls {
        ehlo.capabilities |= smtp_proto::EXT_START_TLS;
    }
    if capabilities.auth {
        ehlo.capabilities |= smtp_proto::EXT_AUTH;
        ehlo.auth_mechanisms = smtp_proto::AUTH_PLAIN | smtp_proto::AUTH_LOGIN;
    }
    let _ = ehlo.write(&mut *out);
}

fn sanitise(text: &str) -> String {
    let mut clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replies_are_formatted_with_and_without_status_codes() {
        let cases = [
            (Reply::new(250, [2, 1, 0], "Sender OK"), "250 2.1.0 Sender OK\r\n"),
            (
                Reply::new(550, [5, 1, 1], "bob@example.org has no SMIMP profile"),
                "550 5.1.1 bob@example.org has no SMIMP profile\r\n",
            ),
            (Reply::bare(220, "localhost ESMTP"), "220 localhost ESMTP\r\n"),
            (Reply::bare(334, ""), "334 \r\n"),
            (Reply::new(214, [2, 0, 0], "one").line("two"), "214-2.0.0 one\r\n214 2.0.0 two\r\n"),
            (Reply::bare(250, "a").line("b").line("c"), "250-a\r\n250-b\r\n250 c\r\n"),
            (Reply::new(451, [4, 3, 0], "x\r\n250 2.0.0 injected"), "451 4.3.0 x  250 2.0.0 injected\r\n"),
        ];
        for (reply, expected) in cases {
            assert_eq!(text(&reply), expected);
        }
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let reply = Reply::new(550, [5, 0, 0], "é".repeat(400));
        let written = text(&reply);
        assert!(written.len() <= 512, "{}", written.len());
        assert!(written.ends_with("é\r\n"));
    }

    #[test]
    fn ehlo_advertises_what_the_connection_offers() {
        let mut out = Vec::new();
        write_ehlo("localhost", Capabilities { max_message_size: 1000, starttls: true, auth: false }, &mut out);
        let ehlo = String::from_utf8(out).unwrap();
        let keywords: Vec<&str> = ehlo.lines().skip(1).map(|l| &l[4..]).collect();
        assert_eq!(keywords, ["STARTTLS", "SMTPUTF8", "SIZE 1000", "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"]);
        assert!(ehlo.starts_with("250-localhost "));
        assert!(ehlo.ends_with("250 8BITMIME\r\n"));

        let mut out = Vec::new();
        write_ehlo("localhost", Capabilities { max_message_size: 5, starttls: false, auth: true }, &mut out);
        let ehlo = String::from_utf8(out).unwrap();
        assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
        assert!(!ehlo.contains("STARTTLS"));
    }
}
