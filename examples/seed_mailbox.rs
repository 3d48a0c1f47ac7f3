//! Seeds a large mailbox for the sync benchmark (bench/imap_sync.sh): COUNT real SMIMP
//! messages from one gateway account to another, sealed to the recipient's published
//! message key and signed with the sender's master key by the protocol core, exactly as
//! a sender seals them, then stored straight into the reference server's database by the
//! server's own delivery steps (those `send_message` ends in), a thousand to a transaction.
//! What it skips is only the transport: 100,000 messages take a minute, not the hours that proof of work
//! and a round trip each would. The recipient's gateway checks every one as any mail.
//!
//! ```text
//! cargo run --release --example seed_mailbox -- --server-config SERVER.toml \
//!     --gateway-config GATEWAY.toml --from alice@example.org --to bob@example.org \
//!     --count 100000
//! ```
//!
//! The sender's keystore is opened through the gateway's configuration (its passphrase
//! file); the server's database is opened through the server's.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use rand_core::OsRng;

use smimp_gateway::clock::unix_now;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;
use smimp_gateway::server::config::ServerConfig;
use smimp_gateway::server::store::{Delivery, NewMessage, ServerStore};
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, BoxPublicKey, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{
    login_token_hash, Ciphertext, HashContext, ReceivedVia, ServerFields, StoredEnvelope, PROTOCOL_VERSION,
};
use smimp_gateway::smimp::message::{Email, MessageType, Payload};
use smimp_gateway::smimp::timestamp::Timestamp;

/// The most messages one run seeds.
const MAX_COUNT: usize = 1_000_000;
/// Messages sealed together (on every core) before they are stored.
const BATCH: usize = 1000;

struct Args {
    server_config: PathBuf,
    gateway_config: PathBuf,
    from: String,
    to: String,
    count: usize,
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut server_config, mut gateway_config, mut from, mut to, mut count) = (None, None, None, None, 10_000);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server-config" => server_config = Some(PathBuf::from(value)),
            "--gateway-config" => gateway_config = Some(PathBuf::from(value)),
            "--from" => from = Some(value),
            "--to" => to = Some(value),
            "--count" => count = value.parse().context("--count must be a whole number")?,
            other => bail!("unknown option {other}"),
        }
    }
    if count > MAX_COUNT {
        bail!("--count is at most {MAX_COUNT}");
    }
    Ok(Args {
        server_config: server_config.context("--server-config is required")?,
        gateway_config: gateway_config.context("--gateway-config is required")?,
        from: from.context("--from is required")?,
        to: to.context("--to is required")?,
        count,
    })
}

/// What every message of the run shares.
struct Seed {
    sender: Address,
    recipient: Address,
    key: MasterKey,
    message_key: BoxPublicKey,
    body: String,
}

impl Seed {
    /// Message `n`, sealed, signed and with the fields a server adds, as JSON.
    fn envelope(&self, n: usize, received_at: Timestamp) -> Result<(Id32, String)> {
        let payload = Payload::Email(Box::new(Email {
            to: vec![self.recipient.clone()],
            cc: vec![],
            subject: format!("Message {n}"),
            thread_id: Id32::random(&mut OsRng),
            reply_to_message_id: None,
            date_sent: received_at,
            body: self.body.clone(),
            signature_text: None,
            attachments: vec![],
            extensions_data: None,
            reply_to: None,
            auto_reply_address: None,
        }))
        .to_bytes();
        let token_hash = login_token_hash(&Id32::random(&mut OsRng));
        let context = HashContext { sender: &self.sender, recipient: &self.recipient, login_token_hash: &token_hash };
        let sealed =
            Ciphertext::seal(&payload, MessageType::Email, BoxNonce::random(&mut OsRng), &self.message_key, &self.key);
        let sent = sealed.into_envelope(&self.key, &context, None);
        let message_id = Id32::random(&mut OsRng);
        let server = ServerFields {
            recipient: self.recipient.clone(),
            sender: self.sender.clone(),
            sender_public_key: self.key.public(),
            received_at,
            pow_params: None,
            message_id,
            login_token_hash: token_hash,
            received_via: ReceivedVia::SmimpClient,
            read: false,
            extensions_data: None,
            protocol_version: PROTOCOL_VERSION.to_string(),
        };
        Ok((message_id, serde_json::to_string(&StoredEnvelope { sent, server })?))
    }
}

/// Seals messages `range` on every core.
fn seal_batch(seed: &Seed, range: std::ops::Range<usize>, received_at: Timestamp) -> Result<Vec<(Id32, String)>> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let numbers: Vec<usize> = range.collect();
    let part = numbers.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = numbers
            .chunks(part)
            .map(|mine| scope.spawn(move || mine.iter().map(|n| seed.envelope(*n, received_at)).collect::<Vec<_>>()))
            .collect();
        let mut sealed = Vec::with_capacity(numbers.len());
        for worker in workers {
            let done = worker.join().map_err(|_| anyhow::anyhow!("a sealing thread panicked"))?;
            sealed.extend(done.into_iter().collect::<Result<Vec<_>>>()?);
        }
        Ok(sealed)
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let server =
        ServerConfig::load(&args.server_config).with_context(|| format!("reading {}", args.server_config.display()))?;
    let store = ServerStore::open(&server.server.database).await.context("opening the server's database")?;
    let ctx = Context::open(&args.gateway_config).await.context("opening the gateway's configuration")?;
    let accounts = unlock_accounts(&ctx).await.context("unlocking the gateway's keystores")?;
    let sender = Address::from_email(&args.from)?;
    let recipient = Address::from_email(&args.to)?;
    let account = accounts
        .values()
        .find(|a| a.sender.address == sender)
        .with_context(|| format!("the gateway has no account {}", args.from))?;
    let message_key = store
        .nonephemeral_key(&recipient)
        .await?
        .with_context(|| format!("{} has published no message key", args.to))?
        .public_key;
    let line = "A line of a realistic message body, about seventy characters long here.\n";
    let seed = Seed {
        sender,
        recipient,
        key: MasterKey::from_seed(&account.keystore().master().seed()),
        message_key,
        body: line.repeat(50),
    };
    // The quota is checked once for the whole run, against the size the run will add:
    // checked per message, it sums the mailbox each time, and seeding 100,000 took minutes.
    if let Ok(limit) = u64::try_from(server.limits.quota_bytes) {
        let probe = seed.envelope(0, Timestamp::from_unix(unix_now()).context("the clock is out of range")?)?.1;
        let needed = store.quota_used(&seed.recipient).await? + (probe.len() as u64 + 64) * args.count as u64;
        if needed > limit {
            bail!("{} messages would take {} past its quota of {limit} bytes", args.count, args.to);
        }
    }
    let started = Instant::now();
    let mut stored = 0usize;
    while stored < args.count {
        let end = (stored + BATCH).min(args.count);
        let received_at = Timestamp::from_unix(unix_now()).context("the clock is out of range")?;
        let sealed = seal_batch(&seed, stored..end, received_at)?;
        let messages: Vec<NewMessage> = sealed
            .iter()
            .map(|(message_id, envelope)| NewMessage {
                message_id: *message_id,
                recipient: &seed.recipient,
                sender: &seed.sender,
                message_type: &MessageType::Email,
                received_at: received_at.unix(),
                envelope,
                pow_nonce: None,
                message_key: &seed.message_key,
                quota_bytes: None,
            })
            .collect();
        match store.deliver_all(&messages).await? {
            Delivery::Stored => {}
            other => bail!("messages {stored} to {end} were not stored: {other:?}"),
        }
        stored = end;
    }
    println!("{{\"seeded\": {stored}, \"seconds\": {:.1}}}", started.elapsed().as_secs_f64());
    Ok(())
}
