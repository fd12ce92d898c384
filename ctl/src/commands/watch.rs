//! `palisadectl watch`: prints changes as the control plane makes them, until
//! Ctrl-C or until the server ends the stream.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use palisade_model::Kind;
use palisade_proto::admin::{WatchEvent, WatchRequest};
use serde_json::{Value, json};

use crate::client::Server;
use crate::error::RpcError;
use crate::output;

/// Flags of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only changes to this kind.
    kind: Option<Kind>,

    /// Only changes in this namespace; every namespace when not given.
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// Replays the changes after this revision first; without it, only new
    /// changes are shown.
    #[arg(long, value_name = "REVISION", default_value_t = 0)]
    since: u64,

    /// How to print each change.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// How changes are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `REVISION ACTION KIND NAMESPACE/NAME`.
    #[default]
    Line,
    /// One JSON object per line, with the document.
    Json,
}

pub async fn run(server: &Server, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let mut admin = server.connect().await?;
    let request = WatchRequest {
        after_revision: args.since,
        kind: args.kind.map(|kind| kind.to_string()).unwrap_or_default(),
        namespace: args.namespace.unwrap_or_default(),
    };
    let mut events = admin
        .watch(request)
        .await
        .map_err(RpcError::of("watch"))?
        .into_inner();

    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let next = tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            next = events.message() => next.map_err(RpcError::of("watch"))?,
        };
        let Some(event) = next else {
            eprintln!("the control plane ended the watch");
            return Ok(ExitCode::SUCCESS);
        };
        output::print(&render(&event, args.output)?)?;
    }
}

fn render(event: &WatchEvent, format: Format) -> anyhow::Result<String> {
    let resource = event.resource.clone().unwrap_or_default();
    let action = output::action_word(event.action());

    let line = match format {
        Format::Line => {
            let target = match resource.namespace.as_str() {
                "" => resource.name.clone(),
                namespace => format!("{namespace}/{}", resource.name),
            };
            format!("{} {action} {} {target}", event.revision, resource.kind)
        }
        Format::Json => {
            let document = match resource.document.as_str() {
                "" => Value::Null,
                _ => output::parse_document(&resource)?,
            };
            let object = json!({
                "revision": event.revision,
                "action": action,
                "kind": resource.kind,
                "namespace": resource.namespace,
                "name": resource.name,
                "document": document,
            });
            object.to_string()
        }
    };
    Ok(format!("{line}\n"))
}

#[cfg(test)]
mod tests {
    use palisade_proto::admin::{ChangeAction, Resource};

    use super::*;

    fn event(namespace: &str) -> WatchEvent {
        WatchEvent {
            revision: 42,
            action: ChangeAction::Updated.into(),
            resource: Some(Resource {
                kind: "Service".into(),
                namespace: namespace.into(),
                name: "web".into(),
                revision: 42,
                document: r#"{"kind":"Service"}"#.into(),
            }),
        }
    }

    #[test]
    fn line_shows_revision_action_kind_and_name() {
        assert_eq!(
            render(&event("shop"), Format::Line).unwrap(),
            "42 updated Service shop/web\n"
        );
        assert_eq!(
            render(&event(""), Format::Line).unwrap(),
            "42 updated Service web\n"
        );
    }

    #[test]
    fn json_carries_the_document() {
        let text = render(&event("shop"), Format::Json).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();

        assert_eq!(value["action"], "updated");
        assert_eq!(value["document"]["kind"], "Service");
    }
}
