//! `palisadectl node`: join tokens that let an agent attest as a Node, and
//! revocation.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use palisade_proto::admin::{CreateJoinTokenRequest, JoinToken, RevokeNodeRequest};

use crate::client::Server;
use crate::error::RpcError;
use crate::output;
use crate::output::rfc3339_seconds;

/// Flags of `node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// One-time join tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Revokes a node: no more certificates for it or its workloads, and
    /// the certificates they hold go on the deny list.
    Revoke(RevokeArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Creates a token and prints it once; the control plane keeps only
    /// its hash.
    Create(CreateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The Node the token lets an agent attest as; it must exist.
    #[arg(long)]
    node: String,

    /// How long the token stays good: 90s, 30m, 1h, 7d [default: 1h].
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The node.
    node: String,

    /// Why, for the audit log.
    #[arg(long, default_value = "")]
    reason: String,
}

pub async fn run(server: &Server, args: NodeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NodeCommand::Token(TokenCommand::Create(args)) => create_token(server, args).await,
        NodeCommand::Revoke(args) => revoke(server, args).await,
    }
}

async fn create_token(server: &Server, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let ttl_seconds = match args.ttl {
        Some(ttl) => u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
        None => 0,
    };
    let request = CreateJoinTokenRequest {
        node: args.node,
        ttl_seconds,
    };

    let mut admin = server.connect().await?;
    let token = admin
        .create_join_token(request)
        .await
        .map_err(RpcError::of("node token create"))?;
    output::print(&render_token(&token.into_inner()))?;
    Ok(ExitCode::SUCCESS)
}

fn render_token(token: &JoinToken) -> String {
    format!(
        "{}\n# join token for node {}, good once until {}; it is not shown again\n",
        token.token,
        token.node,
        rfc3339_seconds(token.expires_at_unix.saturating_mul(1000))
    )
}

async fn revoke(server: &Server, args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let request = RevokeNodeRequest {
        node: args.node.clone(),
        reason: args.reason,
    };

    let mut admin = server.connect().await?;
    let revoked = admin
        .revoke_node(request)
        .await
        .map_err(RpcError::of("node revoke"))?
        .into_inner();
    let mut text = format!(
        "node {} revoked at revision {}; {} certificates denied\n",
        args.node,
        revoked.revision,
        revoked.serials.len()
    );
    for serial in &revoked.serials {
        text.push_str(&format!("  {serial}\n"));
    }
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a duration such as `90s`, `30m`, `1h` or `7d`; a bare number is
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h or 7d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?} has unit {unit:?}; use s, m, h or d")),
    };
    value
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604800)));
        assert!(parse_duration("1w").unwrap_err().contains("unit"));
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn token_is_printed_alone_on_its_first_line() {
        let token = JoinToken {
            token: "abc.def".into(),
            node: "web-1".into(),
            expires_at_unix: 1_700_000_000,
            revision: 3,
        };

        let text = render_token(&token);

        assert_eq!(text.lines().next(), Some("abc.def"));
        assert!(text.contains("2023-11-14T22:13:20Z"), "{text}");
    }
}
