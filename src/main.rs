//! `gauntlet`: the command line. Each subcommand parses its flags and calls into a library
//! crate; nothing here does the work itself.

mod cmd;

use clap::Parser;

fn main() -> anyhow::Result<()> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli.run())
}
