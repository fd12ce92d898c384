//! Reporting a failed command: one `error:` line, the details beneath it,
//! perhaps a hint, and the exit code.

use std::io::ErrorKind;
use std::process::ExitCode;

use crate::config::ConfigError;
use crate::error::ConnectError;

/// Exit code for unusable settings (EX_CONFIG in sysexits.h).
const EXIT_CONFIG: u8 = 64;

/// Prints `error` to stderr and returns the exit code for it.
pub fn failure(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }

    eprintln!("error: {error}");
    for line in detail_lines(error) {
        eprintln!("  {line}");
    }
    if let Some(hint) = hint(error) {
        eprintln!("hint: {hint}");
    }

    match error.chain().any(|cause| cause.is::<ConfigError>()) {
        true => ExitCode::from(EXIT_CONFIG),
        false => ExitCode::FAILURE,
    }
}

/// The causes beneath the top line, one line each, without repeats.
fn detail_lines(error: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for cause in error.chain().skip(1) {
        for line in cause.to_string().lines().map(str::trim_end) {
            if !line.is_empty() && !lines.iter().any(|seen| seen == line) {
                lines.push(line.to_owned());
            }
        }
    }
    lines
}

fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(config) = cause.downcast_ref::<ConfigError>() {
            return config.hint();
        }
        cause
            .downcast_ref::<ConnectError>()
            .map(|connect| connect.hint.clone())
    })
}

/// Output piped into a reader that stopped early (`palisadectl get svc | head`)
/// is not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;

    use super::*;

    #[test]
    fn details_list_each_cause_once() {
        let error = anyhow!("connection refused")
            .context("tcp connect error\nconnection refused")
            .context("cannot connect");

        assert_eq!(
            detail_lines(&error),
            ["tcp connect error", "connection refused"]
        );
    }
}
