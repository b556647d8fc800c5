//! Subcommands. Every one takes `--config FILE` (default: the embedded config), so
//! it finds the same admin address, spool and rules as the server it speaks of.

mod auth;
mod checktls;
mod explain;
mod queue;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mxring::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "mxring",
    version,
    about = "An edge mail transfer agent: io_uring shards, mandatory-TLS policy, durable queue"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
            println!(
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
        Command::Tls { config, action } => {
            let (c, origin) = config.load()?;
            tls::run(&c, &origin, action)
        }
    }
}
