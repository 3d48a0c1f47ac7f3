//! Pure SEARCH evaluation (RFC 3501 §6.4.4): search keys as imap-codec parses them,
//! evaluated against one message of the session's view. String keys match
//! case-insensitively as substrings of decoded header values (RFC 2047 words, address
//! display names) or of decoded body text; the raw header text is tried too, so a
//! search for an encoded word also matches. Dates: SINCE/BEFORE/ON use the internal
//! date (UTC day), SENT* the Date header's own calendar day.
//!
//! Depends only on std, imap-codec's search types and mail-parser.

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};

use super::response::ImapError;
use super::structure::header_fields;
use super::view::{check_ranges, Known};
use super::Flag;

/// Whether `key` looks into message content (so the message must be fetched).
pub fn needs_content(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::And(keys) => keys.as_ref().iter().any(needs_content),
        K::Not(key) => needs_content(key),
        K::Or(a, b) => needs_content(a) || needs_content(b),
        K::Bcc(_)
        | K::Body(_)
        | K::Cc(_)
        | K::From(_)
        | K::Header(..)
        | K::Subject(_)
        | K::Text(_)
        | K::To(_)
        | K::SentBefore(_)
        | K::SentOn(_)
        | K::SentSince(_) => true,
        _ => false,
    }
}

/// Whether `key` names MODSEQ, so the answer carries the highest modseq found (RFC 7162 §3.1.5).
pub fn names_modseq(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::And(keys) => keys.as_ref().iter().any(names_modseq),
        K::Not(key) => names_modseq(key),
        K::Or(a, b) => names_modseq(a) || names_modseq(b),
        K::ModSequence { .. } => true,
        _ => false,
    }
}

/// The most keys one SEARCH may hold; each is evaluated against every message.
pub const MAX_SEARCH_KEYS: usize = 1_000;
/// The SEARCH criteria as one key (several are ANDed, RFC 3501 §6.4.4), refused with a
/// BAD naming the limit when it has more keys or sequence ranges than are evaluated.
/// The SEARCH handler and the fuzz entry both go through here, so both meet the limits.
pub fn one_key(mut keys: Vec<SearchKey<'_>>) -> Result<SearchKey<'_>, ImapError> {
    let key = if keys.len() == 1 {
        keys.remove(0)
    } else {
        match Vec1::try_from(keys) {
            Ok(keys) => SearchKey::And(keys),
            Err(_) => SearchKey::All,
        }
    };
    let (count, ranges) = size(&key);
    if count > MAX_SEARCH_KEYS {
        return Err(ImapError::Syntax(format!("the search has {count} keys; at most {MAX_SEARCH_KEYS} are accepted")));
    }
    check_ranges(ranges)?;
    Ok(key)
}

/// How many keys `key` holds (itself included) and how many ranges its sequence and
/// UID sets hold together, so a search too costly to evaluate is refused first.
pub fn size(key: &SearchKey<'_>) -> (usize, usize) {
    use SearchKey as K;
    let add = |(k1, r1): (usize, usize), (k2, r2): (usize, usize)| (k1 + k2, r1 + r2);
    let inner = match key {
        K::And(keys) => keys.as_ref().iter().map(size).fold((0, 0), add),
        K::Not(key) => size(key),
        K::Or(a, b) => add(size(a), size(b)),
        K::SequenceSet(set) | K::Uid(set) => (0, set.0.as_ref().len()),
        _ => (0, 0),
    };
    add((1, 0), inner)
}

/// A message's searchable content, decoded once.
#[derive(Debug, Default)]
pub struct Content {
    /// (lower-case name, lower-case raw value, lower-case decoded value).
    headers: Vec<(String, String, String)>,
    /// Decoded text of every text part, lower-case.
    body: String,
    /// The Date header's calendar day (days since 1970-01-01).
    sent_day: Option<i64>,
}

impl Content {
    pub fn new(message: &[u8]) -> Content {
        let Some(parsed) = MessageParser::default().parse(message) else {
            return Content::default();
        };
        let header_end = parsed.parts.first().map_or(0, |p| p.offset_body as usize).min(message.len());
        let raw = header_fields(&message[..header_end]);
        let mut headers = Vec::new();
        if let Some(root) = parsed.parts.first() {
            for (index, field) in root.headers.iter().enumerate() {
                let name = field.name().to_ascii_lowercase();
                let raw_value = raw
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .nth(root.headers[..index].iter().filter(|h| h.name().eq_ignore_ascii_case(&name)).count())
                    .map(|(_, v)| String::from_utf8_lossy(v).to_lowercase())
                    .unwrap_or_default();
                headers.push((name, raw_value, decoded(&field.value).to_lowercase()));
            }
        }
        let mut body = String::new();
        collect_text(&parsed, &mut body, 0);
        let sent_day = parsed.date().map(|d| days_from_civil(i64::from(d.year), d.month.into(), d.day.into()));
        Content { headers, body: body.to_lowercase(), sent_day }
    }

    fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.headers.iter().any(|(n, raw, decoded)| {
            n == name && (needle.is_empty() || raw.contains(needle) || decoded.contains(needle))
        })
    }
}

fn collect_text(message: &Message<'_>, out: &mut String, depth: usize) {
    for part in &message.parts {
        match &part.body {
            PartType::Text(text) | PartType::Html(text) => {
                out.push_str(text);
                out.push('\n');
            }
            PartType::Message(inner) if depth < 8 => collect_text(inner, out, depth + 1),
            _ => {}
        }
    }
}

fn decoded(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(" "),
        HeaderValue::Address(address) => addresses(address),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(ct) => format!("{}/{}", ct.c_type, ct.c_subtype.as_deref().unwrap_or_default()),
        _ => String::new(),
    }
}

fn addresses(address: &Address<'_>) -> String {
    address
        .iter()
        .map(|a| format!("{} <{}>", a.name.as_deref().unwrap_or_default(), a.address.as_deref().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn day_of(date: &imap_codec::imap_types::datetime::NaiveDate) -> i64 {
    date.as_ref().and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp().div_euclid(86_400))
}

/// One message to test, with what the view knows of it.
pub struct Candidate<'a> {
    pub seq: u32,
    pub known: &'a Known,
    /// Present when [`needs_content`] said so.
    pub content: Option<&'a Content>,
    /// The highest sequence number and UID, for `*`.
    pub largest_seq: u32,
    pub largest_uid: u32,
}

fn in_set(set: &SequenceSet, value: u32, largest: u32) -> bool {
    set.0.as_ref().iter().any(|sequence| {
        let v = |s: &SeqOrUid| match s {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => largest,
        };
        let (a, b) = match sequence {
            Sequence::Single(s) => (v(s), v(s)),
            Sequence::Range(a, b) => (v(a), v(b)),
        };
        (a.min(b)..=a.max(b)).contains(&value)
    })
}

fn text(value: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(value.as_ref()).to_lowercase()
}

/// Whether the message matches `key`.
pub fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    use SearchKey as K;
    let has = |flag: Flag| c.known.flags.contains(&flag);
    let internal_day = c.known.internal_date.div_euclid(86_400);
    let content = |f: &dyn Fn(&Content) -> bool| c.content.is_some_and(f);
    match key {
        K::And(keys) => keys.as_ref().iter().all(|k| matches(k, c)),
        K::Not(key) => !matches(key, c),
        K::Or(a, b) => matches(a, c) || matches(b, c),
        K::SequenceSet(set) => in_set(set, c.seq, c.largest_seq),
        K::Uid(set) => in_set(set, c.known.uid, c.largest_uid),
        K::All => true,
        K::Answered => has(Flag::Answered),
        K::Unanswered => !has(Flag::Answered),
        K::Deleted => has(Flag::Deleted),
        K::Undeleted => !has(Flag::Deleted),
        K::Draft => has(Flag::Draft),
        K::Undraft => !has(Flag::Draft),
        K::Flagged => has(Flag::Flagged),
        K::Unflagged => !has(Flag::Flagged),
        K::Seen => has(Flag::Seen),
        K::Unseen => !has(Flag::Seen),
        K::Keyword(k) => {
            c.known.flags.iter().any(|f| matches!(f, Flag::Keyword(x) if x.eq_ignore_ascii_case(k.as_ref())))
        }
        K::Unkeyword(k) => {
            !c.known.flags.iter().any(|f| matches!(f, Flag::Keyword(x) if x.eq_ignore_ascii_case(k.as_ref())))
        }
        K::New => c.known.recent && !has(Flag::Seen),
        K::Old => !c.known.recent,
        K::Recent => c.known.recent,
        K::Larger(n) => c.known.size > *n,
        // One modseq per message: the entry names (RFC 7162 §3.1.5) change nothing.
        K::ModSequence { modseq, .. } => c.known.modseq >= *modseq,
        K::Smaller(n) => c.known.size < *n,
        K::Before(d) => internal_day < day_of(d),
        K::On(d) => internal_day == day_of(d),
        K::Since(d) => internal_day >= day_of(d),
        K::SentBefore(d) => content(&|m| m.sent_day.is_some_and(|s| s < day_of(d))),
        K::SentOn(d) => content(&|m| m.sent_day == Some(day_of(d))),
        K::SentSince(d) => content(&|m| m.sent_day.is_some_and(|s| s >= day_of(d))),
        K::From(s) => content(&|m| m.header_contains("from", &text(s))),
        K::To(s) => content(&|m| m.header_contains("to", &text(s))),
        K::Cc(s) => content(&|m| m.header_contains("cc", &text(s))),
        K::Bcc(s) => content(&|m| m.header_contains("bcc", &text(s))),
        K::Subject(s) => content(&|m| m.header_contains("subject", &text(s))),
        K::Header(name, s) => content(&|m| m.header_contains(&text(name), &text(s))),
        K::Body(s) => content(&|m| m.body.contains(&text(s))),
        K::Text(s) => {
            let needle = text(s);
            content(&|m| {
                m.body.contains(&needle)
                    || m.headers
                        .iter()
                        .any(|(n, raw, dec)| n.contains(&needle) || raw.contains(&needle) || dec.contains(&needle))
            })
        }
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::command::CommandBody;
    use imap_codec::imap_types::core::Vec1;
    use imap_codec::{decode::Decoder, CommandCodec};

    const MESSAGE: &[u8] = "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\n\
To: Ann <ann@example.com>, bob@example.net\r\n\
Cc: carol@example.com\r\n\
Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus Berlin\r\n\
Date: Mon, 01 Jan 2024 23:30:00 -0500\r\n\
X-Tag: Alpha\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Schöne Grüße, the quarterly REPORT is attached.\r\n"
        .as_bytes();

    fn criteria(text: &str) -> SearchKey<'static> {
        let line = format!("a SEARCH {text}\r\n");
        let (_, command) = CommandCodec::default().decode(line.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let CommandBody::Search { criteria, .. } = command.body else { panic!("not a search") };
        let mut keys = criteria.into_inner();
        let key = if keys.len() == 1 { keys.remove(0) } else { SearchKey::And(Vec1::try_from(keys).unwrap()) };
        imap_codec::imap_types::IntoStatic::into_static(key)
    }

    fn check(query: &str, known: &Known, seq: u32) -> bool {
        let key = criteria(query);
        let content = Content::new(MESSAGE);
        let candidate =
            Candidate { seq, known, content: needs_content(&key).then_some(&content), largest_seq: 5, largest_uid: 50 };
        matches(&key, &candidate)
    }

    #[test]
    fn table() {
        // 2024-01-02 10:00 UTC.
        let known = Known {
            uid: 42,
            flags: vec![Flag::Seen, Flag::Keyword("$Work".into())],
            internal_date: 1_704_189_600,
            size: 500,
            recent: true,
            modseq: 17,
        };
        let cases: &[(&str, bool)] = &[
            ("ALL", true),
            ("MODSEQ 17", true),
            ("MODSEQ 18", false),
            ("MODSEQ \"/flags/\\\\seen\" all 3", true),
            ("SEEN", true),
            ("UNSEEN", false),
            ("FLAGGED", false),
            ("UNFLAGGED", true),
            ("ANSWERED", false),
            ("UNANSWERED", true),
            ("DELETED", false),
            ("UNDELETED", true),
            ("DRAFT", false),
            ("UNDRAFT", true),
            ("KEYWORD $work", true),
            ("UNKEYWORD $Work", false),
            ("RECENT", true),
            ("NEW", false),
            ("OLD", false),
            ("FROM {5}\r\njörg", true),
            ("FROM joerg@example", true),
            ("FROM ann", false),
            ("TO ANN", true),
            ("TO bob@example.net", true),
            ("CC carol", true),
            ("BCC carol", false),
            ("SUBJECT {7}\r\ngrüße", true),
            ("SUBJECT berlin", true),
            ("SUBJECT =?iso-8859-1?q?gr", true),
            ("HEADER X-Tag alp", true),
            ("HEADER X-Tag \"\"", true),
            ("HEADER X-Missing \"\"", false),
            ("BODY \"quarterly report\"", true),
            ("BODY {7}\r\nschöne", true),
            ("BODY berlin", false),
            ("TEXT berlin", true),
            ("TEXT quarterly", true),
            ("SINCE 2-Jan-2024", true),
            ("SINCE 3-Jan-2024", false),
            ("ON 2-Jan-2024", true),
            ("BEFORE 2-Jan-2024", false),
            ("BEFORE 3-Jan-2024", true),
            ("SENTON 1-Jan-2024", true),
            ("SENTSINCE 2-Jan-2024", false),
            ("SENTBEFORE 2-Jan-2024", true),
            ("LARGER 499", true),
            ("LARGER 500", false),
            ("SMALLER 501", true),
            ("3", true),
            ("1:2,4", false),
            ("2:*", true),
            ("UID 40:45", true),
            ("UID *", false),
            ("NOT SEEN", false),
            ("OR FLAGGED SEEN", true),
            ("OR FLAGGED DRAFT", false),
            ("(SEEN FROM {5}\r\njörg) NOT DELETED", true),
            ("SEEN NOT (FROM {5}\r\njörg)", false),
            ("OR (FLAGGED) (NOT UNSEEN LARGER 10)", true),
        ];
        for (query, expected) in cases {
            assert_eq!(check(query, &known, 3), *expected, "{query}");
        }
    }

    #[test]
    fn deleted_messages_are_excluded() {
        let known = Known { uid: 3, flags: vec![Flag::Deleted], internal_date: 0, size: 1, recent: true, modseq: 4 };
        assert!(!check("UNSEEN NOT DELETED", &known, 3), "{:?}", criteria("UNSEEN NOT DELETED"));
    }

    #[test]
    fn only_content_keys_need_the_message() {
        assert!(!needs_content(&criteria("SEEN UID 1:4 NOT LARGER 3")));
        assert!(needs_content(&criteria("OR SEEN BODY x")));
        assert!(needs_content(&criteria("SENTON 1-Jan-2024")));
    }

    #[test]
    fn sizes_count_keys_and_ranges() {
        assert_eq!(size(&criteria("SEEN")), (1, 0));
        assert_eq!(size(&criteria("1:2,4 UID 3,5:*,7 NOT SEEN")), (5, 5));
        assert_eq!(size(&criteria("OR (1,2) (UID 3)")), (5, 3));
        let many = ["1:*"; 3].join(",");
        assert_eq!(size(&criteria(&format!("{many} OR {many} UID {many}"))), (5, 9));
    }

    #[test]
    fn one_key_joins_the_criteria_and_refuses_what_is_over_the_limits() {
        assert_eq!(one_key(vec![SearchKey::Seen]).unwrap(), SearchKey::Seen);
        let both = one_key(vec![SearchKey::Seen, SearchKey::Deleted]).unwrap();
        assert!(matches!(both, SearchKey::And(keys) if keys.as_ref().len() == 2));
        let error = one_key(vec![SearchKey::Seen; MAX_SEARCH_KEYS + 1]).unwrap_err();
        assert!(matches!(&error, ImapError::Syntax(text) if text.contains("at most 1000")), "{error:?}");
        let sets = (1..=10_001).map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        assert!(one_key(vec![criteria(&sets)]).is_err(), "more than 10,000 ranges");
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 2), 19_724);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
