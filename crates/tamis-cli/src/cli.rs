//! Command-line flags, and their conversion to validated commands before any I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tamis_core::{Format, NullTokens, ReadOptions, SchemaSpec};
use tamis_profile::ProfileOptions;
use tamis_service::ProfileRequest;

/// tamis: a data-quality workbench. Profile, check and clean tabular data.
#[derive(Debug, Parser)]
#[command(name = "tamis", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Profile a dataset: types, statistics, sketches, quality score and issues.
    ///
    /// Reads CSV/TSV (any delimiter; gzip, zstd, bzip2), JSON Lines, JSON
    /// arrays, Parquet and Excel. Several files or a glob are one dataset.
    /// `-` reads standard input.
    Profile(ProfileArgs),
    /// Check a dataset against a data contract; every failing row is written out.
    ///
    /// Exits 4 when a rule fails, so pipelines can stop on it.
    Check(CheckArgs),
    /// Suggest a cleaning plan from the profile's issues (YAML, or JSON with --json).
    Suggest(SuggestArgs),
    /// Clean a dataset with a plan: output plus provenance, audit log and lineage.
    Clean(CleanArgs),
    /// Data contracts.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Query the cell provenance of a cleaned output.
    Provenance(ProvenanceArgs),
    /// Rebuild a cleaned output's input from the output and its provenance.
    Revert(RevertArgs),
    /// Lineage chains.
    #[command(subcommand)]
    Lineage(LineageCommand),
    /// Personal data: find it.
    #[command(subcommand)]
    Pii(PiiCommand),
    /// The token vault that `pii` steps with `strategy: tokenize` write.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Find records of the same entity written differently (dedupe), or link two datasets.
    ///
    /// Unsupervised Fellegi-Sunter: columns get roles from their headers and
    /// values, roles give comparisons and blocking rules (their comparison
    /// counts are measured first), u comes from random pairs and m from EM.
    /// A settings file (YAML/JSON) overrides any part.
    Dedup(DedupArgs),
    /// Create or update the metadata database (SQLite file or PostgreSQL) to this version's schema.
    Migrate(MigrateArgs),
    /// Run queued jobs (profile, suggest, clean, dedup, pii) from the metadata database until stopped.
    ///
    /// Many workers, in many processes, share one PostgreSQL queue. A worker that
    /// dies loses its lease and its job is retried by another.
    ///
    /// Clean plans that tokenize PII need TAMIS_PII_KEY and
    /// TAMIS_ENCRYPTION_KEYS=id:64-hex (the same as the server's): tokens go,
    /// encrypted, to the tenant's vault in the metadata database.
    Worker(WorkerArgs),
    /// Run the platform: REST + WebSocket API, web UI and workers in one process.
    ///
    /// Zero setup: an SQLite database and artifacts under ./tamis-data, token
    /// keys generated on first start. `--demo` seeds a demo admin and the
    /// example dataset and prints the URL and the login.
    ///
    /// With TAMIS_PII_KEY and TAMIS_ENCRYPTION_KEYS=id:64-hex set, clean plans
    /// may tokenize PII and admins may read tokens back
    /// (POST /api/v1/vault/detokenize).
    Serve(ServeArgs),
    /// Tenants of the platform.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

/// `tamis tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first admin (the password comes from
    /// TAMIS_ADMIN_PASSWORD or, when that is unset, the first line of standard input).
    Create(TenantCreateArgs),
    /// List tenants with their limits and the rows they used this month.
    List(TenantListArgs),
    /// Change a tenant's limits.
    Set(TenantSetArgs),
}

/// Flags of `tamis tenant list`.
#[derive(Debug, Args)]
pub struct TenantListArgs {
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The metadata database (as `tamis migrate`).
    #[arg(long, env = "TAMIS_DATABASE_URL", default_value = tamis_service::platform::DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Flags of `tamis tenant set`.
#[derive(Debug, Args)]
pub struct TenantSetArgs {
    /// The tenant's name (or id).
    pub name: String,
    /// Jobs the tenant may run at once.
    #[arg(long)]
    pub max_concurrent_jobs: Option<i64>,
    /// Rows the tenant may process per month: a count, or `unlimited`.
    #[arg(long, value_parser = parse_quota)]
    pub rows_per_month: Option<Quota>,
    /// The metadata database (as `tamis migrate`).
    #[arg(long, env = "TAMIS_DATABASE_URL", default_value = tamis_service::platform::DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// A monthly row quota (`None`: unlimited).
#[derive(Debug, Clone, Copy)]
pub struct Quota(pub Option<i64>);

fn parse_quota(s: &str) -> Result<Quota, String> {
    if s == "unlimited" {
        return Ok(Quota(None));
    }
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(|n| Quota(Some(n)))
        .ok_or_else(|| format!("`{s}`: give a number of rows or `unlimited`"))
}

/// Flags of `tamis tenant create`.
#[derive(Debug, Args)]
pub struct TenantCreateArgs {
    /// Unique tenant name.
    pub name: String,
    /// The first admin's email.
    #[arg(long)]
    pub admin_email: String,
    /// Jobs the tenant may run at once.
    #[arg(long, default_value_t = 2)]
    pub max_concurrent_jobs: i64,
    /// Rows the tenant may process per month (default: unlimited).
    #[arg(long)]
    pub rows_per_month: Option<i64>,
    /// The metadata database (as `tamis migrate`).
    #[arg(long, env = "TAMIS_DATABASE_URL", default_value = tamis_service::platform::DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Flags of `tamis serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TAMIS_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// The metadata database (as `tamis migrate`).
    #[arg(long, env = "TAMIS_DATABASE_URL", default_value = tamis_service::platform::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Local state: the token keys, scratch space for uploads and jobs, and
    /// (unless --artifacts says otherwise) the artifacts.
    #[arg(long, env = "TAMIS_DATA_DIR", default_value = "./tamis-data")]
    pub data_dir: PathBuf,
    /// The artifact store (uploads, outputs, provenance, logs): a directory,
    /// file:///DIR or s3://BUCKET[/PREFIX], configured by the AWS_* variables
    /// (AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP). Default: DATA_DIR/artifacts.
    #[arg(long, env = "TAMIS_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Workers in this process (0: API only; run `tamis worker` elsewhere).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Share rate-limit counters between servers through this Redis (redis://HOST:PORT/).
    #[arg(long, env = "TAMIS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Requests per window on expensive endpoints (uploads, jobs), per tier.
    #[arg(long, default_value = "free=100,premium=1000")]
    pub rate_limit: String,
    /// The rate-limit window in seconds.
    #[arg(long, default_value_t = 3600)]
    pub rate_window_secs: u64,
    /// The rate-limit tier of users logged in with a session token.
    #[arg(long, default_value = "free")]
    pub user_tier: String,
    /// The largest upload, in MiB.
    #[arg(long, default_value_t = 10240)]
    pub max_upload_mib: u64,
    /// Where `POST /api/v1/datasets/ingest` may read files from: a directory,
    /// or an S3 prefix (s3://BUCKET/PREFIX, read with the AWS_* variables).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub ingest_root: Vec<String>,
    /// Ed25519 private key (PKCS#8 PEM) for session tokens (default: generated under DATA_DIR/keys).
    #[arg(long, requires = "jwt_public_key", env = "TAMIS_JWT_PRIVATE_KEY")]
    pub jwt_private_key: Option<PathBuf>,
    /// Its public key (SPKI PEM).
    #[arg(long, requires = "jwt_private_key", env = "TAMIS_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Seed a demo tenant, an admin and the example dataset (once), and print the login.
    #[arg(long)]
    pub demo: bool,
    /// The demo admin's email.
    #[arg(long, default_value = "admin@demo.tamis")]
    pub demo_email: String,
    /// The demo admin's password.
    #[arg(long, default_value = "tamis-demo-admin")]
    pub demo_password: String,
    /// Log format: json (one object per line, with request ids) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
}

/// Flags of `tamis worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The metadata database (as `tamis migrate`).
    #[arg(long, env = "TAMIS_DATABASE_URL", default_value = tamis_service::platform::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Scratch space for running jobs (DIR/work/JOB.ATTEMPT/) and, unless
    /// --artifacts says otherwise, the artifacts (DIR/artifacts).
    #[arg(long, env = "TAMIS_DATA_DIR", default_value = "./tamis-data")]
    pub data_dir: PathBuf,
    /// The artifact store (uploads, outputs, provenance, logs): a directory,
    /// file:///DIR or s3://BUCKET[/PREFIX], configured by the AWS_* variables
    /// (AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP). Default: DATA_DIR/artifacts.
    #[arg(long, env = "TAMIS_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// The worker's name in leases and logs (default: worker-PID).
    #[arg(long)]
    pub id: Option<String>,
    /// Lease length in milliseconds; heartbeats come every third of it.
    #[arg(long, default_value_t = 30_000)]
    pub lease_ms: i64,
    /// Serve this worker's Prometheus metrics (jobs finished, durations, rows,
    /// duplicates, imputations, queue depth) at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Flags of `tamis migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// sqlite://PATH (created if missing) or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "TAMIS_DATABASE_URL", default_value = tamis_service::platform::DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Flags of `tamis dedup`.
#[derive(Debug, Args)]
pub struct DedupArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Link against this dataset instead of deduplicating: every pair joins one row of each.
    #[arg(long, value_name = "OTHER", num_args = 1..)]
    pub link: Option<Vec<String>>,
    /// Settings (YAML or JSON): comparisons, exclude, blocking, threshold, id_column, ….
    #[arg(long, value_name = "S")]
    pub settings: Option<PathBuf>,
    /// Match probability at or above which a pair is a match (default 0.5, or the settings').
    #[arg(long, value_name = "P")]
    pub threshold: Option<f64>,
    /// Matched pairs (.parquet or .csv): rec_id_l, rec_id_r, row ids, score, match_weight.
    #[arg(short = 'o', long = "output", value_name = "PAIRS", required = true)]
    pub output: PathBuf,
    /// One row per record with its cluster id (.parquet or .csv).
    #[arg(long, value_name = "OUT")]
    pub clusters: Option<PathBuf>,
    /// Add each field's comparison level and weight to every pair.
    #[arg(long)]
    pub explain: bool,
    /// Save the trained model (m, u, λ) and the settings it used.
    #[arg(long, value_name = "M")]
    pub save_model: Option<PathBuf>,
    /// Reuse a saved model instead of training.
    #[arg(long, value_name = "M", conflicts_with = "settings")]
    pub model: Option<PathBuf>,
    /// Incremental: match these new records against FILE with `--model`,
    /// without rescoring FILE; the pairs written are those of the new records
    /// and `--clusters` covers FILE and the new records (which take the next
    /// row ids).
    #[arg(long, value_name = "NEW", num_args = 1.., requires = "model", conflicts_with = "link")]
    pub add: Option<Vec<String>>,
    /// With `--add`: FILE's cluster table (from an earlier `--clusters`), so
    /// FILE is not rematched at all.
    #[arg(long, value_name = "C", requires = "add")]
    pub clusters_in: Option<PathBuf>,
    /// The summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tamis pii …`
#[derive(Debug, Subcommand)]
pub enum PiiCommand {
    /// Find personal data: per column the type, confidence, hit rate and masked examples.
    Scan(PiiScanArgs),
    /// Anonymise with a policy (pseudonymise, mask, generalise, hash, redact, exclude,
    /// encrypt/decrypt, differential privacy); writes OUT and a compliance report.
    ///
    /// Keys: TAMIS_PII_KEY (pseudonyms, hashes, noise) and TAMIS_ENCRYPTION_KEYS
    /// (`id:64-hex,…`; the last id encrypts, every id decrypts).
    Apply(PiiApplyArgs),
    /// A differentially private histogram of one column (Laplace noise per bucket),
    /// charged to the dataset's ε ledger; refused when it would overspend the budget.
    DpHistogram(DpHistogramArgs),
}

/// Flags of `tamis pii dp-histogram`.
#[derive(Debug, Args)]
pub struct DpHistogramArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// The column to count.
    #[arg(long, value_name = "C")]
    pub column: String,
    /// ε this release spends.
    #[arg(long, value_name = "E")]
    pub epsilon: f64,
    /// The dataset's total ε budget.
    #[arg(long, value_name = "B")]
    pub budget: f64,
    /// The ledger's key for this dataset (default: the first file's stem).
    #[arg(long, value_name = "ID")]
    pub dataset_id: Option<String>,
    /// The ε ledger file.
    #[arg(long, value_name = "FILE", default_value = "tamis-privacy-ledger.json")]
    pub ledger: PathBuf,
    /// Release only these values (a fixed domain, strictly ε-DP), comma-separated;
    /// default: the values seen, which reveals which values exist.
    #[arg(long, value_name = "V,…", value_delimiter = ',')]
    pub buckets: Option<Vec<String>>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Flags of `tamis pii apply`.
#[derive(Debug, Args)]
pub struct PiiApplyArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// The policy (YAML or JSON).
    #[arg(long, value_name = "P")]
    pub policy: PathBuf,
    /// The output: .parquet or .csv.
    #[arg(short = 'o', long = "output", value_name = "OUT", required = true)]
    pub output: PathBuf,
    /// Write the compliance report to R (.json, or .html); default: print the JSON.
    #[arg(long, value_name = "R")]
    pub report: Option<PathBuf>,
}

/// Flags of `tamis pii scan`.
#[derive(Debug, Args)]
pub struct PiiScanArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write every labelled cell (`row,column,entity_type`) to OUT.csv.
    #[arg(long, value_name = "OUT")]
    pub cells: Option<PathBuf>,
}

/// `tamis contract …`
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Write a starting contract from the profile.
    Infer(InferArgs),
}

/// `tamis vault …`
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-encrypt every entry under the current key (the last id of
    /// TAMIS_ENCRYPTION_KEYS), so that after a rotation the old keys can be
    /// dropped. List the old keys before the new one while this runs;
    /// entries under a key not listed are left as they are and counted.
    Rekey(VaultRekeyArgs),
}

/// Flags of `tamis vault rekey`.
#[derive(Debug, Args)]
pub struct VaultRekeyArgs {
    /// The vault file (as `tamis clean --vault`), rewritten in place, atomically.
    #[arg(long, value_name = "FILE", default_value = "tamis-vault.json")]
    pub vault: PathBuf,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tamis lineage …`
#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Verify a hash chain (and, with --data, that the output still matches it).
    Verify(VerifyArgs),
}

/// Flags of `tamis check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// The contract (YAML or JSON).
    #[arg(long, value_name = "C")]
    pub contract: PathBuf,
    /// Write every failing cell (row id, column, rule, value, reason) to OUT (.parquet or .csv).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Judge `not_future` against this day (YYYY-MM-DD; default: today).
    #[arg(long, value_name = "DATE")]
    pub today: Option<String>,
}

/// Flags of `tamis suggest`.
#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Write the plan to OUT instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
    /// Judge "future" dates against this day (YYYY-MM-DD; default: today).
    #[arg(long, value_name = "DATE")]
    pub today: Option<String>,
}

/// Flags of `tamis contract infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Where to write the contract (.yaml, or .json).
    #[arg(short = 'o', long = "output", value_name = "OUT", required = true)]
    pub output: PathBuf,
    /// The contract's dataset_id (default: the file's stem).
    #[arg(long, value_name = "ID")]
    pub dataset_id: Option<String>,
    /// Judge "future" dates against this day (YYYY-MM-DD; default: today).
    #[arg(long, value_name = "DATE")]
    pub today: Option<String>,
}

/// Flags of `tamis clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// The plan (YAML or JSON).
    #[arg(long, value_name = "P")]
    pub plan: PathBuf,
    /// The output: .parquet (zstd) or .csv. Provenance goes to OUT.tamis/.
    #[arg(short = 'o', long = "output", value_name = "OUT", required = true)]
    pub output: PathBuf,
    /// A contract: PII columns, canonical values, and a check of the output.
    #[arg(long, value_name = "C")]
    pub contract: Option<PathBuf>,
    /// Do not write cell provenance, dropped rows and row ids (audit log and lineage are still written).
    #[arg(long)]
    pub no_provenance: bool,
    /// Write a before/after report: .json, or .html.
    #[arg(long, value_name = "R")]
    pub report: Option<PathBuf>,
    /// Environment variable holding the key for PII hashing (default: TAMIS_PII_KEY; unset: a fixed development key, with a warning).
    #[arg(long, value_name = "VAR", default_value = "TAMIS_PII_KEY")]
    pub key_env: String,
    /// Token vault for `pii` steps that tokenize (key: TAMIS_ENCRYPTION_KEYS).
    #[arg(long, value_name = "FILE", default_value = "tamis-vault.json")]
    pub vault: PathBuf,
    /// Who runs it, for the audit log (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Print the run summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Judge `not_future` against this day (YYYY-MM-DD; default: today).
    #[arg(long, value_name = "DATE")]
    pub today: Option<String>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Flags of `tamis provenance`.
#[derive(Debug, Args)]
pub struct ProvenanceArgs {
    /// A cleaned output (its provenance is in OUT.tamis/).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Only this input row id.
    #[arg(long, value_name = "N")]
    pub row: Option<u64>,
    /// Only this column.
    #[arg(long, value_name = "C")]
    pub column: Option<String>,
    /// Only this step (id, type, or 1-based position).
    #[arg(long, value_name = "S")]
    pub step: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `tamis revert`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    /// A cleaned output.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Where to write the rebuilt input (.parquet or .csv).
    #[arg(short = 'o', long = "output", value_name = "ORIGINAL", required = true)]
    pub dest: PathBuf,
    /// Token vault: tokenized PII comes back in clear (needs TAMIS_ENCRYPTION_KEYS).
    #[arg(long, value_name = "FILE")]
    pub vault: Option<PathBuf>,
}

/// Flags of `tamis lineage verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The chain (OUT.tamis/lineage.json), or a cleaned output whose chain to verify.
    #[arg(value_name = "CHAIN")]
    pub chain: PathBuf,
    /// Also check that this data file still matches the chain's output hash.
    #[arg(long, value_name = "OUT")]
    pub data: Option<PathBuf>,
    /// JSON verdict.
    #[arg(long)]
    pub json: bool,
}

/// Input flags shared by every command that reads a dataset.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Input files, globs (quoted), `-` for stdin, or object-store URLs (file://…).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Fail on the first malformed row (naming file:line:column) instead of quarantining it.
    #[arg(long)]
    pub strict: bool,
    /// Write every quarantined row (file, line, row id, reason, raw text) to OUT (.jsonl, or .csv).
    #[arg(long, value_name = "OUT")]
    pub quarantine: Option<PathBuf>,
    /// Force column types: `name:type,…` or a JSON file {"name": "type"}; types: boolean, integer, float, date, datetime, string.
    #[arg(long, value_name = "S")]
    pub schema: Option<String>,
    /// Input format (default: from the name or content): csv, json, parquet, excel.
    #[arg(long, value_name = "F")]
    pub format: Option<String>,
    /// CSV delimiter (default: sniffed); `\t` for tab.
    #[arg(long, value_name = "C")]
    pub delimiter: Option<String>,
    /// The CSV has no header row (default: sniffed).
    #[arg(long, conflicts_with = "header")]
    pub no_header: bool,
    /// The CSV has a header row (default: sniffed).
    #[arg(long)]
    pub header: bool,
    /// Excel sheet, by name or 0-based index (default: the first).
    #[arg(long, value_name = "S")]
    pub sheet: Option<String>,
    /// A value that means missing; repeat for several (default: NA, N/A, null, NULL, None, nan, NaN, -, ?; each matches in lower, upper or title case or as spelled).
    #[arg(long = "null-token", value_name = "T")]
    pub null_tokens: Vec<String>,
}

impl ReadArgs {
    /// Checks the flags and builds the read options.
    pub fn options(&self) -> Result<ReadOptions, UsageError> {
        let format = self
            .format
            .as_deref()
            .map(|f| {
                Format::parse(f).ok_or_else(|| {
                    UsageError(format!(
                        "unknown --format `{f}`; use csv, json, parquet or excel"
                    ))
                })
            })
            .transpose()?;
        let delimiter = self
            .delimiter
            .as_deref()
            .map(|d| match d {
                "\\t" | "tab" | "\t" => Ok(b'\t'),
                d if d.len() == 1 => Ok(d.as_bytes()[0]),
                d => Err(UsageError(format!(
                    "--delimiter must be one character (or `\\t`), got `{d}`"
                ))),
            })
            .transpose()?;
        let schema = self
            .schema
            .as_deref()
            .map(SchemaSpec::parse)
            .transpose()
            .map_err(|e| UsageError(e.to_string()))?;
        let null_tokens = if self.null_tokens.is_empty() {
            NullTokens::default()
        } else {
            NullTokens::new(self.null_tokens.clone())
        };
        Ok(ReadOptions {
            format,
            delimiter,
            has_header: if self.no_header {
                Some(false)
            } else if self.header {
                Some(true)
            } else {
                None
            },
            sheet: self.sheet.clone(),
            strict: self.strict,
            null_tokens,
            schema,
            ..ReadOptions::default()
        })
    }
}

/// Parses `--today`, defaulting to the local date.
pub fn parse_today(today: Option<&str>) -> Result<chrono::NaiveDate, UsageError> {
    match today {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| UsageError(format!("--today must be YYYY-MM-DD, got `{d}`"))),
        None => Ok(chrono::Local::now().date_naive()),
    }
}

/// Flags of `tamis profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print the profile as JSON (schema: docs/profile-json.md) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report to OUT.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,
    /// Profile only the first N rows.
    #[arg(long, value_name = "N")]
    pub sample: Option<u64>,
    /// Worker threads and partitions (default: all cores).
    #[arg(long, value_name = "N", env = "TAMIS_THREADS")]
    pub threads: Option<usize>,
    /// Seed of the row sample behind correlations.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Judge "future" dates against this day (YYYY-MM-DD; default: today).
    #[arg(long, value_name = "DATE")]
    pub today: Option<String>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// A usage error found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A validated `profile` command.
#[derive(Debug)]
pub struct ProfileCommand {
    /// The service request.
    pub request: ProfileRequest,
    /// Print JSON.
    pub json: bool,
    /// HTML output.
    pub html: Option<PathBuf>,
    /// Threads.
    pub threads: usize,
    /// Draw a progress bar if on a terminal.
    pub progress: bool,
}

impl ProfileArgs {
    /// Checks the flags and builds the command.
    pub fn validate(self) -> Result<ProfileCommand, UsageError> {
        let threads = match self.threads {
            Some(0) => return Err(UsageError("--threads must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        if self.sample == Some(0) {
            return Err(UsageError("--sample must be at least 1".into()));
        }
        let today = parse_today(self.today.as_deref())?;
        let read = ReadOptions {
            limit: self.sample,
            ..self.read.options()?
        };
        Ok(ProfileCommand {
            request: ProfileRequest {
                inputs: self.read.files,
                read,
                quarantine: self.read.quarantine,
                profile: ProfileOptions {
                    threads,
                    today,
                    seed: self.seed,
                    ..ProfileOptions::default()
                },
            },
            json: self.json,
            html: self.html,
            threads,
            progress: !self.no_progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ProfileCommand, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        let Command::Profile(p) = cli.command else {
            return Err("not a profile command".into());
        };
        p.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_a_command() {
        let c = parse(&[
            "tamis",
            "profile",
            "a.csv",
            "--json",
            "--sample",
            "10",
            "--delimiter",
            "\\t",
            "--schema",
            "age:int",
            "--threads",
            "2",
        ])
        .expect("ok");
        assert!(c.json);
        assert_eq!(c.threads, 2);
        assert_eq!(c.request.read.limit, Some(10));
        assert_eq!(c.request.read.delimiter, Some(b'\t'));
        assert_eq!(
            c.request.read.schema.expect("schema").types["age"],
            tamis_core::ColumnType::Integer
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        assert!(
            parse(&["tamis", "profile", "a.csv", "--threads", "0"])
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            parse(&["tamis", "profile", "a.csv", "--delimiter", "ab"])
                .unwrap_err()
                .contains("one character")
        );
        assert!(
            parse(&["tamis", "profile", "a.csv", "--schema", "age:number7"])
                .unwrap_err()
                .contains("unknown type")
        );
        assert!(
            parse(&["tamis", "profile", "a.csv", "--format", "xml"])
                .unwrap_err()
                .contains("unknown --format")
        );
        assert!(parse(&["tamis", "profile"]).is_err());
    }
}
