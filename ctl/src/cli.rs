//! The command line: global connection flags and the command tree. Each
//! command's own flags live beside its code in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    admin::AdminArgs, apply::ApplyArgs, audit::AuditArgs, bootstrap::BootstrapArgs,
    completion::CompletionArgs, delete::DeleteArgs, diff::DiffArgs, get::GetArgs, get::ListArgs,
    keys::KeyArgs, node::NodeArgs, status::StatusArgs, watch::WatchArgs,
};

/// Administers a Palisade control plane: applies and reads resources, watches
/// changes, and reads the audit log.
#[derive(Debug, Parser)]
#[command(name = "palisadectl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the control plane is and how to prove who we are. Flags win over
/// the environment, which wins over the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// The control plane's admin address, e.g. https://127.0.0.1:7443
    /// (http:// only for a development server).
    #[arg(long, global = true, value_name = "URL", env = "PALISADECTL_SERVER")]
    pub server: Option<String>,

    /// The CA certificate (PEM) that signed the control plane's certificate.
    #[arg(long, global = true, value_name = "FILE", env = "PALISADECTL_CA")]
    pub ca: Option<PathBuf>,

    /// Your client certificate (PEM).
    #[arg(long, global = true, value_name = "FILE", env = "PALISADECTL_CERT")]
    pub cert: Option<PathBuf>,

    /// The private key (PEM) of your client certificate.
    #[arg(long, global = true, value_name = "FILE", env = "PALISADECTL_KEY")]
    pub key: Option<PathBuf>,

    /// The config file; by default ./.palisade-dev/palisadectl.toml, then
    /// ~/.config/palisade/palisadectl.toml.
    #[arg(long, global = true, value_name = "FILE", env = "PALISADECTL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates or updates the resources described in files.
    Apply(ApplyArgs),
    /// Shows what applying files would change; exits 1 if anything would.
    Diff(DiffArgs),
    /// Shows one resource, or lists resources of a kind.
    Get(GetArgs),
    /// Lists resources of a kind (the same as `get KIND`).
    List(ListArgs),
    /// Removes resources, by name or as described in files.
    Delete(DeleteArgs),
    /// Prints changes to resources as they happen.
    Watch(WatchArgs),
    /// Reads and verifies the audit log.
    Audit(AuditArgs),
    /// Manages administrator roles and their bindings.
    Admin(AdminArgs),
    /// Join tokens for nodes, and node revocation.
    Node(NodeArgs),
    /// The xDS streams connected to the control plane: what each
    /// acknowledged, how far behind it is, its last rejection.
    Status(StatusArgs),
    /// The certificate authorities and their rotation.
    Ca(KeyArgs),
    /// The JWT signing keys and their rotation.
    JwtKey(KeyArgs),
    /// Shows who the control plane thinks you are, and your roles.
    Whoami,
    /// Prints the xDS bootstrap for an Envoy or proxyless gRPC client of a
    /// workload.
    Bootstrap(BootstrapArgs),
    /// Prints a shell completion script.
    Completion(CompletionArgs),
    /// Prints palisadectl's version.
    Version,
}

/// Files to read documents from.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// A file, a directory of *.yaml, *.yml and *.json files, or - for stdin.
    /// Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,

    /// Reads directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
