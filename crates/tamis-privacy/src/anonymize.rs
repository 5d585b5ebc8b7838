//! Anonymisation: per-column strategies, a differential-privacy ε ledger, and
//! k-anonymity / l-diversity reports.
//!
//! Keys come from the caller: an HMAC key for pseudonyms, hashes and DP noise,
//! and AES-256 keys by id for encryption (so keys rotate: a value names the key
//! that encrypted it). Everything is deterministic for a key and seed: the same
//! input gives the same pseudonym in every table, so joins survive.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::recognize::{PiiType, first_names, last_names};

/// Errors of anonymisation.
#[derive(Debug, thiserror::Error)]
pub enum AnonError {
    /// The policy is wrong.
    #[error("policy {file}: {message}")]
    Policy {
        /// The policy file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A key is missing or malformed.
    #[error("key: {0}")]
    Key(String),
    /// The ε budget would be overspent.
    #[error(
        "the privacy budget of `{dataset}` would be overspent: {spent} already spent + {asked} asked > budget {budget}; nothing was written"
    )]
    Budget {
        /// Dataset id.
        dataset: String,
        /// ε already spent.
        spent: f64,
        /// ε this run asks.
        asked: f64,
        /// The budget.
        budget: f64,
    },
    /// A value cannot be decrypted.
    #[error("cannot decrypt a value of `{column}`: {message}")]
    Decrypt {
        /// Column.
        column: String,
        /// Why.
        message: String,
    },
    /// The ledger cannot be read or written.
    #[error("ledger {path}: {message}")]
    Ledger {
        /// File.
        path: String,
        /// Why.
        message: String,
    },
}

/// Keys for anonymisation.
#[derive(Clone)]
pub struct Keys {
    /// HMAC key (pseudonyms, hashes, DP noise).
    pub hmac: Vec<u8>,
    /// AES-256 keys by id.
    pub aes: BTreeMap<String, [u8; 32]>,
    /// The id new encryptions use.
    pub current: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Keys")
            .field("aes_ids", &self.aes.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl Keys {
    /// Keys with the HMAC key `hmac` and the AES keys of `spec` (`id:64-hex,…`;
    /// the last id encrypts); `None` when `spec` is blank.
    pub fn with_encryption(hmac: Vec<u8>, spec: &str) -> Result<Option<Keys>, AnonError> {
        if spec.trim().is_empty() {
            return Ok(None);
        }
        let aes = Keys::parse_aes(spec)?;
        let current = spec
            .split(',')
            .filter_map(|p| p.split_once(':').map(|x| x.0.trim().to_string()))
            .next_back();
        Ok(Some(Keys { hmac, aes, current }))
    }

    /// The vault keys of the environment: `TAMIS_PII_KEY` keys tokens (and
    /// pseudonyms, hashes), `TAMIS_ENCRYPTION_KEYS` encrypts the vault;
    /// `None` when no encryption key is set.
    pub fn vault_from_env() -> Result<Option<Keys>, AnonError> {
        let hmac = std::env::var("TAMIS_PII_KEY")
            .unwrap_or_default()
            .into_bytes();
        Keys::with_encryption(
            hmac,
            &std::env::var("TAMIS_ENCRYPTION_KEYS").unwrap_or_default(),
        )
    }

    /// Parses `id:64-hex-chars,id2:…` (the last id is current).
    pub fn parse_aes(spec: &str) -> Result<BTreeMap<String, [u8; 32]>, AnonError> {
        let mut out = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, hex) = part.split_once(':').ok_or_else(|| {
                AnonError::Key("encryption keys are `id:64 hex characters`, comma-separated".into())
            })?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(AnonError::Key(format!(
                    "key `{id}` must be 64 hex characters (32 bytes)"
                )));
            }
            let mut k = [0u8; 32];
            for (i, b) in k.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|e| AnonError::Key(e.to_string()))?;
            }
            out.insert(id.to_string(), k);
        }
        Ok(out)
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        m.update(&(p.len() as u64).to_le_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Keyed SHA-256 (HMAC) of a value, hex.
pub fn keyed_hash(key: &[u8], v: &str) -> String {
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    m.update(v.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A stream of pseudo-random numbers derived from a keyed hash.
struct Draw {
    key: Vec<u8>,
    seed: [u8; 32],
    n: u64,
}

impl Draw {
    fn new(key: &[u8], ty: &str, v: &str) -> Draw {
        Draw {
            key: key.to_vec(),
            seed: mac(key, &[ty.as_bytes(), v.as_bytes()]),
            n: 0,
        }
    }
    fn next(&mut self) -> u64 {
        self.n += 1;
        let h = mac(&self.key, &[&self.seed, &self.n.to_le_bytes()]);
        u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }
}

fn sorted(set: &std::collections::HashSet<&'static str>) -> Vec<&'static str> {
    let mut v: Vec<&str> = set.iter().copied().collect();
    v.sort_unstable();
    v
}

fn vocab_first() -> &'static [&'static str] {
    static V: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    V.get_or_init(|| sorted(first_names()))
}

fn vocab_last() -> &'static [&'static str] {
    static V: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    V.get_or_init(|| sorted(last_names()))
}

fn cap(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn luhn_digit(body: &str) -> char {
    let mut sum = 0;
    for (i, c) in body.bytes().rev().enumerate() {
        let mut x = (c - b'0') as u32;
        if i % 2 == 0 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// A deterministic, realistic, format-preserving fake for a value of type `t`.
pub fn pseudonym(key: &[u8], t: Option<PiiType>, v: &str) -> String {
    let tn = t.map_or("OTHER", PiiType::name);
    let mut d = Draw::new(key, tn, v);
    let first = |d: &mut Draw| cap(vocab_first()[d.below(vocab_first().len() as u64) as usize]);
    let last = |d: &mut Draw| cap(vocab_last()[d.below(vocab_last().len() as u64) as usize]);
    match t {
        Some(PiiType::Person) => format!("{} {}", first(&mut d), last(&mut d)),
        Some(PiiType::EmailAddress) => {
            let domain = ["example.com", "example.org", "example.net"][d.below(3) as usize];
            format!(
                "{}.{}{}@{domain}",
                first(&mut d).to_lowercase(),
                last(&mut d).to_lowercase(),
                d.below(100)
            )
        }
        Some(PiiType::StreetAddress) => {
            let suffix = ["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Way"][d.below(8) as usize];
            format!("{} {} {suffix}", 1 + d.below(9999), last(&mut d))
        }
        Some(PiiType::Url) => format!(
            "https://www.{}{}.example/",
            last(&mut d).to_lowercase(),
            d.below(1000)
        ),
        Some(PiiType::IpAddress) if v.contains(':') => {
            format!(
                "fd00:{:x}:{:x}:{:x}::{:x}",
                d.below(0x10000),
                d.below(0x10000),
                d.below(0x10000),
                1 + d.below(0xfffe)
            )
        }
        Some(PiiType::IpAddress) => {
            format!("10.{}.{}.{}", d.below(256), d.below(256), 1 + d.below(254))
        }
        Some(PiiType::UsSsn) => {
            let s = format!(
                "{:03}{:02}{:04}",
                1 + d.below(665),
                1 + d.below(99),
                1 + d.below(9999)
            );
            if v.contains('-') {
                format!("{}-{}-{}", &s[..3], &s[3..5], &s[5..])
            } else {
                s
            }
        }
        Some(PiiType::CreditCard) => {
            // Keep the issuer (first 6 digits) and the grouping; new account digits; valid Luhn.
            let digits: Vec<char> = v.chars().filter(char::is_ascii_digit).collect();
            let n = digits.len();
            let mut body: String = digits.iter().take(6.min(n.saturating_sub(1))).collect();
            while body.len() + 1 < n {
                body.push(d.digit());
            }
            let full = format!("{body}{}", luhn_digit(&body));
            let mut it = full.chars();
            v.chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        it.next().unwrap_or('0')
                    } else {
                        c
                    }
                })
                .collect()
        }
        Some(PiiType::IbanCode) => {
            let s: String = v
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase();
            if s.len() < 5 || !s.is_char_boundary(4) {
                return format!("tok_{}", &keyed_hash(key, v)[..16]);
            }
            let bban: String = (0..s.len() - 4).map(|_| d.digit()).collect();
            let country = &s[..2];
            let check = iban_check(country, &bban);
            let iban = format!("{country}{check:02}{bban}");
            if v.contains(' ') {
                iban.as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                iban
            }
        }
        Some(PiiType::PhoneNumber | PiiType::Passport | PiiType::NationalId) | None
            if v.chars().filter(char::is_ascii_digit).count() >= 4
                && (t == Some(PiiType::PhoneNumber) || !v.chars().any(char::is_alphabetic)) =>
        {
            // Keep the format and a leading `+country` code; replace the other digits.
            let mut out = String::new();
            let mut in_cc = v.trim_start().starts_with('+');
            for c in v.chars() {
                if c.is_ascii_digit() {
                    out.push(if in_cc { c } else { d.digit() });
                } else {
                    if in_cc && c != '+' {
                        in_cc = false;
                    }
                    out.push(c);
                }
            }
            out
        }
        Some(PiiType::DateOfBirth) => match tamis_core::types::parse_date(v.trim()) {
            // Same year, another day.
            Some((date, _)) => {
                use chrono::Datelike;
                let doy = 1 + d.below(365) as u32;
                chrono::NaiveDate::from_yo_opt(date.year(), doy)
                    .unwrap_or(date)
                    .to_string()
            }
            None => format!("tok_{}", &keyed_hash(key, v)[..16]),
        },
        _ => format!("tok_{}", &keyed_hash(key, v)[..16]),
    }
}

fn iban_check(country: &str, bban: &str) -> u32 {
    98 - crate::recognize::mod97(&format!("{bban}{country}00"))
}

/// Masks all letters and digits but the last `keep_last`; with `keep_domain`, an
/// e-mail keeps its domain.
pub fn mask_value(v: &str, keep_last: usize, keep_domain: bool) -> String {
    if keep_domain && let Some((local, domain)) = v.rsplit_once('@') {
        return format!("{}@{domain}", "*".repeat(local.chars().count()));
    }
    let n = v.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    v.chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen + keep_last > n { c } else { '*' }
        })
        .collect()
}

/// Generalisation.
#[derive(Debug, Clone, PartialEq)]
pub enum Generalise {
    /// Numbers to bands of this width (`40-49`).
    Band(f64),
    /// Dates to `YYYY-MM`.
    Month,
    /// Dates to `YYYY`.
    Year,
    /// Keep the first N characters (postcodes), the rest `*`.
    Prefix(usize),
    /// Round numbers (coordinates) to N decimals.
    Round(u32),
}

/// Generalises one value; `None` when it does not parse (the value is then redacted).
pub fn generalise(g: &Generalise, v: &str) -> Option<String> {
    let t = v.trim();
    match g {
        Generalise::Band(w) => {
            let x: f64 = t.parse().ok()?;
            let lo = (x / w).floor() * w;
            let hi = lo + w - if w.fract() == 0.0 { 1.0 } else { 0.0 };
            Some(format!("{lo}-{hi}"))
        }
        Generalise::Month | Generalise::Year => {
            let (d, _) = tamis_core::types::parse_date(t).or_else(|| {
                tamis_core::types::parse_datetime(t)
                    .map(|x| (x.date(), tamis_core::types::DateFormat::IsoDatetime))
            })?;
            Some(if *g == Generalise::Month {
                d.format("%Y-%m").to_string()
            } else {
                d.format("%Y").to_string()
            })
        }
        Generalise::Prefix(n) => Some(
            t.chars()
                .enumerate()
                .map(|(i, c)| {
                    if i < *n || !c.is_alphanumeric() {
                        c
                    } else {
                        '*'
                    }
                })
                .collect(),
        ),
        Generalise::Round(n) => {
            let x: f64 = t.parse().ok()?;
            Some(format!("{x:.*}", *n as usize))
        }
    }
}

/// Encrypts with AES-256-GCM. The nonce is derived from the key and the value,
/// so equal values encrypt equally (joins and counts survive; equality is what
/// leaks). The output names its key: `enc:<key id>:<hex nonce+ciphertext>`.
pub fn encrypt(keys: &Keys, key_id: &str, v: &str) -> Result<String, AnonError> {
    let k = keys
        .aes
        .get(key_id)
        .ok_or_else(|| AnonError::Key(format!("no encryption key `{key_id}`")))?;
    let cipher = Aes256Gcm::new_from_slice(k).map_err(|e| AnonError::Key(e.to_string()))?;
    let n = mac(k, &[b"nonce", v.as_bytes()]);
    let nonce = Nonce::from_slice(&n[..12]);
    let ct = cipher
        .encrypt(nonce, v.as_bytes())
        .map_err(|e| AnonError::Key(e.to_string()))?;
    let hex: String = n[..12]
        .iter()
        .chain(ct.iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("enc:{key_id}:{hex}"))
}

/// The key id and hex of an `enc:<key id>:<hex>` value ([`encrypt`]).
fn enc_parts(v: &str) -> Option<(&str, &str)> {
    v.strip_prefix("enc:")?.split_once(':')
}

/// The id of the key an `enc:` value names, if it is one.
pub fn key_id(v: &str) -> Option<&str> {
    enc_parts(v).map(|(id, _)| id)
}

/// Decrypts a value written by [`encrypt`] with whichever key it names.
pub fn decrypt(keys: &Keys, v: &str) -> Result<String, String> {
    let Some((id, hex)) = enc_parts(v) else {
        return Err("not an `enc:` value".into());
    };
    let k = keys
        .aes
        .get(id)
        .ok_or_else(|| format!("no key `{id}` (it was encrypted with it)"))?;
    if hex.len() < 24 || hex.len() % 2 != 0 {
        return Err("truncated".into());
    }
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let cipher = Aes256Gcm::new_from_slice(k).map_err(|e| e.to_string())?;
    let pt = cipher
        .decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..])
        .map_err(|_| "authentication failed: wrong key or a changed value".to_string())?;
    String::from_utf8(pt).map_err(|e| e.to_string())
}

/// Noise mechanism for differential privacy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mechanism {
    /// Laplace(sensitivity / ε): ε-DP.
    Laplace,
    /// Gaussian with σ = sensitivity·√(2 ln(1.25/δ)) / ε: (ε, δ)-DP.
    Gaussian {
        /// δ.
        delta: f64,
    },
}

/// Noise for one cell, derived from the key, a seed, the row and the column.
pub fn dp_noise(
    key: &[u8],
    seed: u64,
    row: u64,
    column: &str,
    m: Mechanism,
    epsilon: f64,
    sensitivity: f64,
) -> f64 {
    let h = mac(
        key,
        &[
            b"dp",
            &seed.to_le_bytes(),
            &row.to_le_bytes(),
            column.as_bytes(),
        ],
    );
    let u = |i: usize| {
        let x = u64::from_le_bytes([
            h[i],
            h[i + 1],
            h[i + 2],
            h[i + 3],
            h[i + 4],
            h[i + 5],
            h[i + 6],
            h[i + 7],
        ]);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64 // in (0, 1)
    };
    match m {
        Mechanism::Laplace => {
            let b = sensitivity / epsilon;
            let p = u(0) - 0.5;
            -b * p.signum() * (1.0 - 2.0 * p.abs()).ln()
        }
        Mechanism::Gaussian { delta } => {
            let sigma = sensitivity * (2.0 * (1.25 / delta).ln()).sqrt() / epsilon;
            sigma * (-2.0 * u(0).ln()).sqrt() * (2.0 * std::f64::consts::PI * u(8)).cos()
        }
    }
}

/// A DP count: the true count plus Laplace(1/ε) noise, rounded, never negative.
pub fn dp_count(key: &[u8], seed: u64, label: &str, count: u64, epsilon: f64) -> u64 {
    let n = dp_noise(key, seed, 0, label, Mechanism::Laplace, epsilon, 1.0);
    (count as f64 + n).round().max(0.0) as u64
}

/// The ε ledger: what each dataset has spent, persisted as JSON.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// Per dataset: spent ε and entries.
    pub datasets: BTreeMap<String, LedgerEntry>,
}

/// One dataset's spending.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// ε spent so far.
    pub spent: f64,
    /// Each release: when, what, ε.
    pub releases: Vec<Value>,
}

impl Ledger {
    /// Reads a ledger (empty if the file does not exist).
    pub fn read(path: &Path) -> Result<Ledger, AnonError> {
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| AnonError::Ledger {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(e) => Err(AnonError::Ledger {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Checks that spending `asked` more keeps `dataset` within `budget`.
    pub fn check(&self, dataset: &str, asked: f64, budget: f64) -> Result<(), AnonError> {
        let spent = self.datasets.get(dataset).map_or(0.0, |e| e.spent);
        if spent + asked > budget + 1e-12 {
            return Err(AnonError::Budget {
                dataset: dataset.into(),
                spent,
                asked,
                budget,
            });
        }
        Ok(())
    }

    /// Records a release and writes the ledger atomically.
    pub fn spend(
        &mut self,
        path: &Path,
        dataset: &str,
        asked: f64,
        what: Value,
    ) -> Result<(), AnonError> {
        let e = self.datasets.entry(dataset.to_string()).or_default();
        e.spent += asked;
        e.releases.push(what);
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        let tmp = tamis_core::quarantine::tmp_name(path);
        let err = |e: std::io::Error| AnonError::Ledger {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// A k-anonymity / l-diversity report over quasi-identifiers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KAnonymity {
    /// The quasi-identifiers.
    pub quasi_identifiers: Vec<String>,
    /// k: the size of the smallest equivalence class.
    pub k: u64,
    /// Equivalence classes.
    pub classes: u64,
    /// Rows in classes smaller than 5.
    pub rows_below_5: u64,
    /// The smallest classes: values and sizes.
    pub smallest: Vec<Value>,
    /// l: the fewest distinct sensitive values in a class (with a sensitive column).
    pub l: Option<u64>,
}

/// The quasi-identifier values of a row.
type QiKey = Vec<Option<String>>;
/// Rows in a class, and its distinct sensitive values.
type ClassStats<'a> = (u64, std::collections::HashSet<&'a Option<String>>);

/// Computes k (and l) from rows of quasi-identifier values and optional sensitive values.
pub fn k_anonymity(
    qi: &[String],
    rows: &[(Vec<Option<String>>, Option<String>)],
    sensitive: bool,
) -> KAnonymity {
    let mut classes: HashMap<&QiKey, ClassStats> = HashMap::new();
    for (k, s) in rows {
        let e = classes.entry(k).or_default();
        e.0 += 1;
        e.1.insert(s);
    }
    let mut list: Vec<(&Vec<Option<String>>, u64, u64)> = classes
        .iter()
        .map(|(k, (n, s))| (*k, *n, s.len() as u64))
        .collect();
    list.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    KAnonymity {
        quasi_identifiers: qi.to_vec(),
        k: list.first().map_or(0, |x| x.1),
        classes: list.len() as u64,
        rows_below_5: list.iter().filter(|x| x.1 < 5).map(|x| x.1).sum(),
        smallest: list
            .iter()
            .take(5)
            .map(|(k, n, _)| json!({"values": k, "rows": n}))
            .collect(),
        l: sensitive.then(|| list.iter().map(|x| x.2).min().unwrap_or(0)),
    }
}

/// The token vault: token → the value, encrypted (AES-256-GCM, with the key id).
/// Tokens are keyed hashes, so a value gets the same token in every table and
/// run; only a holder of the encryption key can turn tokens back into values.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Vault {
    /// Token → `enc:<key id>:<hex>`.
    pub entries: BTreeMap<String, String>,
}

impl Vault {
    /// Reads a vault (empty if the file does not exist).
    pub fn read(path: &Path) -> Result<Vault, AnonError> {
        let err = |m: String| AnonError::Ledger {
            path: path.display().to_string(),
            message: m,
        };
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| err(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vault::default()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Writes the vault atomically.
    pub fn write(&self, path: &Path) -> Result<(), AnonError> {
        let err = |e: std::io::Error| AnonError::Ledger {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let tmp = tamis_core::quarantine::tmp_name(path);
        std::fs::write(&tmp, serde_json::to_string(self).unwrap_or_default()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// The token of a value; stores the encrypted value.
    pub fn tokenise(&mut self, keys: &Keys, key_id: &str, v: &str) -> Result<String, AnonError> {
        let token = format!(
            "tok_{}",
            &keyed_hash(&keys.hmac, &format!("token\u{0}{v}"))[..24]
        );
        if !self.entries.contains_key(&token) {
            self.entries
                .insert(token.clone(), encrypt(keys, key_id, v)?);
        }
        Ok(token)
    }

    /// The value of a token.
    pub fn detokenise(&self, keys: &Keys, token: &str) -> Result<String, String> {
        let enc = self
            .entries
            .get(token)
            .ok_or_else(|| format!("token `{token}` is not in the vault"))?;
        decrypt(keys, enc)
    }

    /// Re-encrypts every entry that is not under the current key, so that
    /// after a rotation the old key can be retired. Entries under a key
    /// `keys` do not hold are left as they are and counted.
    pub fn rekey(&mut self, keys: &Keys) -> Result<Rekeyed, AnonError> {
        let mut r = Rekeyed::default();
        for enc in self.entries.values_mut() {
            r.add(rekey(keys, enc)?, enc);
        }
        Ok(r)
    }
}

/// What re-encrypting a vault did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rekeyed {
    /// Entries looked at.
    pub checked: u64,
    /// Entries re-encrypted under the current key.
    pub rekeyed: u64,
    /// Entries under a key not held (left as they were).
    pub undecryptable: u64,
}

impl Rekeyed {
    /// Counts one entry by what [`rekey`] said of it, replacing `enc` by its
    /// re-encryption; returns whether it was re-encrypted.
    pub fn add(&mut self, outcome: Rekey, enc: &mut String) -> bool {
        self.checked += 1;
        match outcome {
            Rekey::Current => false,
            Rekey::Rekeyed(new) => {
                self.rekeyed += 1;
                *enc = new;
                true
            }
            Rekey::Undecryptable(_) => {
                self.undecryptable += 1;
                false
            }
        }
    }
}

/// One vault entry after [`rekey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rekey {
    /// Already under the current key.
    Current,
    /// Re-encrypted under the current key.
    Rekeyed(String),
    /// Under a key not held, or not an `enc:` value: why.
    Undecryptable(String),
}

/// `enc` (from [`encrypt`]) re-encrypted under `keys`' current key. Fails only
/// when `keys` have no current key.
pub fn rekey(keys: &Keys, enc: &str) -> Result<Rekey, AnonError> {
    let current = keys
        .current
        .as_deref()
        .ok_or_else(|| AnonError::Key("no current encryption key to re-encrypt with".into()))?;
    if key_id(enc) == Some(current) {
        return Ok(Rekey::Current);
    }
    Ok(match decrypt(keys, enc) {
        Ok(v) => Rekey::Rekeyed(encrypt(keys, current, &v)?),
        Err(why) => Rekey::Undecryptable(why),
    })
}

/// Where the ledger lives by default.
pub fn default_ledger() -> PathBuf {
    PathBuf::from("tamis-privacy-ledger.json")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::recognize;

    fn keys() -> Keys {
        Keys {
            hmac: b"k1".to_vec(),
            aes: Keys::parse_aes(&format!("a:{},b:{}", "11".repeat(32), "22".repeat(32))).unwrap(),
            current: Some("b".into()),
        }
    }

    #[test]
    fn pseudonyms_are_stable_realistic_and_key_dependent() {
        let k = keys();
        for (t, v) in [
            (PiiType::EmailAddress, "jane@corp.com"),
            (PiiType::Person, "Jane Doe"),
            (PiiType::PhoneNumber, "+1 (555) 123-4567"),
            (PiiType::CreditCard, "4111 1111 1111 1111"),
            (PiiType::UsSsn, "123-45-6789"),
            (PiiType::IbanCode, "DE89 3704 0044 0532 0130 00"),
            (PiiType::IpAddress, "8.8.8.8"),
            (PiiType::StreetAddress, "12 Main St, Springfield, IL 62704"),
        ] {
            let a = pseudonym(&k.hmac, Some(t), v);
            assert_eq!(a, pseudonym(&k.hmac, Some(t), v), "stable");
            assert_ne!(a, v);
            assert_ne!(a, pseudonym(b"other key", Some(t), v), "depends on the key");
            // The fake is a valid value of the same type.
            assert!(
                crate::recognize::fits(t, &a)
                    || t == PiiType::StreetAddress && recognize::street_address(&a),
                "{t:?}: {a}"
            );
        }
        let card = pseudonym(&k.hmac, Some(PiiType::CreditCard), "4111 1111 1111 1111");
        assert!(
            card.starts_with("4111 11") && recognize::card(&card),
            "{card}"
        );
        let ext = pseudonym(&k.hmac, Some(PiiType::PhoneNumber), "478-555-1234x123");
        assert!(recognize::phone(&ext, true) && ext.contains('x'), "{ext}");
        let phone = pseudonym(&k.hmac, Some(PiiType::PhoneNumber), "+44 20 7946 0958");
        assert!(
            phone.starts_with("+44 ") && phone.len() == "+44 20 7946 0958".len(),
            "{phone}"
        );
        assert!(recognize::iban(&pseudonym(
            &k.hmac,
            Some(PiiType::IbanCode),
            "DE89370400440532013000"
        )));
    }

    #[test]
    fn masks_and_generalisations() {
        assert_eq!(
            mask_value("4111-1111-1111-1234", 4, false),
            "****-****-****-1234"
        );
        assert_eq!(
            mask_value("jane.doe@corp.com", 0, true),
            "********@corp.com"
        );
        assert_eq!(
            generalise(&Generalise::Band(10.0), "47").as_deref(),
            Some("40-49")
        );
        assert_eq!(
            generalise(&Generalise::Month, "03/15/1990").as_deref(),
            Some("1990-03")
        );
        assert_eq!(
            generalise(&Generalise::Year, "1990-03-15").as_deref(),
            Some("1990")
        );
        assert_eq!(
            generalise(&Generalise::Prefix(3), "94107").as_deref(),
            Some("941**")
        );
        assert_eq!(
            generalise(&Generalise::Round(2), "37.774929").as_deref(),
            Some("37.77")
        );
        assert_eq!(generalise(&Generalise::Band(10.0), "n/a"), None);
    }

    #[test]
    fn encryption_round_trips_and_keys_rotate() {
        let k = keys();
        let a = encrypt(&k, "a", "123-45-6789").unwrap();
        assert!(a.starts_with("enc:a:"));
        assert_eq!(decrypt(&k, &a).unwrap(), "123-45-6789");
        // Rotation: decrypt with the old key id it names, encrypt with the new one.
        let b = encrypt(&k, "b", &decrypt(&k, &a).unwrap()).unwrap();
        assert!(b.starts_with("enc:b:"));
        assert_eq!(decrypt(&k, &b).unwrap(), "123-45-6789");
        // Without the old key, old values cannot be read; a changed byte fails authentication.
        let mut only_b = k.clone();
        only_b.aes.remove("a");
        assert!(decrypt(&only_b, &a).is_err());
        assert!(decrypt(&only_b, &b).is_ok());
        let mut tampered = b.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        assert!(
            decrypt(&k, &tampered)
                .unwrap_err()
                .contains("authentication")
        );
        assert!(!format!("{k:?}").contains("1111"), "keys never print");
    }

    #[test]
    fn the_vault_round_trips_only_with_the_key() {
        let k = keys();
        let mut v = Vault::default();
        let t = v.tokenise(&k, "b", "123-45-6789").unwrap();
        assert_eq!(
            t,
            v.tokenise(&k, "b", "123-45-6789").unwrap(),
            "stable tokens"
        );
        assert!(t.starts_with("tok_") && !t.contains("6789"));
        assert_eq!(v.detokenise(&k, &t).unwrap(), "123-45-6789");
        let mut no_key = k.clone();
        no_key.aes.clear();
        assert!(v.detokenise(&no_key, &t).is_err());
        assert!(v.detokenise(&k, "tok_unknown").is_err());
        assert!(
            !serde_json::to_string(&v).unwrap().contains("6789"),
            "the vault holds no clear value"
        );
    }

    #[test]
    fn a_vault_rekeys_to_the_current_key_and_the_old_one_retires() {
        let k = keys(); // a and b; b is current
        let mut v = Vault::default();
        let values = ["123-45-6789", "jane@corp.com", "4111 1111 1111 1111"];
        let tokens: Vec<String> = values
            .iter()
            .map(|x| v.tokenise(&k, "a", x).unwrap())
            .collect();
        // One entry already under b, one under a key no longer held.
        let t_b = v.tokenise(&k, "b", "already b").unwrap();
        let lost = encrypt(
            &Keys {
                aes: Keys::parse_aes(&format!("z:{}", "33".repeat(32))).unwrap(),
                ..k.clone()
            },
            "z",
            "gone",
        )
        .unwrap();
        v.entries.insert("tok_lost".into(), lost.clone());
        let r = v.rekey(&k).unwrap();
        assert_eq!(
            r,
            Rekeyed {
                checked: 5,
                rekeyed: 3,
                undecryptable: 1
            }
        );
        assert_eq!(v.entries["tok_lost"], lost, "left as it was");
        // Every readable entry is under b now: a can go.
        let mut only_b = k.clone();
        only_b.aes.remove("a");
        for (t, x) in tokens.iter().zip(values) {
            assert!(v.entries[t].starts_with("enc:b:"), "{}", v.entries[t]);
            assert_eq!(v.detokenise(&only_b, t).unwrap(), x);
        }
        assert_eq!(v.detokenise(&only_b, &t_b).unwrap(), "already b");
        // Deterministic, and a second pass has nothing to do.
        let once = v.entries.clone();
        assert_eq!(v.rekey(&k).unwrap().rekeyed, 0);
        assert_eq!(v.entries, once);
        // No current key: an error, not a silent no-op.
        let mut none = k.clone();
        none.current = None;
        assert!(matches!(v.rekey(&none), Err(AnonError::Key(_))));
        assert_eq!(
            rekey(&k, "plain text").unwrap(),
            Rekey::Undecryptable("not an `enc:` value".into())
        );
    }

    #[test]
    fn the_ledger_refuses_to_overspend() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.json");
        let mut l = Ledger::read(&p).unwrap();
        l.check("d", 0.6, 1.0).unwrap();
        l.spend(&p, "d", 0.6, json!({"column": "income"})).unwrap();
        let l = Ledger::read(&p).unwrap();
        assert!((l.datasets["d"].spent - 0.6).abs() < 1e-12);
        assert!(matches!(
            l.check("d", 0.5, 1.0),
            Err(AnonError::Budget { .. })
        ));
        l.check("d", 0.4, 1.0).unwrap();
        l.check("other", 1.0, 1.0).unwrap();
    }

    #[test]
    fn dp_noise_has_the_right_scale_and_is_seeded() {
        let key = b"k";
        let n = 20_000;
        let xs: Vec<f64> = (0..n)
            .map(|r| dp_noise(key, 7, r, "c", Mechanism::Laplace, 0.5, 1.0))
            .collect();
        let mean_abs = xs.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        assert!(
            (mean_abs - 2.0).abs() < 0.1,
            "E|Laplace(b=2)| = 2, got {mean_abs}"
        );
        assert_eq!(
            xs[5],
            dp_noise(key, 7, 5, "c", Mechanism::Laplace, 0.5, 1.0)
        );
        assert_ne!(
            xs[5],
            dp_noise(key, 8, 5, "c", Mechanism::Laplace, 0.5, 1.0)
        );
        let g: Vec<f64> = (0..n)
            .map(|r| {
                dp_noise(
                    key,
                    1,
                    r,
                    "c",
                    Mechanism::Gaussian { delta: 1e-5 },
                    1.0,
                    1.0,
                )
            })
            .collect();
        let sd = (g.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
        let want = (2.0f64 * (1.25f64 / 1e-5).ln()).sqrt();
        assert!((sd / want - 1.0).abs() < 0.05, "σ {sd} vs {want}");
        let c = dp_count(key, 1, "bucket", 1000, 1.0);
        assert!((950..=1050).contains(&c));
    }

    #[test]
    fn k_anonymity_and_l_diversity() {
        let r = |a: &str, b: &str, s: &str| {
            (
                vec![Some(a.to_string()), Some(b.to_string())],
                Some(s.to_string()),
            )
        };
        let rows = vec![
            r("30-39", "CA", "x"),
            r("30-39", "CA", "y"),
            r("30-39", "CA", "x"),
            r("40-49", "NY", "z"),
        ];
        let k = k_anonymity(&["age".into(), "state".into()], &rows, true);
        assert_eq!((k.k, k.classes, k.rows_below_5, k.l), (1, 2, 4, Some(1)));
        assert_eq!(k.smallest[0]["rows"], 1);
    }
}
