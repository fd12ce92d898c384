//! `palisadectl admin role`: create, delete and list AdminRoles.

use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use palisade_model::{ADMIN_VERBS, API_VERSION, Kind};
use serde_json::{Value, json};

use super::{DeleteArgs, ListArgs, apply_document, delete_named, list_kind};
use crate::client::Server;

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Creates or replaces a role with one rule.
    Create(CreateArgs),
    /// Deletes a role.
    Delete(DeleteArgs),
    /// Lists the roles.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The role's name.
    name: String,

    /// Verbs the role grants, or * for all. Repeatable, or comma separated.
    #[arg(long = "verb", value_name = "VERB", required = true, value_delimiter = ',',
          value_parser = verbs())]
    verbs: Vec<String>,

    /// Kinds the verbs apply to, or * for all. Repeatable, or comma separated.
    #[arg(long = "kind", value_name = "KIND", required = true, value_delimiter = ',',
          value_parser = kind_or_any)]
    kinds: Vec<String>,

    /// Namespaces the role is limited to; all namespaces when not given.
    #[arg(long = "namespace", value_name = "NS", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Validates and reports the change without writing it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(server: &Server, command: RoleCommand) -> anyhow::Result<ExitCode> {
    match command {
        RoleCommand::Create(args) => {
            let dry_run = args.dry_run;
            apply_document(server, "admin role create", document(args), dry_run).await
        }
        RoleCommand::Delete(args) => delete_named(server, Kind::AdminRole, args).await,
        RoleCommand::List(args) => list_kind(server, Kind::AdminRole, args).await,
    }
}

fn document(args: CreateArgs) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": Kind::AdminRole.as_str(),
        "metadata": { "name": args.name },
        "spec": {
            "rules": [{
                "verbs": args.verbs,
                "kinds": args.kinds,
                "namespaces": args.namespaces,
            }],
        },
    })
}

fn verbs() -> PossibleValuesParser {
    PossibleValuesParser::new(ADMIN_VERBS.into_iter().chain(["*"]))
}

/// A kind as documents spell it (`svc` becomes `Service`), or `*`.
fn kind_or_any(text: &str) -> Result<String, String> {
    if text == "*" {
        return Ok(text.to_owned());
    }
    text.parse::<Kind>()
        .map(|kind| kind.to_string())
        .map_err(|err| err.to_string())
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
    fn role_document_has_one_rule_from_the_flags() {
        let line = [
            "create", "ops", "--verb", "get,list", "--verb", "apply", "--kind", "svc",
        ];
        let args =
            Wrapper::parse_from(
                line.into_iter()
                    .chain(["--kind", "*", "--namespace", "shop"]),
            )
            .args;

        assert_eq!(
            document(args),
            json!({
                "apiVersion": "palisade.dev/v1",
                "kind": "AdminRole",
                "metadata": {"name": "ops"},
                "spec": {"rules": [{
                    "verbs": ["get", "list", "apply"],
                    "kinds": ["Service", "*"],
                    "namespaces": ["shop"],
                }]},
            })
        );
    }

    #[test]
    fn unknown_verbs_and_kinds_are_usage_errors() {
        let bad_verb = Wrapper::try_parse_from(["create", "ops", "--verb", "eat", "--kind", "*"]);
        let bad_kind = Wrapper::try_parse_from(["create", "ops", "--verb", "get", "--kind", "Pod"]);

        assert!(bad_verb.is_err());
        assert!(bad_kind.is_err());
    }
}
