//! `gauntlet`: the command line. Each subcommand parses its flags and calls into a library
//! crate; nothing here does the work itself.

mod cmd;

use clap::Parser;

/// Ingest allocates and frees many small strings per span (decoded attributes, their JSON,
/// SQLite's records); mimalloc's per-thread free lists cost less per span than glibc's
/// malloc here (scripts/bench-ingest.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cmd::Cli::parse();
    // A demo service installs its own subscriber, which also exports to OTLP.
    if !cli.exports_own_telemetry() {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,h2=warn,hyper=warn,tower=warn".into()),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli.run()));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            // As `main() -> anyhow::Result` would print it.
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}
