//! mxring-bench: a load generator and a counting SMTP sink, for benchmarking mxring
//! side by side with other SMTP servers.

mod cli;
mod data;
mod load;
mod message;
mod reply;
mod report;
mod signal;
mod sink;
mod sink_session;
mod sink_state;
mod smtp_client;
mod stats;
mod stream;
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
    // Exiting explicitly also ends any worker stuck past the hard deadline.
    std::process::exit(code);
}
