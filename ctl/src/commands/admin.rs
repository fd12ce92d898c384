//! `palisadectl admin`: AdminRoles and AdminBindings, built from flags
//! rather than files. The built-in roles admin, editor, viewer and auditor
//! need no AdminRole.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use palisade_model::Kind;
use palisade_proto::admin::{ApplyRequest, DeleteRequest};
use serde_json::Value;

use super::apply;
use super::get::{self, ListView};
use crate::client::Server;
use crate::error::RpcError;
use crate::output;

mod binding;
mod role;

/// Flags of `admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Roles: which verbs on which kinds in which namespaces.
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Bindings: which administrators hold which role.
    #[command(subcommand)]
    Binding(binding::BindingCommand),
}

pub async fn run(server: &Server, args: AdminArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AdminCommand::Role(command) => role::run(server, command).await,
        AdminCommand::Binding(command) => binding::run(server, command).await,
    }
}

/// Flags shared by `role delete` and `binding delete`.
#[derive(Debug, Args)]
struct DeleteArgs {
    /// The name.
    name: String,

    /// Checks the deletion without doing it.
    #[arg(long)]
    dry_run: bool,
}

/// Flags shared by `role list` and `binding list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// How to print them.
    #[arg(short, long, value_enum, default_value_t)]
    output: get::Format,
}

/// Applies one built document, printing the change as `apply` does.
async fn apply_document(
    server: &Server,
    source: &str,
    document: Value,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let request = ApplyRequest {
        source: source.to_owned(),
        content: document.to_string(),
        dry_run,
    };
    let mut admin = server.connect().await?;

    let response = apply::apply(&mut admin, request).await?;
    output::print(&apply::summary(&response))?;
    Ok(ExitCode::SUCCESS)
}

/// Deletes one cluster-scoped resource by name.
async fn delete_named(server: &Server, kind: Kind, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let request = DeleteRequest {
        kind: kind.to_string(),
        name: args.name,
        dry_run: args.dry_run,
        ..DeleteRequest::default()
    };
    let mut admin = server.connect().await?;

    let response = admin
        .delete(request)
        .await
        .map_err(RpcError::of("delete"))?
        .into_inner();
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    let line = response
        .change
        .as_ref()
        .map(output::change_line)
        .unwrap_or_default();
    output::print(&format!(
        "{line}{suffix}\nrevision {}{suffix}\n",
        response.revision
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn list_kind(server: &Server, kind: Kind, args: ListArgs) -> anyhow::Result<ExitCode> {
    let view = ListView {
        output: args.output,
        ..ListView::default()
    };
    get::show_list(server, kind, &view).await
}
