//! Transcripts: the exact bytes under every hash and signature (docs/protocol.md §3).
//!
//! `T(label, f1, …, fn) = LP(label) ‖ LP(f1) ‖ … ‖ LP(fn)`, `LP(x) = u64_be(len x) ‖ x`.
//! Each purpose has its own label so no two purposes can collide, and every field
//! is length-prefixed so no two field lists can either. Pure: no I/O.

/// The purposes that are hashed; each maps to one domain-separation label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ProfileRecord,
    MessageKey,
    CreateSession,
    LoginToken,
    MessageField,
    MessageHash,
    ProofOfWork,
    Avatar,
    ListEntry,
    InitPassword,
    DeviceRequest,
    DeviceWitness,
    DeviceApproval,
    DeviceShare,
    DevicePin,
}

impl Purpose {
    /// The label bytes written first in the transcript.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::ProfileRecord => "SMIMP-v0.1/profile-record",
            Purpose::MessageKey => "SMIMP-v0.1/message-key",
            Purpose::CreateSession => "SMIMP-v0.1/create-session",
            Purpose::LoginToken => "SMIMP-v0.1/login-token",
            Purpose::MessageField => "SMIMP-v0.1/message-field",
            Purpose::MessageHash => "SMIMP-v0.1/message-hash",
            Purpose::ProofOfWork => "SMIMP-v0.1/pow",
            Purpose::Avatar => "SMIMP-v0.1/avatar",
            Purpose::ListEntry => "SMIMP-v0.1/list-entry",
            Purpose::InitPassword => "SMIMP-v0.1/init-password",
            Purpose::DeviceRequest => "SMIMP-v0.1/x-device-request",
            Purpose::DeviceWitness => "SMIMP-v0.1/x-device-witness",
            Purpose::DeviceApproval => "SMIMP-v0.1/x-device-approval",
            Purpose::DeviceShare => "SMIMP-v0.1/x-device-share",
            Purpose::DevicePin => "SMIMP-v0.1/x-device-pin",
        }
    }
}

/// Builds a transcript; used by every hash in the protocol core.
#[derive(Debug, Clone)]
pub struct Transcript {
    bytes: Vec<u8>,
}

impl Transcript {
    /// Starts a transcript for one purpose.
    pub fn new(purpose: Purpose) -> Self {
        Self::with_label(purpose.label().as_bytes())
    }

    /// Starts a transcript with an arbitrary label (for vectors and tests).
    pub fn with_label(label: &[u8]) -> Self {
        let mut t = Self { bytes: Vec::with_capacity(256) };
        t.push(label);
        t
    }

    /// Appends one length-prefixed field.
    pub fn field(mut self, field: impl AsRef<[u8]>) -> Self {
        self.push(field.as_ref());
        self
    }

    fn push(&mut self, field: &[u8]) {
        self.bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
        self.bytes.extend_from_slice(field);
    }

    /// The transcript bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// BLAKE2b-256 of the transcript.
    pub fn hash(&self) -> crate::smimp::crypto::Hash {
        crate::smimp::crypto::blake2b_256(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed_big_endian() {
        let bytes = Transcript::with_label(b"L").field(b"ab").field(b"").into_bytes();
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 1, b'L'];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']);
        expected.extend_from_slice(&[0; 8]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn shifting_bytes_between_fields_changes_the_hash() {
        let a = Transcript::with_label(b"L").field(b"ab").field(b"c").hash();
        let b = Transcript::with_label(b"L").field(b"a").field(b"bc").hash();
        assert_ne!(a, b);
    }

    #[test]
    fn every_purpose_has_a_distinct_label() {
        let all = [
            Purpose::ProfileRecord,
            Purpose::MessageKey,
            Purpose::CreateSession,
            Purpose::LoginToken,
            Purpose::MessageField,
            Purpose::MessageHash,
            Purpose::ProofOfWork,
            Purpose::Avatar,
            Purpose::ListEntry,
            Purpose::InitPassword,
            Purpose::DeviceRequest,
            Purpose::DeviceWitness,
            Purpose::DeviceApproval,
            Purpose::DeviceShare,
            Purpose::DevicePin,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|p| p.label()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
