//! Signed task payloads: a worker does only what its coordinator asked for.
//!
//! Everything a worker is sent — a [`TaskSpec`](crate::TaskSpec), a
//! `{"spec_url": ...}` reference, the spec object it names, a launcher's
//! request — travels in a [`SignedEnvelope`]: the payload as a string, an
//! expiry time, and an HMAC-SHA256 over both under the deployment's
//! [`TaskKey`]. A worker opens the envelope with its own key before it reads,
//! fetches or writes anything, and refuses payloads that are unsigned,
//! altered, signed with another key or expired.
//!
//! The payload is carried as a string, not as JSON, so that the bytes signed
//! are the bytes checked even after a launcher or the Lambda runtime has
//! parsed and re-serialized the envelope.
//!
//! What the key protects, and what it does not, is in `docs/security.md`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Result, WorkerError};

/// The environment variable holding the task key of workers (and of
/// coordinators that do not generate their own).
pub const TASK_KEY_ENV: &str = "SQUALL_TASK_KEY";

/// How long a signed payload is accepted after it was signed. A spec is
/// signed right before its attempt is invoked (a retry signs a fresh one), so
/// this bounds the wait of a task inside a launcher, and how long a stolen
/// spec stays usable.
pub const SIGNED_PAYLOAD_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// Shortest key accepted, in characters.
pub const MIN_TASK_KEY_CHARS: usize = 32;

/// Separates the signed fields; part of what is signed, so that a signature
/// over something else Squall signs can never pass for a task's.
const SIGNATURE_DOMAIN: &[u8] = b"squall signed task payload v1\n";

/// A shared secret between a coordinator and its workers.
///
/// Its text never appears in `Debug` output, messages or reports.
#[derive(Clone)]
pub struct TaskKey(Arc<str>);

impl std::fmt::Debug for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskKey(<secret>)")
    }
}

impl TaskKey {
    /// A key from its text (at least [`MIN_TASK_KEY_CHARS`] characters).
    pub fn new(secret: &str) -> Result<Self> {
        let secret = secret.trim();
        if secret.chars().count() < MIN_TASK_KEY_CHARS {
            return Err(WorkerError::TaskKey(format!(
                "{TASK_KEY_ENV} has {} characters; use at least {MIN_TASK_KEY_CHARS} \
                 (for example the output of `openssl rand -hex 32`)",
                secret.chars().count()
            )));
        }
        Ok(Self(secret.into()))
    }

    /// A fresh random key: 32 random bytes as 64 hex digits.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(hex.into())
    }

    /// The key in [`TASK_KEY_ENV`], if it is set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(TASK_KEY_ENV) {
            Ok(secret) if !secret.trim().is_empty() => Self::new(&secret).map(Some),
            _ => Ok(None),
        }
    }

    /// The key in [`TASK_KEY_ENV`]; a worker without one accepts nothing.
    pub fn required_from_env() -> Result<Self> {
        Self::from_env()?.ok_or_else(|| {
            WorkerError::TaskKey(format!(
                "this worker has no {TASK_KEY_ENV}, so it runs no task: set it in the worker's \
                 environment to the coordinator's key (`squall deploy lambda` sets the function's)"
            ))
        })
    }

    /// The key's text, to hand to a worker (a child's environment, a
    /// function's configuration). Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    fn mac(&self, payload: &str, expires_unix_ms: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(SIGNATURE_DOMAIN);
        mac.update(expires_unix_ms.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(payload.as_bytes());
        mac
    }

    /// `payload` (UTF-8 JSON) in an envelope that expires
    /// [`SIGNED_PAYLOAD_LIFETIME`] from now.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        self.sign_until(
            payload,
            unix_ms(SystemTime::now() + SIGNED_PAYLOAD_LIFETIME),
        )
    }

    /// `payload` in an envelope that expires at `expires_unix_ms`.
    pub fn sign_until(&self, payload: &[u8], expires_unix_ms: u64) -> Vec<u8> {
        let payload = String::from_utf8_lossy(payload).into_owned();
        let signature =
            STANDARD.encode(self.mac(&payload, expires_unix_ms).finalize().into_bytes());
        serde_json::to_vec(&SignedEnvelope {
            signed: SignedPayload {
                payload,
                expires_unix_ms,
                signature,
            },
        })
        .expect("an envelope always serializes")
    }

    /// The payload of `envelope` if this key signed it and it has not expired.
    pub fn open(&self, envelope: &[u8]) -> Result<Vec<u8>> {
        self.open_at(envelope, unix_ms(SystemTime::now()))
    }

    /// [`TaskKey::open`] as if the time were `now_unix_ms`.
    pub fn open_at(&self, envelope: &[u8], now_unix_ms: u64) -> Result<Vec<u8>> {
        let envelope: SignedEnvelope = serde_json::from_slice(envelope).map_err(|_| {
            rejected(
                "it is not signed: a worker runs only payloads signed with its \
                 SQUALL_TASK_KEY, as the coordinator sends them",
            )
        })?;
        let SignedPayload {
            payload,
            expires_unix_ms,
            signature,
        } = envelope.signed;
        let signature = STANDARD
            .decode(signature.as_bytes())
            .map_err(|_| rejected("its signature is not base64"))?;
        self.mac(&payload, expires_unix_ms)
            .verify_slice(&signature)
            .map_err(|_| {
                rejected(
                    "its signature does not match this worker's SQUALL_TASK_KEY: it was \
                     altered, or signed with another key (the coordinator and its workers \
                     must share one key)",
                )
            })?;
        if now_unix_ms > expires_unix_ms {
            return Err(WorkerError::SpecExpired {
                seconds_ago: (now_unix_ms - expires_unix_ms) / 1000,
            });
        }
        Ok(payload.into_bytes())
    }
}

/// What travels: `{"signed": {"payload": "...", "expires_unix_ms": N, "signature": "..."}}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedEnvelope {
    signed: SignedPayload,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedPayload {
    payload: String,
    expires_unix_ms: u64,
    /// Base64 of HMAC-SHA256(key, domain ‖ expiry ‖ "\n" ‖ payload).
    signature: String,
}

/// The SHA-256 of `bytes` as hex: how a signed `{"spec_url"}` reference
/// pins the exact spec object it names.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rejected(reason: &str) -> WorkerError {
    WorkerError::SpecRejected(reason.to_string())
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_800_000_000_000;

    fn key() -> TaskKey {
        TaskKey::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn message(result: Result<Vec<u8>>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_signed_payload_opens_with_its_key_until_it_expires() {
        let envelope = key().sign_until(br#"{"spec": 1}"#, NOW_MS + 1000);
        assert_eq!(key().open_at(&envelope, NOW_MS).unwrap(), br#"{"spec": 1}"#);
        assert_eq!(
            key().open_at(&envelope, NOW_MS + 1000).unwrap(),
            br#"{"spec": 1}"#
        );
        let expired = message(key().open_at(&envelope, NOW_MS + 61_000));
        assert!(expired.contains("expired 60 s ago"), "{expired}");
    }

    #[test]
    fn a_payload_survives_reserialization_by_a_launcher() {
        let envelope = key().sign(br#"{"b": 2, "a": [1, 2]}"#);
        let value: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        let again = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(key().open(&again).unwrap(), br#"{"b": 2, "a": [1, 2]}"#);
    }

    #[test]
    fn unsigned_altered_and_foreign_payloads_are_rejected() {
        let unsigned = message(key().open(br#"{"version": 1}"#));
        assert!(unsigned.contains("not signed"), "{unsigned}");

        let envelope = key().sign(br#"{"output_url": "s3://scratch/q/1"}"#);
        let text = String::from_utf8(envelope.clone()).unwrap();
        let altered = text.replace("scratch/q/1", "victim/data");
        let altered = message(key().open(altered.as_bytes()));
        assert!(altered.contains("does not match"), "{altered}");

        // Extending the expiry breaks the signature too.
        let mut value: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        value["signed"]["expires_unix_ms"] = serde_json::json!(u64::MAX);
        let extended = message(key().open(&serde_json::to_vec(&value).unwrap()));
        assert!(extended.contains("does not match"), "{extended}");

        let other = TaskKey::new("ffffffffffffffffffffffffffffffff").unwrap();
        let foreign = message(other.open(&envelope));
        assert!(foreign.contains("does not match"), "{foreign}");
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        let short = TaskKey::new("secret").unwrap_err().to_string();
        assert!(short.contains("at least 32"), "{short}");
        let generated = TaskKey::generate();
        assert_eq!(generated.expose_secret().len(), 64);
        assert_ne!(
            generated.expose_secret(),
            TaskKey::generate().expose_secret()
        );
        assert_eq!(format!("{generated:?}"), "TaskKey(<secret>)");
    }
}
