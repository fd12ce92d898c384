//! `palisadectl diff`: what `apply` would change, as unified diffs.

use std::process::ExitCode;

use clap::Args;
use palisade_proto::admin::{ApplyResponse, ChangeAction};

use super::apply;
use crate::cli::FileArgs;
use crate::client::Server;
use crate::output;

/// Flags of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    files: FileArgs,
}

/// Exits 0 when nothing would change and 1 when something would.
pub async fn run(server: &Server, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let request = apply::request(&args.files, true)?;
    let mut admin = server.connect().await?;

    let response = apply::apply(&mut admin, request).await?;
    output::print(&diffs(&response))?;

    let changed = response
        .changes
        .iter()
        .any(|c| c.action() != ChangeAction::Unchanged);
    Ok(if changed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Every change's diff, each ending in a newline.
fn diffs(response: &ApplyResponse) -> String {
    let mut text = String::new();
    for change in &response.changes {
        if change.action() == ChangeAction::Unchanged || change.diff.is_empty() {
            continue;
        }
        text.push_str(&change.diff);
        if !change.diff.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}
