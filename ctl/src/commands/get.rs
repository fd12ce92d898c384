//! `palisadectl get` and `list`: one resource by name, or every resource of
//! a kind, as a table, YAML, JSON or names.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use palisade_model::Kind;
use palisade_proto::admin::{GetRequest, ListRequest, Resource};
use serde_json::Value;

use crate::client::{AdminClient, Server};
use crate::error::RpcError;
use crate::output::{self, Table};

mod columns;

/// The namespace of namespaced kinds when none is given.
const DEFAULT_NAMESPACE: &str = "default";

/// Flags of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The kind, e.g. Service, svc, authz or adminroles.
    kind: Kind,

    /// The resource's name; without it, every resource of the kind is listed.
    name: Option<String>,

    #[command(flatten)]
    view: ListView,
}

/// Flags of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The kind, e.g. Service, svc, authz or adminroles.
    kind: Kind,

    #[command(flatten)]
    view: ListView,
}

/// Which resources to show and how.
#[derive(Debug, Clone, Default, Args)]
pub struct ListView {
    /// The namespace (for namespaced kinds); `default` when not given.
    #[arg(short, long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Lists resources in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,

    /// Only resources whose labels match, e.g. app=web,tier!=db.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// How to print the resources.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Format,
}

/// How resources are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// The documents as YAML.
    Yaml,
    /// The documents as JSON.
    Json,
    /// `kind/name`, one per line.
    Name,
}

pub async fn run(server: &Server, args: GetArgs) -> anyhow::Result<ExitCode> {
    let Some(name) = args.name else {
        return show_list(server, args.kind, &args.view).await;
    };
    let mut admin = server.connect().await?;

    let request = GetRequest {
        kind: args.kind.to_string(),
        namespace: namespace(args.kind, &args.view),
        name,
    };
    let resource = admin
        .get(request)
        .await
        .map_err(RpcError::of("get"))?
        .into_inner();

    output::print(&render(args.kind, &[resource], args.view.output, false)?)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_list(server: &Server, args: ListArgs) -> anyhow::Result<ExitCode> {
    show_list(server, args.kind, &args.view).await
}

/// Lists every resource of `kind` that `view` selects, and prints them.
pub async fn show_list(server: &Server, kind: Kind, view: &ListView) -> anyhow::Result<ExitCode> {
    let mut admin = server.connect().await?;
    let request = ListRequest {
        kind: kind.to_string(),
        namespace: namespace(kind, view),
        label_selector: view.selector.clone().unwrap_or_default(),
        ..ListRequest::default()
    };
    let resources = list_all(&mut admin, request).await?;

    if resources.is_empty() && view.output == Format::Table {
        eprintln!("No {kind} resources found{}.", scope(kind, view));
        return Ok(ExitCode::SUCCESS);
    }
    output::print(&render(kind, &resources, view.output, true)?)?;
    Ok(ExitCode::SUCCESS)
}

/// Follows the page tokens to the end of the list.
async fn list_all(
    admin: &mut AdminClient,
    mut request: ListRequest,
) -> Result<Vec<Resource>, RpcError> {
    let mut resources = Vec::new();
    loop {
        let page = admin
            .list(request.clone())
            .await
            .map_err(RpcError::of("list"))?;
        let page = page.into_inner();
        resources.extend(page.resources);

        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            return Ok(resources);
        }
        request.page_token = page.next_page_token;
    }
}

/// The namespace to ask for: empty for cluster-scoped kinds and for `-A`.
fn namespace(kind: Kind, view: &ListView) -> String {
    if !kind.is_namespaced() || view.all_namespaces {
        return String::new();
    }
    view.namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// ` in namespace shop`, or nothing when the list spans namespaces.
fn scope(kind: Kind, view: &ListView) -> String {
    match namespace(kind, view) {
        namespace if namespace.is_empty() => String::new(),
        namespace => format!(" in namespace {namespace}"),
    }
}

/// The resources in `format`; a list prints as a `kind: List` document.
fn render(
    kind: Kind,
    resources: &[Resource],
    format: Format,
    is_list: bool,
) -> anyhow::Result<String> {
    let text = match format {
        Format::Table => table(kind, resources)?.render(),
        Format::Name => names(resources),
        Format::Yaml => output::to_yaml(&documents(resources, is_list)?),
        Format::Json => output::to_json(&documents(resources, is_list)?),
    };
    Ok(text)
}

fn table(kind: Kind, resources: &[Resource]) -> anyhow::Result<Table> {
    let extra = columns::for_kind(kind);
    let mut headers = Vec::new();
    if kind.is_namespaced() {
        headers.push("NAMESPACE");
    }
    headers.extend(["NAME", "REVISION"]);
    headers.extend(extra.iter().map(|column| column.header));

    let mut table = Table::new(headers);
    for resource in resources {
        let document = output::parse_document(resource)?;
        let mut cells = Vec::new();
        if kind.is_namespaced() {
            cells.push(resource.namespace.clone());
        }
        cells.extend([resource.name.clone(), resource.revision.to_string()]);
        cells.extend(extra.iter().map(|column| (column.value)(&document)));
        table.row(cells);
    }
    Ok(table)
}

fn names(resources: &[Resource]) -> String {
    let lines = resources
        .iter()
        .map(|r| format!("{}/{}\n", r.kind.to_lowercase(), r.name));
    lines.collect()
}

fn documents(resources: &[Resource], is_list: bool) -> anyhow::Result<Value> {
    let documents: Result<Vec<Value>, _> = resources.iter().map(output::parse_document).collect();
    let mut documents = documents?;

    if !is_list && documents.len() == 1 {
        return Ok(documents.remove(0));
    }
    Ok(output::list_document(documents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, name: &str, revision: u64) -> Resource {
        let metadata = format!(r#"{{"name":"{name}","namespace":"{namespace}"}}"#);
        let spec = r#"{"ports":[{"port":8080,"protocol":"http"}]}"#;
        let document = format!(r#"{{"kind":"Service","metadata":{metadata},"spec":{spec}}}"#);
        Resource {
            kind: "Service".into(),
            namespace: namespace.into(),
            name: name.into(),
            revision,
            document,
        }
    }

    #[test]
    fn namespace_defaults_for_namespaced_kinds_only() {
        let view = ListView::default();
        let all = ListView {
            all_namespaces: true,
            ..ListView::default()
        };
        let shop = ListView {
            namespace: Some("shop".into()),
            ..ListView::default()
        };

        assert_eq!(namespace(Kind::Service, &view), "default");
        assert_eq!(namespace(Kind::Service, &all), "");
        assert_eq!(namespace(Kind::Service, &shop), "shop");
        assert_eq!(namespace(Kind::Node, &shop), "");
    }

    #[test]
    fn table_shows_namespace_name_revision_and_kind_columns() {
        let resources = [service("shop", "web", 7), service("default", "api", 12)];

        let text = render(Kind::Service, &resources, Format::Table, true).unwrap();

        assert_eq!(
            text,
            "NAMESPACE   NAME   REVISION   PORTS\n\
             shop        web    7          8080/http\n\
             default     api    12         8080/http\n"
        );
    }

    #[test]
    fn list_prints_as_a_list_document() {
        let resources = [service("shop", "web", 7)];

        let text = render(Kind::Service, &resources, Format::Json, true).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();

        assert_eq!(value["kind"], "List");
        assert_eq!(value["items"][0]["metadata"]["name"], "web");
    }

    #[test]
    fn one_resource_prints_as_its_document() {
        let text = render(
            Kind::Service,
            &[service("shop", "web", 7)],
            Format::Yaml,
            false,
        );

        assert!(
            text.unwrap()
                .starts_with("kind: Service\nmetadata:\n  name: web\n")
        );
    }

    #[test]
    fn names_are_lowercase_kind_slash_name() {
        let text = render(
            Kind::Service,
            &[service("shop", "web", 7)],
            Format::Name,
            true,
        );

        assert_eq!(text.unwrap(), "service/web\n");
    }
}
