//! `palisadectl admin binding`: create, delete and list AdminBindings.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use palisade_model::{API_VERSION, Kind};
use serde_json::{Value, json};

use super::{DeleteArgs, ListArgs, apply_document, delete_named, list_kind};
use crate::client::Server;

#[derive(Debug, Subcommand)]
pub enum BindingCommand {
    /// Creates or replaces a binding.
    Create(CreateArgs),
    /// Deletes a binding.
    Delete(DeleteArgs),
    /// Lists the bindings.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The binding's name.
    name: String,

    /// The role granted: admin, editor, viewer, auditor, or an AdminRole's name.
    #[arg(long)]
    role: String,

    /// SPIFFE IDs granted the role, or prefixes ending in /*. Repeatable, or
    /// comma separated.
    #[arg(
        long = "subject",
        value_name = "SPIFFE_ID",
        required = true,
        value_delimiter = ','
    )]
    subjects: Vec<String>,

    /// Limits the role to these namespaces; no limit when not given.
    #[arg(long = "namespace", value_name = "NS", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Validates and reports the change without writing it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(server: &Server, command: BindingCommand) -> anyhow::Result<ExitCode> {
    match command {
        BindingCommand::Create(args) => {
            let dry_run = args.dry_run;
            apply_document(server, "admin binding create", document(args), dry_run).await
        }
        BindingCommand::Delete(args) => delete_named(server, Kind::AdminBinding, args).await,
        BindingCommand::List(args) => list_kind(server, Kind::AdminBinding, args).await,
    }
}

fn document(args: CreateArgs) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": Kind::AdminBinding.as_str(),
        "metadata": { "name": args.name },
        "spec": {
            "role": args.role,
            "subjects": args.subjects,
            "namespaces": args.namespaces,
        },
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: CreateArgs,
    }

    #[test]
    fn binding_document_is_cluster_scoped() {
        let line = [
            "create",
            "ada-views",
            "--role",
            "viewer",
            "--subject",
            "spiffe://corp/ada",
        ];
        let args = Wrapper::parse_from(line).args;

        assert_eq!(
            document(args),
            json!({
                "apiVersion": "palisade.dev/v1",
                "kind": "AdminBinding",
                "metadata": {"name": "ada-views"},
                "spec": {"role": "viewer", "subjects": ["spiffe://corp/ada"], "namespaces": []},
            })
        );
    }
}
