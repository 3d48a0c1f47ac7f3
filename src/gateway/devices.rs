//! The `device` commands (docs/devices.md): a new machine asks to join an account
//! (`device request`), an enrolled one lists and answers requests (`device pending`,
//! `approve`, `deny`). The secrets travel sealed to the new device's key and signed by
//! the account's master key; the new device trusts that key on first use of the
//! account's profile history, as it would any correspondent's.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use rand_core::{OsRng, RngCore};

use crate::backend::trust::{trusted_key, KeyTrustError};
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::clock::unix_now;
use crate::gateway::context::{CommandError, Context};
use crate::gateway::enroll::{owner, parse_address, Initialised};
use crate::keystore::{create_parent_dir, Keystore, KeystoreLock, OwnDevice};
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::device::{
    check_name, open_approval, pin_proof, request_hash, request_pow, seal_approval, seal_share, witness, DeviceEntry,
    DeviceError, DeviceKeys, RequestContext, WitnessCode,
};
use crate::smimp::encoding::Id32;
use crate::smimp::pow::SolveControl;
use crate::smimp::wire::{DenyReason, DeviceRequest, DeviceShare, PendingRequest, RequestState};
use crate::store::AccountRecord;

/// Why a device command failed, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeviceCommandError {
    #[error("{0}")]
    Device(#[from] DeviceError),
    #[error("no approval arrived within {waited:?}: the request was neither approved nor denied. Approve it on an enrolled machine with `smimp-gateway device approve` (the server may also be holding the approval back), then request again")]
    Withheld { waited: Duration },
    #[error("{}", denied(*.0))]
    Denied(Option<DenyReason>),
    #[error("the request expired before it was approved: request again")]
    Expired,
    #[error("the approval was refused: {0}. Nothing was written; ask for a new approval")]
    BadApproval(DeviceError),
    #[error("the account's master key cannot be trusted: {0}")]
    Untrusted(KeyTrustError),
    #[error("{id:?} names no pending request of {address} (run `smimp-gateway device pending`)")]
    NoSuchRequest { id: String, address: String },
    #[error("{id:?} is the start of several pending requests' ids: give more of it")]
    Ambiguous { id: String },
    #[error("the witness code of request {id} is {shown}, not {typed}: the request's keys are not the ones the new machine made (the server may have swapped them). Nothing was approved; deny it")]
    CodeMismatch { id: String, shown: String, typed: String },
    #[error("a device named {name:?} is enrolled already: request again under another --name")]
    NameTaken { name: String },
    #[error("this gateway serves several accounts ({accounts}): choose one with --address")]
    WhichAccount { accounts: String },
    #[error("this gateway serves no account yet: run `init` or `device request` first")]
    NoAccount,
    #[error("this machine is {name:?}: revoke it from another enrolled machine")]
    RevokeSelf { name: String },
    #[error("{address} has no device named {name:?} (run `smimp-gateway device list`)")]
    NoSuchDevice { name: String, address: String },
    #[error("the proof of work could not be computed: {0}")]
    Work(String),
}

fn denied(reason: Option<DenyReason>) -> &'static str {
    match reason {
        None => "the request was denied on an enrolled device",
        Some(DenyReason::WrongPin) => "the request was refused: the PIN is wrong (check it, or get a new one with `smimp-gateway device pin` on an enrolled machine)",
        Some(DenyReason::UsedPin) => "the request was refused: the PIN was already used (a PIN works once: get a new one with `smimp-gateway device pin`)",
        Some(DenyReason::ExpiredPin) => "the request was refused: the PIN has expired (get a new one with `smimp-gateway device pin`)",
    }
}

impl From<DeviceCommandError> for CommandError {
    fn from(err: DeviceCommandError) -> Self {
        CommandError::Device(err)
    }
}

fn client_error(ctx: &Context, address: &Address, err: ClientError) -> CommandError {
    ctx.explain(address.domain(), err)
}

/// The name this machine goes by when it names itself: its host name.
pub fn machine_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name = name.trim();
    if check_name(name).is_ok() {
        name.to_string()
    } else {
        "first device".to_string()
    }
}

/// A request posted from a new machine, waiting for its answer.
#[derive(Debug)]
pub struct Requested {
    pub address: Address,
    pub name: String,
    pub code: WitnessCode,
    pub request_id: Id32,
    pub expires_at: i64,
    nonce: Id32,
    keys: DeviceKeys,
    server: ServerClient,
}

/// `device request`: makes this machine's device keys, answers the server's
/// challenge (proof of work), posts the request and returns it with its witness code.
pub async fn request(
    ctx: &Context,
    address_text: &str,
    name: &str,
    pin: Option<&str>,
) -> Result<Requested, CommandError> {
    let address = parse_address(address_text)?;
    let path = ctx.config.keystore_path(&address);
    if path.exists() {
        return Err(CommandError::AlreadyHere { address: address.to_email(), keystore: path.display().to_string() });
    }
    check_name(name).map_err(DeviceCommandError::from)?;
    let server = ctx.server(address.domain()).await?;
    let challenge = server.device_challenge(&address).await.map_err(|e| client_error(ctx, &address, e))?;
    let keys = DeviceKeys::generate(&mut OsRng);
    let device = keys.public();
    let hash = request_hash(&address, name, &device, &challenge.nonce);
    let preimage = request_pow(&address, &hash, &challenge.nonce);
    let zero_bits = challenge.zero_bits;
    let pow = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        preimage.solve(zero_bits, &Id32::random(&mut OsRng), threads, &SolveControl::default())
    })
    .await
    .map_err(|e| DeviceCommandError::Work(e.to_string()))?
    .map_err(|e| DeviceCommandError::Work(e.to_string()))?;
    let request = DeviceRequest {
        name: name.to_string(),
        device,
        nonce: challenge.nonce,
        signature: keys.sign_key().sign(&hash),
        pow,
        pin_proof: pin.map(|pin| pin_proof(pin, &hash)),
    };
    let posted = server.device_request(&address, &request).await.map_err(|e| client_error(ctx, &address, e))?;
    Ok(Requested {
        code: witness(&address, name, &device, &challenge.nonce),
        name: name.to_string(),
        request_id: posted.request_id,
        expires_at: posted.expires_at.unix(),
        nonce: challenge.nonce,
        keys,
        server,
        address,
    })
}

/// What `device request` made once approved.
#[derive(Debug)]
pub struct Enrolled {
    pub account: Initialised,
    /// The account's master key, trusted on first use: the user may compare it.
    pub master_key: MasterPublicKey,
}

/// Waits (polling every `poll`, at most `wait`) for the answer to `requested`, checks
/// it, and writes the keystore: the account is then served by `run` on this machine.
pub async fn await_approval(
    ctx: &Context,
    requested: Requested,
    wait: Duration,
    poll: Duration,
) -> Result<Enrolled, CommandError> {
    let started = tokio::time::Instant::now();
    let approval = loop {
        let status = requested
            .server
            .device_status(requested.request_id)
            .await
            .map_err(|e| client_error(ctx, &requested.address, e))?;
        match (status.state, status.approval) {
            (RequestState::Approved, Some(approval)) => break approval,
            (RequestState::Denied, _) => return Err(DeviceCommandError::Denied(status.reason).into()),
            (RequestState::Expired, _) => return Err(DeviceCommandError::Expired.into()),
            _ if started.elapsed() + poll > wait => return Err(DeviceCommandError::Withheld { waited: wait }.into()),
            _ => tokio::time::sleep(poll).await,
        }
    };
    let Requested { address, name, request_id, nonce, keys, server, .. } = requested;
    let now = unix_now();
    let master = trusted_key(&server, &ctx.store, &address, now).await.map_err(DeviceCommandError::Untrusted)?;
    let device = keys.public();
    let context = RequestContext {
        address: &address,
        request_id: &request_id,
        name: &name,
        device: &device,
        server_nonce: &nonce,
    };
    let secrets =
        open_approval(&context, &approval, keys.box_key(), &master).map_err(DeviceCommandError::BadApproval)?;
    let mut keystore = Keystore::from_secrets(address.clone(), &secrets, OwnDevice { name, keys })
        .map_err(DeviceCommandError::BadApproval)?;
    let account = write_account(ctx, &mut keystore, now).await?;
    Ok(Enrolled { account, master_key: master })
}

/// Saves a keystore received by approval with a new local password and registers the account.
async fn write_account(ctx: &Context, keystore: &mut Keystore, now: i64) -> Result<Initialised, CommandError> {
    let address = keystore.address().clone();
    let path = ctx.config.keystore_path(&address);
    let _lock = KeystoreLock::take(&path)?;
    if path.exists() {
        return Err(CommandError::AlreadyHere { address: address.to_email(), keystore: path.display().to_string() });
    }
    let mut secret = [0u8; 18];
    OsRng.fill_bytes(&mut secret);
    let password = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    keystore.set_local_password(&password)?;
    create_parent_dir(&path)?;
    (ctx.save(&path))(keystore)?;
    let username = address.to_email();
    let record = AccountRecord {
        address: address.clone(),
        keystore_path: path.display().to_string(),
        username: username.clone(),
        created_at: now,
    };
    ctx.store.add_account(&record).await?;
    Ok(Initialised { address, username, password, keystore: PathBuf::from(&path) })
}

/// The account a command on an enrolled machine is about: the one given, or the only one.
pub async fn account_of(ctx: &Context, address: Option<&str>) -> Result<String, CommandError> {
    if let Some(text) = address {
        return Ok(text.to_string());
    }
    let accounts = ctx.store.accounts().await?;
    match accounts.as_slice() {
        [] => Err(DeviceCommandError::NoAccount.into()),
        [only] => Ok(only.address.to_email()),
        many => {
            let names: Vec<String> = many.iter().map(|a| a.address.to_email()).collect();
            Err(DeviceCommandError::WhichAccount { accounts: names.join(", ") }.into())
        }
    }
}

/// One pending request as `device pending` shows it.
#[derive(Debug, Clone)]
pub struct PendingView {
    /// The request id's first 12 hex digits (any unique start of it is accepted).
    pub short_id: String,
    pub request: PendingRequest,
    /// Computed here, from the keys and nonce the server lists.
    pub code: WitnessCode,
}

/// `device pending`: the account's pending requests with their witness codes.
pub async fn pending(ctx: &Context, address_text: &str) -> Result<Vec<PendingView>, CommandError> {
    let address = parse_address(address_text)?;
    let path = ctx.keystore_of(&address).await?;
    let keystore = Keystore::load(&path, &ctx.passphrase)?;
    let owner = owner(ctx, &address, &keystore).await?;
    let requests = owner.device_pending().await.map_err(|e| client_error(ctx, &address, e))?;
    let _ = owner.logout().await;
    Ok(requests.into_iter().map(|request| view(&address, request)).collect())
}

fn view(address: &Address, request: PendingRequest) -> PendingView {
    PendingView {
        short_id: request.request_id.to_hex()[..12].to_string(),
        code: witness(address, &request.name, &request.device, &request.nonce),
        request,
    }
}

/// The pending request whose id starts with `id`.
fn find(address: &Address, requests: Vec<PendingRequest>, id: &str) -> Result<PendingRequest, DeviceCommandError> {
    let wanted = id.trim().to_ascii_lowercase();
    let mut matching: Vec<PendingRequest> =
        requests.into_iter().filter(|r| !wanted.is_empty() && r.request_id.to_hex().starts_with(&wanted)).collect();
    match matching.len() {
        0 => Err(DeviceCommandError::NoSuchRequest { id: id.to_string(), address: address.to_email() }),
        1 => Ok(matching.remove(0)),
        _ => Err(DeviceCommandError::Ambiguous { id: id.to_string() }),
    }
}

/// `device approve ID [--code CODE]`: seals the account's secrets to the request's
/// device key, signed by the master key, after checking `code` (when given) against
/// the witness code computed here. Returns the approved request.
pub async fn approve(
    ctx: &Context,
    address_text: &str,
    id: &str,
    code: Option<&str>,
) -> Result<PendingView, CommandError> {
    let (address, path, mut keystore, _lock) = ctx.open_account(address_text).await?;
    let owner = owner(ctx, &address, &keystore).await?;
    let requests = owner.device_pending().await.map_err(|e| client_error(ctx, &address, e))?;
    let pending = view(&address, find(&address, requests, id)?);
    if let Some(typed) = code {
        if !pending.code.matches(typed) {
            let (shown, typed) = (pending.code.to_string(), typed.to_string());
            return Err(DeviceCommandError::CodeMismatch { id: pending.short_id, shown, typed }.into());
        }
    }
    grant(&mut keystore, &owner, &pending.request, unix_now()).await.map_err(|e| match e {
        GrantError::Refused(refused) => refused.into(),
        GrantError::Client(e) => client_error(ctx, &address, e),
    })?;
    (ctx.save(&path))(&keystore)?;
    let _ = owner.logout().await;
    Ok(pending)
}

/// Why a grant failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    Refused(DeviceCommandError),
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// Lists the request's device in `keystore` (this machine named on first use), seals
/// the account's secrets to it, signs, and posts the approval. The caller saves the
/// keystore afterwards (it holds the keystore's lock).
pub async fn grant(
    keystore: &mut Keystore,
    owner: &SessionClient,
    request: &PendingRequest,
    now: i64,
) -> Result<(), GrantError> {
    if keystore.devices().iter().any(|known| known.name == request.name) {
        return Err(GrantError::Refused(DeviceCommandError::NameTaken { name: request.name.clone() }));
    }
    let by = keystore.ensure_device(&machine_name(), now).name.clone();
    keystore.add_device(DeviceEntry {
        name: request.name.clone(),
        keys: request.device,
        enrolled_at: now,
        enrolled_by: Some(by),
    });
    let address = keystore.address().clone();
    let context = RequestContext {
        address: &address,
        request_id: &request.request_id,
        name: &request.name,
        device: &request.device,
        server_nonce: &request.nonce,
    };
    let sealed = seal_approval(&context, &keystore.to_secrets(), keystore.master(), now, &mut OsRng);
    owner.device_approve(request.request_id, &sealed).await?;
    Ok(())
}

/// `device deny ID`.
pub async fn deny(ctx: &Context, address_text: &str, id: &str) -> Result<PendingView, CommandError> {
    let address = parse_address(address_text)?;
    let path = ctx.keystore_of(&address).await?;
    let keystore = Keystore::load(&path, &ctx.passphrase)?;
    let owner = owner(ctx, &address, &keystore).await?;
    let requests = owner.device_pending().await.map_err(|e| client_error(ctx, &address, e))?;
    let pending = view(&address, find(&address, requests, id)?);
    owner.device_deny(pending.request.request_id, None).await.map_err(|e| client_error(ctx, &address, e))?;
    let _ = owner.logout().await;
    Ok(pending)
}

/// One device as `device list` shows it.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub entry: DeviceEntry,
    /// When it last fetched its key shares (unix seconds), as the server says.
    pub last_seen: Option<i64>,
    pub this_machine: bool,
}

/// `device list`: the account's devices, from this machine's keystore and the server.
pub async fn list(ctx: &Context, address_text: &str) -> Result<Vec<DeviceView>, CommandError> {
    let address = parse_address(address_text)?;
    let path = ctx.keystore_of(&address).await?;
    let keystore = Keystore::load(&path, &ctx.passphrase)?;
    let owner = owner(ctx, &address, &keystore).await?;
    let seen = owner.devices_seen().await.map_err(|e| client_error(ctx, &address, e))?;
    let _ = owner.logout().await;
    let own = keystore.device().map(|own| own.keys.public());
    Ok(keystore
        .devices()
        .iter()
        .map(|entry| DeviceView {
            last_seen: seen.iter().find(|s| s.box_key == entry.keys.box_key).map(|s| s.seen_at.unix()),
            this_machine: Some(entry.keys) == own,
            entry: entry.clone(),
        })
        .collect())
}

/// What `device revoke` did.
#[derive(Debug)]
pub struct Revoked {
    pub name: String,
    pub new_master: MasterPublicKey,
    /// The devices the new secrets were sealed to.
    pub shared_with: usize,
}

/// `device revoke NAME`: takes the device off the list, rotates the master key (a
/// signed profile record) and with it every message key on the server, and seals the
/// new secrets to the remaining devices only.
pub async fn revoke(ctx: &Context, address_text: &str, name: &str) -> Result<Revoked, CommandError> {
    let (address, path, mut keystore, _lock) = ctx.open_account(address_text).await?;
    let now = unix_now();
    let own = keystore.ensure_device(&machine_name(), now).name.clone();
    if own == name {
        return Err(DeviceCommandError::RevokeSelf { name: name.to_string() }.into());
    }
    if keystore.remove_device(name).is_none() {
        return Err(DeviceCommandError::NoSuchDevice { name: name.to_string(), address: address.to_email() }.into());
    }
    let owner = owner(ctx, &address, &keystore).await?;
    let new_master = crate::smimp::crypto::MasterKey::generate(&mut OsRng);
    crate::client::account::update_profile(&owner, &mut keystore, None, Some(new_master), now, ctx.save(&path))
        .await
        .map_err(CommandError::Account)?;
    // A new session under the new key: the old one was signed by the key just replaced.
    let owner = crate::gateway::enroll::owner(ctx, &address, &keystore).await?;
    let shared_with = share_everything(&owner, &keystore, now).await.map_err(|e| client_error(ctx, &address, e))?;
    (ctx.save(&path))(&keystore)?;
    let _ = owner.logout().await;
    Ok(Revoked { name: name.to_string(), new_master: keystore.master().public(), shared_with })
}

/// Seals all the account's secrets to every other listed device.
async fn share_everything(owner: &SessionClient, keystore: &Keystore, now: i64) -> Result<usize, ClientError> {
    let Some(own) = keystore.device() else { return Ok(0) };
    let own = own.keys.public();
    let secrets = keystore.to_secrets();
    let shares: Vec<DeviceShare> = keystore
        .devices()
        .iter()
        .filter(|device| device.keys != own)
        .map(|device| {
            let share_id = Id32::random(&mut OsRng);
            let sealed =
                seal_share(keystore.address(), &share_id, &device.keys, &secrets, keystore.master(), now, &mut OsRng);
            DeviceShare { share_id, recipient: device.keys, sealed }
        })
        .collect();
    let count = shares.len();
    if count > 0 {
        owner.device_put_shares(shares).await?;
    }
    Ok(count)
}
