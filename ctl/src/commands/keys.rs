//! `palisadectl ca` and `palisadectl jwt-key`: the certificate authorities
//! and JWT signing keys, and their rotation: prepare (trusted, signs
//! nothing), activate (signs), retire (no longer trusted).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use palisade_proto::admin::{
    ActivateKeyRequest, Key, KeyKind, KeySet, KeyState, KeyStatusRequest, PrepareKeyRequest,
    RetireKeyRequest,
};

use crate::client::Server;
use crate::error::RpcError;
use crate::output;
use crate::output::{Table, rfc3339_seconds};

/// Flags of `ca` and `jwt-key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Lists the keys, their states and how long what they signed is valid.
    Status(StatusArgs),
    /// Makes a new key that verifiers trust but that signs nothing yet.
    Prepare,
    /// Makes the prepared key (or the one named) the one that signs, once
    /// it has been published long enough for holders to trust it.
    Activate(ActivateArgs),
    /// Stops trusting an inactive key once what it signed has expired.
    Retire(RetireArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Prints the trust bundle (for `ca`) or the JWKS (for `jwt-key`)
    /// instead of the table.
    #[arg(long)]
    published: bool,
}

#[derive(Debug, Args)]
struct ActivateArgs {
    /// The key's id; by default the prepared key.
    id: Option<String>,

    /// Activates even though the key was published too recently for every
    /// holder to trust it; holders with an older bundle or JWKS reject what
    /// it signs until they refresh.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct RetireArgs {
    /// The key's id; by default every inactive key whose signatures have
    /// all expired.
    id: Option<String>,

    /// Retires even though what the key signed is still valid; those
    /// certificates or tokens stop verifying at once.
    #[arg(long)]
    force: bool,
}

pub async fn run(server: &Server, kind: KeyKind, args: KeyArgs) -> anyhow::Result<ExitCode> {
    let mut admin = server.connect().await?;
    let kind_value = kind as i32;
    let call = |step: &'static str| RpcError::of(call_name(kind, step));

    let (set, published) = match args.command {
        KeyCommand::Status(status) => {
            let request = KeyStatusRequest { kind: kind_value };
            let reply = admin.key_status(request).await;
            (reply.map_err(call("status"))?, status.published)
        }
        KeyCommand::Prepare => {
            let request = PrepareKeyRequest { kind: kind_value };
            let reply = admin.prepare_key(request).await;
            (reply.map_err(call("prepare"))?, false)
        }
        KeyCommand::Activate(args) => {
            let request = ActivateKeyRequest {
                kind: kind_value,
                id: args.id.unwrap_or_default(),
                force: args.force,
            };
            let reply = admin.activate_key(request).await;
            (reply.map_err(call("activate"))?, false)
        }
        KeyCommand::Retire(args) => {
            let request = RetireKeyRequest {
                kind: kind_value,
                id: args.id.unwrap_or_default(),
                force: args.force,
            };
            let reply = admin.retire_key(request).await;
            (reply.map_err(call("retire"))?, false)
        }
    };

    let set = set.into_inner();
    let text = if published {
        set.published.clone()
    } else {
        render(&set)
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn call_name(kind: KeyKind, step: &'static str) -> &'static str {
    match (kind, step) {
        (KeyKind::Jwt, "status") => "jwt-key status",
        (KeyKind::Jwt, "prepare") => "jwt-key prepare",
        (KeyKind::Jwt, "activate") => "jwt-key activate",
        (KeyKind::Jwt, _) => "jwt-key retire",
        (_, "status") => "ca status",
        (_, "prepare") => "ca prepare",
        (_, "activate") => "ca activate",
        _ => "ca retire",
    }
}

fn render(set: &KeySet) -> String {
    let mut table = Table::new([
        "ID",
        "STATE",
        "CREATED",
        "ACTIVATED",
        "NOT AFTER",
        "SIGNED UNTIL",
    ]);
    for key in &set.keys {
        table.row([
            key.id.clone(),
            state(key).to_owned(),
            when(key.created_unix),
            when(key.activated_unix),
            when(key.not_after_unix),
            signed_until(key),
        ]);
    }
    format!("{}revision {}\n", table.render(), set.revision)
}

fn state(key: &Key) -> &'static str {
    match KeyState::try_from(key.state) {
        Ok(KeyState::Prepared) => "prepared",
        Ok(KeyState::Active) => "active",
        Ok(KeyState::Inactive) => "inactive",
        Ok(KeyState::Retired) => "retired",
        _ => "unknown",
    }
}

fn signed_until(key: &Key) -> String {
    match KeyState::try_from(key.state) {
        Ok(KeyState::Active) => "(signing)".into(),
        _ => when(key.signed_until_unix),
    }
}

fn when(unix: i64) -> String {
    if unix <= 0 || unix >= i64::MAX / 1000 {
        return "-".into();
    }
    rfc3339_seconds(unix * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_each_key_with_its_state() {
        let set = KeySet {
            kind: KeyKind::Ca as i32,
            keys: vec![
                Key {
                    id: "aaaa".into(),
                    state: KeyState::Inactive as i32,
                    created_unix: 1_700_000_000,
                    signed_until_unix: 1_700_003_600,
                    ..Key::default()
                },
                Key {
                    id: "bbbb".into(),
                    state: KeyState::Active as i32,
                    ..Key::default()
                },
            ],
            revision: 9,
            published: String::new(),
        };

        let text = render(&set);

        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("aaaa") && lines[1].contains("inactive"),
            "{text}"
        );
        assert!(lines[1].contains("2023-11-14T23:13:20Z"), "{text}");
        assert!(
            lines[2].contains("active") && lines[2].contains("(signing)"),
            "{text}"
        );
        assert_eq!(lines[3], "revision 9");
    }
}
