//! Pure MIME structure of a message for FETCH (RFC 3501 §6.4.5, §7.4.2): the tree of
//! parts with exact byte ranges into the message, section addressing (part numbers,
//! HEADER, HEADER.FIELDS[.NOT], TEXT, MIME), and the ENVELOPE and BODY/BODYSTRUCTURE
//! renderings.
//!
//! The tree is split here (header/body at the first empty line, multipart bodies at
//! their boundary delimiter lines, RFC 2046 §5.1.1) so that every section is a slice
//! of the original bytes, as IMAP requires; mail-parser decodes the header fields of
//! each part (structured Content-Type with RFC 2231 parameters, addresses, RFC 2047
//! words). Depends only on std and mail-parser.

use std::ops::Range;

use mail_parser::{Address, HeaderValue, MessageParser};

use super::wire::{encode_word, nstring, string};

/// How deep multiparts and encapsulated messages are followed; deeper content is
/// treated as an opaque body.
const MAX_DEPTH: usize = 32;

/// One MIME entity: a message or a body part, as byte ranges into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The header block including the empty line that ends it (when there is one).
    pub header: Range<usize>,
    /// The body, after the empty line.
    pub body: Range<usize>,
    /// Lower-case type and subtype, e.g. ("text", "plain").
    pub mime_type: (String, String),
    /// The children of a multipart.
    pub children: Vec<Part>,
    /// The encapsulated message of a message/rfc822 part.
    pub message: Option<Box<Part>>,
}

impl Part {
    pub fn is_multipart(&self) -> bool {
        self.mime_type.0 == "multipart"
    }

    fn is_message_rfc822(&self) -> bool {
        self.mime_type.0 == "message" && (self.mime_type.1 == "rfc822" || self.mime_type.1 == "global")
    }
}

/// Parses the MIME tree of a whole message.
pub fn parse(message: &[u8]) -> Part {
    parse_entity(message, 0..message.len(), ("text", "plain"), 0)
}

/// Where the header ends: the index just after the empty line (CRLF CRLF, or LF LF
/// for messages stored with bare line feeds), or `None` when there is no body.
fn header_end(bytes: &[u8]) -> Option<usize> {
    if bytes.starts_with(b"\r\n") {
        return Some(2);
    }
    if bytes.starts_with(b"\n") {
        return Some(1);
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match bytes.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if bytes.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn parse_entity(message: &[u8], range: Range<usize>, default_type: (&str, &str), depth: usize) -> Part {
    let bytes = &message[range.clone()];
    let (header, body) = match header_end(bytes) {
        Some(end) => (range.start..range.start + end, range.start + end..range.end),
        None => (range.clone(), range.end..range.end),
    };
    let fields = HeaderInfo::parse(&message[header.clone()]);
    let mime_type = match &fields.content_type {
        Some((t, s, _)) => (t.clone(), s.clone()),
        None => (default_type.0.to_string(), default_type.1.to_string()),
    };
    let mut part = Part { header, body, mime_type, children: Vec::new(), message: None };
    if depth >= MAX_DEPTH {
        return part;
    }
    if part.is_multipart() {
        if let Some(boundary) = fields.param("boundary") {
            let child_default = if part.mime_type.1 == "digest" { ("message", "rfc822") } else { ("text", "plain") };
            for child in split_multipart(message, part.body.clone(), boundary.as_bytes()) {
                part.children.push(parse_entity(message, child, child_default, depth + 1));
            }
        }
    } else if part.is_message_rfc822() && !part.body.is_empty() {
        part.message = Some(Box::new(parse_entity(message, part.body.clone(), ("text", "plain"), depth + 1)));
    }
    part
}

/// The byte ranges of the body parts of a multipart body: what lies between
/// delimiter lines, without the line break that belongs to the next delimiter.
fn split_multipart(message: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut line_start = body.start;
    while line_start < body.end {
        let line_end =
            message[line_start..body.end].iter().position(|&b| b == b'\n').map_or(body.end, |p| line_start + p + 1);
        let line = &message[line_start..line_end];
        if let Some(rest) = line.strip_prefix(b"--").and_then(|l| l.strip_prefix(boundary)) {
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| b" \t\r\n".contains(b)) {
                if let Some(start) = open.take() {
                    // The CRLF before the delimiter belongs to the delimiter.
                    let mut end = line_start;
                    if end > start && message[end - 1] == b'\n' {
                        end -= 1;
                        if end > start && message[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(start..end.max(start));
                }
                if closing {
                    return parts;
                }
                open = Some(line_end);
            }
        }
        line_start = line_end;
    }
    // A missing closing delimiter: the last part runs to the end.
    if let Some(start) = open {
        parts.push(start..body.end);
    }
    parts
}

/// Parameters of Content-Type or Content-Disposition: (lower-case name, value).
type Params = Vec<(String, String)>;

/// The header fields of one entity that FETCH renders, decoded by mail-parser.
#[derive(Debug, Default)]
struct HeaderInfo {
    /// Lower-case type, subtype and parameters (names lower-case).
    content_type: Option<(String, String, Params)>,
    encoding: Option<String>,
    id: Option<String>,
    description: Option<String>,
    disposition: Option<(String, Params)>,
    language: Option<Vec<String>>,
    location: Option<String>,
}

impl HeaderInfo {
    fn parse(header: &[u8]) -> HeaderInfo {
        let mut info = HeaderInfo::default();
        let Some(parsed) = MessageParser::default().parse_headers(header) else {
            return info;
        };
        let Some(root) = parsed.parts.first() else {
            return info;
        };
        for field in &root.headers {
            let name = field.name().to_ascii_lowercase();
            match (name.as_str(), &field.value) {
                ("content-type", HeaderValue::ContentType(ct)) => {
                    info.content_type = Some((
                        ct.c_type.to_ascii_lowercase(),
                        ct.c_subtype.as_deref().unwrap_or("").to_ascii_lowercase(),
                        params(ct.attributes.as_deref()),
                    ));
                }
                ("content-disposition", HeaderValue::ContentType(ct)) => {
                    info.disposition = Some((ct.c_type.to_ascii_lowercase(), params(ct.attributes.as_deref())));
                }
                ("content-transfer-encoding", value) => info.encoding = text_of(value),
                ("content-id", value) => info.id = raw_field(header, "content-id").or_else(|| text_of(value)),
                ("content-description", value) => info.description = text_of(value),
                ("content-location", value) => info.location = text_of(value),
                ("content-language", value) => {
                    info.language = match value {
                        HeaderValue::TextList(list) => Some(list.iter().map(|s| s.to_string()).collect()),
                        other => text_of(other)
                            .map(|t| t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
                    }
                }
                _ => {}
            }
        }
        if info.content_type.as_ref().is_some_and(|(t, s, _)| t.is_empty() || s.is_empty()) {
            info.content_type = None;
        }
        info
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.content_type.as_ref()?.2.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn params(attributes: Option<&[mail_parser::Attribute<'_>]>) -> Vec<(String, String)> {
    attributes.unwrap_or_default().iter().map(|a| (a.name.to_ascii_lowercase(), a.value.to_string())).collect()
}

fn text_of(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(t) => Some(t.trim().to_string()),
        HeaderValue::TextList(list) => Some(list.join(" ")),
        _ => None,
    }
}

/// The header fields of a header block: (name, raw value without the colon, unfolded
/// and trimmed), in order.
pub fn header_fields(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    field_spans(header)
        .into_iter()
        .map(|(name, span)| {
            let raw = &header[span];
            let value = raw.splitn(2, |&b| b == b':').nth(1).unwrap_or_default();
            let unfolded: Vec<u8> = value.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
            (name, trim(&unfolded).to_vec())
        })
        .collect()
}

/// Each field's lower-case name and the span of its lines (with their line breaks).
fn field_spans(header: &[u8]) -> Vec<(String, Range<usize>)> {
    let mut spans: Vec<(String, Range<usize>)> = Vec::new();
    let mut start = 0;
    while start < header.len() {
        let end = header[start..].iter().position(|&b| b == b'\n').map_or(header.len(), |p| start + p + 1);
        let line = &header[start..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(last) = spans.last_mut() {
                last.1.end = end;
            }
        } else {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            spans.push((String::from_utf8_lossy(trim(name)).to_ascii_lowercase(), start..end));
        }
        start = end;
    }
    spans
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |p| p + 1);
    &bytes[start..end]
}

fn raw_field(header: &[u8], name: &str) -> Option<String> {
    header_fields(header).into_iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
}

/// The header fields of `header` whose names are (or, with `not`, are not) in
/// `names`, as raw lines, followed by the empty line (RFC 3501 HEADER.FIELDS).
pub fn header_subset(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, span) in field_spans(header) {
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(&name));
        if listed != not {
            out.extend_from_slice(&header[span]);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A section of a message, as RFC 3501 §6.4.5 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionSpec {
    /// `BODY[]` or `BODY[1.2]`: the whole message, or a part's body.
    Part(Vec<u32>),
    Header(Vec<u32>),
    HeaderFields(Vec<u32>, Vec<String>),
    HeaderFieldsNot(Vec<u32>, Vec<String>),
    Text(Vec<u32>),
    Mime(Vec<u32>),
}

/// The entity a part path names: `Some((part, is_message))` where `is_message` says
/// whether it is a message (the root or an encapsulated message) rather than a body
/// part. The empty path names the message.
fn resolve<'p>(root: &'p Part, path: &[u32]) -> Option<(&'p Part, bool)> {
    let mut current = root;
    let mut is_message = true;
    for (i, &n) in path.iter().enumerate() {
        if current.is_multipart() {
            current = current.children.get(usize::try_from(n).ok()?.checked_sub(1)?)?;
            is_message = false;
        } else if n == 1 && is_message {
            // Part 1 of a non-multipart message is its body.
            is_message = false;
        } else {
            return None;
        }
        if i + 1 < path.len() && current.is_message_rfc822() {
            current = current.message.as_deref()?;
            is_message = true;
        }
    }
    Some((current, is_message))
}

/// The bytes of a section, or `None` when the message has no such part. Sections of
/// a message (HEADER, TEXT ...) given a part path must name a message/rfc822 part.
pub fn section(message: &[u8], root: &Part, spec: &SectionSpec) -> Option<Vec<u8>> {
    let message_at = |path: &[u32]| -> Option<&Part> {
        if path.is_empty() {
            return Some(root);
        }
        let (part, is_message) = resolve(root, path)?;
        if is_message {
            return Some(part);
        }
        part.message.as_deref()
    };
    let get = |r: &Range<usize>| message.get(r.clone()).map(<[u8]>::to_vec);
    match spec {
        SectionSpec::Part(path) if path.is_empty() => Some(message.to_vec()),
        SectionSpec::Part(path) => {
            let (part, _) = resolve(root, path)?;
            get(&part.body)
        }
        SectionSpec::Header(path) => get(&message_at(path)?.header),
        SectionSpec::HeaderFields(path, names) => {
            Some(header_subset(message.get(message_at(path)?.header.clone())?, names, false))
        }
        SectionSpec::HeaderFieldsNot(path, names) => {
            Some(header_subset(message.get(message_at(path)?.header.clone())?, names, true))
        }
        SectionSpec::Text(path) => get(&message_at(path)?.body),
        SectionSpec::Mime(path) => {
            let (part, _) = resolve(root, path)?;
            get(&part.header)
        }
    }
}

/// Appends the ENVELOPE of the message whose header is `header` (RFC 3501 §7.4.2).
/// Date, subject and message ids are the raw field values (clients decode RFC 2047
/// words themselves); address names are decoded by mail-parser and written back as
/// one encoded word when they are not ASCII.
pub fn envelope(out: &mut Vec<u8>, header: &[u8]) {
    let raw = header_fields(header);
    let first = |name: &str| raw.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let parsed = MessageParser::default().parse_headers(header);
    let address_of = |name: &str| -> Option<Address<'_>> {
        let parsed = parsed.as_ref()?;
        let root = parsed.parts.first()?;
        root.headers.iter().find(|h| h.name().eq_ignore_ascii_case(name)).and_then(|h| match &h.value {
            HeaderValue::Address(a) => Some(a.clone().into_owned()),
            _ => None,
        })
    };
    out.push(b'(');
    nstring(out, first("date").as_deref());
    out.push(b' ');
    nstring(out, first("subject").as_deref());
    let from = address_of("from");
    let sender = address_of("sender").or_else(|| from.clone());
    let reply_to = address_of("reply-to").or_else(|| from.clone());
    for list in [&from, &sender, &reply_to, &address_of("to"), &address_of("cc"), &address_of("bcc")] {
        out.push(b' ');
        address_list(out, list.as_ref());
    }
    out.push(b' ');
    nstring(out, first("in-reply-to").as_deref());
    out.push(b' ');
    nstring(out, first("message-id").as_deref());
    out.push(b')');
}

fn address_list(out: &mut Vec<u8>, list: Option<&Address<'_>>) {
    let mut items = Vec::new();
    match list {
        Some(Address::List(addrs)) => {
            for a in addrs {
                address(&mut items, a.name.as_deref(), a.address.as_deref());
            }
        }
        Some(Address::Group(groups)) => {
            for group in groups {
                match &group.name {
                    Some(name) => {
                        // Group syntax: (NIL NIL "name" NIL) members (NIL NIL NIL NIL).
                        items.extend_from_slice(b"(NIL NIL ");
                        string(&mut items, encode_word(name).as_bytes());
                        items.extend_from_slice(b" NIL)");
                        for a in &group.addresses {
                            address(&mut items, a.name.as_deref(), a.address.as_deref());
                        }
                        items.extend_from_slice(b"(NIL NIL NIL NIL)");
                    }
                    None => {
                        for a in &group.addresses {
                            address(&mut items, a.name.as_deref(), a.address.as_deref());
                        }
                    }
                }
            }
        }
        None => {}
    }
    if items.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        out.extend_from_slice(&items);
        out.push(b')');
    }
}

fn address(out: &mut Vec<u8>, name: Option<&str>, addr: Option<&str>) {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).map(encode_word);
    let (mailbox, host) = match addr {
        Some(a) => match a.rsplit_once('@') {
            Some((m, h)) => (Some(m.to_string()), Some(h.to_string())),
            None => (Some(a.to_string()), Some(String::new())),
        },
        None if name.is_none() => return,
        None => (None, Some(String::new())),
    };
    // An obsolete source route (`<@relay:user@host>`, RFC 5322 §4.4) is the at-domain-list.
    let routed = mailbox.as_deref().filter(|m| m.starts_with('@')).and_then(|m| m.split_once(':'));
    let (route, mailbox) = match routed {
        Some((route, local)) => (Some(route.to_string()), Some(local.to_string())),
        None => (None, mailbox),
    };
    out.push(b'(');
    nstring(out, name.as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, route.as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, mailbox.as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, host.as_deref().map(str::as_bytes));
    out.push(b')');
}

/// Appends BODYSTRUCTURE (`extended`) or BODY (without extension data) of `part`.
pub fn body_structure(out: &mut Vec<u8>, message: &[u8], part: &Part, extended: bool) {
    let info = HeaderInfo::parse(message.get(part.header.clone()).unwrap_or_default());
    out.push(b'(');
    if part.is_multipart() && !part.children.is_empty() {
        for child in &part.children {
            body_structure(out, message, child, extended);
        }
        out.push(b' ');
        string(out, part.mime_type.1.to_ascii_uppercase().as_bytes());
        if extended {
            out.push(b' ');
            param_list(out, info.content_type.as_ref().map(|c| c.2.as_slice()).unwrap_or_default());
            extension_tail(out, &info);
        }
        out.push(b')');
        return;
    }
    // A multipart without parts is shown as text, which every client can display.
    let (mime_type, subtype) = if part.is_multipart() {
        ("TEXT".to_string(), "PLAIN".to_string())
    } else {
        (part.mime_type.0.to_ascii_uppercase(), part.mime_type.1.to_ascii_uppercase())
    };
    string(out, mime_type.as_bytes());
    out.push(b' ');
    string(out, subtype.as_bytes());
    out.push(b' ');
    let mut params = info.content_type.as_ref().map(|c| c.2.clone()).unwrap_or_default();
    if mime_type == "TEXT" && !params.iter().any(|(n, _)| n == "charset") {
        params.insert(0, ("charset".into(), "us-ascii".into()));
    }
    param_list(out, &params);
    out.push(b' ');
    nstring(out, info.id.as_deref().map(str::as_bytes));
    out.push(b' ');
    nstring(out, info.description.as_deref().map(encode_word).as_deref().map(str::as_bytes));
    out.push(b' ');
    let encoding = info.encoding.as_deref().unwrap_or("7bit").to_ascii_uppercase();
    string(out, encoding.as_bytes());
    let body = message.get(part.body.clone()).unwrap_or_default();
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if part.is_message_rfc822() {
        if let Some(inner) = &part.message {
            out.push(b' ');
            envelope(out, message.get(inner.header.clone()).unwrap_or_default());
            out.push(b' ');
            body_structure(out, message, inner, extended);
            out.extend_from_slice(format!(" {}", line_count(body)).as_bytes());
        }
    } else if mime_type == "TEXT" {
        out.extend_from_slice(format!(" {}", line_count(body)).as_bytes());
    }
    if extended {
        // body-fld-md5
        out.extend_from_slice(b" NIL");
        extension_tail(out, &info);
    }
    out.push(b')');
}

/// Disposition, language and location: the extension data shared by both kinds.
fn extension_tail(out: &mut Vec<u8>, info: &HeaderInfo) {
    out.push(b' ');
    match &info.disposition {
        Some((kind, params)) => {
            out.push(b'(');
            string(out, kind.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            param_list(out, params);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match info.language.as_deref() {
        Some([one]) => string(out, one.as_bytes()),
        Some(list) if !list.is_empty() => {
            out.push(b'(');
            for (i, l) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l.as_bytes());
            }
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, info.location.as_deref().map(str::as_bytes));
}

fn param_list(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, name.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        string(out, encode_word(value).as_bytes());
    }
    out.push(b')');
}

/// Lines of a body as RFC 3501 counts them for text and message/rfc822 parts.
fn line_count(body: &[u8]) -> usize {
    let breaks = body.iter().filter(|&&b| b == b'\n').count();
    if body.is_empty() || body.ends_with(b"\n") {
        breaks
    } else {
        breaks + 1
    }
}

#[cfg(test)]
mod tests;
