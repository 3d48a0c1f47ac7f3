//! The keystore's part in devices (docs/devices.md): this machine's device key pair,
//! the account's device list, and the conversions between the keystore and the
//! secrets an approval or a key share carries (`smimp::device::AccountSecrets`).

use rand_core::OsRng;
use zeroize::Zeroizing;

use super::{Keystore, MessageKey, OwnDeviceParts};
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxPublicKey, BoxSecretKey, MasterKey, SecretBoxKey};
use crate::smimp::device::{hex32, AccountSecrets, DeviceEntry, DeviceError, DeviceKeys, SecretKeyEntry};

/// This machine as a device of the account: its name and key pair.
pub struct OwnDevice {
    pub name: String,
    pub keys: DeviceKeys,
}

impl OwnDevice {
    pub(crate) fn to_parts(&self) -> OwnDeviceParts {
        OwnDeviceParts {
            name: self.name.clone(),
            sign_seed: self.keys.sign_key().seed(),
            box_secret: self.keys.box_key().to_bytes(),
        }
    }

    pub(crate) fn from_parts(parts: &OwnDeviceParts) -> Self {
        Self { name: parts.name.clone(), keys: DeviceKeys::from_parts(&parts.sign_seed, *parts.box_secret) }
    }
}

impl std::fmt::Debug for OwnDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnDevice").field("name", &self.name).field("keys", &self.keys).finish()
    }
}

fn key_entry(key: &MessageKey) -> SecretKeyEntry {
    SecretKeyEntry {
        secret: hex::encode(key.secret.to_bytes().as_slice()),
        kind: key.kind,
        created_at: key.created_at,
        retired_at: key.retired_at,
    }
}

impl Keystore {
    /// This machine as a device, once it has been named.
    pub fn device(&self) -> Option<&OwnDevice> {
        self.device.as_ref()
    }

    /// Every device of the account, this one included.
    pub fn devices(&self) -> &[DeviceEntry] {
        &self.devices
    }

    /// This machine as a device: made (a fresh key pair, listed as the account's
    /// first device) on first use under `name`.
    pub fn ensure_device(&mut self, name: &str, now: i64) -> &OwnDevice {
        if self.device.is_none() {
            let own = OwnDevice { name: name.to_string(), keys: DeviceKeys::generate(&mut OsRng) };
            let entry =
                DeviceEntry { name: own.name.clone(), keys: own.keys.public(), enrolled_at: now, enrolled_by: None };
            self.devices.retain(|known| known.name != entry.name);
            self.devices.insert(0, entry);
            self.device = Some(own);
        }
        self.device.as_ref().expect("set above")
    }

    /// Lists a device (replacing one of the same name).
    pub fn add_device(&mut self, entry: DeviceEntry) {
        self.devices.retain(|known| known.name != entry.name);
        self.devices.push(entry);
    }

    /// Takes a device off the list; returns it if it was there.
    pub fn remove_device(&mut self, name: &str) -> Option<DeviceEntry> {
        let at = self.devices.iter().position(|known| known.name == name)?;
        Some(self.devices.remove(at))
    }

    /// Replaces the device list (from a share of the account's current list).
    pub fn set_devices(&mut self, devices: Vec<DeviceEntry>) {
        self.devices = devices;
    }

    /// Every secret a new device needs, with the device list: what an approval seals.
    pub fn to_secrets(&self) -> AccountSecrets {
        AccountSecrets {
            master_seed: hex::encode(self.master.seed().as_slice()),
            previous_master_seeds: self.previous_masters.iter().map(|m| hex::encode(m.seed().as_slice())).collect(),
            message_keys: self.message_keys.iter().map(key_entry).collect(),
            storage_key: hex::encode(self.storage_key.to_bytes().as_slice()),
            devices: self.devices.clone(),
        }
    }

    /// The message keys with these public halves, and the device list: what a share carries.
    pub fn share_of(&self, publics: &[BoxPublicKey]) -> AccountSecrets {
        let mut share = AccountSecrets::default();
        share.message_keys =
            self.message_keys.iter().filter(|key| publics.contains(&key.public)).map(key_entry).collect();
        share.devices = self.devices.clone();
        share
    }

    /// A keystore made from an approval's secrets on the device `own`.
    pub fn from_secrets(address: Address, secrets: &AccountSecrets, own: OwnDevice) -> Result<Self, DeviceError> {
        let master = MasterKey::from_seed(&*secrets.master_seed()?);
        let storage_key = SecretBoxKey::from_bytes(*hex32(&secrets.storage_key, "storage key")?);
        let mut keystore = Keystore::new(address, master, storage_key);
        for seed in &secrets.previous_master_seeds {
            keystore.previous_masters.push(MasterKey::from_seed(&*hex32(seed, "previous master seed")?));
        }
        keystore.add_shared_keys(secrets)?;
        keystore.devices = secrets.devices.clone();
        keystore.device = Some(own);
        Ok(keystore)
    }

    /// Takes over the master key a share carries (after a revocation elsewhere) when it
    /// is not the current one; the current one joins the previous masters. Returns
    /// whether it changed.
    pub fn take_master(&mut self, secrets: &AccountSecrets) -> Result<bool, DeviceError> {
        if secrets.master_seed.is_empty() {
            return Ok(false);
        }
        let new = MasterKey::from_seed(&*secrets.master_seed()?);
        if new.public() == self.master.public() {
            return Ok(false);
        }
        self.rotate_master(new);
        Ok(true)
    }

    /// Adds the message keys of a share that this keystore lacks, keeping their
    /// times; a key known already keeps its entry, but a retirement the share knows
    /// of is taken over. Returns how many keys were new.
    pub fn add_shared_keys(&mut self, secrets: &AccountSecrets) -> Result<usize, DeviceError> {
        let mut added = 0;
        for entry in &secrets.message_keys {
            let bytes: Zeroizing<[u8; 32]> = hex32(&entry.secret, "message key")?;
            let secret = BoxSecretKey::from_bytes(*bytes);
            let public = secret.public();
            if self.find(&public).is_none() {
                self.message_keys.push(MessageKey {
                    secret,
                    public,
                    kind: entry.kind,
                    created_at: entry.created_at,
                    retired_at: entry.retired_at,
                });
                added += 1;
            } else if let Some(retired) = entry.retired_at {
                self.retire(&public, retired);
            }
        }
        Ok(added)
    }
}
