//! The barrier: everything secret that the control plane stores (CA keys, the
//! server's TLS key) is encrypted before it reaches the store.
//!
//! A random 256-bit data key encrypts values with AES-256-GCM. The data key is
//! itself wrapped by the master key, which never touches the data directory: it
//! comes from a file or the environment at start-up. Without the master key the
//! control plane stays sealed and refuses to serve.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::fsutil;

/// The environment variable that may carry the master key, base64-encoded.
pub const MASTER_KEY_ENV: &str = "PALISADE_MASTER_KEY";

const KEY_LEN: usize = 32;
const WRAP_AAD: &[u8] = b"palisade/barrier/v1/data-key";
const BARRIER_FILE: &str = "barrier.json";

/// Errors of the barrier.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error("no master key: set {MASTER_KEY_ENV} or pass a master key file")]
    NoMasterKey,
    #[error("master key file {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key from {origin} is not 32 bytes of base64")]
    MalformedKey { origin: String },
    #[error("the master key does not open this data directory's barrier")]
    WrongKey,
    #[error("barrier file {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("sealed value {purpose:?} is damaged or was sealed under another key")]
    Damaged { purpose: String },
    #[error("random number generator failed")]
    Random,
}

/// Bytes that must not be shown: Debug and Display print nothing of them, and
/// the memory is zeroed on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// The key that wraps the data key. Loaded from a file or the environment.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Makes a new random master key.
    pub fn generate() -> Result<Self, BarrierError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| BarrierError::Random)?;
        Ok(Self(key))
    }

    /// Loads the key from `file` if given, else from the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, BarrierError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| BarrierError::ReadKey {
                path: path.to_owned(),
                source,
            })?;
            return Self::decode(text.trim(), &path.display().to_string());
        }

        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) => Self::decode(text.trim(), MASTER_KEY_ENV),
            Err(_) => Err(BarrierError::NoMasterKey),
        }
    }

    /// Writes the key, base64-encoded, to a new file readable by its owner only.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        let text = Zeroizing::new(BASE64.encode(self.0.as_ref()));
        fsutil::write_private(path, text.as_bytes())
    }

    fn decode(text: &str, origin: &str) -> Result<Self, BarrierError> {
        let malformed = || BarrierError::MalformedKey {
            origin: origin.to_owned(),
        };
        let bytes = Zeroizing::new(BASE64.decode(text).map_err(|_| malformed())?);
        let array: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| malformed())?;
        Ok(Self(Zeroizing::new(array)))
    }

    fn aead(&self) -> LessSafeKey {
        let key = UnboundKey::new(&AES_256_GCM, self.0.as_ref()).expect("32-byte AES key");
        LessSafeKey::new(key)
    }
}

/// The on-disk form of the barrier: the wrapped data key.
#[derive(Serialize, Deserialize)]
struct BarrierFile {
    version: u32,
    wrapped_data_key: String,
}

/// An unsealed barrier: seals and opens values with the data key.
pub struct Barrier {
    data_key: LessSafeKey,
    audit_key: hmac::Key,
    ticket_seed: hmac::Key,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Barrier(<unsealed>)")
    }
}

impl Barrier {
    /// Creates a new data key, wraps it under `master` and writes the barrier
    /// file into `data_dir`.
    pub fn create(data_dir: &Path, master: &MasterKey) -> Result<Self, BarrierError> {
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(data_key.as_mut()).map_err(|_| BarrierError::Random)?;

        let wrapped = seal_with(&master.aead(), WRAP_AAD, data_key.as_ref())?;
        let file = BarrierFile {
            version: 1,
            wrapped_data_key: BASE64.encode(wrapped),
        };
        let path = data_dir.join(BARRIER_FILE);
        let json = serde_json::to_vec_pretty(&file).expect("barrier file serializes");
        fsutil::write_private(&path, &json).map_err(|e| BarrierError::File {
            path: path.clone(),
            detail: e.to_string(),
        })?;

        Ok(Self::from_data_key(data_key.as_ref()))
    }

    /// Reads the barrier file in `data_dir` and unwraps its data key.
    pub fn unseal(data_dir: &Path, master: &MasterKey) -> Result<Self, BarrierError> {
        let path = data_dir.join(BARRIER_FILE);
        let file_error = |detail: String| BarrierError::File {
            path: path.clone(),
            detail,
        };
        let bytes = std::fs::read(&path).map_err(|e| file_error(e.to_string()))?;
        let file: BarrierFile =
            serde_json::from_slice(&bytes).map_err(|e| file_error(e.to_string()))?;
        if file.version != 1 {
            return Err(file_error(format!("unsupported version {}", file.version)));
        }

        let wrapped = BASE64
            .decode(&file.wrapped_data_key)
            .map_err(|_| file_error("wrapped data key is not base64".into()))?;
        let data_key =
            open_with(&master.aead(), WRAP_AAD, &wrapped).map_err(|_| BarrierError::WrongKey)?;
        if data_key.expose().len() != KEY_LEN {
            return Err(file_error("wrapped data key has the wrong length".into()));
        }

        Ok(Self::from_data_key(data_key.expose()))
    }

    /// True if `data_dir` holds a barrier file.
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(BARRIER_FILE).exists()
    }

    fn from_data_key(key: &[u8]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES key");
        let derive = |purpose: &[u8]| {
            let seed = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), purpose);
            hmac::Key::new(hmac::HMAC_SHA256, seed.as_ref())
        };
        Self {
            data_key: LessSafeKey::new(unbound),
            audit_key: derive(b"palisade/audit"),
            ticket_seed: derive(b"palisade/tls-session-tickets"),
        }
    }

    /// Encrypts `plaintext`; `purpose` binds the ciphertext to its use, so a
    /// value sealed for one purpose cannot be opened as another.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        seal_with(&self.data_key, purpose.as_bytes(), plaintext)
    }

    /// Decrypts a value sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<SecretBytes, BarrierError> {
        open_with(&self.data_key, purpose.as_bytes(), sealed).map_err(|_| BarrierError::Damaged {
            purpose: purpose.to_owned(),
        })
    }

    /// The key that chains audit entries, derived from the data key so that a
    /// forged entry needs the master key.
    pub fn audit_key(&self) -> hmac::Key {
        self.audit_key.clone()
    }

    /// The seed of the keys that seal TLS session tickets, derived from the
    /// data key so that tickets outlive a restart but not the master key.
    pub fn ticket_seed(&self) -> hmac::Key {
        self.ticket_seed.clone()
    }
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| BarrierError::Random)?;

    let mut buffer = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buffer,
    )
    .map_err(|_| BarrierError::Random)?;

    let mut out = nonce.to_vec();
    out.extend_from_slice(&buffer);
    Ok(out)
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, ()> {
    if sealed.len() < NONCE_LEN {
        return Err(());
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| ())?;

    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plaintext = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| ())?;
    Ok(SecretBytes::new(plaintext.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_value_opens_only_with_its_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let barrier = Barrier::create(dir.path(), &MasterKey::generate().unwrap()).unwrap();

        let sealed = barrier.seal("ca/key", b"secret").unwrap();

        assert_eq!(barrier.open("ca/key", &sealed).unwrap().expose(), b"secret");
        assert!(barrier.open("tls/key", &sealed).is_err());
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn wrong_master_key_leaves_the_barrier_sealed() {
        let dir = tempfile::tempdir().unwrap();
        Barrier::create(dir.path(), &MasterKey::generate().unwrap()).unwrap();

        let error = Barrier::unseal(dir.path(), &MasterKey::generate().unwrap()).unwrap_err();

        assert!(matches!(error, BarrierError::WrongKey));
    }

    #[test]
    fn master_key_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().unwrap();
        let path = dir.path().join("master.key");
        key.write_new(&path).unwrap();
        Barrier::create(dir.path(), &key).unwrap();

        let loaded = MasterKey::load(Some(&path)).unwrap();

        assert!(Barrier::unseal(dir.path(), &loaded).is_ok());
        assert_eq!(format!("{loaded:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn malformed_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "c2hvcnQ=").unwrap();

        let error = MasterKey::load(Some(&path)).unwrap_err();

        assert!(error.to_string().contains("not 32 bytes"), "{error}");
    }
}
