//! `palisadectl apply`: sends every document in the given files in one
//! all-or-nothing request.

use std::fmt::Write;
use std::process::ExitCode;

use clap::Args;
use palisade_proto::admin::{ApplyRequest, ApplyResponse};

use crate::cli::FileArgs;
use crate::client::{AdminClient, Server};
use crate::error::RpcError;
use crate::input;
use crate::output;

/// Flags of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    files: FileArgs,

    /// Validates and reports the changes without writing anything.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(server: &Server, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let request = request(&args.files, args.dry_run)?;
    let mut admin = server.connect().await?;

    let response = apply(&mut admin, request).await?;
    output::print(&summary(&response))?;
    Ok(ExitCode::SUCCESS)
}

/// One request carrying the documents of every file.
pub fn request(files: &FileArgs, dry_run: bool) -> anyhow::Result<ApplyRequest> {
    let inputs = input::read_inputs(&files.files, files.recursive)?;
    let bundle = input::bundle(&inputs)?;
    Ok(ApplyRequest {
        source: bundle.source,
        content: bundle.content,
        dry_run,
    })
}

pub async fn apply(
    admin: &mut AdminClient,
    request: ApplyRequest,
) -> Result<ApplyResponse, RpcError> {
    let response = admin.apply(request).await.map_err(RpcError::of("apply"))?;
    Ok(response.into_inner())
}

/// One line per change, then the revision.
pub fn summary(response: &ApplyResponse) -> String {
    let suffix = if response.dry_run { " (dry run)" } else { "" };
    let mut text = String::new();
    for change in &response.changes {
        let _ = writeln!(text, "{}{suffix}", output::change_line(change));
    }
    let _ = writeln!(text, "revision {}{suffix}", response.revision);
    text
}

#[cfg(test)]
mod tests {
    use palisade_proto::admin::{Change, ChangeAction};

    use super::*;

    fn change(kind: &str, namespace: &str, name: &str, action: ChangeAction) -> Change {
        Change {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            action: action.into(),
            diff: String::new(),
        }
    }

    #[test]
    fn summary_lists_each_change_then_the_revision() {
        let response = ApplyResponse {
            revision: 12,
            changes: vec![
                change("Service", "shop", "web", ChangeAction::Created),
                change("Node", "", "n1", ChangeAction::Unchanged),
            ],
            dry_run: false,
        };

        assert_eq!(
            summary(&response),
            "Service shop/web created\nNode n1 unchanged\nrevision 12\n"
        );
    }

    #[test]
    fn dry_run_summary_says_so_on_every_line() {
        let response = ApplyResponse {
            revision: 3,
            changes: vec![change("Service", "shop", "web", ChangeAction::Updated)],
            dry_run: true,
        };

        assert_eq!(
            summary(&response),
            "Service shop/web updated (dry run)\nrevision 3 (dry run)\n"
        );
    }
}
