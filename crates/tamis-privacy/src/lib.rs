//! `tamis-privacy`: finds personal data in tables.
//!
//! Cells are recognised with validation ([`recognize`]); columns are
//! classified by combining what their cells show, how they are shaped, and
//! what their header says (in several languages). A column's type then labels
//! its cells, so a name or an address in a name or address column is found
//! without a language model, and identifiers that only look like phones or SSNs
//! stay unlabelled unless the header says otherwise.

pub mod anonymize;
pub mod apply;
pub mod recognize;
pub mod text;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use recognize::{PiiType, cell_type, fits};
use tamis_core::datafusion::arrow::array::{Array, AsArray};
use tamis_core::datafusion::arrow::compute::cast;
use tamis_core::datafusion::arrow::datatypes::DataType;
use tamis_core::{CoreError, Dataset, Quarantine};

/// Errors of scanning.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// Reading the input failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Anonymisation failed (policy, keys, budget).
    #[error(transparent)]
    Anon(#[from] anonymize::AnonError),
    /// An output cannot be written.
    #[error("cannot write `{path}`: {message}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Header words that name a PII type, in English, German, French, Spanish,
/// Italian, Dutch and Portuguese. Matched against the header's words.
const HEADER_WORDS: &[(PiiType, &[&str])] = &[
    (
        PiiType::EmailAddress,
        &["email", "mail", "courriel", "correo", "posta", "emailadres"],
    ),
    (
        PiiType::PhoneNumber,
        &[
            "phone",
            "tel",
            "telephone",
            "telefon",
            "telefono",
            "telefone",
            "mobile",
            "mobil",
            "cell",
            "cellphone",
            "handy",
            "portable",
            "fax",
            "telefoonnummer",
            "celular",
            "cellulare",
        ],
    ),
    (
        PiiType::CreditCard,
        &[
            "card",
            "creditcard",
            "cc",
            "kreditkarte",
            "carte",
            "tarjeta",
            "carta",
            "pan",
        ],
    ),
    (PiiType::UsSsn, &["ssn", "social"]),
    (PiiType::IpAddress, &["ip", "ipv4", "ipv6", "ipaddress"]),
    (PiiType::IbanCode, &["iban"]),
    (
        PiiType::StreetAddress,
        &[
            "address",
            "addr",
            "street",
            "adresse",
            "anschrift",
            "strasse",
            "direccion",
            "dirección",
            "indirizzo",
            "endereco",
            "endereço",
            "adres",
            "domicile",
        ],
    ),
    (
        PiiType::DateOfBirth,
        &[
            "dob",
            "birth",
            "birthday",
            "birthdate",
            "geburtsdatum",
            "geburtstag",
            "naissance",
            "nacimiento",
            "nascita",
            "geboortedatum",
            "nascimento",
        ],
    ),
    (
        PiiType::Url,
        &["url", "website", "homepage", "web", "link", "site", "uri"],
    ),
    (PiiType::MacAddress, &["mac"]),
    (
        PiiType::CryptoWallet,
        &["wallet", "btc", "bitcoin", "eth", "ethereum"],
    ),
    (
        PiiType::Passport,
        &[
            "passport",
            "reisepass",
            "passeport",
            "pasaporte",
            "passaporto",
        ],
    ),
    (
        PiiType::NationalId,
        &[
            "nino",
            "insee",
            "dni",
            "nie",
            "nif",
            "steuerid",
            "codicefiscale",
            "fiscale",
            "cpf",
            "bsn",
            "tin",
            "taxid",
            "personalausweis",
        ],
    ),
    (
        PiiType::Person,
        &[
            "name",
            "fullname",
            "firstname",
            "lastname",
            "surname",
            "forename",
            "givenname",
            "nom",
            "prenom",
            "prénom",
            "nombre",
            "apellido",
            "apellidos",
            "vorname",
            "nachname",
            "cognome",
            "naam",
            "achternaam",
            "voornaam",
            "sobrenome",
            "customer",
            "contact",
            "patient",
            "employee",
            "person",
        ],
    ),
];

/// Header words that make a column an identifier or a product attribute,
/// not personal data (unless a specific PII word is there too).
const NOT_PII_WORDS: &[&str] = &[
    "order",
    "sku",
    "ref",
    "reference",
    "uuid",
    "guid",
    "product",
    "item",
    "price",
    "amount",
    "invoice",
    "sku",
    "company",
    "brand",
    "file",
    "store",
    "shop",
    "city",
    "category",
    "host",
    "domain",
    "table",
    "column",
    "business",
    "organisation",
    "organization",
    "team",
    "project",
    "tracking",
    "transaction",
    "txn",
    "batch",
    "serial",
    "model",
];

/// Splits a header into lower-case words (`dateOfBirth`, `date_of_birth`, `E-Mail` → words).
pub fn header_words(h: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in h.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    // Joined forms too: `e mail` → `email`, `date of birth` → `dateofbirth`.
    let joined: String = words.concat();
    if words.len() > 1 {
        words.push(joined);
    }
    words
}

/// What the header says: a PII type, or that the column is an identifier/product attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderHint {
    /// The header names this type.
    Pii(PiiType),
    /// The header names an identifier or product attribute.
    NotPii,
    /// Nothing either way.
    None,
}

/// Reads a header.
pub fn header_hint(h: &str) -> HeaderHint {
    let words = header_words(h);
    let has = |w: &str| words.iter().any(|x| x == w);
    let negative = NOT_PII_WORDS.iter().any(|w| has(w));
    let joined = words.last().cloned().unwrap_or_default();
    if joined.contains("dateofbirth")
        || joined.contains("birthdate")
        || joined.contains("datenaissance")
        || joined.contains("fechanacimiento")
        || joined.contains("datanascita")
    {
        return HeaderHint::Pii(PiiType::DateOfBirth);
    }
    for (t, ws) in HEADER_WORDS {
        // A bare `name` is weak: a product or company name is not a person's.
        if *t == PiiType::Person && negative {
            continue;
        }
        if ws.iter().any(|w| has(w)) {
            return HeaderHint::Pii(*t);
        }
    }
    if negative
        || has("id")
        || has("code")
        || has("number") && words.len() <= 2 && !words.iter().any(|w| w == "phone")
    {
        return HeaderHint::NotPii;
    }
    HeaderHint::None
}

/// Types a cell proves by itself, safe to report even in an unclassified column.
fn self_evident(t: PiiType) -> bool {
    matches!(
        t,
        PiiType::EmailAddress
            | PiiType::Url
            | PiiType::IpAddress
            | PiiType::IbanCode
            | PiiType::CreditCard
            | PiiType::MacAddress
            | PiiType::CryptoWallet
    )
}

/// The classification of one column.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnScan {
    /// Column name.
    pub name: String,
    /// The PII type, if any.
    pub pii_type: Option<&'static str>,
    /// Confidence in the type (0–1).
    pub confidence: f64,
    /// Share of the non-empty cells labelled with the type.
    pub hit_rate: f64,
    /// Non-empty cells.
    pub cells: u64,
    /// Cells labelled (any type).
    pub labelled: u64,
    /// Why: header and cell evidence.
    pub reason: String,
    /// Up to 3 labelled values, masked.
    pub examples: Vec<String>,
    /// For a phone column: the share of sampled values valid per the numbering
    /// plans (libphonenumber metadata; national numbers read as US).
    pub phones_valid: Option<f64>,
    /// For a column with no PII type: entities found inside its free text
    /// ([`text::find`]), by type; a cell may hold several. They are not cell
    /// labels (the cell is text, not an e-mail address); `redact_entities`
    /// replaces them. Their masked spans are the `examples`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub embedded: BTreeMap<&'static str, u64>,
    #[serde(skip)]
    pub(crate) ty: Option<PiiType>,
}

impl ColumnScan {
    /// The entities inside the column's text, as `TYPE n, …` (empty when none).
    pub fn embedded_summary(&self) -> String {
        entity_summary(&self.embedded)
    }
}

/// Entity counts by type as `TYPE n, …`, in type order (empty when none).
pub fn entity_summary(counts: &BTreeMap<&'static str, u64>) -> String {
    counts
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of a scan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scan {
    /// Format tag.
    pub schema: &'static str,
    /// Rows read.
    pub rows: u64,
    /// Non-empty cells scanned.
    pub cells: u64,
    /// Cells labelled.
    pub labelled: u64,
    /// Per column.
    pub columns: Vec<ColumnScan>,
}

/// Masks a value for display: letters and digits beyond the first and the last two become `*`.
pub fn mask(v: &str) -> String {
    let n = v.chars().count();
    v.chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 || i + 2 >= n || !c.is_alphanumeric() {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// Classifies a column from its header and a sample of its non-empty values.
pub fn classify(name: &str, sample: &[&str]) -> (Option<PiiType>, f64, String) {
    let n = sample.len().max(1) as f64;
    let mut counts: BTreeMap<PiiType, usize> = BTreeMap::new();
    for v in sample {
        if let Some(t) = cell_type(v) {
            *counts.entry(t).or_default() += 1;
        }
    }
    let best = counts
        .iter()
        .max_by_key(|(t, c)| (**c, std::cmp::Reverse(**t)))
        .map(|(t, c)| (*t, *c as f64 / n));
    let hint = header_hint(name);
    if let HeaderHint::Pii(h) = hint {
        let fit = sample.iter().filter(|v| fits(h, v)).count() as f64 / n;
        // A date column is a birth date only when the header says so; an SSN column may be undashed.
        if fit >= 0.5 {
            let strict = counts.get(&h).copied().unwrap_or(0) as f64 / n;
            return (
                Some(h),
                (0.6 + 0.2 * fit + 0.2 * strict).min(1.0),
                format!(
                    "header `{name}` names {}; {:.0}% of values fit",
                    h.name(),
                    fit * 100.0
                ),
            );
        }
    }
    if let Some((t, r)) = best {
        let allowed = match hint {
            HeaderHint::NotPii => self_evident(t) && r >= 0.9,
            _ => t != PiiType::DateOfBirth && r >= 0.5,
        };
        if allowed && !sample.is_empty() {
            return (
                Some(t),
                r,
                format!("{:.0}% of values are valid {}", r * 100.0, t.name()),
            );
        }
    }
    let why = match hint {
        HeaderHint::NotPii => format!("header `{name}` names an identifier or attribute"),
        _ => "no PII type fits half of the values".into(),
    };
    (None, 0.0, why)
}

/// How a scan running as a job is followed and stopped.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Raised to stop the scan at its next batch (`CoreError::Cancelled`).
    pub cancel: tamis_core::Cancel,
    /// Input bytes read by the full pass, for progress.
    pub progress: Arc<AtomicU64>,
}

/// Scans a dataset: classifies every column from the header and the first
/// `sample_rows` rows, then labels every cell in a second pass. With `cells`,
/// each labelled cell is written as `row,column,entity_type`.
pub fn scan(
    ds: &Dataset,
    sample_rows: u64,
    mut cells: Option<&mut dyn Write>,
    watch: &Watch,
) -> Result<Scan, PrivacyError> {
    let cols = ds.columns().to_vec();
    // Pass 1: the sample.
    let samples = ds.sample_text(sample_rows as usize)?;
    let mut out: Vec<ColumnScan> = cols
        .iter()
        .zip(&samples)
        .map(|(name, s)| {
            let refs: Vec<&str> = s.iter().map(String::as_str).collect();
            let (ty, confidence, reason) = classify(name, &refs);
            let phones_valid = (ty == Some(PiiType::PhoneNumber)).then(|| {
                let n = refs.len().min(1000);
                let ok = refs
                    .iter()
                    .take(n)
                    .filter(|v| recognize::phone_valid(v, phonenumber::country::Id::US))
                    .count();
                ok as f64 / n.max(1) as f64
            });
            ColumnScan {
                name: name.clone(),
                pii_type: ty.map(PiiType::name),
                confidence,
                hit_rate: 0.0,
                cells: 0,
                labelled: 0,
                reason,
                examples: Vec::new(),
                phones_valid,
                embedded: BTreeMap::new(),
                ty,
            }
        })
        .collect();
    // Pass 2: every cell.
    let werr = |e: std::io::Error| PrivacyError::Write {
        path: "cells".into(),
        message: e.to_string(),
    };
    if let Some(w) = cells.as_mut() {
        writeln!(w, "row,column,entity_type").map_err(werr)?;
    }
    let mut rows = 0;
    for b in ds.batches(Arc::new(Quarantine::in_memory()), watch.progress.clone())? {
        watch.cancel.check()?;
        let b = b?;
        rows += b.num_rows() as u64;
        let ids = tamis_core::row_ids(&b)?.clone();
        for (i, c) in out.iter_mut().enumerate() {
            let a = cast(b.column(i), &DataType::Utf8)
                .map_err(|e| CoreError::Internal(e.to_string()))?;
            let s = a.as_string::<i32>();
            for r in 0..s.len() {
                if s.is_null(r) {
                    continue;
                }
                let v = s.value(r).trim();
                if v.is_empty() {
                    continue;
                }
                c.cells += 1;
                let label = match c.ty {
                    Some(t) => fits(t, v).then_some(t),
                    None => cell_type(v).filter(|t| self_evident(*t)),
                };
                if label.is_none() && c.ty.is_none() && v.contains(char::is_whitespace) {
                    // Free text: what it holds inside.
                    for sp in text::find(v) {
                        *c.embedded.entry(sp.ty.name()).or_default() += 1;
                        if c.examples.len() < 3 {
                            c.examples.push(mask(&v[sp.start..sp.end]));
                        }
                    }
                }
                if let Some(t) = label {
                    c.labelled += 1;
                    if c.examples.len() < 3 {
                        c.examples.push(mask(v));
                    }
                    if let Some(w) = cells.as_mut() {
                        let col = if c.name.contains([',', '"', '\n']) {
                            format!("\"{}\"", c.name.replace('"', "\"\""))
                        } else {
                            c.name.clone()
                        };
                        writeln!(w, "{},{col},{}", ids.value(r), t.name()).map_err(werr)?;
                    }
                }
            }
        }
    }
    let mut total = 0;
    let mut labelled = 0;
    for c in &mut out {
        c.hit_rate = if c.cells == 0 {
            0.0
        } else {
            c.labelled as f64 / c.cells as f64
        };
        total += c.cells;
        labelled += c.labelled;
    }
    Ok(Scan {
        schema: "tamis.pii-scan/1",
        rows,
        cells: total,
        labelled,
        columns: out,
    })
}

/// Scans files and writes the cell labels to `cells_out`, if given (atomically).
pub fn scan_files(
    ds: &Dataset,
    cells_out: Option<&Path>,
    watch: &Watch,
) -> Result<Scan, PrivacyError> {
    const SAMPLE: u64 = 5_000;
    match cells_out {
        None => scan(ds, SAMPLE, None, watch),
        Some(p) => {
            let tmp = tamis_core::quarantine::tmp_name(p);
            let werr = |e: std::io::Error| PrivacyError::Write {
                path: p.display().to_string(),
                message: e.to_string(),
            };
            let f = std::fs::File::create(&tmp).map_err(werr)?;
            let mut w = std::io::BufWriter::new(f);
            let r = scan(ds, SAMPLE, Some(&mut w), watch);
            let flushed = w.flush().map_err(werr);
            match (r, flushed) {
                (Ok(s), Ok(())) => {
                    std::fs::rename(&tmp, p).map_err(werr)?;
                    Ok(s)
                }
                (Err(e), _) | (_, Err(e)) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn headers_in_several_languages() {
        assert_eq!(header_hint("dob"), HeaderHint::Pii(PiiType::DateOfBirth));
        assert_eq!(
            header_hint("Geburtsdatum"),
            HeaderHint::Pii(PiiType::DateOfBirth)
        );
        assert_eq!(
            header_hint("date_naissance"),
            HeaderHint::Pii(PiiType::DateOfBirth)
        );
        assert_eq!(
            header_hint("dateOfBirth"),
            HeaderHint::Pii(PiiType::DateOfBirth)
        );
        assert_eq!(header_hint("tel"), HeaderHint::Pii(PiiType::PhoneNumber));
        assert_eq!(
            header_hint("courriel"),
            HeaderHint::Pii(PiiType::EmailAddress)
        );
        assert_eq!(
            header_hint("E-Mail"),
            HeaderHint::Pii(PiiType::EmailAddress)
        );
        assert_eq!(header_hint("full_name"), HeaderHint::Pii(PiiType::Person));
        assert_eq!(header_hint("product_name"), HeaderHint::NotPii);
        assert_eq!(header_hint("order_id"), HeaderHint::NotPii);
        assert_eq!(header_hint("ref_number"), HeaderHint::NotPii);
        assert_eq!(
            header_hint("phone_number"),
            HeaderHint::Pii(PiiType::PhoneNumber)
        );
        assert_eq!(header_hint("order_date"), HeaderHint::NotPii);
        assert_eq!(header_hint("notes"), HeaderHint::None);
    }

    #[test]
    fn columns_with_distractors() {
        let dates = ["2023-01-05", "2022-11-30", "2024-02-29"];
        assert_eq!(classify("order_date", &dates).0, None);
        assert_eq!(
            classify("signup", &dates).0,
            None,
            "a date is not a birth date without the header"
        );
        assert_eq!(classify("dob", &dates).0, Some(PiiType::DateOfBirth));
        let digits = ["123456789", "987654321", "234567891"];
        assert_eq!(classify("ref_number", &digits).0, None);
        assert_eq!(
            classify("value", &digits).0,
            None,
            "undashed SSN-like digits need the header"
        );
        assert_eq!(classify("ssn", &digits).0, Some(PiiType::UsSsn));
        let ids = ["ORD-2023-000001", "ORD-2023-000002"];
        assert_eq!(classify("order_id", &ids).0, None);
        let uuids = [
            "550e8400-e29b-41d4-a716-446655440000",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        ];
        assert_eq!(classify("uuid", &uuids).0, None);
        let emails = ["a@example.com", "b@example.org"];
        assert_eq!(
            classify("contact_x", &emails).0,
            Some(PiiType::EmailAddress)
        );
        let names = ["Ergonomic Steel Chair", "Rustic Wooden Table"];
        assert_eq!(classify("product_name", &names).0, None);
        let people = ["Jürgen Müller", "Jean-Pierre Dubois", "Mary Smith"];
        assert_eq!(classify("full_name", &people).0, Some(PiiType::Person));
    }

    #[test]
    fn masks_keep_shape() {
        assert_eq!(mask("john@example.com"), "j***@*******.*om");
    }
}
