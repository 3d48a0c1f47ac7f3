//! HTML → Markdown for mail that has only an HTML body: the SMIMP payload body is
//! Markdown and may hold no HTML (spec "Email"; docs/protocol.md §7).
//!
//! Pure and self-contained. A careful text extraction rather than a full HTML5 parser:
//! the maintained converters build on html5ever and a recursive DOM walk, a heavy
//! dependency whose recursion a deeply nested message could overflow. This one is a
//! single forward pass with bounded state, so its time and memory are linear in the
//! input and nesting cannot exhaust the stack.
//!
//! What it keeps: paragraphs and line breaks, headings (`#`), emphasis (`**`, `_`),
//! inline code and `<pre>` blocks (fenced), links to `http:`, `https:` and `mailto:`
//! (`[text](url)`), images with an `http(s):` or `cid:` source (`![alt](src)`, 1×1
//! tracking pixels dropped), lists (nested by four spaces), block quotes (`>`), rules
//! (`---`) and table rows (cells joined by ` | `). `<script>`, `<style>`, `<title>`,
//! `<template>` and comments are dropped; entities (named, decimal, hex) are decoded.
//! Text that Markdown would read as markup (`*`, `_`, `` ` ``, `[`, `]`, `<`, `\`, and
//! `#`, `>`, `-`, `+`, `1.` at a line start) is escaped with `\`, so the result never
//! carries HTML and renders as the text the sender saw. Layout is not kept: what
//! Markdown cannot say (colours, fonts, table geometry) is dropped.

/// Deepest quote or list nesting shown as indentation; deeper levels still count.
const MAX_VISIBLE_DEPTH: usize = 6;
/// Most open inline elements (emphasis, links) tracked; more are ignored.
const MAX_INLINE_STACK: usize = 64;
/// Longest attribute value kept (longer ones, such as `data:` URIs, are dropped).
const MAX_ATTRIBUTE_LEN: usize = 2048;
/// Most attributes read from one tag.
const MAX_ATTRIBUTES: usize = 32;

/// Converts an HTML document or fragment to Markdown (module docs say what is kept).
///
/// Why a function of its own: the inbound converter uses it for HTML-only mail, and
/// it is the one place that decides how HTML reads as Markdown.
pub fn html_to_markdown(html: &str) -> String {
    let limit = html.len().saturating_mul(4).saturating_add(4096);
    let mut writer = Writer::new(limit);
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() && !writer.full {
        match bytes[i] {
            b'<' => i = markup(html, i, &mut writer),
            _ => {
                let end = html[i..].find('<').map_or(html.len(), |n| i + n);
                writer.text(&decode_entities(&html[i..end]));
                i = end;
            }
        }
    }
    writer.finish()
}

/// Reads the markup starting at `start` (a `<`) and returns where the text resumes.
fn markup(html: &str, start: usize, writer: &mut Writer) -> usize {
    let rest = &html[start..];
    if let Some(comment) = rest.strip_prefix("<!--") {
        return comment.find("-->").map_or(html.len(), |n| start + 4 + n + 3);
    }
    if rest.starts_with("<!") || rest.starts_with("<?") {
        return rest.find('>').map_or(html.len(), |n| start + n + 1);
    }
    let Some(tag) = Tag::parse(rest) else {
        writer.text("<");
        return start + 1;
    };
    let after = start + tag.len;
    if !tag.end && matches!(tag.name.as_str(), "script" | "style" | "title" | "template") {
        return skip_raw_text(html, after, &tag.name);
    }
    writer.tag(&tag);
    after
}

/// Skips the content of an element whose text is never shown, up to its end tag.
fn skip_raw_text(html: &str, from: usize, name: &str) -> usize {
    let closing = format!("</{name}");
    let haystack = &html.as_bytes()[from..];
    let found = haystack.windows(closing.len()).position(|w| w.eq_ignore_ascii_case(closing.as_bytes()));
    match found {
        Some(n) => html[from + n..].find('>').map_or(html.len(), |m| from + n + m + 1),
        None => html.len(),
    }
}

/// A start or end tag with the attributes this converter reads.
#[derive(Debug)]
struct Tag {
    name: String,
    end: bool,
    attributes: Vec<(String, String)>,
    /// Bytes from the `<` to just after the `>`.
    len: usize,
}

impl Tag {
    /// Parses a tag at the start of `text`; `None` when `<` does not open one (then it
    /// is text).
    fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut i = 1;
        let end = bytes.get(i) == Some(&b'/');
        if end {
            i += 1;
        }
        if !bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let name_start = i;
        while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b':') {
            i += 1;
        }
        let name = text[name_start..i].to_ascii_lowercase();
        let mut attributes = Vec::new();
        loop {
            while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace() || *b == b'/') {
                i += 1;
            }
            match bytes.get(i) {
                None => return Some(Self { name, end, attributes, len: text.len() }),
                Some(b'>') => return Some(Self { name, end, attributes, len: i + 1 }),
                Some(_) => {}
            }
            let attr_start = i;
            while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b'=' | b'>' | b'/')) {
                i += 1;
            }
            if i == attr_start {
                // A lone '=' (or similar): skip it so the loop always advances.
                i += 1;
                continue;
            }
            let attr_name = text[attr_start..i].to_ascii_lowercase();
            while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            let mut value = String::new();
            if bytes.get(i) == Some(&b'=') {
                i += 1;
                while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                    i += 1;
                }
                let value_range = match bytes.get(i) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let from = i + 1;
                        let to = text[from..].find(quote as char).map_or(text.len(), |n| from + n);
                        i = (to + 1).min(text.len());
                        from..to
                    }
                    _ => {
                        let from = i;
                        while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace() && *b != b'>') {
                            i += 1;
                        }
                        from..i
                    }
                };
                value = text[value_range].to_string();
            }
            if attributes.len() < MAX_ATTRIBUTES && value.len() <= MAX_ATTRIBUTE_LEN {
                attributes.push((attr_name, decode_entities(&value)));
            }
        }
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inline {
    Strong,
    Emphasis,
    Code,
    Link,
    /// An `<a>` without a usable target: its text is kept, nothing else.
    PlainLink,
}

#[derive(Debug)]
struct OpenInline {
    kind: Inline,
    /// `out.len()` just after the opening marker, to drop empty pairs.
    after_open: usize,
    opener_len: usize,
    /// The `](url)` that closes a link.
    closer: String,
}

#[derive(Debug)]
struct List {
    ordered: bool,
    next: u32,
}

/// The Markdown being written, and the little state a single pass needs.
struct Writer {
    out: String,
    limit: usize,
    full: bool,
    /// Line ends written since the last text (0: the current line has text).
    newlines: u8,
    /// Line ends wanted before the next text.
    pending_break: u8,
    pending_space: bool,
    /// The next text starts a line, so the line prefix is due.
    line_start: bool,
    /// The next character is the first of a line's content (escape block markers).
    content_start: bool,
    /// Within a line start's digit run (`12.` would read as a list item).
    digit_run: bool,
    quote_depth: usize,
    /// The quote depth of the last line written: a blank line between two depths
    /// belongs to the shallower one.
    line_quote_depth: usize,
    lists: Vec<List>,
    pending_marker: Option<String>,
    pending_heading: Option<usize>,
    pre_depth: usize,
    /// Nothing written in the `<pre>` yet (HTML drops a newline right after `<pre>`).
    pre_fresh: bool,
    inline: Vec<OpenInline>,
    row_has_cell: bool,
}

impl Writer {
    fn new(limit: usize) -> Self {
        Self {
            out: String::new(),
            limit,
            full: false,
            newlines: 0,
            pending_break: 0,
            pending_space: false,
            line_start: true,
            content_start: true,
            digit_run: false,
            quote_depth: 0,
            line_quote_depth: 0,
            lists: Vec::new(),
            pending_marker: None,
            pending_heading: None,
            pre_depth: 0,
            pre_fresh: false,
            inline: Vec::new(),
            row_has_cell: false,
        }
    }

    fn block(&mut self, lines: u8) {
        self.pending_break = self.pending_break.max(lines);
    }

    fn quote_prefix(&self) -> String {
        "> ".repeat(self.quote_depth.min(MAX_VISIBLE_DEPTH))
    }

    fn blank_line_prefix(&self) -> String {
        "> ".repeat(self.quote_depth.min(self.line_quote_depth).min(MAX_VISIBLE_DEPTH)).trim_end().to_string()
    }

    /// Writes pending line ends, a pending space, and the line prefix when due.
    fn flush(&mut self) {
        if self.out.is_empty() {
            self.pending_break = 0;
            self.pending_space = false;
        }
        if self.pending_break > 0 {
            let blank_prefix = self.blank_line_prefix();
            while self.newlines < self.pending_break {
                if self.newlines > 0 {
                    self.out.push_str(&blank_prefix);
                }
                self.out.push('\n');
                self.newlines += 1;
            }
            self.line_start = true;
        } else if self.pending_space && !self.line_start {
            self.out.push(' ');
        }
        self.pending_break = 0;
        self.pending_space = false;
        if self.line_start {
            self.line_start = false;
            self.content_start = true;
            self.digit_run = false;
            let prefix = self.quote_prefix();
            self.out.push_str(&prefix);
            self.line_quote_depth = self.quote_depth;
            let depth = self.lists.len().min(MAX_VISIBLE_DEPTH);
            if let Some(marker) = self.pending_marker.take() {
                self.out.push_str(&"    ".repeat(depth.saturating_sub(1)));
                self.out.push_str(&marker);
            } else {
                self.out.push_str(&"    ".repeat(depth));
            }
            if let Some(level) = self.pending_heading.take() {
                self.out.push_str(&"#".repeat(level));
                self.out.push(' ');
            }
        }
        self.newlines = 0;
        if self.out.len() > self.limit {
            self.full = true;
        }
    }

    /// Writes markup (not text): flushes what is pending first.
    fn raw(&mut self, markup: &str) {
        self.flush();
        self.out.push_str(markup);
        self.content_start = false;
    }

    fn text(&mut self, text: &str) {
        if self.pre_depth > 0 {
            return self.preformatted(text);
        }
        let code = self.inline.iter().any(|open| open.kind == Inline::Code);
        for c in text.chars() {
            if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
                self.pending_space = true;
                continue;
            }
            self.flush();
            if code {
                self.out.push(c);
            } else {
                self.escaped(c);
            }
            self.content_start = false;
        }
    }

    fn escaped(&mut self, c: char) {
        let at_start = self.content_start;
        let special = matches!(c, '\\' | '*' | '_' | '`' | '[' | ']' | '<')
            || (at_start && matches!(c, '#' | '>' | '-' | '+' | '='))
            || (self.digit_run && matches!(c, '.' | ')'));
        self.digit_run = (at_start || self.digit_run) && c.is_ascii_digit();
        if special {
            self.out.push('\\');
        }
        self.out.push(c);
    }

    fn preformatted(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\r' || (std::mem::take(&mut self.pre_fresh) && c == '\n') {
                continue;
            }
            match c {
                '\n' => {
                    if self.line_start {
                        // An empty line of the block: it still needs the quote prefix.
                        self.flush();
                    }
                    self.out.push('\n');
                    self.line_start = true;
                }
                c => {
                    self.flush();
                    self.out.push(c);
                }
            }
        }
        self.newlines = 0;
    }

    fn open_inline(&mut self, kind: Inline, opener: &str, closer: String) {
        if self.inline.len() >= MAX_INLINE_STACK || self.pre_depth > 0 {
            return;
        }
        if !opener.is_empty() {
            self.raw(opener);
        }
        self.inline.push(OpenInline { kind, after_open: self.out.len(), opener_len: opener.len(), closer });
    }

    fn close_inline(&mut self, kinds: &[Inline]) {
        let Some(position) = self.inline.iter().rposition(|open| kinds.contains(&open.kind)) else {
            return;
        };
        // Elements opened inside and never closed end here too.
        while self.inline.len() > position {
            let Some(open) = self.inline.pop() else { break };
            if self.out.len() == open.after_open {
                self.out.truncate(open.after_open - open.opener_len);
            } else {
                self.out.push_str(&open.closer);
            }
        }
    }

    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if tag.end {
            return self.end_tag(name);
        }
        match name {
            "br" => {
                self.pending_break = (self.pending_break.max(self.newlines) + 1).min(2);
                if self.out.is_empty() {
                    self.pending_break = 0;
                }
            }
            "p" | "table" | "figure" | "dl" => self.block(2),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.block(2);
                self.pending_heading = Some(usize::from(name.as_bytes()[1] - b'0'));
            }
            "div" | "section" | "article" | "header" | "footer" | "nav" | "aside" | "main" | "center" | "address"
            | "figcaption" | "dt" | "dd" | "form" | "fieldset" => self.block(1),
            "tr" => {
                self.block(1);
                self.row_has_cell = false;
            }
            "td" | "th" => {
                if self.row_has_cell && self.newlines == 0 && self.pending_break == 0 && !self.out.is_empty() {
                    self.pending_space = false;
                    self.out.push_str(" | ");
                }
                self.row_has_cell = true;
            }
            "hr" => {
                self.block(2);
                self.raw("---");
                self.block(2);
            }
            "blockquote" => {
                self.block(2);
                self.quote_depth += 1;
            }
            "ul" | "ol" => {
                self.block(if self.lists.is_empty() { 2 } else { 1 });
                let start = tag.attribute("start").and_then(|s| s.parse().ok()).unwrap_or(1);
                self.lists.push(List { ordered: name == "ol", next: start });
            }
            "li" => {
                self.block(1);
                let marker = match self.lists.last_mut() {
                    Some(list) if list.ordered => {
                        let marker = format!("{}. ", list.next);
                        list.next = list.next.saturating_add(1);
                        marker
                    }
                    _ => "- ".to_string(),
                };
                self.pending_marker = Some(marker);
            }
            "pre" => {
                if self.pre_depth == 0 {
                    self.block(2);
                    self.raw("```");
                    self.end_line();
                    self.pre_fresh = true;
                }
                self.pre_depth += 1;
            }
            "strong" | "b" => self.open_inline(Inline::Strong, "**", "**".into()),
            "em" | "i" => self.open_inline(Inline::Emphasis, "_", "_".into()),
            "code" | "tt" | "kbd" | "samp" => self.open_inline(Inline::Code, "`", "`".into()),
            "a" => match tag.attribute("href").filter(|href| safe_link(href)) {
                Some(href) => self.open_inline(Inline::Link, "[", format!("]({})", link_target(href))),
                None => self.open_inline(Inline::PlainLink, "", String::new()),
            },
            "img" => self.image(tag),
            _ => {}
        }
    }

    /// Ends the current line now, if it has text.
    fn end_line(&mut self) {
        if self.newlines == 0 && !self.out.is_empty() && !self.line_start {
            self.out.push('\n');
            self.newlines = 1;
            self.line_start = true;
        }
    }

    fn end_tag(&mut self, name: &str) {
        match name {
            "p" | "table" | "figure" | "dl" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.pending_heading = None;
                self.block(2);
            }
            "div" | "section" | "article" | "header" | "footer" | "nav" | "aside" | "main" | "center" | "address"
            | "figcaption" | "dt" | "dd" | "form" | "fieldset" | "tr" | "li" => self.block(1),
            "blockquote" => {
                // End the quote's last line before its prefix goes; the blank line
                // after it belongs to the outer level.
                self.end_line();
                self.block(2);
                self.quote_depth = self.quote_depth.saturating_sub(1);
            }
            "ul" | "ol" => {
                self.lists.pop();
                self.pending_marker = None;
                self.block(if self.lists.is_empty() { 2 } else { 1 });
            }
            "pre" if self.pre_depth == 1 => {
                self.pre_depth = 0;
                if !self.line_start {
                    self.out.push('\n');
                    self.line_start = true;
                }
                self.raw("```");
                self.block(2);
            }
            "pre" => self.pre_depth = self.pre_depth.saturating_sub(1),
            "strong" | "b" => self.close_inline(&[Inline::Strong]),
            "em" | "i" => self.close_inline(&[Inline::Emphasis]),
            "code" | "tt" | "kbd" | "samp" => self.close_inline(&[Inline::Code]),
            "a" => self.close_inline(&[Inline::Link, Inline::PlainLink]),
            _ => {}
        }
    }

    fn image(&mut self, tag: &Tag) {
        let tiny = |name| tag.attribute(name).is_some_and(|v| matches!(v, "0" | "1" | "0px" | "1px"));
        if tiny("width") && tiny("height") {
            return;
        }
        let alt = tag.attribute("alt").unwrap_or_default();
        match tag.attribute("src").filter(|src| safe_image(src)) {
            Some(src) => {
                let mut alt_text = String::new();
                for c in alt.chars().filter(|c| !c.is_control()) {
                    if matches!(c, '\\' | '[' | ']') {
                        alt_text.push('\\');
                    }
                    alt_text.push(c);
                }
                self.raw(&format!("![{alt_text}]({})", link_target(src)));
            }
            None if !alt.is_empty() => self.text(alt),
            None => {}
        }
    }

    fn finish(mut self) -> String {
        // Close what the document left open, so every marker has its pair.
        self.close_inline(&[Inline::Strong, Inline::Emphasis, Inline::Code, Inline::Link, Inline::PlainLink]);
        if self.pre_depth > 0 {
            if !self.line_start {
                self.out.push('\n');
            }
            self.out.push_str("```");
        }
        if self.full {
            self.out.push_str("\n\n[…]");
        }
        let trimmed = self.out.trim_end();
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}\n")
        }
    }
}

fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| {
        url.len() > scheme.len()
            && url.is_char_boundary(scheme.len())
            && url[..scheme.len()].eq_ignore_ascii_case(scheme)
    })
}

/// Links kept as links: web and mail only (never `javascript:`, `data:` or `file:`).
fn safe_link(href: &str) -> bool {
    has_scheme(href, &["http://", "https://", "mailto:"])
}

/// Images kept as images: remote ones (rendered at the reader's discretion, spec
/// "Email") and `cid:` references to the message's own inline attachments.
fn safe_image(src: &str) -> bool {
    has_scheme(src, &["http://", "https://", "cid:"])
}

/// A URL as a Markdown link destination: spaces, parentheses and controls encoded.
fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Decodes character references (HTML5 §13.5): named ones from a common subset,
/// decimal and hexadecimal ones; an unknown or broken reference stays as written.
pub(crate) fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match reference(rest) {
            Some((decoded, used)) => {
                out.push(decoded);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads one reference at the start of `text` (which starts with `&`): the character
/// and the number of bytes it took.
fn reference(text: &str) -> Option<(char, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(1) == Some(&b'#') {
        let (digits_from, radix) = match bytes.get(2) {
            Some(b'x' | b'X') => (3, 16),
            _ => (2, 10),
        };
        let digits = text[digits_from..].bytes().take_while(|b| (*b as char).is_digit(radix)).count();
        if digits == 0 {
            return None;
        }
        let mut end = digits_from + digits;
        let value = u32::from_str_radix(&text[digits_from..end], radix).unwrap_or(u32::MAX);
        if bytes.get(end) == Some(&b';') {
            end += 1;
        }
        return Some((numeric_reference(value), end));
    }
    let name_len = text[1..].bytes().take_while(u8::is_ascii_alphanumeric).take(32).count();
    let name = &text[1..1 + name_len];
    let with_semicolon = bytes.get(1 + name_len) == Some(&b';');
    if with_semicolon {
        if let Some(c) = named(name) {
            return Some((c, name_len + 2));
        }
    }
    // A few legacy references are honoured without their semicolon, as browsers do.
    for legacy in ["amp", "lt", "gt", "quot", "nbsp"] {
        if name.starts_with(legacy) {
            return named(legacy).map(|c| (c, legacy.len() + 1));
        }
    }
    None
}

/// A numeric reference's character, with HTML5's fix-ups: NUL, surrogates and values
/// past Unicode become U+FFFD, and 0x80–0x9F read as windows-1252.
fn numeric_reference(value: u32) -> char {
    const WINDOWS_1252: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
        0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x9D, 0x017E, 0x0178,
    ];
    let value = match value {
        0x80..=0x9F => WINDOWS_1252[(value - 0x80) as usize],
        other => other,
    };
    match value {
        0 => '\u{FFFD}',
        v => char::from_u32(v).unwrap_or('\u{FFFD}'),
    }
}

/// The named references mail commonly uses (HTML5 has about 2,000; the rest stay as
/// written, which still reads correctly).
fn named(name: &str) -> Option<char> {
    named_symbol(name).or_else(|| named_letter(name))
}

/// Named references for punctuation, spaces, currency, arithmetic and arrows.
fn named_symbol(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => '\u{200B}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "dagger" => '†',
        "Dagger" => '‡',
        "permil" => '‰',
        "prime" => '′',
        "Prime" => '″',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "curren" => '¤',
        "sect" => '§',
        "para" => '¶',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "minus" => '−',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sup1" => '¹',
        "sup2" => '²',
        "sup3" => '³',
        "micro" => 'µ',
        "iexcl" => '¡',
        "iquest" => '¿',
        "ordf" => 'ª',
        "ordm" => 'º',
        "not" => '¬',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "hearts" => '♥',
        "check" => '✓',
        _ => return None,
    })
}

/// Named references for accented and other Latin letters.
fn named_letter(name: &str) -> Option<char> {
    Some(match name {
        "agrave" => 'à',
        "aacute" => 'á',
        "acirc" => 'â',
        "atilde" => 'ã',
        "auml" => 'ä',
        "aring" => 'å',
        "aelig" => 'æ',
        "ccedil" => 'ç',
        "egrave" => 'è',
        "eacute" => 'é',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "igrave" => 'ì',
        "iacute" => 'í',
        "icirc" => 'î',
        "iuml" => 'ï',
        "eth" => 'ð',
        "ntilde" => 'ñ',
        "ograve" => 'ò',
        "oacute" => 'ó',
        "ocirc" => 'ô',
        "otilde" => 'õ',
        "ouml" => 'ö',
        "oslash" => 'ø',
        "ugrave" => 'ù',
        "uacute" => 'ú',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "yacute" => 'ý',
        "thorn" => 'þ',
        "yuml" => 'ÿ',
        "szlig" => 'ß',
        "Agrave" => 'À',
        "Aacute" => 'Á',
        "Acirc" => 'Â',
        "Atilde" => 'Ã',
        "Auml" => 'Ä',
        "Aring" => 'Å',
        "AElig" => 'Æ',
        "Ccedil" => 'Ç',
        "Egrave" => 'È',
        "Eacute" => 'É',
        "Ecirc" => 'Ê',
        "Euml" => 'Ë',
        "Iacute" => 'Í',
        "Ntilde" => 'Ñ',
        "Oacute" => 'Ó',
        "Ocirc" => 'Ô',
        "Ouml" => 'Ö',
        "Oslash" => 'Ø',
        "Uacute" => 'Ú',
        "Uuml" => 'Ü',
        "oelig" => 'œ',
        "OElig" => 'Œ',
        "scaron" => 'š',
        "Scaron" => 'Š',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_common_shapes() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("plain words", "plain words\n"),
            ("<p>one</p><p>two</p>", "one\n\ntwo\n"),
            ("line<br>next<br/><br>after", "line\nnext\n\nafter\n"),
            ("<h1>Title</h1><p>Text</p>", "# Title\n\nText\n"),
            ("<h3>Small</h3>", "### Small\n"),
            ("<b>bold</b> and <em>it</em>", "**bold** and _it_\n"),
            ("<b></b>empty", "empty\n"),
            ("<a href=\"https://example.org/a b\">site</a>", "[site](https://example.org/a%20b)\n"),
            ("<a href='javascript:alert(1)'>no</a>", "no\n"),
            ("<a>anchor</a>", "anchor\n"),
            ("<ul><li>a</li><li>b<ul><li>c</li></ul></li></ul>", "- a\n- b\n    - c\n"),
            ("<ol start=3><li>x</li><li>y</li></ol>", "3. x\n4. y\n"),
            ("<blockquote><p>q1</p><p>q2</p></blockquote>after", "> q1\n>\n> q2\n\nafter\n"),
            (
                "<ul><li>a</li></ul><blockquote>q<blockquote>deeper</blockquote></blockquote>",
                "- a\n\n> q\n>\n> > deeper\n",
            ),
            ("<pre>\r\na  b\r\n  c</pre>", "```\na  b\n  c\n```\n"),
            ("use <code>a*b</code> here", "use `a*b` here\n"),
            ("x<hr>y", "x\n\n---\n\ny\n"),
            ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a | b\nc\n"),
        ];
        for (html, markdown) in cases {
            assert_eq!(html_to_markdown(html), *markdown, "{html:?}");
        }
    }

    #[test]
    fn drops_what_is_never_shown_and_escapes_markup_in_text() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head>\
                    <body><script>alert('<p>')</script><!-- hidden -->\
                    <p>&lt;script&gt; 5 * 3 &amp; a_b [x] &#x2713; &#8364; &#150; &unknown; &amp</p>\
                    <p># not a heading</p><p>1. not a list</p><p>- not an item</p></body></html>";
        assert_eq!(
            html_to_markdown(html),
            "\\<script> 5 \\* 3 & a\\_b \\[x\\] ✓ € – &unknown; &\n\n\\# not a heading\n\n1\\. not a list\n\n\\- not an item\n"
        );
    }

    #[test]
    fn images_keep_safe_sources_and_drop_tracking_pixels() {
        assert_eq!(html_to_markdown("<img src=\"cid:logo@x\" alt=\"Logo [1]\">"), "![Logo \\[1\\]](cid:logo@x)\n");
        assert_eq!(html_to_markdown("<img src=\"data:image/png;base64,AAAA\" alt=\"inline\">"), "inline\n");
        assert_eq!(html_to_markdown("a<img src=\"https://t.example/p.gif\" width=1 height=\"1\">b"), "ab\n");
    }

    #[test]
    fn broken_markup_never_panics_and_stays_linear() {
        for html in [
            "<",
            "<<",
            "</",
            "<a",
            "<a href=",
            "<a href=\"x",
            "&",
            "&#",
            "&#x",
            "&#xffffffff;",
            "&#55296;",
            "<!--",
            "<!",
            "<script>never closed",
            "<pre>open",
            "<b><i>x</b></i>",
            "</ul></ol></blockquote>",
            "<p =x>y",
            "<ul><li>é<li>ü",
            "<td>a<td>b",
            "<br><br><br><br>",
            "<h7>x</h7>",
            "<\u{1F600}>",
        ] {
            let _ = html_to_markdown(html);
        }
        let deep = "<blockquote><ul><li><b>".repeat(50_000);
        let out = html_to_markdown(&format!("{deep}text"));
        assert!(out.contains("text"));
        assert!(out.len() < 4096 + deep.len() * 4);
    }
}
