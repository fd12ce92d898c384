//! `palisadectl delete`: removes one resource by name, or every resource a
//! file describes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use palisade_model::Kind;
use palisade_proto::admin::{DeleteRequest, DeleteResponse};

use crate::client::{AdminClient, Server};
use crate::error::RpcError;
use crate::input::{self, DocumentKey};
use crate::output;

/// The namespace of namespaced kinds when none is given.
const DEFAULT_NAMESPACE: &str = "default";

/// Flags of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The kind, e.g. Service or svc.
    #[arg(required_unless_present = "files", conflicts_with = "files")]
    kind: Option<Kind>,

    /// The resource's name.
    #[arg(required_unless_present = "files")]
    name: Option<String>,

    /// Deletes every resource described in this file, directory, or - for
    /// stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    files: Vec<PathBuf>,

    /// Reads directories given with -f recursively.
    #[arg(short = 'R', long, requires = "files")]
    recursive: bool,

    /// The namespace, for namespaced kinds and for documents that name none;
    /// `default` when not given.
    #[arg(short, long, value_name = "NS")]
    namespace: Option<String>,

    /// Deletes only if the resource is still at this revision.
    #[arg(long, value_name = "N", conflicts_with = "files")]
    revision: Option<u64>,

    /// Checks the deletion without doing it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(server: &Server, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let requests = requests(&args)?;
    let mut admin = server.connect().await?;

    let mut failed = 0;
    let mut revision = None;
    for request in &requests {
        match delete(&mut admin, request.clone()).await {
            Ok(response) => {
                output::print(&format!("{}\n", deleted_line(request, &response)))?;
                revision = Some(response.revision);
            }
            Err(error) if requests.len() > 1 => {
                failed += 1;
                eprintln!(
                    "{} not deleted: {error}: {}",
                    key_name(request),
                    reason(&error)
                );
            }
            Err(error) => return Err(error.into()),
        }
    }

    finish(revision, failed, requests.len(), args.dry_run)
}

/// The deletions the arguments ask for, in order.
fn requests(args: &DeleteArgs) -> anyhow::Result<Vec<DeleteRequest>> {
    if let (Some(kind), Some(name)) = (args.kind, &args.name) {
        let key = DocumentKey {
            kind,
            namespace: String::new(),
            name: name.clone(),
        };
        return Ok(vec![request(&key, args)]);
    }

    let mut requests = Vec::new();
    for file in input::read_inputs(&args.files, args.recursive)? {
        requests.extend(
            input::document_keys(&file)?
                .iter()
                .map(|key| request(key, args)),
        );
    }
    if requests.is_empty() {
        bail!("the files describe no resources to delete");
    }
    Ok(requests)
}

/// The request for one resource, with the namespace filled in.
fn request(key: &DocumentKey, args: &DeleteArgs) -> DeleteRequest {
    let namespace = match (key.kind.is_namespaced(), key.namespace.as_str()) {
        (false, _) => String::new(),
        (true, "") => args
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        (true, namespace) => namespace.to_owned(),
    };
    DeleteRequest {
        kind: key.kind.to_string(),
        namespace,
        name: key.name.clone(),
        expected_revision: args.revision.unwrap_or(0),
        dry_run: args.dry_run,
    }
}

async fn delete(
    admin: &mut AdminClient,
    request: DeleteRequest,
) -> Result<DeleteResponse, RpcError> {
    let response = admin
        .delete(request)
        .await
        .map_err(RpcError::of("delete"))?;
    Ok(response.into_inner())
}

/// `Service shop/web deleted`, with `(dry run)` when it was one.
fn deleted_line(request: &DeleteRequest, response: &DeleteResponse) -> String {
    let line = match &response.change {
        Some(change) => output::change_line(change),
        None => format!("{} deleted", key_name(request)),
    };
    if request.dry_run {
        format!("{line} (dry run)")
    } else {
        line
    }
}

fn key_name(request: &DeleteRequest) -> String {
    output::resource_name(&request.kind, &request.namespace, &request.name)
}

/// The server's reason, from beneath the error line.
fn reason(error: &RpcError) -> String {
    let source = std::error::Error::source(error).map(ToString::to_string);
    source
        .unwrap_or_default()
        .lines()
        .collect::<Vec<_>>()
        .join("; ")
}

fn finish(
    revision: Option<u64>,
    failed: usize,
    total: usize,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(revision) = revision {
        let suffix = if dry_run { " (dry run)" } else { "" };
        output::print(&format!("revision {revision}{suffix}\n"))?;
    }
    if failed > 0 {
        bail!("{failed} of {total} resources were not deleted");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DeleteArgs,
    }

    fn parse(line: &[&str]) -> DeleteArgs {
        Wrapper::parse_from(std::iter::once("delete").chain(line.iter().copied())).args
    }

    #[test]
    fn named_resource_gets_the_default_namespace() {
        let requests = requests(&parse(&["svc", "web", "--revision", "4"])).unwrap();

        assert_eq!(requests.len(), 1);
        assert_eq!(
            (
                requests[0].kind.as_str(),
                requests[0].namespace.as_str(),
                requests[0].name.as_str()
            ),
            ("Service", "default", "web")
        );
        assert_eq!(requests[0].expected_revision, 4);
    }

    #[test]
    fn cluster_scoped_resource_has_no_namespace() {
        let requests = requests(&parse(&["node", "n1", "-n", "shop"])).unwrap();

        assert_eq!(requests[0].namespace, "");
    }

    #[test]
    fn file_documents_keep_their_namespace_or_take_the_flag() {
        let args = parse(&["-f", "x.yaml", "-n", "shop", "--dry-run"]);
        let in_file = DocumentKey {
            kind: Kind::Service,
            namespace: "web".into(),
            name: "a".into(),
        };
        let unspecified = DocumentKey {
            namespace: String::new(),
            ..in_file.clone()
        };

        assert_eq!(request(&in_file, &args).namespace, "web");
        assert_eq!(request(&unspecified, &args).namespace, "shop");
        assert!(request(&unspecified, &args).dry_run);
    }

    #[test]
    fn kind_and_files_cannot_be_mixed() {
        let result = Wrapper::try_parse_from(["delete", "svc", "web", "-f", "x.yaml"]);

        assert!(result.is_err());
    }
}
