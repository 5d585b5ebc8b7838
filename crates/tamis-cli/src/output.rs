//! What `tamis profile` prints: a readable summary, or JSON; a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tamis_profile::{Profile, Severity};

use crate::cli::ProfileCommand;

/// Runs `tamis profile`.
pub async fn profile(cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    let opened = tamis_service::open_profile(cmd.request)?;
    let bar = (cmd.progress && std::io::stderr().is_terminal()).then(|| {
        let pb = match opened.total_bytes() {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} profiling [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        let counter = opened.progress.clone();
        let pb2 = pb.clone();
        tokio::spawn(async move {
            loop {
                pb2.set_position(counter.load(Ordering::Relaxed));
                if pb2.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        pb
    });
    let result = opened.run().await;
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let profile = result?;
    if let Some(path) = &cmd.html {
        tamis_service::write_html_report(&profile, path)?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
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
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 28);
    writeln!(
        out,
        "{:<w$}  {:<8}  {:<13}  {:>7}  {:>9}  summary",
        "column", "type", "semantic", "missing", "distinct"
    )?;
    for c in p.columns.iter().take(200) {
        let name: String = c.name.chars().take(w).collect();
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
        "{} issues{}:",
        p.issues.len(),
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
        writeln!(out, "  {sev} {:<22} {}", i.kind, i.description)?;
    }
    Ok(())
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1e6 {
        format!("{v:.3e}")
    } else {
        format!("{v:.2}")
    }
}
