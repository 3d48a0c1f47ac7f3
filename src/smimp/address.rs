//! SMIMP addresses (`alice#example.org`) and their map to and from email
//! addresses (docs/protocol.md §4; spec "Address Format").
//!
//! Pure. Parsing normalises to lowercase; every refusal names its reason.

use std::fmt;

/// Longest local part accepted (the same bound as SMTP's).
pub const MAX_LOCAL_LEN: usize = 64;
/// Longest domain accepted (DNS).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Why a text is not a valid address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address has no '{0}' between the user and the domain")]
    MissingSeparator(char),
    #[error("the address has more than one '{0}'")]
    ExtraSeparator(char),
    #[error("the user part is empty")]
    EmptyLocal,
    #[error("the user part is longer than {MAX_LOCAL_LEN} characters")]
    LocalTooLong,
    #[error("the user part may contain only letters and digits, not {0:?}")]
    LocalCharacter(char),
    #[error("the domain is empty")]
    EmptyDomain,
    #[error("the domain is longer than {MAX_DOMAIN_LEN} characters")]
    DomainTooLong,
    #[error("the domain {0:?} is not a valid DNS name ({1})")]
    BadDomain(String, &'static str),
}

/// A validated, normalised SMIMP address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    text: String,
    split: usize,
}

impl Address {
    /// Parses `local#domain`, normalising case.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        Self::parse_with(text, '#')
    }

    /// Maps an email address (`alice@example.org`) to its SMIMP form. Refuses local
    /// parts SMIMP cannot express (dots, plus tags, quoted strings) with the reason.
    pub fn from_email(email: &str) -> Result<Self, AddressError> {
        Self::parse_with(email, '@')
    }

    fn parse_with(text: &str, separator: char) -> Result<Self, AddressError> {
        let mut parts = text.split(separator);
        let local = parts.next().unwrap_or_default();
        let domain = parts.next().ok_or(AddressError::MissingSeparator(separator))?;
        if parts.next().is_some() {
            return Err(AddressError::ExtraSeparator(separator));
        }
        let local = normalise_local(local)?;
        let domain = normalise_domain(domain)?;
        Ok(Self { split: local.len(), text: format!("{local}#{domain}") })
    }

    /// The lowercase local part.
    pub fn local(&self) -> &str {
        &self.text[..self.split]
    }

    /// The lowercase domain.
    pub fn domain(&self) -> &str {
        &self.text[self.split + 1..]
    }

    /// The normalised SMIMP form, the one hashed and sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The email form, `local@domain`, that legacy clients see.
    pub fn to_email(&self) -> String {
        format!("{}@{}", self.local(), self.domain())
    }
}

fn normalise_local(local: &str) -> Result<String, AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if let Some(bad) = local.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(AddressError::LocalCharacter(bad));
    }
    if local.len() > MAX_LOCAL_LEN {
        return Err(AddressError::LocalTooLong);
    }
    Ok(local.to_ascii_lowercase())
}

/// Normalises and validates a DNS domain name; also used for domain-level list entries.
pub fn normalise_domain(domain: &str) -> Result<String, AddressError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(AddressError::DomainTooLong);
    }
    let lower = domain.to_ascii_lowercase();
    let bad = |why| AddressError::BadDomain(domain.to_string(), why);
    let labels: Vec<&str> = lower.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("it needs at least two labels, like example.org"));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(bad("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("only letters, digits, '-' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(lower)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.text)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Parses a stored address (a database column read as text).
impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A validated, normalised DNS domain: the domain part of an address, or the domain
/// a client discovered a server by (the login transcript binds it, docs/protocol.md §9).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses and normalises a domain name (lowercase, no trailing dot).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        normalise_domain(text).map(Self)
    }

    /// The domain of an address (already normalised).
    pub fn of(address: &Address) -> Self {
        Self(address.domain().to_string())
    }

    /// The normalised form, the one hashed and sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

impl serde::Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let cases = [
            ("alice#example.org", "alice#example.org"),
            ("Alice#Example.ORG", "alice#example.org"),
            ("bob42#mail.example.co.uk.", "bob42#mail.example.co.uk"),
            ("X#a-b.c1", "x#a-b.c1"),
        ];
        for (input, normal) in cases {
            let address = Address::parse(input).unwrap();
            assert_eq!(address.as_str(), normal, "{input}");
            assert_eq!(Address::parse(address.as_str()).unwrap(), address);
        }
    }

    #[test]
    fn refuses_with_reasons() {
        let cases = [
            ("alice", AddressError::MissingSeparator('#')),
            ("a#b#example.org", AddressError::ExtraSeparator('#')),
            ("#example.org", AddressError::EmptyLocal),
            ("first.last#example.org", AddressError::LocalCharacter('.')),
            ("al ice#example.org", AddressError::LocalCharacter(' ')),
            ("ålice#example.org", AddressError::LocalCharacter('å')),
            ("alice#", AddressError::EmptyDomain),
        ];
        for (input, error) in cases {
            assert_eq!(Address::parse(input), Err(error), "{input}");
        }
        for bad in ["alice#localhost", "alice#exa mple.org", "alice#-x.org", "alice#a..org", "alice#x_y.org"] {
            assert!(matches!(Address::parse(bad), Err(AddressError::BadDomain(..))), "{bad}");
        }
        assert_eq!(Address::parse(&format!("{}#example.org", "a".repeat(65))), Err(AddressError::LocalTooLong));
        let long_domain = format!("a#{}.org", "a.".repeat(130));
        assert_eq!(Address::parse(&long_domain), Err(AddressError::DomainTooLong));
    }

    #[test]
    fn maps_email_addresses_both_ways() {
        let address = Address::from_email("Bob@Example.org").unwrap();
        assert_eq!(address.as_str(), "bob#example.org");
        assert_eq!(address.to_email(), "bob@example.org");
        assert_eq!(address.local(), "bob");
        assert_eq!(address.domain(), "example.org");
        assert_eq!(Address::from_email("a+tag@example.org"), Err(AddressError::LocalCharacter('+')));
        assert_eq!(Address::from_email("bob#example.org"), Err(AddressError::MissingSeparator('@')));
    }

    #[test]
    fn serde_validates() {
        let address: Address = serde_json::from_str("\"Carol#Example.org\"").unwrap();
        assert_eq!(serde_json::to_string(&address).unwrap(), "\"carol#example.org\"");
        assert!(serde_json::from_str::<Address>("\"carol@example.org\"").is_err());
    }

    #[test]
    fn domains_normalise_and_validate() {
        let domain: Domain = serde_json::from_str("\"Example.ORG.\"").unwrap();
        assert_eq!(domain.as_str(), "example.org");
        assert_eq!(serde_json::to_string(&domain).unwrap(), "\"example.org\"");
        assert_eq!(Domain::of(&Address::parse("alice#Example.org").unwrap()), domain);
        assert!(matches!(Domain::parse("localhost"), Err(AddressError::BadDomain(..))));
        assert!(serde_json::from_str::<Domain>("\"alice#example.org\"").is_err());
    }
}
