//! Pure FETCH rendering (RFC 3501 §6.4.5, §7.4.2): the data items of one message
//! from what the view knows (flags, size, internal date) and, when an item needs it,
//! the message bytes and their MIME structure.
//!
//! Depends only on std, imap-codec's fetch types and the sibling pure modules.

use imap_codec::imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section};

use super::search::days_from_civil;
use super::structure::{self, SectionSpec};
use super::view::Known;
use super::wire::{flag_list, literal};

/// A FETCH item in the session's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Flags,
    InternalDate,
    Size,
    Envelope,
    /// BODYSTRUCTURE (true) or BODY (false).
    Structure(bool),
    Uid,
    /// MODSEQ (RFC 7162 §3.1.4.1).
    ModSeq,
    Section {
        spec: SectionSpec,
        partial: Option<(u32, u32)>,
        peek: bool,
        name: SectionName,
    },
}

/// How a section item is named in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionName {
    /// `BODY[...]` with the given section text.
    Body(String),
    Rfc822,
    Rfc822Header,
    Rfc822Text,
}

/// The items a FETCH asks for, macros expanded, UID added for UID FETCH (RFC 3501
/// §6.4.8) and FLAGS added when a body item will set `\Seen`.
pub fn items(request: &MacroOrMessageDataItemNames<'_>, uid: bool) -> Vec<Item> {
    let names: Vec<MessageDataItemName<'_>> = match request {
        MacroOrMessageDataItemNames::Macro(m) => match m {
            Macro::All => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
            ],
            Macro::Full => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
                MessageDataItemName::Body,
            ],
            // FAST, and any macro a later imap-codec adds.
            _ => vec![MessageDataItemName::Flags, MessageDataItemName::InternalDate, MessageDataItemName::Rfc822Size],
        },
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
    };
    let mut items = Vec::new();
    if uid {
        items.push(Item::Uid);
    }
    for name in &names {
        let item = match name {
            MessageDataItemName::Body => Item::Structure(false),
            MessageDataItemName::BodyStructure => Item::Structure(true),
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::ModSeq => Item::ModSeq,
            MessageDataItemName::Rfc822 => {
                Item::Section { spec: SectionSpec::Part(vec![]), partial: None, peek: false, name: SectionName::Rfc822 }
            }
            MessageDataItemName::Rfc822Header => Item::Section {
                spec: SectionSpec::Header(vec![]),
                partial: None,
                peek: true,
                name: SectionName::Rfc822Header,
            },
            MessageDataItemName::Rfc822Text => Item::Section {
                spec: SectionSpec::Text(vec![]),
                partial: None,
                peek: false,
                name: SectionName::Rfc822Text,
            },
            MessageDataItemName::BodyExt { section, partial, peek } => {
                let (spec, text) = convert(section.as_ref());
                Item::Section {
                    spec,
                    partial: partial.map(|(o, l)| (o, l.get())),
                    peek: *peek,
                    name: SectionName::Body(text),
                }
            }
            // BINARY and extensions not advertised: nothing to render.
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if sets_seen(&items) && !items.contains(&Item::Flags) {
        items.push(Item::Flags);
    }
    items
}

fn path(part: Option<&Part>) -> Vec<u32> {
    part.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect()).unwrap_or_default()
}

fn prefix(path: &[u32]) -> String {
    path.iter().map(|n| format!("{n}.")).collect()
}

fn names(list: &[impl AsRef<[u8]>]) -> (Vec<String>, String) {
    let names: Vec<String> = list.iter().map(|n| String::from_utf8_lossy(n.as_ref()).to_ascii_uppercase()).collect();
    let text = names.join(" ");
    (names, text)
}

fn convert(section: Option<&Section<'_>>) -> (SectionSpec, String) {
    match section {
        None => (SectionSpec::Part(vec![]), String::new()),
        Some(Section::Part(part)) => {
            let p = path(Some(part));
            let text = p.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            (SectionSpec::Part(p), text)
        }
        Some(Section::Header(part)) => {
            let p = path(part.as_ref());
            let text = format!("{}HEADER", prefix(&p));
            (SectionSpec::Header(p), text)
        }
        Some(Section::HeaderFields(part, list)) => {
            let p = path(part.as_ref());
            let (n, t) = names(list.as_ref());
            let text = format!("{}HEADER.FIELDS ({t})", prefix(&p));
            (SectionSpec::HeaderFields(p, n), text)
        }
        Some(Section::HeaderFieldsNot(part, list)) => {
            let p = path(part.as_ref());
            let (n, t) = names(list.as_ref());
            let text = format!("{}HEADER.FIELDS.NOT ({t})", prefix(&p));
            (SectionSpec::HeaderFieldsNot(p, n), text)
        }
        Some(Section::Text(part)) => {
            let p = path(part.as_ref());
            let text = format!("{}TEXT", prefix(&p));
            (SectionSpec::Text(p), text)
        }
        Some(Section::Mime(part)) => {
            let p = path(Some(part));
            let text = format!("{}MIME", prefix(&p));
            (SectionSpec::Mime(p), text)
        }
    }
}

/// Whether rendering needs the message bytes.
pub fn needs_content(items: &[Item]) -> bool {
    items.iter().any(|i| matches!(i, Item::Envelope | Item::Structure(_) | Item::Section { .. }))
}

/// Whether the FETCH sets `\Seen` (a body item without PEEK, RFC822, RFC822.TEXT).
pub fn sets_seen(items: &[Item]) -> bool {
    items.iter().any(|i| matches!(i, Item::Section { peek: false, .. }))
}

/// `dd-Mon-yyyy hh:mm:ss +0000` for unix seconds (RFC 3501 date-time, in UTC).
pub fn internal_date(seconds: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let month_name = usize::try_from(month - 1).ok().and_then(|m| MONTHS.get(m)).copied().unwrap_or("Jan");
    format!("{day:02}-{month_name}-{year:04} {:02}:{:02}:{:02} +0000", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    debug_assert_eq!(days_from_civil(year, month, day), days);
    (year, month, day)
}

/// Appends `* seq FETCH (...)\r\n` for one message. `message` must be present when
/// [`needs_content`] says so; sections the message does not have are empty strings
/// (as most servers answer), so one odd part does not fail the whole FETCH.
pub fn render(out: &mut Vec<u8>, seq: u32, known: &Known, message: Option<&[u8]>, items: &[Item]) {
    let parsed = message.map(|m| (m, structure::parse(m)));
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        match item {
            Item::Flags => {
                out.extend_from_slice(b"FLAGS ");
                flag_list(out, &known.flags, known.recent);
            }
            Item::InternalDate => {
                out.extend_from_slice(format!("INTERNALDATE \"{}\"", internal_date(known.internal_date)).as_bytes());
            }
            Item::Size => out.extend_from_slice(format!("RFC822.SIZE {}", known.size).as_bytes()),
            Item::Uid => out.extend_from_slice(format!("UID {}", known.uid).as_bytes()),
            Item::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", known.modseq).as_bytes()),
            Item::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                match &parsed {
                    Some((m, root)) => structure::envelope(out, m.get(root.header.clone()).unwrap_or_default()),
                    None => out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
                }
            }
            Item::Structure(extended) => {
                out.extend_from_slice(if *extended { b"BODYSTRUCTURE " } else { b"BODY " });
                match &parsed {
                    Some((m, root)) => structure::body_structure(out, m, root, *extended),
                    None => out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)"),
                }
            }
            Item::Section { spec, partial, name, .. } => {
                let data = parsed.as_ref().and_then(|(m, root)| structure::section(m, root, spec)).unwrap_or_default();
                let data = match partial {
                    Some((origin, length)) => {
                        let start = (*origin as usize).min(data.len());
                        let end = start.saturating_add(*length as usize).min(data.len());
                        &data[start..end]
                    }
                    None => &data[..],
                };
                match name {
                    SectionName::Body(section) => {
                        out.extend_from_slice(format!("BODY[{section}]").as_bytes());
                        if let Some((origin, _)) = partial {
                            out.extend_from_slice(format!("<{origin}>").as_bytes());
                        }
                    }
                    SectionName::Rfc822 => out.extend_from_slice(b"RFC822"),
                    SectionName::Rfc822Header => out.extend_from_slice(b"RFC822.HEADER"),
                    SectionName::Rfc822Text => out.extend_from_slice(b"RFC822.TEXT"),
                }
                out.push(b' ');
                literal(out, data);
            }
        }
    }
    out.extend_from_slice(b")\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::Flag;
    use imap_codec::imap_types::command::CommandBody;
    use imap_codec::{decode::Decoder, CommandCodec};

    fn fetch(text: &str, message: &[u8], uid: bool) -> String {
        let line = format!("a {}FETCH 1 {text}\r\n", if uid { "UID " } else { "" });
        let (_, command) = CommandCodec::default().decode(line.as_bytes()).unwrap();
        let CommandBody::Fetch { macro_or_item_names, .. } = command.body else { panic!("not a fetch") };
        let items = items(&macro_or_item_names, uid);
        let known =
            Known { uid: 7, flags: vec![Flag::Seen], internal_date: 1_704_189_600, size: 99, recent: false, modseq: 5 };
        let mut out = Vec::new();
        render(&mut out, 1, &known, needs_content(&items).then_some(message), &items);
        String::from_utf8(out).unwrap()
    }

    const SIMPLE: &[u8] =
        b"From: Ann <ann@example.com>\r\nSubject: Hi\r\nTo: bob@example.net\r\n\r\nHello\r\nthere\r\n";

    #[test]
    fn simple_items() {
        assert_eq!(
            fetch("FAST", SIMPLE, false),
            "* 1 FETCH (FLAGS (\\Seen) INTERNALDATE \"02-Jan-2024 10:00:00 +0000\" RFC822.SIZE 99)\r\n"
        );
        assert_eq!(fetch("FLAGS", SIMPLE, true), "* 1 FETCH (UID 7 FLAGS (\\Seen))\r\n");
        assert_eq!(fetch("(UID FLAGS)", SIMPLE, true), "* 1 FETCH (UID 7 FLAGS (\\Seen))\r\n");
        assert_eq!(
            fetch("BODY.PEEK[HEADER.FIELDS (subject)]", SIMPLE, false),
            "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: Hi\r\n\r\n)\r\n"
        );
        assert_eq!(
            fetch("BODY[TEXT]<2.5>", SIMPLE, false),
            "* 1 FETCH (BODY[TEXT]<2> {5}\r\nllo\r\n FLAGS (\\Seen))\r\n"
        );
        assert_eq!(fetch("BODY.PEEK[1]<100.5>", SIMPLE, false), "* 1 FETCH (BODY[1]<100> {0}\r\n)\r\n");
        assert_eq!(
            fetch("RFC822.HEADER", SIMPLE, false),
            "* 1 FETCH (RFC822.HEADER {65}\r\nFrom: Ann <ann@example.com>\r\nSubject: Hi\r\nTo: bob@example.net\r\n\r\n)\r\n"
        );
        assert_eq!(
            fetch("ENVELOPE", SIMPLE, false),
            "* 1 FETCH (ENVELOPE (NIL \"Hi\" ((\"Ann\" NIL \"ann\" \"example.com\")) ((\"Ann\" NIL \"ann\" \"example.com\")) \
((\"Ann\" NIL \"ann\" \"example.com\")) ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL NIL))\r\n"
        );
        assert_eq!(
            fetch("BODY", SIMPLE, false),
            "* 1 FETCH (BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 14 2))\r\n"
        );
    }

    #[test]
    fn internal_dates() {
        assert_eq!(internal_date(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(internal_date(951_782_400), "29-Feb-2000 00:00:00 +0000");
        assert_eq!(internal_date(1_704_189_600), "02-Jan-2024 10:00:00 +0000");
    }
}
