//! The signed, hash-chained profile history and the trust-on-first-use pin
//! (docs/protocol.md §5.1–5.2; spec "Get User Information", "Update Profile",
//! "Initialize Account").
//!
//! Pure. A record's `data` is kept as the exact text that was signed; nothing is
//! ever re-serialised before hashing (spec "JSON Canonicalization").

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::{Hash, MasterKey, MasterPublicKey, Signature};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::transcript::{Purpose, Transcript};

/// Why a history, or one of its records, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("the history is empty")]
    Empty,
    #[error("record {index}: its data is not a valid profile document: {reason}")]
    Data { index: usize, reason: String },
    #[error("record {index}: it is for {found}, not {expected}")]
    AddressMismatch { index: usize, expected: String, found: String },
    #[error("the first record names a previous record, so the history does not start at the account's creation")]
    FirstHasPrevious,
    #[error("record {index}: it does not name the previous record")]
    MissingPrevious { index: usize },
    #[error("record {index}: the chain is broken (it names a previous record that is not the one before it)")]
    BrokenChain { index: usize },
    #[error("record {index}: the signature is not by the key of the record before it (or of itself, for the first)")]
    BadSignature { index: usize },
    #[error("record {index}: its date goes back in time")]
    TimeWentBackwards { index: usize },
    #[error("the signing key is not the profile's current master key")]
    WrongSigner,
}

/// The fields a user chooses; everything else in a record is protocol bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileFields {
    pub name: Option<String>,
    pub website: Option<String>,
    pub profiles: Vec<String>,
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The document inside a record's `data` text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileData {
    pub address: Address,
    pub public_key: MasterPublicKey,
    pub previous_signed_hash: Option<Signature>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
    pub changed_at: Timestamp,
}

impl ProfileData {
    /// The user-chosen fields of this record.
    pub fn fields(&self) -> ProfileFields {
        ProfileFields {
            name: self.name.clone(),
            website: self.website.clone(),
            profiles: self.profiles.clone(),
            additional_data: self.additional_data.clone(),
        }
    }
}

/// One record of a history as it travels: the signed text and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRecord {
    pub data: String,
    pub signed_hash: Signature,
}

impl ProfileRecord {
    /// The first record of an account, signed by its own new key (spec "Initialize Account").
    pub fn initial(key: &MasterKey, address: &Address, fields: ProfileFields, at: Timestamp) -> Self {
        Self::signed(key, address, key.public(), None, fields, at)
    }

    /// The next record after `previous`: signed by `signer`, which must be the previous
    /// record's key; `new_key` rotates the master key when it differs.
    pub fn next(
        previous: &VerifiedRecord,
        signer: &MasterKey,
        new_key: MasterPublicKey,
        fields: ProfileFields,
        at: Timestamp,
    ) -> Result<Self, ProfileError> {
        if signer.public() != previous.data.public_key {
            return Err(ProfileError::WrongSigner);
        }
        if at < previous.data.changed_at {
            return Err(ProfileError::TimeWentBackwards { index: 0 });
        }
        let address = previous.data.address.clone();
        Ok(Self::signed(signer, &address, new_key, Some(previous.record.signed_hash), fields, at))
    }

    fn signed(
        signer: &MasterKey,
        address: &Address,
        public_key: MasterPublicKey,
        previous_signed_hash: Option<Signature>,
        fields: ProfileFields,
        at: Timestamp,
    ) -> Self {
        let data = ProfileData {
            address: address.clone(),
            public_key,
            previous_signed_hash,
            name: fields.name,
            website: fields.website,
            profiles: fields.profiles,
            additional_data: fields.additional_data,
            changed_at: at,
        };
        let data = serde_json::to_string(&data).expect("a profile document always serialises");
        let signed_hash = signer.sign(&record_hash(&data));
        Self { data, signed_hash }
    }

    /// Parses the signed text (without checking the signature).
    pub fn parse_data(&self, index: usize) -> Result<ProfileData, ProfileError> {
        serde_json::from_str(&self.data).map_err(|e| ProfileError::Data { index, reason: e.to_string() })
    }
}

/// The hash a record's signature covers.
pub fn record_hash(data: &str) -> Hash {
    Transcript::new(Purpose::ProfileRecord).field(data).hash()
}

/// A record whose place in a verified chain has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    pub record: ProfileRecord,
    pub data: ProfileData,
}

/// A whole history that verified, oldest first; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHistory {
    records: Vec<VerifiedRecord>,
}

impl VerifiedHistory {
    /// The records, oldest first.
    pub fn records(&self) -> &[VerifiedRecord] {
        &self.records
    }

    /// The newest record: the current profile.
    pub fn latest(&self) -> &VerifiedRecord {
        self.records.last().expect("a verified history is never empty")
    }

    /// The key of the original record.
    pub fn first_key(&self) -> MasterPublicKey {
        self.records[0].data.public_key
    }

    /// The current master key.
    pub fn current_key(&self) -> MasterPublicKey {
        self.latest().data.public_key
    }

    /// Whether `key` was the master key at any point (used for older messages).
    pub fn contains_key(&self, key: &MasterPublicKey) -> bool {
        self.records.iter().any(|r| &r.data.public_key == key)
    }

    /// Each earlier key a later record replaced, with the `changed_at` of the record
    /// that retired it (for a key used more than once, its last retirement). The
    /// current key is not listed: it is retired by nothing yet.
    pub fn retired_keys(&self) -> HashMap<MasterPublicKey, Timestamp> {
        let current = self.current_key();
        let mut retired = HashMap::new();
        for pair in self.records.windows(2) {
            let (before, after) = (&pair[0].data, &pair[1].data);
            if before.public_key != after.public_key && before.public_key != current {
                retired.insert(before.public_key, after.changed_at);
            }
        }
        retired
    }

    /// The pin to keep after trusting this history.
    pub fn pin(&self) -> Pin {
        Pin {
            first_key: self.first_key(),
            latest_key: self.current_key(),
            latest_signed_hash: self.latest().record.signed_hash,
            length: self.records.len() as u64,
        }
    }

    /// Appends a record that extends this history (after an update this client made).
    pub fn extend(mut self, record: ProfileRecord) -> Result<Self, ProfileError> {
        let index = self.records.len();
        let data = check_next(&self.records[index - 1], &record, index)?;
        self.records.push(VerifiedRecord { record, data });
        Ok(self)
    }
}

/// Verifies a whole history for `address` (docs/protocol.md §5.1).
pub fn verify_history(address: &Address, records: &[ProfileRecord]) -> Result<VerifiedHistory, ProfileError> {
    let first = records.first().ok_or(ProfileError::Empty)?;
    let data = first.parse_data(0)?;
    check_address(address, &data, 0)?;
    if data.previous_signed_hash.is_some() {
        return Err(ProfileError::FirstHasPrevious);
    }
    data.public_key
        .verify(&record_hash(&first.data), &first.signed_hash)
        .map_err(|_| ProfileError::BadSignature { index: 0 })?;
    let mut verified = Vec::with_capacity(records.len());
    verified.push(VerifiedRecord { record: first.clone(), data });
    for (index, record) in records.iter().enumerate().skip(1) {
        let data = check_next(&verified[index - 1], record, index)?;
        check_address(address, &data, index)?;
        verified.push(VerifiedRecord { record: record.clone(), data });
    }
    Ok(VerifiedHistory { records: verified })
}

fn check_address(address: &Address, data: &ProfileData, index: usize) -> Result<(), ProfileError> {
    if &data.address == address {
        Ok(())
    } else {
        Err(ProfileError::AddressMismatch { index, expected: address.to_string(), found: data.address.to_string() })
    }
}

fn check_next(previous: &VerifiedRecord, record: &ProfileRecord, index: usize) -> Result<ProfileData, ProfileError> {
    let data = record.parse_data(index)?;
    if data.address != previous.data.address {
        return Err(ProfileError::AddressMismatch {
            index,
            expected: previous.data.address.to_string(),
            found: data.address.to_string(),
        });
    }
    match data.previous_signed_hash {
        None => return Err(ProfileError::MissingPrevious { index }),
        Some(named) if named != previous.record.signed_hash => return Err(ProfileError::BrokenChain { index }),
        Some(_) => {}
    }
    previous
        .data
        .public_key
        .verify(&record_hash(&record.data), &record.signed_hash)
        .map_err(|_| ProfileError::BadSignature { index })?;
    if data.changed_at < previous.data.changed_at {
        return Err(ProfileError::TimeWentBackwards { index });
    }
    Ok(data)
}

/// What a client keeps after first contact with an address (docs/protocol.md §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub first_key: MasterPublicKey,
    pub latest_key: MasterPublicKey,
    pub latest_signed_hash: Signature,
    pub length: u64,
}

/// How a freshly verified history relates to the pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// The same history.
    Unchanged,
    /// The pinned history with records added after it; carries the pin to keep now.
    Extended(Pin),
    /// Records the client has seen are missing: refuse the address.
    Truncated { pinned: u64, found: u64 },
    /// A different history: refuse the address.
    Replaced,
}

impl PinCheck {
    /// Whether the address may still be used.
    pub fn is_trusted(&self) -> bool {
        matches!(self, PinCheck::Unchanged | PinCheck::Extended(_))
    }
}

impl Pin {
    /// Compares a verified history with this pin.
    pub fn check(&self, history: &VerifiedHistory) -> PinCheck {
        let found = history.records.len() as u64;
        if history.first_key() != self.first_key {
            return PinCheck::Replaced;
        }
        if found < self.length {
            return PinCheck::Truncated { pinned: self.length, found };
        }
        let Some(at_pin) = usize::try_from(self.length - 1).ok().and_then(|i| history.records.get(i)) else {
            return PinCheck::Replaced;
        };
        if at_pin.record.signed_hash != self.latest_signed_hash || at_pin.data.public_key != self.latest_key {
            return PinCheck::Replaced;
        }
        if found == self.length {
            PinCheck::Unchanged
        } else {
            PinCheck::Extended(history.pin())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix(1_790_000_000 + seconds).unwrap()
    }

    fn alice() -> Address {
        Address::parse("alice#example.org").unwrap()
    }

    /// A history of three records: creation, a name change, a key rotation.
    fn history() -> (Vec<ProfileRecord>, MasterKey) {
        let first = MasterKey::generate(&mut OsRng);
        let second = MasterKey::generate(&mut OsRng);
        let r0 = ProfileRecord::initial(&first, &alice(), ProfileFields::default(), at(0));
        let h = verify_history(&alice(), std::slice::from_ref(&r0)).unwrap();
        let named = ProfileFields { name: Some("Alice".into()), ..Default::default() };
        let r1 = ProfileRecord::next(h.latest(), &first, first.public(), named.clone(), at(10)).unwrap();
        let h = h.extend(r1.clone()).unwrap();
        let r2 = ProfileRecord::next(h.latest(), &first, second.public(), named, at(20)).unwrap();
        (vec![r0, r1, r2], second)
    }

    #[test]
    fn a_history_with_a_rotation_verifies() {
        let (records, current) = history();
        let verified = verify_history(&alice(), &records).unwrap();
        assert_eq!(verified.current_key(), current.public());
        assert_ne!(verified.first_key(), current.public());
        assert_eq!(verified.latest().data.name.as_deref(), Some("Alice"));
        assert_eq!(verified.records().len(), 3);
    }

    #[test]
    fn retired_keys_carry_the_time_of_the_record_that_replaced_them() {
        let (records, _) = history();
        let verified = verify_history(&alice(), &records).unwrap();
        let first = verified.first_key();
        // The name change (record 1) kept the key; the rotation (record 2) retired it.
        assert_eq!(verified.retired_keys(), HashMap::from([(first, at(20))]));
        assert!(verify_history(&alice(), &records[..2]).unwrap().retired_keys().is_empty());

        // Rotated away, back, and away again: the last retirement counts; the current
        // key is never listed, even when it was also an earlier one.
        let (k0, k1, k2) =
            (MasterKey::generate(&mut OsRng), MasterKey::generate(&mut OsRng), MasterKey::generate(&mut OsRng));
        let none = ProfileFields::default;
        let r0 = ProfileRecord::initial(&k0, &alice(), none(), at(0));
        let h = verify_history(&alice(), std::slice::from_ref(&r0)).unwrap();
        let r1 = ProfileRecord::next(h.latest(), &k0, k1.public(), none(), at(10)).unwrap();
        let h = h.extend(r1).unwrap();
        let r2 = ProfileRecord::next(h.latest(), &k1, k0.public(), none(), at(20)).unwrap();
        let h = h.extend(r2).unwrap();
        assert_eq!(h.retired_keys(), HashMap::from([(k1.public(), at(20))]));
        let r3 = ProfileRecord::next(h.latest(), &k0, k2.public(), none(), at(30)).unwrap();
        let h = h.extend(r3).unwrap();
        assert_eq!(h.retired_keys(), HashMap::from([(k0.public(), at(30)), (k1.public(), at(20))]));
    }

    #[test]
    fn only_the_current_key_may_sign_the_next_record() {
        let (records, current) = history();
        let verified = verify_history(&alice(), &records[..2]).unwrap();
        let err = ProfileRecord::next(verified.latest(), &current, current.public(), ProfileFields::default(), at(30));
        assert_eq!(err, Err(ProfileError::WrongSigner));
        // A record signed by the new key instead of the prior one is refused by verification.
        let forged = ProfileRecord::signed(
            &current,
            &alice(),
            current.public(),
            Some(records[1].signed_hash),
            ProfileFields::default(),
            at(30),
        );
        let err = verify_history(&alice(), &[records[0].clone(), records[1].clone(), forged]);
        assert_eq!(err, Err(ProfileError::BadSignature { index: 2 }));
    }

    #[test]
    fn broken_histories_are_refused_with_the_reason() {
        let (records, _) = history();
        assert_eq!(verify_history(&alice(), &[]), Err(ProfileError::Empty));
        assert_eq!(
            verify_history(&alice(), &[records[0].clone(), records[2].clone()]),
            Err(ProfileError::BrokenChain { index: 1 })
        );
        assert_eq!(verify_history(&alice(), &records[1..]), Err(ProfileError::FirstHasPrevious));
        let bob = Address::parse("bob#example.org").unwrap();
        assert!(matches!(verify_history(&bob, &records), Err(ProfileError::AddressMismatch { index: 0, .. })));
        let mut garbled = records.clone();
        garbled[1].data.push(' ');
        assert_eq!(verify_history(&alice(), &garbled), Err(ProfileError::BadSignature { index: 1 }));
        let mut not_json = records;
        not_json[2].data = "{".into();
        assert!(matches!(verify_history(&alice(), &not_json), Err(ProfileError::Data { index: 2, .. })));
    }

    #[test]
    fn unknown_fields_in_data_are_refused() {
        let key = MasterKey::generate(&mut OsRng);
        let record = ProfileRecord::initial(&key, &alice(), ProfileFields::default(), at(0));
        let mut data: serde_json::Value = serde_json::from_str(&record.data).unwrap();
        data["surprise"] = serde_json::json!(1);
        let text = data.to_string();
        let resigned = ProfileRecord { signed_hash: key.sign(&record_hash(&text)), data: text };
        assert!(matches!(verify_history(&alice(), &[resigned]), Err(ProfileError::Data { .. })));
    }

    #[test]
    fn the_pin_tells_unchanged_extended_truncated_and_replaced_apart() {
        let (records, _) = history();
        let pin = verify_history(&alice(), &records[..2]).unwrap().pin();
        let same = verify_history(&alice(), &records[..2]).unwrap();
        assert_eq!(pin.check(&same), PinCheck::Unchanged);
        let longer = verify_history(&alice(), &records).unwrap();
        assert_eq!(pin.check(&longer), PinCheck::Extended(longer.pin()));
        let shorter = verify_history(&alice(), &records[..1]).unwrap();
        assert_eq!(pin.check(&shorter), PinCheck::Truncated { pinned: 2, found: 1 });
        let (other, _) = history();
        assert_eq!(pin.check(&verify_history(&alice(), &other).unwrap()), PinCheck::Replaced);
        // Same first record, a different second record: a fork, so replaced.
        let k = MasterKey::generate(&mut OsRng);
        let r0 = ProfileRecord::initial(&k, &alice(), ProfileFields::default(), at(0));
        let h = verify_history(&alice(), std::slice::from_ref(&r0)).unwrap();
        let a = ProfileRecord::next(h.latest(), &k, k.public(), ProfileFields::default(), at(1)).unwrap();
        let named = ProfileFields { name: Some("fork".into()), ..Default::default() };
        let b = ProfileRecord::next(h.latest(), &k, k.public(), named, at(1)).unwrap();
        let pin = verify_history(&alice(), &[r0.clone(), a]).unwrap().pin();
        assert_eq!(pin.check(&verify_history(&alice(), &[r0, b]).unwrap()), PinCheck::Replaced);
        assert!(PinCheck::Unchanged.is_trusted());
        assert!(!PinCheck::Replaced.is_trusted());
    }
}
