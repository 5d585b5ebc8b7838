//! The `tamis` binary: parses flags, calls the service layer, prints, and
//! maps the outcome to an exit code (0 ok, 2 usage, 3 bad input, 1 internal).

mod clean_cmds;
mod cli;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// The profile allocates and frees many short strings (sketch keys, samples)
/// and large Arrow buffers; mimalloc handles both far better than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them on its regions (`MADV_HUGEPAGE`), and the first touch of a huge page
/// has the kernel zero all 2 MiB of it: the profile's batch buffers and
/// hash pieces, touched a little at a time, paid for zeroing far more than
/// they used. Profiling 10M rows, alternating runs took 0.6-1.1 s of system
/// time and 3.2-3.8 s of wall time with them, 0.4 s and 3.0-3.1 s without,
/// and peaked 20-30 MiB lower. The flag is the
/// one `MIMALLOC_ALLOW_THP=0` would set, set here because mimalloc's options
/// are only reachable through `unsafe` calls. A failure (a kernel or sandbox
/// without the call) only leaves the default, so it is not reported.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

fn main() -> ExitCode {
    no_huge_pages();
    let args = cli::Cli::parse();
    // The server logs requests at info, as JSON lines by default; commands warn.
    let (level, json) = match &args.command {
        cli::Command::Serve(a) => ("info", a.log_format == "json"),
        _ => ("warn", false),
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TAMIS_LOG").unwrap_or_else(|_| level.into());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        fmt.json().flatten_event(true).init();
    } else {
        fmt.init();
    }
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let code = exit_code_of(&err);
            let mut msg = format!("tamis: {err}");
            for cause in err.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(&format!(": {c}"));
                }
            }
            let _ = writeln!(std::io::stderr(), "{msg}");
            code
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_code_of(err: &anyhow::Error) -> ExitCode {
    if let Some(e) = err.downcast_ref::<tamis_service::ServiceError>() {
        return ExitCode::from(if e.is_bad_input() { 3 } else { 1 });
    }
    if err.downcast_ref::<cli::UsageError>().is_some() {
        return ExitCode::from(2);
    }
    ExitCode::from(1)
}

fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    match args.command {
        cli::Command::Profile(p) => {
            let cmd = p.validate()?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cmd.threads.max(1))
                .enable_all()
                .build()?;
            rt.block_on(output::profile(cmd))
        }
        cli::Command::Check(a) => clean_cmds::check(a),
        cli::Command::Suggest(a) => clean_cmds::suggest(a),
        cli::Command::Clean(a) => clean_cmds::clean(a),
        cli::Command::Contract(cli::ContractCommand::Infer(a)) => clean_cmds::infer(a),
        cli::Command::Provenance(a) => clean_cmds::provenance(a),
        cli::Command::Revert(a) => clean_cmds::revert(a),
        cli::Command::Lineage(cli::LineageCommand::Verify(a)) => clean_cmds::verify(a),
        cli::Command::Vault(cli::VaultCommand::Rekey(a)) => clean_cmds::vault_rekey(a),
        cli::Command::Pii(cli::PiiCommand::Scan(a)) => clean_cmds::pii_scan(a),
        cli::Command::Pii(cli::PiiCommand::Apply(a)) => clean_cmds::pii_apply(a),
        cli::Command::Pii(cli::PiiCommand::DpHistogram(a)) => clean_cmds::dp_histogram(a),
        cli::Command::Dedup(a) => clean_cmds::dedup(a),
        cli::Command::Migrate(a) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let store = rt.block_on(tamis_service::platform::open_store(&a.database_url))?;
            println!(
                "{} is up to date ({:?})",
                redact_url(&a.database_url),
                store.backend()
            );
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Serve(a) => serve(a),
        cli::Command::Tenant(cli::TenantCommand::Create(a)) => {
            let password = match std::env::var("TAMIS_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let (t, u) = with_store(&a.database_url, |store| async move {
                tamis_service::platform::create_tenant(
                    &store,
                    &a.name,
                    a.max_concurrent_jobs,
                    a.rows_per_month,
                    &a.admin_email,
                    &password,
                )
                .await
            })?;
            println!(
                "tenant {} ({}) created; admin {} ({})",
                t.name, t.id, u.email, u.id
            );
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Tenant(cli::TenantCommand::List(a)) => {
            let tenants = with_store(&a.database_url, |store| async move {
                tamis_service::platform::tenants(&store).await
            })?;
            let mut out = std::io::stdout().lock();
            if !a.json {
                writeln!(
                    out,
                    "{:<24} {:<36} {:>8} {:>14} {:>14}",
                    "name", "id", "max jobs", "rows/month", "used (month)"
                )?;
            }
            for (t, used) in tenants {
                let quota = t
                    .rows_per_month
                    .map_or_else(|| "unlimited".to_string(), |n| n.to_string());
                if a.json {
                    let v = serde_json::json!({"tenant": t, "rows_used_this_month": used});
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(
                        out,
                        "{:<24} {:<36} {:>8} {:>14} {:>14}",
                        t.name, t.id, t.max_concurrent_jobs, quota, used
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Tenant(cli::TenantCommand::Set(a)) => {
            let t = with_store(&a.database_url, |store| async move {
                tamis_service::platform::update_tenant(
                    &store,
                    &a.name,
                    a.max_concurrent_jobs,
                    a.rows_per_month.map(|q| q.0),
                )
                .await
            })?;
            println!(
                "tenant {} ({}): {} jobs at once, {} rows per month",
                t.name,
                t.id,
                t.max_concurrent_jobs,
                t.rows_per_month
                    .map_or_else(|| "unlimited".to_string(), |n| n.to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Worker(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let store = tamis_service::platform::open_store(&a.database_url).await?;
                let artifacts =
                    tamis_service::platform::open_artifacts(a.artifacts.as_deref(), &a.data_dir)
                        .await?;
                let mut cfg = tamis_service::worker::WorkerConfig::new(
                    a.id.unwrap_or_else(|| format!("worker-{}", std::process::id())),
                    a.data_dir,
                    artifacts,
                );
                cfg.lease_ms = a.lease_ms.max(300);
                cfg.vault_keys = vault_keys()?;
                cfg.heartbeat_ms = (cfg.lease_ms / 3) as u64;
                if let Some(addr) = a.metrics_addr {
                    let metrics = std::sync::Arc::new(tamis_server::Metrics::new());
                    let m = metrics.clone();
                    cfg.on_finish = Some(std::sync::Arc::new(move |j| m.observe_job(j)));
                    let listener = tokio::net::TcpListener::bind(addr).await?;
                    eprintln!(
                        "worker metrics on http://{}/metrics",
                        listener.local_addr()?
                    );
                    tokio::spawn(tamis_server::ops::serve_worker_metrics(
                        listener,
                        store.clone(),
                        metrics,
                    ));
                }
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = tx.send(true);
                });
                eprintln!(
                    "worker {} running; Ctrl-C stops it after the current job",
                    cfg.id
                );
                tamis_service::worker::run(store, cfg, rx).await?;
                Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
            })
        }
    }
}

/// The token vault keys of `serve` and `worker`, from TAMIS_PII_KEY and
/// TAMIS_ENCRYPTION_KEYS (none when no encryption key is set).
fn vault_keys() -> anyhow::Result<Option<tamis_privacy::anonymize::Keys>> {
    Ok(tamis_privacy::anonymize::Keys::vault_from_env()
        .map_err(|e| cli::UsageError(format!("TAMIS_ENCRYPTION_KEYS: {e}")))?)
}

/// Opens the metadata store (migrating it) and runs `f` on it, on a runtime of its own.
fn with_store<T, Fut>(
    url: &str,
    f: impl FnOnce(tamis_service::platform::Store) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = Result<T, tamis_service::ServiceError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(async {
        let store = tamis_service::platform::open_store(url).await?;
        f(store).await
    })?)
}

/// The example dataset, in the binary so `serve --demo` works from any directory.
const EXAMPLE_CSV: &[u8] = include_bytes!("../../../examples/customers.csv");

fn serve(a: cli::ServeArgs) -> anyhow::Result<ExitCode> {
    let tiers =
        tamis_server::Tiers::parse(&a.rate_limit, a.rate_window_secs).map_err(cli::UsageError)?;
    let mut config = tamis_server::ServerConfig::new(&a.data_dir);
    config.max_upload_bytes = a.max_upload_mib.saturating_mul(1 << 20);
    config.user_tier = a.user_tier;
    config.vault_keys = vault_keys()?;
    for r in a.ingest_root {
        if r.starts_with("s3://") {
            config.ingest_urls.push(r);
        } else {
            config.ingest_roots.push(r.into());
        }
    }
    let demo = if a.demo {
        let dir = a.data_dir.join("demo");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("customers.csv");
        std::fs::write(&file, EXAMPLE_CSV)?;
        Some(tamis_server::Demo {
            email: a.demo_email.clone(),
            password: a.demo_password.clone(),
            dataset: Some(file),
        })
    } else {
        None
    };
    let opts = tamis_server::ServeOptions {
        addr: a.addr,
        database_url: a.database_url.clone(),
        config,
        workers: a.workers,
        redis_url: a.redis_url,
        tiers,
        jwt_keys: a.jwt_private_key.zip(a.jwt_public_key),
        demo,
        artifacts: a.artifacts,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (email, password, demo) = (a.demo_email, a.demo_password, a.demo);
    let db = redact_url(&a.database_url);
    rt.block_on(tamis_server::serve(opts, move |addr, _| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "tamis is serving on http://{addr}/ (API docs: http://{addr}/docs, database {db})"
        );
        if demo {
            let _ = writeln!(out, "demo login: {email} / {password}");
        }
        let _ = out.flush();
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
