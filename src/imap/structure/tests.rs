//! Unit tests of the MIME structure: sample messages (multipart/alternative, an
//! attachment, nested multiparts, an encapsulated message, RFC 2047 headers, 8-bit
//! UTF-8) rendered as ENVELOPE and BODYSTRUCTURE, and their sections.

use super::*;

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

fn structure(message: &[u8], extended: bool) -> String {
    let root = parse(message);
    let mut out = Vec::new();
    body_structure(&mut out, message, &root, extended);
    text(out)
}

fn envelope_of(message: &[u8]) -> String {
    let root = parse(message);
    let mut out = Vec::new();
    envelope(&mut out, &message[root.header.clone()]);
    text(out)
}

fn sect(message: &[u8], spec: SectionSpec) -> Option<String> {
    let root = parse(message);
    section(message, &root, &spec).map(|b| String::from_utf8(b).unwrap())
}

const ALTERNATIVE: &[u8] = "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.org>\r\n\
To: Ann <ann@example.com>, \"Bob B.\" <bob@example.net>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
preamble\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Grüße\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<p>Gr=C3=BC=C3=9Fe</p>\r\n\
--b1--\r\n\
epilogue\r\n"
    .as_bytes();

#[test]
fn multipart_alternative() {
    assert_eq!(
        structure(ALTERNATIVE, false),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"8BIT\" 7 1)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 22 1) \"ALTERNATIVE\")"
    );
    assert_eq!(
        structure(ALTERNATIVE, true),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"8BIT\" 7 1 NIL NIL NIL NIL)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 22 1 NIL NIL NIL NIL) \"ALTERNATIVE\" \
(\"BOUNDARY\" \"b1\") NIL NIL NIL)"
    );
    assert_eq!(sect(ALTERNATIVE, SectionSpec::Part(vec![1])).unwrap(), "Grüße");
    assert_eq!(sect(ALTERNATIVE, SectionSpec::Part(vec![2])).unwrap(), "<p>Gr=C3=BC=C3=9Fe</p>");
    assert_eq!(
        sect(ALTERNATIVE, SectionSpec::Mime(vec![2])).unwrap(),
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    assert_eq!(sect(ALTERNATIVE, SectionSpec::Part(vec![3])), None);
    assert_eq!(sect(ALTERNATIVE, SectionSpec::Part(vec![1, 1])), None);
    assert!(sect(ALTERNATIVE, SectionSpec::Text(vec![])).unwrap().starts_with("preamble\r\n--b1\r\n"));
}

#[test]
fn envelope_keeps_raw_fields_and_encodes_names() {
    assert_eq!(
        envelope_of(ALTERNATIVE),
        "(\"Tue, 2 Jan 2024 10:00:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" \
((\"=?utf-8?b?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.org\")) \
((\"=?utf-8?b?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.org\")) \
((\"=?utf-8?b?SsO2cmcgTcO8bGxlcg==?=\" NIL \"joerg\" \"example.org\")) \
((\"Ann\" NIL \"ann\" \"example.com\")(\"Bob B.\" NIL \"bob\" \"example.net\")) NIL NIL NIL \"<1@example.org>\")"
    );
    let bare = b"Subject: caf\xc3\xa9 8-bit\r\nTo: undisclosed-recipients:;\r\n\r\nbody\r\n";
    // 8-bit text goes as a literal; an empty group keeps RFC 3501's group syntax.
    assert_eq!(
        envelope_of(bare),
        "(NIL {11}\r\ncafé 8-bit NIL NIL NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
    );
}

const MIXED: &[u8] = b"From: a@example.org\r\n\
Subject: report\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
plain\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<b>html</b>\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <pdf@x>\r\n\
Content-Description: the report\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: c@example.org\r\n\
Subject: inner\r\n\
Content-Type: multipart/mixed; boundary=deep\r\n\
\r\n\
--deep\r\n\
\r\n\
deep text\r\n\
--deep\r\n\
Content-Type: image/png; name=\"=?utf-8?q?B=C3=A4r.png?=\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0K\r\n\
--deep--\r\n\
--outer--\r\n";

#[test]
fn nested_multiparts_attachments_and_messages() {
    let root = parse(MIXED);
    assert_eq!(root.children.len(), 3);
    assert_eq!(root.children[0].children.len(), 2);
    let inner = root.children[2].message.as_deref().unwrap();
    assert_eq!(inner.children.len(), 2);
    assert_eq!(inner.children[0].mime_type, ("text".to_string(), "plain".to_string()));

    assert_eq!(sect(MIXED, SectionSpec::Part(vec![1, 1])).unwrap(), "plain");
    assert_eq!(sect(MIXED, SectionSpec::Part(vec![1, 2])).unwrap(), "<b>html</b>");
    assert_eq!(sect(MIXED, SectionSpec::Part(vec![2])).unwrap(), "JVBERi0xLjQK");
    assert_eq!(sect(MIXED, SectionSpec::Part(vec![3, 1])).unwrap(), "deep text");
    assert_eq!(sect(MIXED, SectionSpec::Part(vec![3, 2])).unwrap(), "iVBORw0K");
    assert_eq!(
        sect(MIXED, SectionSpec::Header(vec![3])).unwrap(),
        "From: c@example.org\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=deep\r\n\r\n"
    );
    assert_eq!(
        sect(MIXED, SectionSpec::HeaderFields(vec![3], vec!["SUBJECT".into()])).unwrap(),
        "Subject: inner\r\n\r\n"
    );
    assert!(sect(MIXED, SectionSpec::Text(vec![3])).unwrap().starts_with("--deep\r\n\r\ndeep text"));
    assert_eq!(
        sect(MIXED, SectionSpec::Part(vec![3])).unwrap(),
        String::from_utf8_lossy(&MIXED[root.children[2].body.clone()])
    );
    assert_eq!(sect(MIXED, SectionSpec::Header(vec![2])), None, "HEADER needs a message/rfc822 part");
    assert_eq!(
        sect(MIXED, SectionSpec::HeaderFieldsNot(vec![], vec!["CONTENT-TYPE".into(), "subject".into()])).unwrap(),
        "From: a@example.org\r\n\r\n"
    );

    let body = structure(MIXED, true);
    assert!(
        body.starts_with(
            "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 1 NIL NIL NIL NIL) \"ALTERNATIVE\" \
(\"BOUNDARY\" \"inner\") NIL NIL NIL)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") \"<pdf@x>\" \"the report\" \"BASE64\" 12 NIL \
(\"ATTACHMENT\" (\"FILENAME\" \"r.pdf\")) NIL NIL)\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" "
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "(\"IMAGE\" \"PNG\" (\"NAME\" \"=?utf-8?b?QsOkci5wbmc=?=\") NIL NIL \"BASE64\" 8 NIL NIL NIL NIL)"
        ),
        "{body}"
    );
    assert!(body.contains("(NIL \"inner\" ((NIL NIL \"c\" \"example.org\"))"), "{body}");
    assert!(body.ends_with(" \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)"), "{body}");
}

#[test]
fn simple_messages_and_odd_shapes() {
    let simple = b"Subject: hi\r\n\r\nline one\r\nline two";
    assert_eq!(structure(simple, false), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 18 2)");
    assert_eq!(sect(simple, SectionSpec::Part(vec![1])).unwrap(), "line one\r\nline two");
    assert_eq!(sect(simple, SectionSpec::Text(vec![])).unwrap(), "line one\r\nline two");
    assert_eq!(sect(simple, SectionSpec::Header(vec![])).unwrap(), "Subject: hi\r\n\r\n");
    assert_eq!(sect(simple, SectionSpec::Part(vec![])).unwrap(), String::from_utf8_lossy(simple));

    let headers_only = b"Subject: no body\r\n";
    assert_eq!(sect(headers_only, SectionSpec::Text(vec![])).unwrap(), "");
    assert_eq!(sect(headers_only, SectionSpec::Header(vec![])).unwrap(), "Subject: no body\r\n");

    // A boundary that never closes; a folded header; a multipart without boundary.
    let open = b"Content-Type: multipart/mixed;\r\n boundary=x\r\n\r\n--x\r\n\r\nonly part\r\n";
    assert_eq!(sect(open, SectionSpec::Part(vec![1])).unwrap(), "only part\r\n");
    let broken = b"Content-Type: multipart/mixed\r\n\r\nno parts\r\n";
    assert_eq!(structure(broken, false), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 10 1)");
    let lf_only = b"Subject: lf\n\nbody\n";
    assert_eq!(sect(lf_only, SectionSpec::Text(vec![])).unwrap(), "body\n");
}

#[test]
fn header_fields_unfold() {
    let header = b"Subject: a\r\n  folded\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    assert_eq!(
        header_fields(header),
        vec![
            ("subject".to_string(), b"a  folded".to_vec()),
            ("x-a".into(), b"1".to_vec()),
            ("x-a".into(), b"2".to_vec())
        ]
    );
    assert_eq!(text(header_subset(header, &["X-A".into()], false)), "X-A: 1\r\nx-a: 2\r\n\r\n");
    assert_eq!(text(header_subset(header, &["x-a".into()], true)), "Subject: a\r\n  folded\r\n\r\n");
}

#[test]
fn envelope_keeps_a_group_among_plain_addresses_in_order() {
    let mixed = b"To: a@example.org, Friends: b@example.net, \"C\" <c@example.com>;, d@example.com\r\n\r\nbody\r\n";
    assert_eq!(
        envelope_of(mixed),
        "(NIL NIL NIL NIL NIL ((NIL NIL \"a\" \"example.org\")(NIL NIL \"Friends\" NIL)(NIL NIL \"b\" \"example.net\")\
(\"C\" NIL \"c\" \"example.com\")(NIL NIL NIL NIL)(NIL NIL \"d\" \"example.com\")) NIL NIL NIL NIL)"
    );
}

#[test]
fn envelope_renders_every_group_with_its_markers() {
    // Groups side by side (a quoted name, a member with a display name, an empty one),
    // an empty group after a plain address, and a group with an 8-bit name in From,
    // which Sender and Reply-To repeat.
    let message = "To: \"The Team\": Ann <ann@example.org>, bob@example.net;, Empty:;, Other: c@example.com;\r\n\
Cc: x@example.org, undisclosed-recipients:;\r\n\
From: Jörg: j@example.org;\r\n\
\r\n\
body\r\n";
    let from = "((NIL NIL \"=?utf-8?b?SsO2cmc=?=\" NIL)(NIL NIL \"j\" \"example.org\")(NIL NIL NIL NIL))";
    let to = "((NIL NIL \"The Team\" NIL)(\"Ann\" NIL \"ann\" \"example.org\")(NIL NIL \"bob\" \"example.net\")\
(NIL NIL NIL NIL)(NIL NIL \"Empty\" NIL)(NIL NIL NIL NIL)(NIL NIL \"Other\" NIL)(NIL NIL \"c\" \"example.com\")\
(NIL NIL NIL NIL))";
    let cc = "((NIL NIL \"x\" \"example.org\")(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))";
    assert_eq!(envelope_of(message.as_bytes()), format!("(NIL NIL {from} {from} {from} {to} {cc} NIL NIL NIL)"));
}

/// The cases of imaptest's fetch-envelope script (dovecot/imaptest src/tests): a group
/// list, a comment as the name, empty Sender and Reply-To (From stands in), and an
/// obsolete source route, which goes in the at-domain-list field.
#[test]
fn envelope_matches_the_compliance_suite() {
    let date = "Date: Sat, 01 Feb 2007 01:02:03 +0200\r\n";
    let of = |fields: &str| envelope_of(format!("{date}{fields}\r\nbody\r\n").as_bytes());
    let head = "(\"Sat, 01 Feb 2007 01:02:03 +0200\" NIL";
    let real = "((\"Real Name\" NIL \"user\" \"domain\"))";
    assert_eq!(
        of("From: user@domain (Real Name)\r\nTo: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\n"),
        format!(
            "{head} {real} {real} {real} ((NIL NIL \"group\" NIL)(NIL NIL \"g1\" \"d1.org\")(NIL NIL \"g2\" \"d2.org\")\
(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL \"g3\" \"d3.org\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
        )
    );
    assert_eq!(
        of("From: user@domain (Real Name)\r\nSender: \r\nReply-To: \r\n"),
        format!("{head} {real} {real} {real} NIL NIL NIL NIL NIL)")
    );
    let routed = "((NIL \"@route\" \"user\" \"domain\"))";
    assert_eq!(of("From: <@route:user@domain>\r\n"), format!("{head} {routed} {routed} {routed} NIL NIL NIL NIL NIL)"));
}

/// The cases of imaptest's fetch-body-message-rfc822 script: a message whose whole body
/// is an encapsulated message (RFC 3501 §6.4.5: part 1 is that message).
#[test]
fn sections_of_a_message_that_is_one_encapsulated_message() {
    let message = b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\nMime-Version: 1.0\r\n\
Content-Type: message/rfc822\r\n\r\nFrom: sub@domain.org\r\nDate: Sun, 12 Aug 2012 12:34:56 +0300\r\n\
Subject: submsg\r\n\r\nHello world\r\n";
    let inner =
        "From: sub@domain.org\r\nDate: Sun, 12 Aug 2012 12:34:56 +0300\r\nSubject: submsg\r\n\r\nHello world\r\n";
    let names = || vec!["from".to_string(), "subject".into(), "X-foo".into()];
    assert_eq!(sect(message, SectionSpec::Text(vec![])).unwrap(), inner);
    assert_eq!(sect(message, SectionSpec::Part(vec![1])).unwrap(), inner);
    assert_eq!(
        sect(message, SectionSpec::Header(vec![1])).unwrap(),
        "From: sub@domain.org\r\nDate: Sun, 12 Aug 2012 12:34:56 +0300\r\nSubject: submsg\r\n\r\n"
    );
    assert_eq!(
        sect(message, SectionSpec::HeaderFields(vec![1], names())).unwrap(),
        "From: sub@domain.org\r\nSubject: submsg\r\n\r\n"
    );
    assert_eq!(
        sect(message, SectionSpec::HeaderFieldsNot(vec![1], names())).unwrap(),
        "Date: Sun, 12 Aug 2012 12:34:56 +0300\r\n\r\n"
    );
    assert_eq!(sect(message, SectionSpec::Text(vec![1])).unwrap(), "Hello world\r\n");
}

/// imaptest's fetch-bodystructure case: a boundary folded inside its quoted string is
/// the unfolded "foo bar".
#[test]
fn a_boundary_folded_inside_its_quotes_is_unfolded() {
    let m = b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\nMime-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"foo\r\n bar\"\r\n\r\n--foo bar\r\nContent-Type: text/html; charset=us-ascii\r\n\r\nhello\r\n\r\n--foo bar--\r\n";
    assert_eq!(structure(m, false), "((\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 7 1) \"MIXED\")");
}
