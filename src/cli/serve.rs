//! `mxring serve`: start the shards, then wait for signals. SIGTERM and SIGINT
//! drain and stop; SIGHUP reloads the config file (a bad one is refused).

use std::process::ExitCode;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use sd_notify::NotifyState;

use super::ConfigArg;

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

pub fn serve(arg: &ConfigArg) -> anyhow::Result<ExitCode> {
    let (config, origin) = arg.load()?;
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let server = mxring::shard::start(config, &origin)?;
    for (name, addr) in &server.listeners {
        tracing::info!(listener = %name, %addr, "listening");
    }
    if let Some(a) = server.admin {
        tracing::info!(address = %a, "admin API");
    }
    // systemd's Type=notify: ready once every listener is bound (no-op without
    // NOTIFY_SOCKET).
    notify(&[NotifyState::Ready, NotifyState::Status("accepting mail")]);
    for signal in signals.forever() {
        match signal {
            SIGHUP => match arg.load().and_then(|(c, o)| {
                notify(&[NotifyState::Reloading]);
                let r = server.reload(c, &o);
                notify(&[NotifyState::Ready]);
                r
            }) {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}").replace('\n', " "), "reload refused; the running configuration stays")
                }
            },
            _ => {
                notify(&[NotifyState::Stopping]);
                tracing::info!("stopping: draining sessions and deliveries");
                break;
            }
        }
    }
    server.shutdown();
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
