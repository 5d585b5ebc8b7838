//! `tamis pii apply`: a policy of per-column strategies applied to a dataset,
//! streaming, with the ε ledger, a k-anonymity report and a compliance report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};
use tamis_core::contract::did_you_mean;
use tamis_core::datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, StringArray};
use tamis_core::datafusion::arrow::compute::cast;
use tamis_core::datafusion::arrow::datatypes::{DataType, Field, Schema};
use tamis_core::datafusion::arrow::record_batch::RecordBatch;
use tamis_core::{Dataset, Quarantine};

use crate::anonymize::{self, AnonError, Generalise, Keys, Ledger, Mechanism};
use crate::recognize::PiiType;
use crate::{PrivacyError, Scan};

/// What to do with one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Keyed, realistic, format-preserving fake.
    Pseudonymise,
    /// Mask all but the last N characters, or keep an e-mail's domain.
    Mask {
        /// Characters kept at the end.
        keep_last: usize,
        /// Keep an e-mail's domain.
        keep_domain: bool,
    },
    /// Generalise.
    Generalise(Generalise),
    /// Keyed SHA-256.
    Hash,
    /// `<TYPE>`.
    Redact,
    /// Free text kept, with each e-mail address, phone, card, SSN, IBAN, IP
    /// address or URL inside it replaced by `<TYPE>` ([`crate::text`]).
    RedactEntities,
    /// Drop the column.
    Exclude,
    /// AES-256-GCM with the named (or current) key.
    Encrypt {
        /// Key id.
        key_id: Option<String>,
    },
    /// Decrypt `enc:` values (key holders only).
    Decrypt,
    /// Replace by a token; the value goes, encrypted, into the vault.
    Tokenise,
    /// Replace tokens by their values from the vault (key holders only).
    Detokenise,
    /// Laplace or Gaussian noise on numbers.
    Dp {
        /// ε spent.
        epsilon: f64,
        /// Sensitivity (the most one row can change the value).
        sensitivity: f64,
        /// Mechanism.
        mechanism: Mechanism,
    },
}

/// A policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Dataset id (for the ledger).
    pub dataset_id: String,
    /// Seed of the DP noise.
    pub seed: u64,
    /// ε budget of the dataset.
    pub epsilon_budget: Option<f64>,
    /// Ledger file.
    pub ledger: PathBuf,
    /// Token vault file.
    pub vault: PathBuf,
    /// Column → (strategy, type override).
    pub columns: BTreeMap<String, (Strategy, Option<PiiType>)>,
    /// Quasi-identifiers for the k-anonymity report, and an optional sensitive column.
    pub k_anonymity: Option<(Vec<String>, Option<String>)>,
}

const STRATEGIES: [&str; 12] = [
    "pseudonymise",
    "mask",
    "generalise",
    "hash",
    "redact",
    "redact_entities",
    "exclude",
    "encrypt",
    "decrypt",
    "dp",
    "tokenise",
    "detokenise",
];

impl Policy {
    /// Reads a policy (YAML or JSON).
    pub fn read(path: &Path) -> Result<Policy, AnonError> {
        let file = path.display().to_string();
        let err = |message: String| AnonError::Policy {
            file: file.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: Value =
            serde_yaml_ng::from_str(&text).map_err(|e| err(format!("not YAML or JSON: {e}")))?;
        let cols = v
            .get("columns")
            .and_then(|c| c.as_object())
            .ok_or_else(|| err("`columns` must map column names to strategies".into()))?;
        let mut columns = BTreeMap::new();
        for (name, spec) in cols {
            let at = format!("columns.{name}");
            let st = spec
                .get("strategy")
                .and_then(|s| s.as_str())
                .or_else(|| spec.as_str())
                .ok_or_else(|| {
                    err(format!(
                        "{at}: `strategy` is missing; strategies are {}",
                        STRATEGIES.join(", ")
                    ))
                })?;
            let num = |k: &str| spec.get(k).and_then(|x| x.as_f64());
            let strategy = match st {
                "pseudonymise" | "pseudonymize" => Strategy::Pseudonymise,
                "mask" => Strategy::Mask {
                    keep_last: num("keep_last").unwrap_or(0.0) as usize,
                    keep_domain: spec
                        .get("keep_domain")
                        .and_then(|x| x.as_bool())
                        .unwrap_or(false),
                },
                "generalise" | "generalize" => Strategy::Generalise(if let Some(b) = num("band") {
                    Generalise::Band(b)
                } else if let Some(p) = num("prefix") {
                    Generalise::Prefix(p as usize)
                } else if let Some(r) = num("round") {
                    Generalise::Round(r as u32)
                } else {
                    match spec.get("to").and_then(|x| x.as_str()) {
                        Some("month") => Generalise::Month,
                        Some("year") => Generalise::Year,
                        _ => {
                            return Err(err(format!(
                                "{at}: generalise needs `band`, `prefix`, `round` or `to: month|year`"
                            )));
                        }
                    }
                }),
                "hash" => Strategy::Hash,
                "redact" => Strategy::Redact,
                "redact_entities" => Strategy::RedactEntities,
                "exclude" => Strategy::Exclude,
                "encrypt" => Strategy::Encrypt {
                    key_id: spec
                        .get("key_id")
                        .and_then(|x| x.as_str())
                        .map(String::from),
                },
                "decrypt" => Strategy::Decrypt,
                "dp" => {
                    let epsilon = num("epsilon")
                        .filter(|e| *e > 0.0)
                        .ok_or_else(|| err(format!("{at}: dp needs `epsilon` > 0")))?;
                    let sensitivity = num("sensitivity")
                        .filter(|e| *e > 0.0)
                        .ok_or_else(|| err(format!("{at}: dp needs `sensitivity` > 0")))?;
                    let mechanism = match spec
                        .get("mechanism")
                        .and_then(|x| x.as_str())
                        .unwrap_or("laplace")
                    {
                        "laplace" => Mechanism::Laplace,
                        "gaussian" => Mechanism::Gaussian {
                            delta: num("delta").filter(|d| *d > 0.0 && *d < 1.0).ok_or_else(
                                || err(format!("{at}: gaussian needs 0 < `delta` < 1")),
                            )?,
                        },
                        m => {
                            return Err(err(format!(
                                "{at}: mechanism `{m}` is not laplace or gaussian"
                            )));
                        }
                    };
                    Strategy::Dp {
                        epsilon,
                        sensitivity,
                        mechanism,
                    }
                }
                "tokenise" | "tokenize" => Strategy::Tokenise,
                "detokenise" | "detokenize" => Strategy::Detokenise,
                other => {
                    return Err(err(format!(
                        "{at}: unknown strategy `{other}`{}; strategies are {}",
                        did_you_mean(other, STRATEGIES),
                        STRATEGIES.join(", ")
                    )));
                }
            };
            let ty = match spec.get("type").and_then(|x| x.as_str()) {
                None => None,
                Some(t) => Some(
                    PiiType::named(t)
                        .ok_or_else(|| err(format!("{at}: unknown PII type `{t}`")))?,
                ),
            };
            columns.insert(name.clone(), (strategy, ty));
        }
        let k_anonymity = v.get("k_anonymity").map(|k| {
            let qi = k
                .get("quasi_identifiers")
                .and_then(|q| q.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (
                qi,
                k.get("sensitive")
                    .and_then(|s| s.as_str())
                    .map(String::from),
            )
        });
        Ok(Policy {
            dataset_id: v
                .get("dataset_id")
                .and_then(|x| x.as_str())
                .unwrap_or("dataset")
                .to_string(),
            seed: v.get("seed").and_then(|x| x.as_u64()).unwrap_or(42),
            epsilon_budget: v.get("epsilon_budget").and_then(|x| x.as_f64()),
            ledger: v
                .get("ledger")
                .and_then(|x| x.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(anonymize::default_ledger),
            vault: v
                .get("vault")
                .and_then(|x| x.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("tamis-vault.json")),
            columns,
            k_anonymity,
        })
    }

    /// ε this policy spends.
    pub fn epsilon(&self) -> f64 {
        self.columns
            .values()
            .map(|(s, _)| {
                if let Strategy::Dp { epsilon, .. } = s {
                    *epsilon
                } else {
                    0.0
                }
            })
            .sum()
    }
}

fn aerr(e: AnonError) -> PrivacyError {
    PrivacyError::Anon(e)
}

/// Applies a policy; writes OUT (Parquet, or CSV by extension) atomically and
/// returns the compliance report.
pub fn apply(
    ds: &Dataset,
    policy: &Policy,
    keys: &Keys,
    out: &Path,
) -> Result<Value, PrivacyError> {
    let cols = ds.columns().to_vec();
    let bad = |m: String| {
        aerr(AnonError::Policy {
            file: "policy".into(),
            message: m,
        })
    };
    for c in policy.columns.keys() {
        if !cols.contains(c) {
            return Err(bad(format!(
                "no column `{c}`{}; columns are {}",
                did_you_mean(c, cols.iter().map(String::as_str)),
                cols.join(", ")
            )));
        }
    }
    if let Some((qi, s)) = &policy.k_anonymity {
        for c in qi.iter().chain(s) {
            if !cols.contains(c) {
                return Err(bad(format!("k_anonymity: no column `{c}`")));
            }
        }
    }
    for (c, (s, _)) in &policy.columns {
        if let Strategy::Encrypt { key_id } = s {
            let id = key_id
                .clone()
                .or_else(|| keys.current.clone())
                .ok_or_else(|| {
                    aerr(AnonError::Key(format!(
                        "`{c}`: encrypt needs a key: set TAMIS_ENCRYPTION_KEYS=id:64-hex"
                    )))
                })?;
            if !keys.aes.contains_key(&id) {
                return Err(aerr(AnonError::Key(format!(
                    "`{c}`: no encryption key `{id}`"
                ))));
            }
        }
    }
    let vaulting = policy
        .columns
        .values()
        .any(|(s, _)| matches!(s, Strategy::Tokenise | Strategy::Detokenise));
    if vaulting && keys.current.is_none() {
        return Err(aerr(AnonError::Key(
            "tokenise and detokenise need the vault key: set TAMIS_ENCRYPTION_KEYS=id:64-hex"
                .into(),
        )));
    }
    let mut vault = if vaulting {
        anonymize::Vault::read(&policy.vault).map_err(aerr)?
    } else {
        anonymize::Vault::default()
    };
    // Refuse before reading a row if the budget would be overspent.
    let asked = policy.epsilon();
    let mut ledger = Ledger::read(&policy.ledger).map_err(aerr)?;
    if asked > 0.0 {
        let budget = policy
            .epsilon_budget
            .ok_or_else(|| bad("dp columns need `epsilon_budget`".into()))?;
        ledger
            .check(&policy.dataset_id, asked, budget)
            .map_err(aerr)?;
    }
    // Find what is where (types for pseudonyms and redaction markers).
    let found: Scan = crate::scan(ds, 5_000, None, &crate::Watch::default())?;
    let types: BTreeMap<String, Option<PiiType>> = found
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.ty))
        .collect();

    let tmp = tamis_core::quarantine::tmp_name(out);
    let csv = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let werr = |m: String| PrivacyError::Write {
        path: out.display().to_string(),
        message: m,
    };
    let mut changed: BTreeMap<String, u64> = BTreeMap::new();
    let mut qi_rows: Vec<(Vec<Option<String>>, Option<String>)> = Vec::new();
    let mut rows = 0u64;
    let result = (|| -> Result<(), PrivacyError> {
        let file = std::fs::File::create(&tmp).map_err(|e| werr(e.to_string()))?;
        let mut parquet = None;
        let mut csvw = if csv {
            let f = file.try_clone().map_err(|e| werr(e.to_string()))?;
            Some(
                tamis_core::datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(f),
            )
        } else {
            None
        };
        for b in ds.batches(
            Arc::new(Quarantine::in_memory()),
            Arc::new(AtomicU64::new(0)),
        )? {
            let b = b?;
            let ids = tamis_core::row_ids(&b)?.clone();
            let mut fields = Vec::new();
            let mut arrays: Vec<ArrayRef> = Vec::new();
            let mut transformed: BTreeMap<String, ArrayRef> = BTreeMap::new();
            for (i, name) in cols.iter().enumerate() {
                let a = b.column(i);
                let Some((st, ty)) = policy.columns.get(name) else {
                    fields.push(Field::new(name, a.data_type().clone(), true));
                    arrays.push(a.clone());
                    transformed.insert(name.clone(), a.clone());
                    continue;
                };
                if *st == Strategy::Exclude {
                    continue;
                }
                let ty = ty.or(types.get(name).copied().flatten());
                let s = cast(a, &DataType::Utf8).map_err(|e| werr(e.to_string()))?;
                let s = s.as_string::<i32>();
                let n = changed.entry(name.clone()).or_default();
                let out: ArrayRef = match st {
                    Strategy::Dp {
                        epsilon,
                        sensitivity,
                        mechanism,
                    } => {
                        let f: Float64Array = s
                            .iter()
                            .enumerate()
                            .map(|(r, v)| {
                                v.and_then(|v| v.trim().parse::<f64>().ok()).map(|x| {
                                    *n += 1;
                                    x + anonymize::dp_noise(
                                        &keys.hmac,
                                        policy.seed,
                                        ids.value(r),
                                        name,
                                        *mechanism,
                                        *epsilon,
                                        *sensitivity,
                                    )
                                })
                            })
                            .collect();
                        Arc::new(f)
                    }
                    _ => {
                        let mut vals: Vec<Option<String>> = Vec::with_capacity(s.len());
                        for v in s.iter() {
                            let Some(v) = v.filter(|v| !v.trim().is_empty()) else {
                                vals.push(v.map(String::from));
                                continue;
                            };
                            let label =
                                ty.map_or_else(|| name.to_uppercase(), |t| t.name().to_string());
                            let new = match st {
                                Strategy::Pseudonymise => anonymize::pseudonym(&keys.hmac, ty, v),
                                Strategy::Mask {
                                    keep_last,
                                    keep_domain,
                                } => anonymize::mask_value(v, *keep_last, *keep_domain),
                                Strategy::Generalise(g) => anonymize::generalise(g, v)
                                    .unwrap_or_else(|| format!("<{label}>")),
                                Strategy::Hash => anonymize::keyed_hash(&keys.hmac, v),
                                Strategy::Redact => format!("<{label}>"),
                                Strategy::RedactEntities => {
                                    crate::text::redact(v).unwrap_or_else(|| v.to_string())
                                }
                                Strategy::Encrypt { key_id } => {
                                    let id = key_id
                                        .clone()
                                        .or_else(|| keys.current.clone())
                                        .unwrap_or_default();
                                    anonymize::encrypt(keys, &id, v).map_err(aerr)?
                                }
                                Strategy::Tokenise => {
                                    let id = keys.current.clone().unwrap_or_default();
                                    vault.tokenise(keys, &id, v).map_err(aerr)?
                                }
                                Strategy::Detokenise => vault.detokenise(keys, v).map_err(|m| {
                                    aerr(AnonError::Decrypt {
                                        column: name.clone(),
                                        message: m,
                                    })
                                })?,
                                Strategy::Decrypt => anonymize::decrypt(keys, v).map_err(|m| {
                                    aerr(AnonError::Decrypt {
                                        column: name.clone(),
                                        message: m,
                                    })
                                })?,
                                Strategy::Exclude | Strategy::Dp { .. } => v.to_string(),
                            };
                            if new != v {
                                *n += 1;
                            }
                            vals.push(Some(new));
                        }
                        Arc::new(StringArray::from(vals))
                    }
                };
                fields.push(Field::new(name, out.data_type().clone(), true));
                arrays.push(out.clone());
                transformed.insert(name.clone(), out);
            }
            if let Some((qi, sens)) = &policy.k_anonymity {
                let text = |c: &str| -> Option<StringArray> {
                    transformed
                        .get(c)
                        .and_then(|a| cast(a, &DataType::Utf8).ok())
                        .map(|a| a.as_string::<i32>().clone())
                };
                let q: Vec<Option<StringArray>> = qi.iter().map(|c| text(c)).collect();
                let sv = sens.as_deref().and_then(text);
                for r in 0..b.num_rows() {
                    let key = q
                        .iter()
                        .map(|a| {
                            a.as_ref()
                                .and_then(|a| (!a.is_null(r)).then(|| a.value(r).to_string()))
                        })
                        .collect();
                    let s = sv
                        .as_ref()
                        .and_then(|a| (!a.is_null(r)).then(|| a.value(r).to_string()));
                    qi_rows.push((key, s));
                }
            }
            rows += b.num_rows() as u64;
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
                .map_err(|e| werr(e.to_string()))?;
            if let Some(w) = csvw.as_mut() {
                w.write(&batch).map_err(|e| werr(e.to_string()))?;
            } else {
                if parquet.is_none() {
                    let f = file.try_clone().map_err(|e| werr(e.to_string()))?;
                    parquet = Some(
                        tamis_core::datafusion::parquet::arrow::ArrowWriter::try_new(
                            f,
                            batch.schema(),
                            None,
                        )
                        .map_err(|e| werr(e.to_string()))?,
                    );
                }
                if let Some(w) = parquet.as_mut() {
                    w.write(&batch).map_err(|e| werr(e.to_string()))?;
                }
            }
        }
        if let Some(w) = parquet {
            w.close().map_err(|e| werr(e.to_string()))?;
        }
        drop(csvw);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The vault first: an output's tokens must always be resolvable.
    if vaulting && let Err(e) = vault.write(&policy.vault) {
        let _ = std::fs::remove_file(&tmp);
        return Err(aerr(e));
    }
    std::fs::rename(&tmp, out).map_err(|e| werr(e.to_string()))?;
    if asked > 0.0 {
        let what = json!({
            "output": out.display().to_string(),
            "epsilon": asked,
            "columns": policy.columns.iter().filter(|(_, (s, _))| matches!(s, Strategy::Dp { .. })).map(|(c, _)| c.clone()).collect::<Vec<_>>(),
        });
        ledger
            .spend(&policy.ledger, &policy.dataset_id, asked, what)
            .map_err(aerr)?;
    }
    let k = policy
        .k_anonymity
        .as_ref()
        .map(|(qi, s)| anonymize::k_anonymity(qi, &qi_rows, s.is_some()));
    let mut risks = Vec::new();
    for c in &found.columns {
        if c.pii_type.is_some() && !policy.columns.contains_key(&c.name) {
            risks.push(format!(
                "`{}` holds {} ({:.0}% of cells) and the policy leaves it as it is",
                c.name,
                c.pii_type.unwrap_or(""),
                c.hit_rate * 100.0
            ));
        }
        if !c.embedded.is_empty() && !policy.columns.contains_key(&c.name) {
            risks.push(format!(
                "`{}` holds personal data inside its text ({}) and the policy leaves it as it is; `redact_entities` replaces it",
                c.name,
                c.embedded_summary()
            ));
        }
    }
    for (c, (s, _)) in &policy.columns {
        match s {
            Strategy::Pseudonymise | Strategy::Hash => risks.push(format!("`{c}` is keyed-deterministic: equal values stay linkable across tables (by design, for joins); protect the key")),
            Strategy::Encrypt { .. } => risks.push(format!("`{c}` is encrypted deterministically: equal values have equal ciphertexts")),
            Strategy::Decrypt | Strategy::Detokenise => risks.push(format!("`{c}` was decrypted: the output holds clear values")),
            Strategy::Tokenise => risks.push(format!("`{c}` is tokenised: whoever holds the vault and its key can recover the values")),
            Strategy::RedactEntities => risks.push(format!("`{c}`: e-mail addresses, phones, cards, SSNs, IBANs, IP addresses, URLs and street lines (house number, capitalised street, suffix) in its text are replaced, and names where the text marks them (a title, or a known first name and surname, capitalised); a name in lower case, a lone first name, an unlisted surname, an address's city and postcode, and non-English street forms stay")),
            _ => {}
        }
    }
    if let Some(k) = &k
        && k.k < 5
    {
        risks.push(format!(
            "k = {} over {}: {} rows are in classes smaller than 5",
            k.k,
            k.quasi_identifiers.join(", "),
            k.rows_below_5
        ));
    }
    let spent = Ledger::read(&policy.ledger)
        .map_err(aerr)?
        .datasets
        .get(&policy.dataset_id)
        .map_or(0.0, |e| e.spent);
    Ok(json!({
        "schema": "tamis.pii-report/1",
        "dataset_id": policy.dataset_id,
        "output": out.display().to_string(),
        "rows": rows,
        "found": found.columns.iter().filter(|c| c.pii_type.is_some()).map(|c| json!({"column": c.name, "type": c.pii_type, "confidence": c.confidence, "hit_rate": c.hit_rate})).collect::<Vec<_>>(),
        "actions": policy.columns.iter().map(|(c, (s, _))| json!({"column": c, "strategy": format!("{s:?}"), "cells_changed": changed.get(c).copied().unwrap_or(0)})).collect::<Vec<_>>(),
        "epsilon": {"this_run": asked, "spent": spent, "budget": policy.epsilon_budget},
        "k_anonymity": k,
        "residual_risks": risks,
    }))
}

/// A differentially private histogram of one column: each bucket's count plus
/// Laplace(1/ε) noise (a row falls in one bucket, so the release costs ε). With
/// `buckets`, only those values are released (a fixed domain: strictly ε-DP);
/// without, the buckets are the values seen, which reveals which values exist.
/// The ε is checked against the dataset's budget before reading and recorded after.
#[allow(clippy::too_many_arguments)]
pub fn dp_histogram(
    ds: &Dataset,
    column: &str,
    buckets: Option<&[String]>,
    epsilon: f64,
    seed: u64,
    keys: &Keys,
    ledger_path: &Path,
    dataset_id: &str,
    budget: f64,
) -> Result<Value, PrivacyError> {
    let bad = |m: String| {
        aerr(AnonError::Policy {
            file: "dp histogram".into(),
            message: m,
        })
    };
    if epsilon <= 0.0 {
        return Err(bad("epsilon must be > 0".into()));
    }
    let i = ds
        .columns()
        .iter()
        .position(|c| c == column)
        .ok_or_else(|| {
            bad(format!(
                "no column `{column}`{}",
                did_you_mean(column, ds.columns().iter().map(String::as_str))
            ))
        })?;
    let mut ledger = Ledger::read(ledger_path).map_err(aerr)?;
    ledger.check(dataset_id, epsilon, budget).map_err(aerr)?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(b) = buckets {
        for x in b {
            counts.insert(x.clone(), 0);
        }
    }
    for b in ds.batches(
        Arc::new(Quarantine::in_memory()),
        Arc::new(AtomicU64::new(0)),
    )? {
        let b = b?;
        let a = cast(b.column(i), &DataType::Utf8).map_err(|e| bad(e.to_string()))?;
        for v in a.as_string::<i32>().iter() {
            let v = v
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .unwrap_or("(null)");
            match counts.get_mut(v) {
                Some(n) => *n += 1,
                None if buckets.is_none() => {
                    counts.insert(v.to_string(), 1);
                }
                None => {}
            }
        }
    }
    let noisy: Vec<Value> = counts
        .iter()
        .map(|(k, n)| json!({"value": k, "count": anonymize::dp_count(&keys.hmac, seed, &format!("{column}\u{0}{k}"), *n, epsilon)}))
        .collect();
    ledger
        .spend(
            ledger_path,
            dataset_id,
            epsilon,
            json!({"release": "histogram", "column": column, "epsilon": epsilon}),
        )
        .map_err(aerr)?;
    let spent = ledger.datasets.get(dataset_id).map_or(0.0, |e| e.spent);
    Ok(json!({
        "column": column,
        "epsilon": epsilon,
        "mechanism": "laplace, scale 1/epsilon per bucket",
        "fixed_buckets": buckets.is_some(),
        "epsilon_spent": spent,
        "epsilon_budget": budget,
        "buckets": noisy,
    }))
}
