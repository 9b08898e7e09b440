//! Command line: `run` (default), `check-config`, `dlq`, `events`,
//! `destinations`, `sign`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigOrigin};
use crate::queue::{DeadReason, Queue, Unusable};

fn parse_reason(text: &str) -> Result<DeadReason, String> {
    text.parse()
}

mod destinations_cmd;
mod dlq_cmd;
mod events_cmd;
mod spool_cmd;
mod table;

/// Pretty JSON on stdout, for `--json`.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A unix ms as an HTTP date, "-" for none.
fn ms_to_text(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

#[derive(Debug, Parser)]
#[command(
    name = "hookd",
    version,
    about = "Webhooks in, reliably delivered out."
)]
pub struct Cli {
    /// Config file (default: $HOOKD_CONFIG, else config/hookd.toml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Inspect and fix the dead-letter queue (directly on Redis).
    Dlq {
        #[command(subcommand)]
        action: DlqCommand,
    },
    /// Search the event log, show one event, replay (directly on Redis).
    Events {
        #[command(subcommand)]
        action: EventsCommand,
    },
    /// Every destination's state; pause, resume, forget one (directly on Redis).
    Destinations {
        #[command(subcommand)]
        action: DestinationsCommand,
    },
    /// Move a spool's events into Redis (also a spool whose instance is gone).
    Spool {
        #[command(subcommand)]
        action: SpoolCommand,
    },
    /// Print the headers the source's provider would send for a body, to test a setup with curl.
    Sign {
        /// Source name from the config.
        #[arg(long)]
        source: String,
        /// File holding the exact body to send.
        #[arg(long, value_name = "FILE")]
        body: PathBuf,
        /// The URL you will POST to; its query string is signed by schemes that sign the URL (Twilio).
        #[arg(long, conflicts_with = "query")]
        url: Option<String>,
        /// Just the query string of that URL.
        #[arg(long)]
        query: Option<String>,
        /// Event id to put in the provider's id header.
        #[arg(long)]
        id: Option<String>,
        /// Content-Type you will send (Twilio signs form fields).
        #[arg(long, default_value = "application/json")]
        content_type: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct DlqFilter {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only events that died for this destination.
    #[arg(long)]
    pub destination: Option<String>,
    /// Only this event type.
    #[arg(long = "event")]
    pub event_type: Option<String>,
    /// Only this reason: rejected, max_attempts, max_deliveries.
    #[arg(long, value_parser = parse_reason)]
    pub reason: Option<DeadReason>,
}

#[derive(Debug, clap::Args)]
pub struct EventFilter {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only events for this destination (and, replaying, only to it).
    #[arg(long)]
    pub destination: Option<String>,
    /// Only this event type.
    #[arg(long = "event")]
    pub event_type: Option<String>,
    /// Only events some destination (or --destination) has in this status:
    /// queued, in_flight, delivered, retrying, dead, filtered, paused.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<crate::queue::EventStatus>,
    /// Received at or after: unix ms, an RFC 3339 time (Z or an offset) or a date.
    #[arg(long)]
    pub since: Option<String>,
    /// Received at or before: unix ms, an RFC 3339 time (Z or an offset) or a date.
    #[arg(long)]
    pub until: Option<String>,
    /// The provider's event id.
    #[arg(long)]
    pub id: Option<String>,
}

fn parse_status(text: &str) -> Result<crate::queue::EventStatus, String> {
    text.parse()
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Logged events, newest first, with each destination's status.
    List {
        #[command(flatten)]
        filter: EventFilter,
        /// Most events on the page (brought within 1-500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One event: body, headers, every destination's attempts.
    Show {
        /// Entry id (second column of `list`).
        entry_id: String,
        /// The event's source, where the entry id alone is ambiguous.
        #[arg(long)]
        source: Option<String>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Deliver events again (delivered ones too), with attempts reset.
    Replay {
        /// Entry id; or use --all with filters.
        entry_id: Option<String>,
        /// Every match of the filters.
        #[arg(long, conflicts_with = "entry_id")]
        all: bool,
        #[command(flatten)]
        filter: EventFilter,
        /// Count what --all would replay, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Drain the spool directory into Redis now, in order, dropping
    /// duplicates; exits 1 if events remain (Redis went away).
    Drain {
        /// The spool directory (default: spool.dir of the config). No
        /// running hookd may hold it.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Every destination with its state and queue depths.
    List {
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Stop deliveries to a destination on every instance; its events wait.
    Pause {
        /// The source, as named in the config.
        source: String,
        /// The destination's name within the source.
        destination: String,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Deliver to a paused destination again.
    Resume {
        /// The source, as named in the config.
        source: String,
        /// The destination's name within the source.
        destination: String,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Drop the consumer group (and its undelivered events) of a destination
    /// that is no longer configured.
    Forget {
        /// The source, as named in the config.
        source: String,
        /// The removed destination's name (its consumer group).
        destination: String,
        /// Forget it even if an instance read it within worker.claim_idle
        /// (one whose configuration still names it would lose the events
        /// ingested until it recreates the group).
        #[arg(long)]
        force: bool,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead-lettered events, newest first.
    List {
        #[command(flatten)]
        filter: DlqFilter,
        /// Most events on the page (brought within 1-500).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One event with its body, headers and attempts.
    Show {
        /// DLQ entry id (first column of `list`).
        id: String,
        /// The entry's source, where the id alone is ambiguous.
        #[arg(long)]
        source: Option<String>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put events back on their stream with attempts reset.
    Replay {
        /// DLQ entry id; or use --all with filters.
        id: Option<String>,
        /// Every match of the filters.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        filter: DlqFilter,
        /// Count what --all would replay, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove one event from the dead-letter queue.
    Delete {
        /// DLQ entry id (first column of `list`).
        id: String,
        /// The entry's source, where the id alone is ambiguous.
        #[arg(long)]
        source: Option<String>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove every matching event.
    Purge {
        #[command(flatten)]
        filter: DlqFilter,
        /// Count the matches, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run_daemon(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Dlq { action } => crate::cli::dlq_cmd::run(cli.config, action),
        Command::Destinations { action } => destinations_cmd::run(cli.config, action),
        Command::Events { action } => events_cmd::run(cli.config, action),
        Command::Spool { action } => spool_cmd::run(cli.config, action),
        Command::Sign {
            source,
            body,
            url,
            query,
            id,
            content_type,
        } => {
            let query = query.or_else(|| {
                url.as_deref()
                    .and_then(|u| u.split_once('?'))
                    .map(|(_, q)| q.to_owned())
            });
            sign(
                cli.config,
                &source,
                &body,
                query.as_deref(),
                id,
                &content_type,
            )
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line. Most messages already end with
/// their cause's text, so a cause the line already says is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

pub(crate) fn load(path: Option<PathBuf>) -> anyhow::Result<(Config, ConfigOrigin)> {
    Config::load(path.as_deref())
}

/// Runs `work` against the configured Redis with the configured sources
/// (commands that work directly on Redis, daemon or not).
pub(crate) fn on_redis<F, Fut>(path: Option<PathBuf>, work: F) -> anyhow::Result<()>
where
    F: FnOnce(Queue, crate::source::Sources, crate::config::WorkerConfig) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (config, _) = load(path)?;
    let mut sources = crate::source::Sources::default();
    for (index, source) in config.sources.iter().enumerate() {
        sources.insert(crate::source::Source::build(
            source,
            index,
            &config.redis.key_prefix,
        )?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let queue = reach_redis(&config.redis).await?;
        let result = work(queue.clone(), sources, config.worker.clone()).await;
        queue.quit().await;
        result
    })
}

/// Connects to the configured Redis for a one-shot command: it has 5 s to
/// answer, else the error says which Redis and why (refused, a wrong
/// password, a user not allowed to run scripts, ...).
pub(crate) async fn reach_redis(redis: &crate::config::RedisConfig) -> anyhow::Result<Queue> {
    let settings = crate::queue::RedisSettings::build(&redis.url, 1, &redis.key_prefix)?;
    let queue = Queue::connect(&settings)?;
    let mut errors = queue.connection_errors();
    match queue.wait_usable(std::time::Duration::from_secs(5)).await {
        Ok(()) => Ok(queue),
        Err(Unusable::Refused(why)) => bail!(
            "redis at {} (redis.url) refuses hookd's commands: {why}",
            settings.shown()
        ),
        // The connections' own words beat the health check's.
        Err(Unusable::Unreachable(failed)) => bail!(
            "cannot reach redis at {} (redis.url) within 5s: {}",
            settings.shown(),
            errors.latest().unwrap_or(failed)
        ),
    }
}

fn check_config(path: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, origin) = load(path)?;
    // The same builders as `run`, so anything run would refuse fails here.
    crate::build(config.clone())?;
    match origin {
        ConfigOrigin::File(path) => println!("# configuration from {}", path.display()),
        ConfigOrigin::Defaults => println!("# built-in defaults (no config file found)"),
    }
    print!("{}", config.to_redacted_toml()?);
    if config.spool.enabled()
        && let Some(warning) = crate::spool::Spool::short_of_disk(&config.spool)
    {
        eprintln!("warning: {warning}");
    }
    eprintln!("configuration is valid");
    Ok(())
}

fn sign(
    path: Option<PathBuf>,
    source: &str,
    body_path: &std::path::Path,
    query: Option<&str>,
    id: Option<String>,
    content_type: &str,
) -> anyhow::Result<()> {
    let (config, _) = load(path)?;
    let Some(source_config) = config.source(source) else {
        bail!("no source named {source:?} in the configuration");
    };
    let verifier = crate::verify::Verifier::build(&source_config.verify)?;
    let body = std::fs::read(body_path)
        .with_context(|| format!("reading the body from {}", body_path.display()))?;
    let id = id.unwrap_or_else(|| format!("evt_{:x}", crate::unix_ms()));
    let headers = verifier
        .sign(&body, crate::unix_secs(), &id, content_type, query)
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
    println!("Content-Type: {content_type}");
    for (name, value) in headers {
        println!("{name}: {value}");
    }
    Ok(())
}

fn run_daemon(path: Option<PathBuf>) -> anyhow::Result<()> {
    crate::telemetry::init_logging();
    let (config, origin) = load(path)?;
    match &origin {
        ConfigOrigin::File(p) => info!(path = %p.display(), "configuration loaded"),
        ConfigOrigin::Defaults => {
            warn!("no config file found: running on built-in defaults with no sources")
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        // One worker per CPU unless TOKIO_WORKER_THREADS says otherwise
        // (README: fewer pays off where hookd shares a small host).
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        info!(workers, "runtime started");
        let listeners = crate::Listeners::bind(&config).await.with_context(|| {
            format!(
                "binding server.listen {} / admin.listen {}",
                config.server.listen, config.admin.listen
            )
        })?;
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        crate::run(config, listeners, shutdown).await?;
        Ok(())
    })
}

/// First SIGTERM/SIGINT starts the graceful drain; a second one exits at
/// once (status 130), for operators who cannot wait. SIGHUP, which would
/// otherwise kill the process on the spot (a closed terminal, a habitual
/// `kill -HUP` to reload), is logged and ignored.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; only SIGKILL will stop hookd");
        return;
    };
    let mut first = true;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hangup.recv() => {
                warn!("SIGHUP ignored: hookd does not reload its configuration; restart it (SIGTERM drains) to apply a change");
                continue;
            }
        }
        if first {
            info!("signal received: draining (send again to exit at once)");
            shutdown.cancel();
            first = false;
        } else {
            warn!("second signal: exiting now without draining");
            std::process::exit(130);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = std::io::Error::other("disk gone");
        let e = anyhow::Error::new(Outer(io)).context("starting");
        assert_eq!(error_chain(&e), "starting: cannot open: disk gone");
    }
}
