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
}

/// Flags of `tamis profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Input files, globs (quoted), `-` for stdin, or object-store URLs (file://…).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
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
    /// A value that means missing; repeat for several (default: NA, N/A, null, NULL, None, nan, -, ?).
    #[arg(long = "null-token", value_name = "T")]
    pub null_tokens: Vec<String>,
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
        if self.sample == Some(0) {
            return Err(UsageError("--sample must be at least 1".into()));
        }
        let schema = self
            .schema
            .as_deref()
            .map(SchemaSpec::parse)
            .transpose()
            .map_err(|e| UsageError(e.to_string()))?;
        let today = match self.today.as_deref() {
            Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| UsageError(format!("--today must be YYYY-MM-DD, got `{d}`")))?,
            None => chrono::Local::now().date_naive(),
        };
        let null_tokens = if self.null_tokens.is_empty() {
            NullTokens::default()
        } else {
            NullTokens::new(self.null_tokens)
        };
        let read = ReadOptions {
            format,
            delimiter,
            has_header: if self.no_header {
                Some(false)
            } else if self.header {
                Some(true)
            } else {
                None
            },
            sheet: self.sheet,
            strict: self.strict,
            limit: self.sample,
            null_tokens,
            schema,
            ..ReadOptions::default()
        };
        Ok(ProfileCommand {
            request: ProfileRequest {
                inputs: self.files,
                read,
                quarantine: self.quarantine,
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
        let Command::Profile(p) = cli.command;
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
