//! The DATA decoder of the SMTP submission front-end (pure): end-of-data detection,
//! dot-unstuffing, the size limit and the line checks (RFC 5321 §4.1.1.4, §4.5.2,
//! §4.5.3.1.6; RFC 1870 for the size limit).
//!
//! End of data is only `CRLF . CRLF`, recognised by smtp-proto's `DataReceiver`, which
//! is primed with a `CRLF` so that the first line of the message counts as a line start
//! (a fresh receiver does not: an immediate `.` would not end the data and a leading
//! `..` would stay doubled).
//!
//! SMTP smuggling: `LF . LF`, `CR . CR`, `CRLF . LF` and the like never end the data, so
//! whatever follows them stays part of this message. A message that holds a bare CR
//! or a bare LF anywhere is then refused as a whole (5.5.2) rather than normalised: a
//! submission client has no reason to send one, and a message that another system
//! could read differently is never passed on. Depends only on std and smtp-proto.

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};

/// Limits on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataLimits {
    /// The largest message, in octets after dot-unstuffing.
    pub(crate) max_size: usize,
    /// The longest line, in octets including its CRLF (RFC 5321 §4.5.3.1.6: 1000).
    pub(crate) max_line: usize,
}

/// Why a complete message is refused. The whole of it has been read either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DataError {
    #[error("the message is larger than {limit} octets")]
    TooBig { limit: usize },
    #[error("the message contains a bare CR")]
    BareCr,
    #[error("the message contains a bare LF")]
    BareLf,
    #[error("line {line} of the message is longer than {limit} octets")]
    LineTooLong { line: usize, limit: usize },
}

enum Receiver {
    /// Keeping the message.
    Keep(DataReceiver),
    /// Over the size limit: reading to the end without keeping anything.
    Discard(DummyDataReceiver),
}

/// Reads one message after `354`, as bytes arrive in pieces of any size.
pub(crate) struct DataDecoder {
    receiver: Receiver,
    message: Vec<u8>,
    limits: DataLimits,
}

impl DataDecoder {
    pub(crate) fn new(limits: DataLimits) -> Self {
        let mut receiver = DataReceiver::new();
        let mut primer = Vec::new();
        // Prime the receiver: it then sees the first line as following a CRLF. The primer
        // is not part of the message and is discarded.
        let ended = receiver.ingest(&mut b"\r\n".iter(), &mut primer);
        debug_assert!(!ended && primer == b"\r\n");
        DataDecoder { receiver: Receiver::Keep(receiver), message: Vec::new(), limits }
    }

    /// Feeds bytes. Returns how many were consumed and, once the terminating
    /// `CRLF . CRLF` has been seen, the message (without the terminator, with the CRLF
    /// of its last line) or why it is refused. Bytes after the terminator are not
    /// consumed: they are the next commands.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> (usize, Option<Result<Vec<u8>, DataError>>) {
        let mut iter = bytes.iter();
        let ended = match &mut self.receiver {
            Receiver::Keep(receiver) => receiver.ingest(&mut iter, &mut self.message),
            Receiver::Discard(receiver) => receiver.ingest(&mut iter),
        };
        let consumed = bytes.len() - iter.as_slice().len();
        // One octet of slack: after `CRLF . CR` the receiver holds the CR until it sees
        // whether an LF follows (and then drops it).
        if let Receiver::Keep(receiver) = &self.receiver {
            if self.message.len() > self.limits.max_size.saturating_add(1) {
                self.receiver = Receiver::Discard(DummyDataReceiver::new_data(receiver));
                self.message = Vec::new();
            }
        }
        if !ended {
            return (consumed, None);
        }
        let outcome = match self.receiver {
            Receiver::Keep(_) if self.message.len() <= self.limits.max_size => {
                check_lines(&self.message, self.limits.max_line).map(|()| std::mem::take(&mut self.message))
            }
            _ => Err(DataError::TooBig { limit: self.limits.max_size }),
        };
        (consumed, Some(outcome))
    }
}

/// Every line ends with CRLF, there is no other CR or LF, and no line is longer than
/// `max_line` octets with its CRLF.
fn check_lines(message: &[u8], max_line: usize) -> Result<(), DataError> {
    let mut line_start = 0;
    let mut line = 1;
    let mut at = 0;
    while at < message.len() {
        match message[at] {
            b'\r' if message.get(at + 1) == Some(&b'\n') => {
                if at + 2 - line_start > max_line {
                    return Err(DataError::LineTooLong { line, limit: max_line });
                }
                at += 2;
                line_start = at;
                line += 1;
            }
            b'\r' => return Err(DataError::BareCr),
            b'\n' => return Err(DataError::BareLf),
            _ => at += 1,
        }
    }
    // The receiver only ends after a CRLF, so nothing is left over; check it anyway.
    if message.len() - line_start + 2 > max_line {
        return Err(DataError::LineTooLong { line, limit: max_line });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DataLimits = DataLimits { max_size: 1 << 20, max_line: 1000 };

    /// Feeds `input` in pieces of `step` bytes (0: whole); returns the outcome and the
    /// bytes left after the end of data.
    fn decode(input: &[u8], step: usize, limits: DataLimits) -> (Option<Result<Vec<u8>, DataError>>, Vec<u8>) {
        let mut decoder = DataDecoder::new(limits);
        let step = if step == 0 { input.len().max(1) } else { step };
        let mut at = 0;
        while at < input.len() {
            let end = (at + step).min(input.len());
            let mut piece = &input[at..end];
            while !piece.is_empty() {
                let (used, outcome) = decoder.feed(piece);
                piece = &piece[used..];
                at += used;
                if let Some(outcome) = outcome {
                    return (Some(outcome), input[at..].to_vec());
                }
                if used == 0 {
                    break;
                }
            }
        }
        (None, Vec::new())
    }

    /// Every way of feeding the input must give the same result.
    fn decode_all_ways(input: &[u8], limits: DataLimits) -> (Option<Result<Vec<u8>, DataError>>, Vec<u8>) {
        let whole = decode(input, 0, limits);
        for step in [1, 2, 3, 5, 7, 64] {
            assert_eq!(decode(input, step, limits), whole, "step {step} for {:?}", String::from_utf8_lossy(input));
        }
        whole
    }

    #[test]
    fn messages_end_only_at_crlf_dot_crlf_and_are_unstuffed() {
        let cases: &[(&str, Result<&str, DataError>, &str)] = &[
            // An immediate "." ends the data: an empty message.
            (".\r\n", Ok(""), ""),
            ("Subject: hi\r\n\r\nbody\r\n.\r\n", Ok("Subject: hi\r\n\r\nbody\r\n"), ""),
            // A leading ".." on the first line stays a single "." after unstuffing.
            ("..\r\n.\r\n", Ok(".\r\n"), ""),
            ("..hidden\r\nnext\r\n.\r\n", Ok(".hidden\r\nnext\r\n"), ""),
            ("a\r\n..b\r\n...\r\n.\r\n", Ok("a\r\n.b\r\n..\r\n"), ""),
            // A dot inside a line is not stuffing.
            ("a.b\r\n .\r\n.\r\n", Ok("a.b\r\n .\r\n"), ""),
            // What follows the end is left for the command decoder.
            ("x\r\n.\r\nQUIT\r\n", Ok("x\r\n"), "QUIT\r\n"),
        ];
        for (input, expected, rest) in cases {
            let (outcome, left) = decode_all_ways(input.as_bytes(), LIMITS);
            let outcome = outcome.expect("the data ends");
            assert_eq!(outcome, expected.clone().map(|s| s.as_bytes().to_vec()), "{input:?}");
            assert_eq!(left, rest.as_bytes(), "{input:?}");
        }
    }

    #[test]
    fn smuggled_ends_do_not_end_the_message_and_it_is_refused() {
        let smuggled = "MAIL FROM:<mallory@evil.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nforged\r\n";
        let cases: &[(&str, DataError)] = &[
            ("\n.\n", DataError::BareLf),
            ("\r.\r", DataError::BareCr),
            ("\r\n.\n", DataError::BareLf),
            ("\n.\r\n", DataError::BareLf),
            ("\r.\r\n", DataError::BareCr),
            ("\r\n.\r", DataError::BareCr),
            ("\n\n", DataError::BareLf),
            ("\r\r\n", DataError::BareCr),
        ];
        for (fake_end, error) in cases {
            let input = format!("text{fake_end}{smuggled}.\r\nNOOP\r\n");
            let (outcome, left) = decode_all_ways(input.as_bytes(), LIMITS);
            assert_eq!(outcome, Some(Err(error.clone())), "{fake_end:?}");
            // The smuggled commands were swallowed by this message; only what follows the
            // real end is left.
            assert_eq!(left, b"NOOP\r\n", "{fake_end:?}");
        }
        // Without a real end the data goes on.
        let (outcome, _) = decode_all_ways(b"text\n.\nMAIL FROM:<a@b.c>\r\n", LIMITS);
        assert_eq!(outcome, None);
    }

    #[test]
    fn a_bare_lf_is_refused_anywhere_in_the_message() {
        let (outcome, _) = decode_all_ways(b"Subject: x\n\r\nbody\r\n.\r\n", LIMITS);
        assert_eq!(outcome, Some(Err(DataError::BareLf)));
        let (outcome, _) = decode_all_ways(b"Subject: x\r\n\r\nbo\rdy\r\n.\r\n", LIMITS);
        assert_eq!(outcome, Some(Err(DataError::BareCr)));
    }

    #[test]
    fn the_size_limit_is_enforced_and_the_data_is_read_to_its_end() {
        let limits = DataLimits { max_size: 10, max_line: 1000 };
        let (outcome, left) = decode_all_ways(b"0123456789\r\n..\r\nmore\r\n.\r\nRSET\r\n", limits);
        assert_eq!(outcome, Some(Err(DataError::TooBig { limit: 10 })));
        assert_eq!(left, b"RSET\r\n");
        // Exactly the limit is fine, one more octet is not.
        let (outcome, _) = decode_all_ways(b"01234567\r\n.\r\n", limits);
        assert_eq!(outcome, Some(Ok(b"01234567\r\n".to_vec())));
        let (outcome, _) = decode_all_ways(b"012345678\r\n.\r\n", limits);
        assert_eq!(outcome, Some(Err(DataError::TooBig { limit: 10 })));
        // Smuggling attempts are still not ends once the message is being discarded.
        let (outcome, left) = decode_all_ways(b"0123456789abc\n.\nMAIL\r\n.\r\nX", limits);
        assert_eq!(outcome, Some(Err(DataError::TooBig { limit: 10 })));
        assert_eq!(left, b"X");
    }

    #[test]
    fn long_lines_are_refused() {
        let limits = DataLimits { max_size: 1 << 20, max_line: 10 };
        let (outcome, _) = decode_all_ways(b"12345678\r\n.\r\n", limits);
        assert!(matches!(outcome, Some(Ok(_))));
        let (outcome, _) = decode_all_ways(b"ok\r\n123456789\r\n.\r\n", limits);
        assert_eq!(outcome, Some(Err(DataError::LineTooLong { line: 2, limit: 10 })));
        // A stuffed dot is not counted: the line is measured after unstuffing.
        let (outcome, _) = decode_all_ways(b"..2345678\r\n.\r\n", limits);
        assert!(matches!(outcome, Some(Ok(_))));
    }
}
