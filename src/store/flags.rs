//! IMAP message flags as the gateway keeps them (RFC 3501 §2.3.2): the system flags a
//! client may set, and keywords. A message's flags are a set without regard to case,
//! kept in the order they were first given (clients show them so). The database keeps
//! them as space-separated words (`\Seen $Work`); [`Flags::from_column`] and
//! [`Flags::to_column`] are the only places that text is read or written.

use std::fmt;

/// A keyword (`$Work`, `NonJunk`): an IMAP atom that does not start with `\`.
/// Compared without regard to case; shown as first given.
#[derive(Debug, Clone, Eq)]
pub struct Keyword(String);

impl Keyword {
    /// Validates an atom: no space, control character, `\` or `(){%*"]`.
    pub fn parse(text: &str) -> Result<Self, FlagError> {
        let bad = |c: char| c.is_ascii_control() || !c.is_ascii() || " (){%*\"\\]".contains(c);
        if text.is_empty() || text.chars().any(bad) {
            return Err(FlagError::Keyword(text.to_string()));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Keyword {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// One flag. `\Recent` is not one: it belongs to a session, never to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    Keyword(Keyword),
}

/// Why a word is not a flag the gateway keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("{0:?} is not a system flag the gateway keeps")]
    System(String),
    #[error("{0:?} is not a valid keyword")]
    Keyword(String),
}

impl std::str::FromStr for Flag {
    type Err = FlagError;

    fn from_str(text: &str) -> Result<Self, FlagError> {
        let Some(system) = text.strip_prefix('\\') else { return Keyword::parse(text).map(Flag::Keyword) };
        Ok(match system.to_ascii_lowercase().as_str() {
            "seen" => Flag::Seen,
            "answered" => Flag::Answered,
            "flagged" => Flag::Flagged,
            "deleted" => Flag::Deleted,
            "draft" => Flag::Draft,
            _ => return Err(FlagError::System(text.to_string())),
        })
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Keyword(word) => word.as_str(),
        })
    }
}

/// A message's flags: a set, in the order first given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags(Vec<Flag>);

impl Flags {
    /// The flags of a stored column. Words that are not flags the gateway keeps (such as
    /// `\Recent`) are left out, and a repeated flag counts once.
    pub fn from_column(text: &str) -> Self {
        text.split_whitespace().filter_map(|word| word.parse().ok()).collect()
    }

    /// The stored form: flags separated by single spaces.
    pub fn to_column(&self) -> String {
        self.to_string()
    }

    pub fn contains(&self, flag: &Flag) -> bool {
        self.0.contains(flag)
    }

    /// Adds `flag` at the end unless the set holds it.
    pub fn insert(&mut self, flag: Flag) {
        if !self.contains(&flag) {
            self.0.push(flag);
        }
    }

    pub fn remove(&mut self, flag: &Flag) {
        self.0.retain(|f| f != flag);
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: Flag, on: bool) {
        if on {
            self.insert(flag);
        } else {
            self.remove(&flag);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Flag> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The flags but `flag`, as sorted words (a comparable form for two sets).
    pub fn words_without(&self, flag: &Flag) -> Vec<String> {
        let mut words: Vec<String> = self.0.iter().filter(|f| *f != flag).map(Flag::to_string).collect();
        words.sort();
        words
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(flags: I) -> Self {
        let mut set = Flags::default();
        for flag in flags {
            set.insert(flag);
        }
        set
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, flag) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{flag}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_a_set_without_regard_to_case() {
        let flags = Flags::from_column("\\Seen \\seen $Work  \\Flagged $work");
        assert_eq!(flags.to_column(), "\\Seen $Work \\Flagged");
        assert!(flags.contains(&"$WORK".parse().unwrap()));
    }

    #[test]
    fn words_that_are_not_kept_flags_are_left_out() {
        assert_eq!(Flags::from_column("\\Recent \\Bogus \\draft ok").to_column(), "\\Draft ok");
        assert!("".parse::<Flag>().is_err());
        assert!("a(b".parse::<Flag>().is_err());
        assert_eq!("\\ANSWERED".parse::<Flag>(), Ok(Flag::Answered));
    }

    #[test]
    fn set_and_remove_keep_the_order_of_the_rest() {
        let mut flags = Flags::from_column("$A \\Seen $B");
        flags.set(Flag::Seen, false);
        flags.set(Flag::Deleted, true);
        assert_eq!(flags.to_column(), "$A $B \\Deleted");
        assert_eq!(flags.words_without(&Flag::Deleted), vec!["$A", "$B"]);
    }
}
