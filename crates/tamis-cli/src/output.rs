//! What `tamis profile` prints: a readable summary, or JSON; a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tamis_profile::{Profile, Severity};

use crate::cli::ProfileCommand;

/// Runs `tamis profile`.
pub async fn profile(cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    let opened = tamis_service::open_profile(cmd.request)?;
    let total = Arc::new(AtomicU64::new(opened.total_bytes().unwrap_or(0)));
    let bar = Bar::start(
        cmd.progress,
        "profiling",
        opened.progress.clone(),
        total,
        None,
    );
    let result = opened.run().await;
    drop(bar);
    let profile = result?;
    if let Some(path) = &cmd.html {
        tamis_service::write_html_report(&profile, path)?;
    }
    // Buffered: standard output is line-buffered, and a profile's JSON is
    // thousands of lines (one write each otherwise).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if cmd.json {
        serde_json::to_writer_pretty(&mut out, &profile).context("writing JSON")?;
        writeln!(out)?;
    } else {
        summary(&mut out, &profile)?;
        if let Some(path) = &cmd.html {
            writeln!(out, "\nHTML report: {}", path.display())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on standard error while a command reads its input: bytes
/// read against the input's size (a byte count alone while the size is
/// unknown), started again at each pass for a command that reads its input
/// more than once. Drawn only on a terminal, and cleared when dropped.
pub struct Bar {
    pb: indicatif::ProgressBar,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    /// A bar for `verb` ("profiling") fed by the `read` byte counter, the
    /// input's `total` bytes (0: unknown yet) and, for several passes, the
    /// count of `passes` started. None when not `enabled` or not on a terminal.
    pub fn start(
        enabled: bool,
        verb: &'static str,
        read: Arc<AtomicU64>,
        total: Arc<AtomicU64>,
        passes: Option<Arc<AtomicU64>>,
    ) -> Option<Bar> {
        if !enabled || !std::io::stderr().is_terminal() {
            return None;
        }
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (pb, stop) = (pb.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut at, mut known) = (tamis_service::PassProgress::default(), None);
                let prefix = |pass: u64| match passes {
                    Some(_) => format!("{verb}, pass {pass}"),
                    None => verb.to_string(),
                };
                pb.set_prefix(prefix(at.pass()));
                // One frame at least, however short the run.
                loop {
                    let done = read.load(Ordering::Relaxed);
                    let now = passes.as_ref().map_or(1, |p| p.load(Ordering::Relaxed));
                    if at.update(done, now) {
                        pb.set_prefix(prefix(at.pass()));
                        pb.reset_eta();
                    }
                    let size = total.load(Ordering::Relaxed);
                    if known != Some(size > 0) {
                        known = Some(size > 0);
                        let template = if size > 0 {
                            "{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                        } else {
                            "{spinner} {prefix} {bytes} read {bytes_per_sec}"
                        };
                        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                            pb.set_style(style.progress_chars("=> "));
                        }
                    }
                    if size > 0 {
                        pb.set_length(size);
                    }
                    pb.set_position(at.in_pass(done));
                    pb.tick();
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // Woken at once when the bar is dropped.
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            })
        };
        Some(Bar {
            pb,
            stop,
            ticker: Some(ticker),
        })
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.pb.finish_and_clear();
    }
}

fn summary(out: &mut impl Write, p: &Profile) -> std::io::Result<()> {
    let names: Vec<&str> = p.dataset.sources.iter().map(|s| s.name.as_str()).collect();
    let q = &p.quality;
    writeln!(
        out,
        "{} · {} rows · {} columns · {:.2}s",
        names.join(", "),
        p.dataset.rows,
        p.dataset.columns,
        p.dataset.seconds
    )?;
    writeln!(
        out,
        "quality {:.3}  (completeness {:.3}, validity {:.3}, uniqueness {:.3}, consistency {:.3})",
        q.score, q.completeness, q.validity, q.uniqueness, q.consistency
    )?;
    writeln!(
        out,
        "quarantined rows: {} · exact duplicate rows: {} in {} groups",
        p.dataset.quarantine.rows, p.duplicates.rows, p.duplicates.groups
    )?;
    if let Some(f) = &p.dataset.quarantine.file {
        writeln!(out, "quarantine file: {}", f.display())?;
    }
    writeln!(out)?;
    let w = p
        .columns
        .iter()
        .map(|c| visible(&c.name).chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 28);
    writeln!(
        out,
        "{:<w$}  {:<8}  {:<13}  {:>7}  {:>9}  summary",
        "column", "type", "semantic", "missing", "distinct"
    )?;
    for c in p.columns.iter().take(200) {
        let name: String = visible(&c.name).chars().take(w).collect();
        let detail = if let Some(n) = &c.numeric {
            format!(
                "min {} · p50 {} · max {}",
                short(n.min),
                short(n.quantiles.p50),
                short(n.max)
            )
        } else if let Some(d) = &c.dates {
            format!(
                "{} … {}",
                d.min.as_deref().unwrap_or(""),
                d.max.as_deref().unwrap_or("")
            )
        } else {
            c.top_values
                .iter()
                .take(3)
                .map(|v| format!("{} ({})", trunc(&v.value, 16), v.count))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "{:<w$}  {:<8}  {:<13}  {:>6.1}%  {:>8}{}  {}",
            name,
            c.inferred_type.name(),
            trunc(&c.semantic_type, 13),
            c.missing_ratio * 100.0,
            c.distinct,
            if c.distinct_exact { " " } else { "≈" },
            detail
        )?;
    }
    if p.columns.len() > 200 {
        writeln!(
            out,
            "… and {} more columns (use --json or --html for all)",
            p.columns.len() - 200
        )?;
    }
    writeln!(out)?;
    let shown = p.issues.len().min(15);
    writeln!(
        out,
        "{} issue{}{}:",
        p.issues.len(),
        if p.issues.len() == 1 { "" } else { "s" },
        if shown < p.issues.len() {
            format!(", top {shown}")
        } else {
            String::new()
        }
    )?;
    for i in p.issues.iter().take(shown) {
        let sev = match i.severity {
            Severity::Error => "error  ",
            Severity::Warning => "warning",
            Severity::Info => "info   ",
        };
        writeln!(out, "  {sev} {:<22} {}", i.kind, visible(&i.description))?;
    }
    Ok(())
}

/// `s` in at most `n` characters (an ellipsis for the rest), its control
/// characters escaped (`\n`) so that a value cannot break the table's lines.
fn trunc(s: &str, n: usize) -> String {
    let s = visible(s);
    if s.chars().count() <= n {
        s
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// `s` with its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`).
fn visible(s: &str) -> String {
    if !s.contains(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1e6 || (v.is_finite() && v.abs() < 0.01) {
        // Two decimals would show 1e-7 as 0.00.
        format!("{v:.3e}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn summary_numbers_keep_their_size() {
        assert_eq!(short(42.0), "42");
        assert_eq!(short(5.4375), "5.44");
        assert_eq!(short(1e308), "1.000e308");
        assert_eq!(short(1.5e-7), "1.500e-7");
        assert_eq!(short(-0.004), "-4.000e-3");
    }
}
