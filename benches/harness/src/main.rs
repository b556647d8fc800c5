//! mxring-bench: a load generator and a counting SMTP sink, for benchmarking mxring
//! side by side with other SMTP servers. Both run a few event-loop threads (tokio,
//! current-thread runtimes) with many connections each.

mod cli;
mod client;
mod conn;
mod data;
mod failure;
mod limits;
mod load;
mod message;
mod plot;
mod progress;
mod report;
mod schedule;
mod series;
mod signal;
mod sink;
mod sink_session;
mod sink_state;
mod stats;
mod tls;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Load(args) => load::run(args),
        cli::Command::Sink(args) => sink::run(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mxring-bench: {e}");
            2
        }
    };
    std::process::exit(code);
}
