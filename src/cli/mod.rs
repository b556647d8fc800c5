//! Subcommands. Every one takes `--config FILE` (default: the embedded config), so
//! it finds the same admin address, spool and rules as the server it speaks of.

/// `println!` for command output that ends the command quietly when stdout is a
/// closed pipe (`mxring ... | head -1`), as Unix tools do, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// `print!` with the same closed-pipe rule as `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod auth;
mod checktls;
mod explain;
mod explain_sts;
mod queue;
mod serve;
mod tls;
mod tlsreport;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mxring::config::{self, Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "mxring",
    version,
    about = "An edge mail transfer agent: io_uring shards, mandatory-TLS policy, durable queue"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` or `json` (one object per line); default: the config's
    /// `[log] format`, else text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

impl Cli {
    /// The flag, else the `[log] format` of the config the command reads (a config
    /// that does not load is reported by the command itself, in text).
    pub fn log_format(&self) -> LogFormat {
        if let Some(f) = self.log_format {
            return f;
        }
        let config = match &self.command {
            Command::Serve { config }
            | Command::Policy { config, .. }
            | Command::Queue { config, .. }
            | Command::Tls { config, .. }
            | Command::TlsReport { config, .. } => config,
            Command::Config {
                action: ConfigAction::Check { config },
            } => config,
            Command::CheckTls(_) | Command::Auth { .. } => return LogFormat::Text,
        };
        config
            .load()
            .map(|(c, _)| c.log.format)
            .unwrap_or(LogFormat::Text)
    }
}

/// Output to a closed pipe (`mxring ... | head -1`) ends the command quietly, as
/// for any Unix tool; it is not an error worth a message or a panic.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[derive(clap::Args, Clone)]
pub struct ConfigArg {
    /// Configuration file (TOML); without it, the embedded default.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    pub fn load(&self) -> anyhow::Result<(Config, String)> {
        match &self.config {
            Some(path) => Ok((config::load_file(path)?, path.display().to_string())),
            None => Ok((
                config::load_str(config::EMBEDDED_DEFAULT, "embedded default")?,
                "embedded default".into(),
            )),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a configuration file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Explain which TLS policy rule applies, and why.
    Policy {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Show what a peer offers: a timed transcript of the SMTP and TLS exchange.
    CheckTls(checktls::CheckTlsArgs),
    /// Inspect and act on a running server's queue.
    Queue {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: queue::QueueAction,
    },
    /// Accounts for SMTP AUTH: make password hashes for the users file.
    Auth {
        #[command(subcommand)]
        action: auth::AuthAction,
    },
    /// Server certificates: what each SNI name gets.
    Tls {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: tls::TlsAction,
    },
    /// TLS reporting (RFC 8460): the running server's session counts.
    TlsReport {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: tlsreport::TlsReportAction,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Print the rule that applies (its file and index, the matcher that hit) and the result.
    Explain(explain::ExplainArgs),
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check the file and print a summary; exit 1 with the key and line on error.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => serve::serve(&config),
        Command::Config {
            action: ConfigAction::Check { config },
        } => {
            let (c, origin) = config.load()?;
            if let Some(path) = &config.config {
                let text = std::fs::read_to_string(path)?;
                mxring::config::check_files(&c, &text, &origin)?;
                if c.auth.users_file.is_some() {
                    // The server's own parser: a bad line is named as it would be at start.
                    mxring::auth::load_accounts(&c.auth)?;
                }
            }
            for warning in mxring::config::warnings(&c) {
                outln!("{origin}: warning: {warning}");
            }
            outln!(
                "{origin}: ok ({} listener(s), {} route(s), {} inbound_tls and {} outbound_tls rule(s))",
                c.listeners.len(),
                c.routes.len(),
                c.inbound_tls.len(),
                c.outbound_tls.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue { config, action } => queue::run(&config, action),
        Command::Policy {
            config,
            action: PolicyAction::Explain(args),
        } => {
            let (c, origin) = config.load()?;
            explain::explain(&c, &origin, &args)
        }
        Command::CheckTls(args) => checktls::run(&args),
        Command::Auth { action } => auth::run(action),
        Command::TlsReport { config, action } => tlsreport::run(&config, action),
        Command::Tls { config, action } => {
            let (c, origin) = config.load()?;
            tls::run(&c, &origin, action)
        }
    }
}
