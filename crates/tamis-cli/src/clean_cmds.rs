//! The cleaning commands: check, suggest, contract infer, clean, provenance,
//! revert and lineage verify.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::Context;
use tamis_clean::provenance::Query;
use tamis_service::ProfileRequest;
use tamis_service::clean as svc;

use crate::cli::{self, UsageError, parse_today};

/// Exit code of `check` when a rule fails.
pub const CHECK_FAILED: u8 = 4;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn profile_request(
    read: &cli::ReadArgs,
    today: chrono::NaiveDate,
) -> Result<ProfileRequest, UsageError> {
    Ok(ProfileRequest {
        inputs: read.files.clone(),
        read: read.options()?,
        quarantine: read.quarantine.clone(),
        profile: tamis_profile::ProfileOptions {
            today,
            ..Default::default()
        },
    })
}

/// `tamis check`.
pub fn check(a: cli::CheckArgs) -> anyhow::Result<ExitCode> {
    let today = parse_today(a.today.as_deref())?;
    let r = svc::check(
        &a.read.files,
        a.read.options()?,
        &a.contract,
        a.output.as_deref(),
        &a.read.quarantine,
        today,
    )?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r.to_value())?)?;
    } else {
        writeln!(
            out,
            "{}: {} rows, {} failing rows, {} violations",
            if r.passed { "PASSED" } else { "FAILED" },
            r.rows,
            r.failing_rows,
            r.violations
        )?;
        for p in &r.schema_problems {
            writeln!(out, "  schema: {p}")?;
        }
        for x in &r.rules {
            writeln!(
                out,
                "  {:<20} {:<14} {:>10}  e.g. rows {:?}",
                x.column, x.rule, x.violations, x.example_row_ids
            )?;
        }
        if let Some(o) = &a.output {
            writeln!(out, "every failing cell: {}", o.display())?;
        }
    }
    Ok(if r.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    })
}

/// `tamis suggest`.
pub fn suggest(a: cli::SuggestArgs) -> anyhow::Result<ExitCode> {
    let req = profile_request(&a.read, parse_today(a.today.as_deref())?)?;
    let plan = runtime()?.block_on(svc::suggest(req))?;
    let text = if a.json {
        serde_json::to_string_pretty(&plan.to_value())? + "\n"
    } else {
        format!(
            "# Suggested by `tamis suggest`: review before running `tamis clean --plan`.\n{}",
            plan.to_yaml()
        )
    };
    match &a.output {
        Some(p) => {
            tamis_service::write_atomic(p, text.as_bytes())?;
            eprintln!("{} steps written to {}", plan.steps.len(), p.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `tamis contract infer`.
pub fn infer(a: cli::InferArgs) -> anyhow::Result<ExitCode> {
    let req = profile_request(&a.read, parse_today(a.today.as_deref())?)?;
    let id = a.dataset_id.clone().unwrap_or_else(|| {
        let f = a.read.files.first().cloned().unwrap_or_default();
        let name = std::path::Path::new(&f)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(f);
        name.split('.').next().unwrap_or("dataset").to_string()
    });
    let (c, free_text) = runtime()?.block_on(svc::infer_contract(req, &id))?;
    let json = a.output.extension().is_some_and(|e| e == "json");
    let text = if json {
        serde_json::to_string_pretty(&c.to_value())? + "\n"
    } else {
        c.to_yaml()
    };
    tamis_service::write_atomic(&a.output, text.as_bytes())?;
    eprintln!(
        "contract with {} columns written to {}",
        c.columns.len(),
        a.output.display()
    );
    for f in &free_text {
        let entities = f.summary();
        if f.proposed() {
            eprintln!(
                "`{}`: personal data inside its text in {} of {} sampled cells ({entities}); pii_strategy redact_entities replaces it and keeps the rest",
                f.column, f.hits, f.cells
            );
        } else if f.hits > 0 {
            eprintln!(
                "`{}`: personal data inside its text in only {} of {} sampled cells ({entities}); left unmarked, review it (`tamis pii scan`)",
                f.column, f.hits, f.cells
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tamis clean`.
pub fn clean(a: cli::CleanArgs) -> anyhow::Result<ExitCode> {
    let today = parse_today(a.today.as_deref())?;
    let secret = match std::env::var(&a.key_env) {
        Ok(k) if !k.is_empty() => k.into_bytes(),
        _ => {
            tracing::info!(
                "{} is not set: PII hashes use a fixed development key; set it for real data",
                a.key_env
            );
            b"tamis-development-key".to_vec()
        }
    };
    let vault = encryption_keys(secret.clone())?.map(|k| (a.vault.clone(), k));
    let job = svc::CleanJob {
        inputs: a.read.files.clone(),
        read: a.read.options()?,
        plan: a.plan.clone(),
        contract: a.contract.clone(),
        output: a.output.clone(),
        provenance: !a.no_provenance,
        secret,
        actor: a
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into()),
        quarantine: a.read.quarantine.clone(),
        report: a.report.clone(),
        today,
        progress: Arc::new(AtomicU64::new(0)),
        passes: Arc::new(AtomicU64::new(0)),
        total: Arc::new(AtomicU64::new(0)),
        cancel: Default::default(),
        vault,
    };
    let bar = crate::output::Bar::start(
        !a.no_progress,
        "cleaning",
        job.progress.clone(),
        job.total.clone(),
        Some(job.passes.clone()),
    );
    let o = runtime()?.block_on(svc::clean(job));
    drop(bar);
    let o = o?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&o)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{} {} in, {} {} out ({} {}); output {}",
        o.rows_in,
        if o.rows_in == 1 { "row" } else { "rows" },
        o.rows_out,
        if o.rows_out == 1 { "row" } else { "rows" },
        o.passes,
        if o.passes == 1 { "pass" } else { "passes" },
        a.output.display()
    )?;
    for s in &o.steps {
        write!(
            out,
            "  {:<14} {:<15} removed {:>9}  modified rows {:>9}  cells {:>9}",
            s.id, s.ty, s.rows_removed, s.rows_modified, s.cells_modified
        )?;
        if s.rows_flagged > 0 {
            write!(out, "  flagged rows {:>9}", s.rows_flagged)?;
        }
        writeln!(out)?;
        for w in &s.warnings {
            writeln!(out, "    warning: {w}")?;
        }
    }
    if o.quarantined > 0 {
        writeln!(
            out,
            "  {} malformed input rows were quarantined",
            o.quarantined
        )?;
    }
    if let Some(c) = &o.contract_check {
        writeln!(
            out,
            "  contract check of the output: {}",
            if c["passed"] == true {
                "passed"
            } else {
                "FAILED"
            }
        )?;
    }
    writeln!(
        out,
        "provenance, audit log and lineage: {}",
        tamis_clean::sidecar_dir(&a.output).display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `tamis provenance`.
pub fn provenance(a: cli::ProvenanceArgs) -> anyhow::Result<ExitCode> {
    let r = svc::provenance(
        &a.output,
        &Query {
            row: a.row,
            column: a.column.clone(),
            step: a.step.clone(),
        },
    )?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "row_id\tcolumn\told\tnew\tstep\tconfidence\tsource")?;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "∅".into());
    for c in &r.cells {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{} ({})\t{:.3}\t{}",
            c.row_id,
            c.column,
            show(&c.old_value),
            show(&c.new_value),
            c.step_id,
            c.step,
            c.confidence,
            c.source
        )?;
    }
    for d in &r.dropped {
        writeln!(
            out,
            "{}\t(row dropped)\t\t\t{} ({})\t1.000\t{}",
            d["row_id"],
            d["step_id"].as_str().unwrap_or(""),
            d["step"].as_str().unwrap_or(""),
            d["reason"].as_str().unwrap_or("")
        )?;
    }
    writeln!(
        out,
        "{} changed cells, {} dropped rows",
        r.cells.len(),
        r.dropped.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `tamis revert`.
pub fn revert(a: cli::RevertArgs) -> anyhow::Result<ExitCode> {
    let keys = match &a.vault {
        // Detokenising needs only the encryption keys.
        Some(_) => Some(encryption_keys(Vec::new())?.ok_or_else(|| {
            cli::UsageError(
                "--vault needs TAMIS_ENCRYPTION_KEYS (the key that encrypted it)".into(),
            )
        })?),
        None => None,
    };
    let (rows, pii) = svc::revert(&a.output, &a.dest, a.vault.as_deref().zip(keys.as_ref()))?;
    eprintln!("{rows} rows rebuilt into {}", a.dest.display());
    if !pii.is_empty() {
        eprintln!(
            "note: PII columns ({}) come back as keyed hashes where a pii step hashed or redacted them (the clear values were never stored); tokenized ones come back in clear with --vault and its key",
            pii.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `tamis lineage verify`.
pub fn verify(a: cli::VerifyArgs) -> anyhow::Result<ExitCode> {
    let v = svc::verify_lineage(&a.chain, a.data.as_deref())
        .with_context(|| format!("verifying {}", a.chain.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{v}");
    }
    Ok(if v.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    })
}

/// `tamis pii scan`.
pub fn pii_scan(a: cli::PiiScanArgs) -> anyhow::Result<ExitCode> {
    let r = tamis_service::pii_scan(
        &a.read.files,
        a.read.options()?,
        a.cells.as_deref(),
        &Default::default(),
    )?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<24} {:<16} {:>6} {:>8}  examples",
        "column", "type", "conf", "hit rate"
    )?;
    for c in &r.columns {
        writeln!(
            out,
            "{:<24} {:<16} {:>6.2} {:>7.1}%  {}",
            c.name,
            c.pii_type.unwrap_or("-"),
            c.confidence,
            c.hit_rate * 100.0,
            c.examples.join(" | ")
        )?;
    }
    for c in r.columns.iter().filter(|c| !c.embedded.is_empty()) {
        writeln!(
            out,
            "inside the text of `{}`: {} (a policy's `redact_entities` replaces them)",
            c.name,
            c.embedded_summary()
        )?;
    }
    writeln!(
        out,
        "{} rows, {} cells, {} labelled",
        r.rows, r.cells, r.labelled
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `tamis pii apply`.
pub fn pii_apply(a: cli::PiiApplyArgs) -> anyhow::Result<ExitCode> {
    use tamis_privacy::anonymize::Keys;
    let hmac = match std::env::var("TAMIS_PII_KEY") {
        Ok(k) if !k.is_empty() => k.into_bytes(),
        _ => anyhow::bail!(cli::UsageError(
            "set TAMIS_PII_KEY: pseudonyms, hashes and noise are keyed, and must not use a default key".into()
        )),
    };
    let keys = encryption_keys(hmac.clone())?.unwrap_or(Keys {
        hmac,
        aes: Default::default(),
        current: None,
    });
    let report = tamis_service::pii_apply(
        &a.read.files,
        a.read.options()?,
        &a.policy,
        &keys,
        &a.output,
    )?;
    match &a.report {
        Some(p) => tamis_service::write_pii_report(&report, p)?,
        None => {
            let text = serde_json::to_string_pretty(&report)? + "\n";
            std::io::stdout().lock().write_all(text.as_bytes())?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keys from TAMIS_ENCRYPTION_KEYS (`id:64-hex,…`; the last id encrypts), if set.
fn encryption_keys(hmac: Vec<u8>) -> anyhow::Result<Option<tamis_privacy::anonymize::Keys>> {
    let spec = std::env::var("TAMIS_ENCRYPTION_KEYS").unwrap_or_default();
    Ok(tamis_privacy::anonymize::Keys::with_encryption(hmac, &spec)
        .map_err(|e| cli::UsageError(e.to_string()))?)
}

/// `tamis vault rekey`.
pub fn vault_rekey(a: cli::VaultRekeyArgs) -> anyhow::Result<ExitCode> {
    use tamis_privacy::anonymize::Vault;
    // Re-encryption reads and writes values, not tokens: no HMAC key needed.
    let keys = encryption_keys(Vec::new())?.ok_or_else(|| {
        cli::UsageError(
            "set TAMIS_ENCRYPTION_KEYS=old:64-hex,new:64-hex (the old keys first, the new one last): the vault is re-encrypted under the last".into(),
        )
    })?;
    if !a.vault.is_file() {
        anyhow::bail!(cli::UsageError(format!(
            "no vault at `{}` (give the file `tamis clean --vault` wrote)",
            a.vault.display()
        )));
    }
    let mut v = Vault::read(&a.vault)?;
    let r = v.rekey(&keys)?;
    if r.rekeyed > 0 {
        v.write(&a.vault)?;
    }
    let key = keys.current.unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut j = serde_json::to_value(r)?;
        j["key"] = serde_json::Value::String(key);
        writeln!(out, "{j}")?;
    } else {
        writeln!(
            out,
            "{}: {} entries, {} re-encrypted under `{key}`, {} already under it, {} under keys not given (left as they were)",
            a.vault.display(),
            r.checked,
            r.rekeyed,
            r.checked - r.rekeyed - r.undecryptable,
            r.undecryptable
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `tamis pii dp-histogram`.
pub fn dp_histogram(a: cli::DpHistogramArgs) -> anyhow::Result<ExitCode> {
    let hmac = match std::env::var("TAMIS_PII_KEY") {
        Ok(k) if !k.is_empty() => k.into_bytes(),
        _ => anyhow::bail!(cli::UsageError(
            "set TAMIS_PII_KEY: the noise is keyed".into()
        )),
    };
    let keys = tamis_privacy::anonymize::Keys {
        hmac,
        aes: Default::default(),
        current: None,
    };
    let id = a.dataset_id.clone().unwrap_or_else(|| {
        let f = a.read.files.first().cloned().unwrap_or_default();
        std::path::Path::new(&f)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(f)
    });
    let h = tamis_service::dp_histogram(
        &a.read.files,
        a.read.options()?,
        &a.column,
        a.buckets.as_deref(),
        a.epsilon,
        a.seed,
        &keys,
        &a.ledger,
        &id,
        a.budget,
    )?;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&h)?
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `tamis dedup`.
pub fn dedup(a: cli::DedupArgs) -> anyhow::Result<ExitCode> {
    let mut settings = match &a.settings {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| UsageError(format!("cannot read settings {}: {e}", p.display())))?;
            tamis_dedup::settings::Settings::from_text(&text, &p.display().to_string())
                .map_err(tamis_service::ServiceError::from)?
        }
        None => Default::default(),
    };
    let mut model = match &a.model {
        Some(p) => {
            Some(tamis_dedup::output::load_model(p).map_err(tamis_service::ServiceError::from)?)
        }
        None => None,
    };
    if let Some(t) = a.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(UsageError(format!("--threshold {t} is not a probability in 0..1")).into());
        }
        settings.threshold = Some(t);
        if let Some(m) = &mut model {
            m.settings.threshold = Some(t);
        }
    }
    let job = tamis_service::dedup::DedupJob {
        request: tamis_dedup::Request {
            inputs: a.read.files.clone(),
            link: a.link.clone(),
            read: a.read.options()?,
            settings,
            model,
            cancel: Default::default(),
        },
        pairs: a.output.clone(),
        clusters: a.clusters.clone(),
        explain: a.explain,
        save_model: a.save_model.clone(),
        add: a.add.clone(),
        clusters_in: a.clusters_in.clone(),
    };
    let s = tamis_service::dedup::dedup(&job)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(inc) = s.get("incremental") {
        writeln!(
            out,
            "added {} records: {} candidate pairs, {} matches in {:.1} ms; {} clusters over {} records",
            inc["added_rows"],
            inc["candidate_pairs"],
            inc["matched_pairs"],
            inc["seconds_matching"].as_f64().unwrap_or(0.0) * 1000.0,
            s["clusters"]["clusters"],
            s["rows"],
        )?;
        writeln!(out, "pairs    -> {}", a.output.display())?;
        if let Some(c) = &a.clusters {
            writeln!(out, "clusters -> {}", c.display())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = &s["config"];
    writeln!(out, "columns:")?;
    for r in cfg["roles"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {:<20} {:<14} {}",
            r["column"].as_str().unwrap_or_default(),
            r["role"].as_str().unwrap_or_default(),
            r["reason"].as_str().unwrap_or_default()
        )?;
    }
    writeln!(out, "blocking (comparisons each rule generates / adds):")?;
    for r in s["blocking"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {:>12} / {:>12}  {}",
            r["comparisons"],
            r["new_comparisons"],
            r["rule"].as_str().unwrap_or_default()
        )?;
    }
    for r in cfg["blocking_considered"].as_array().into_iter().flatten() {
        if r["chosen"] == false {
            writeln!(
                out,
                "  not used: {} ({})",
                r["rule"].as_str().unwrap_or_default(),
                r["why"].as_str().unwrap_or_default()
            )?;
        }
    }
    writeln!(
        out,
        "{} rows, {} candidate pairs, {} matched pairs (p >= {}), {} clusters of 2+ rows (largest {}); λ = {:.3e}",
        s["rows"],
        s["candidate_pairs"],
        s["matched_pairs"],
        cfg["threshold"],
        s["clusters"]["clusters"],
        s["clusters"]["largest"],
        s["model"]["lambda"].as_f64().unwrap_or(0.0)
    )?;
    writeln!(out, "pairs written to {}", a.output.display())?;
    Ok(ExitCode::SUCCESS)
}
