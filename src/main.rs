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
                    .unwrap_or_else(|_| cli.default_log_filter().into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            eprintln!("{}", user_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error as a user reads it: the message, then each cause the message does not already
/// say (library errors usually include their source's text), and never a backtrace, which
/// says nothing to someone who mistyped a path.
fn user_error(e: &anyhow::Error) -> String {
    let mut out = format!("Error: {e}");
    let mut said = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !said.contains(&text) {
            out.push_str(&format!("\n  because: {text}"));
            said = text;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_says_is_not_said_twice() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let said = anyhow::Error::from(io).context("cannot read x.toml: No such file or directory");
        assert_eq!(
            user_error(&said),
            "Error: cannot read x.toml: No such file or directory"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let unsaid = anyhow::Error::from(io).context("cannot read x.toml");
        assert_eq!(
            user_error(&unsaid),
            "Error: cannot read x.toml\n  because: No such file or directory"
        );
    }
}
