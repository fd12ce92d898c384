//! `palisadectl status [NODE]`: the xDS streams connected to the control
//! plane, what each acknowledged, how far behind it is, and its last NACK;
//! with a node, the resources each of its streams holds.

use std::process::ExitCode;

use clap::Args;
use palisade_proto::admin::{FleetStatusRequest, FleetStatusResponse, XdsStream, XdsTypeStatus};

use crate::client::Server;
use crate::error::RpcError;
use crate::output::{self, Table, rfc3339_seconds, truncate};

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Shows only this node's streams, with the resources they hold.
    node: Option<String>,
}

pub async fn run(server: &Server, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let request = FleetStatusRequest {
        node: args.node.clone().unwrap_or_default(),
        resources: args.node.is_some(),
    };
    let mut admin = server.connect().await?;
    let status = admin
        .fleet_status(request)
        .await
        .map_err(RpcError::of("status"))?
        .into_inner();

    let text = match args.node {
        None => render_fleet(&status),
        Some(node) => render_node(&node, &status),
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn render_fleet(status: &FleetStatusResponse) -> String {
    let mut table = Table::new([
        "NODE",
        "CLIENT",
        "PROTOCOL",
        "TYPES",
        "ACKED",
        "BEHIND",
        "LAST NACK",
        "CONNECTED",
    ]);
    for stream in &status.streams {
        table.row([
            stream.node.clone(),
            client(stream),
            stream.protocol.clone(),
            stream
                .types
                .iter()
                .map(|t| short_type(&t.type_url))
                .collect::<Vec<_>>()
                .join(","),
            acked(stream),
            behind(stream, status.revision),
            last_nack(stream),
            rfc3339_seconds(stream.connected_unix_ms),
        ]);
    }
    format!(
        "{}{} streams, revision {}\n",
        table.render(),
        status.streams.len(),
        status.revision
    )
}

fn render_node(node: &str, status: &FleetStatusResponse) -> String {
    if status.streams.is_empty() {
        return format!("node {node} has no xDS stream connected\n");
    }
    let mut text = String::new();
    for stream in &status.streams {
        text.push_str(&format!(
            "{} ({}, stream {}, since {})\n",
            client(stream),
            stream.protocol,
            stream.id,
            rfc3339_seconds(stream.connected_unix_ms)
        ));
        let mut table = Table::new(["TYPE", "NAME", "VERSION"]);
        for kind in &stream.types {
            for held in &kind.held {
                table.row([
                    short_type(&kind.type_url),
                    held.name.clone(),
                    held.version.clone(),
                ]);
            }
        }
        text.push_str(&table.render());
    }
    text
}

fn client(stream: &XdsStream) -> String {
    match stream.workload.as_str() {
        "" => stream.client.clone(),
        workload => format!("{} {workload}", stream.client),
    }
}

/// The acknowledged revision per type, e.g. `Workload@12`.
fn acked(stream: &XdsStream) -> String {
    let acked: Vec<String> = stream
        .types
        .iter()
        .map(|t| match t.acked_revision {
            0 => format!("{}@-", short_type(&t.type_url)),
            revision => format!("{}@{revision}", short_type(&t.type_url)),
        })
        .collect();
    acked.join(" ")
}

/// How many revisions the oldest acknowledgement trails the client's view.
/// The control plane counts a type that a newer view left unchanged as
/// acknowledged at that view, so a client that applied all it was sent is
/// 0 behind; a pending or rejected response keeps its type behind.
fn behind(stream: &XdsStream, _current: u64) -> String {
    let oldest = stream.types.iter().map(|t| t.acked_revision).min();
    match oldest {
        None => "-".into(),
        Some(0) => "not acked".into(),
        Some(acked) => stream.view_revision.saturating_sub(acked).to_string(),
    }
}

fn last_nack(stream: &XdsStream) -> String {
    let newest: Option<&XdsTypeStatus> = stream
        .types
        .iter()
        .filter(|t| t.last_nack_unix_ms > 0)
        .max_by_key(|t| t.last_nack_unix_ms);
    match newest {
        None => "-".into(),
        Some(t) => truncate(
            &format!(
                "{}@{}: {}",
                short_type(&t.type_url),
                t.last_nack_revision,
                t.last_nack_error
            ),
            60,
        ),
    }
}

/// The last part of a type URL: `Listener`, `Workload`.
fn short_type(type_url: &str) -> String {
    type_url.rsplit('.').next().unwrap_or(type_url).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> XdsStream {
        XdsStream {
            id: 1,
            node: "web-1".into(),
            client: "agent".into(),
            protocol: "delta".into(),
            view_revision: 12,
            types: vec![
                XdsTypeStatus {
                    type_url: "type.googleapis.com/palisade.xds.v1.Workload".into(),
                    acked_revision: 12,
                    ..Default::default()
                },
                XdsTypeStatus {
                    type_url: "type.googleapis.com/palisade.xds.v1.Authorization".into(),
                    acked_revision: 9,
                    last_nack_revision: "12".into(),
                    last_nack_error: "bad rule".into(),
                    last_nack_unix_ms: 1_700_000_000_000,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn fleet_line_shows_acks_lag_and_the_last_nack() {
        let status = FleetStatusResponse {
            revision: 12,
            streams: vec![stream()],
        };

        let text = render_fleet(&status);

        let line = text.lines().nth(1).unwrap();
        assert!(line.starts_with("web-1"), "{text}");
        assert!(line.contains("Workload@12 Authorization@9"), "{text}");
        assert!(line.contains(" 3 "), "three revisions behind: {text}");
        assert!(line.contains("Authorization@12: bad rule"), "{text}");
    }
}
