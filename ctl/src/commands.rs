//! The commands, one module each, and the dispatch to them.

use std::process::ExitCode;

use palisade_proto::admin::KeyKind;

use crate::cli::{Cli, Command};
use crate::client::Server;
use crate::output;

pub mod admin;
pub mod apply;
pub mod audit;
pub mod bootstrap;
pub mod completion;
pub mod delete;
pub mod diff;
pub mod get;
pub mod keys;
pub mod node;
pub mod status;
pub mod watch;
pub mod whoami;

/// Runs the command; the exit code is for outcomes that are not errors,
/// such as `diff` finding changes.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let server = Server::new(cli.connection.clone());
    match cli.command {
        Command::Apply(args) => apply::run(&server, args).await,
        Command::Diff(args) => diff::run(&server, args).await,
        Command::Get(args) => get::run(&server, args).await,
        Command::List(args) => get::run_list(&server, args).await,
        Command::Delete(args) => delete::run(&server, args).await,
        Command::Watch(args) => watch::run(&server, args).await,
        Command::Audit(args) => audit::run(&server, args).await,
        Command::Admin(args) => admin::run(&server, args).await,
        Command::Node(args) => node::run(&server, args).await,
        Command::Status(args) => status::run(&server, args).await,
        Command::Ca(args) => keys::run(&server, KeyKind::Ca, args).await,
        Command::JwtKey(args) => keys::run(&server, KeyKind::Jwt, args).await,
        Command::Whoami => whoami::run(&server).await,
        Command::Bootstrap(args) => bootstrap::run(&server, &cli.connection, args).await,
        Command::Completion(args) => completion::run(args),
        Command::Version => version(),
    }
}

fn version() -> anyhow::Result<ExitCode> {
    output::print(&format!("palisadectl {}\n", env!("CARGO_PKG_VERSION")))?;
    Ok(ExitCode::SUCCESS)
}
