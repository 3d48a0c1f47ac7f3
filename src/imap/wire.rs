//! Pure helpers for writing IMAP response syntax (RFC 3501 §4 and §9): strings as
//! quoted strings or literals, NIL, flag lists, UID sets, and mailbox names in
//! modified UTF-7 (RFC 3501 §5.1.3) in both directions.
//!
//! Responses are written by hand rather than through imap-codec's typed encoder: the
//! FETCH items (ENVELOPE, BODYSTRUCTURE, body sections) are computed from raw message
//! bytes here, and building them as imap-types values would cost more validation and
//! copying than writing the few syntactic forms below. Depends only on std.

use super::Flag;

/// Appends `bytes` as an IMAP string: a quoted string when it is short printable
/// ASCII, a literal (`{n}\r\n...`) otherwise (8-bit text, CR, LF, NUL, long values).
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    let quotable = bytes.len() <= 1024 && bytes.iter().all(|&b| (0x20..0x7f).contains(&b));
    if quotable {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, bytes);
    }
}

/// Appends `bytes` as a literal, whatever they contain (body sections).
pub fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// Appends an nstring: NIL for `None`.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(bytes) => string(out, bytes),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// The wire form of a flag.
pub fn flag_name(flag: &Flag) -> &str {
    match flag {
        Flag::Seen => "\\Seen",
        Flag::Answered => "\\Answered",
        Flag::Flagged => "\\Flagged",
        Flag::Deleted => "\\Deleted",
        Flag::Draft => "\\Draft",
        Flag::Keyword(k) => k,
    }
}

/// Appends a parenthesised flag list, with `\Recent` last when `recent`.
pub fn flag_list(out: &mut Vec<u8>, flags: &[Flag], recent: bool) {
    out.push(b'(');
    let mut first = true;
    for flag in flags {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(flag_name(flag).as_bytes());
    }
    if recent {
        if !first {
            out.push(b' ');
        }
        out.extend_from_slice(b"\\Recent");
    }
    out.push(b')');
}

/// Formats UIDs as a sequence set for UIDPLUS codes, keeping their order (COPYUID
/// pairs its two sets by position) and joining only ascending runs: `4,7:9,2`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && end.checked_add(1) == Some(uids[i + 1]) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Text safe for a response line: CR, LF and other controls become spaces.
pub fn sanitize(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

const MB64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_with(alphabet: &[u8; 64], bytes: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for RFC 2047 encoded words.
pub fn base64(bytes: &[u8]) -> String {
    base64_with(B64, bytes, true)
}

/// `text` as one RFC 2047 encoded word when it is not plain ASCII, so ENVELOPE and
/// BODYSTRUCTURE strings stay 7-bit for clients that expect them so.
pub fn encode_word(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!("=?utf-8?b?{}?=", base64(text.as_bytes()))
    }
}

/// A mailbox name (UTF-8, `/` delimited) in modified UTF-7 for the wire.
pub fn mailbox_to_wire(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&base64_with(MB64, &bytes, false));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A mailbox name from the wire: modified UTF-7 decoded; names that are not valid
/// modified UTF-7 (e.g. raw UTF-8 sent by a careless client) are taken as they are.
pub fn mailbox_from_wire(bytes: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return String::from_utf8_lossy(bytes).into_owned();
    };
    decode_mutf7(text).unwrap_or_else(|| text.to_string())
}

fn decode_mutf7(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let mut bits = 0u32;
            let mut count = 0;
            let mut bytes = Vec::new();
            for c in encoded.bytes() {
                let value = MB64.iter().position(|&a| a == c)? as u32;
                bits = (bits << 6) | value;
                count += 6;
                if count >= 8 {
                    count -= 8;
                    bytes.push(((bits >> count) & 0xff) as u8);
                }
            }
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        string(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        assert_eq!(s(b"hello"), "\"hello\"");
        assert_eq!(s(b"a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(s(b""), "\"\"");
        assert_eq!(s("Grüße".as_bytes()), "{7}\r\nGrüße");
        assert_eq!(s(b"two\r\nlines"), "{10}\r\ntwo\r\nlines");
        let mut out = Vec::new();
        nstring(&mut out, None);
        assert_eq!(out, b"NIL");
    }

    #[test]
    fn flags_and_uid_sets() {
        let mut out = Vec::new();
        flag_list(&mut out, &[Flag::Seen, Flag::Keyword("$Label1".into())], true);
        assert_eq!(out, b"(\\Seen $Label1 \\Recent)");
        out.clear();
        flag_list(&mut out, &[], false);
        assert_eq!(out, b"()");
        assert_eq!(uid_set(&[4, 7, 8, 9, 2]), "4,7:9,2");
        assert_eq!(uid_set(&[1]), "1");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn modified_utf7_round_trips() {
        // RFC 3501 §5.1.3's example.
        assert_eq!(mailbox_to_wire("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(mailbox_from_wire(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"), "~peter/mail/台北/日本語");
        assert_eq!(mailbox_to_wire("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(mailbox_from_wire(b"Tom &- Jerry"), "Tom & Jerry");
        assert_eq!(mailbox_from_wire("Entwürfe".as_bytes()), "Entwürfe");
        assert_eq!(mailbox_from_wire(b"broken &AB"), "broken &AB");
        for name in ["Entwürfe", "INBOX/Ünïcödé/😀", "plain"] {
            assert_eq!(mailbox_from_wire(mailbox_to_wire(name).as_bytes()), name);
        }
    }

    #[test]
    fn base64_and_encoded_words() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(encode_word("Ann"), "Ann");
        assert_eq!(encode_word("Jörg"), "=?utf-8?b?SsO2cmc=?=");
        assert_eq!(sanitize("a\r\nb"), "a  b");
    }
}
