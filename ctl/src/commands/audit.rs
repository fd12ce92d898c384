//! `palisadectl audit`: reads the audit log and checks its hash chain.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use palisade_proto::admin::{AuditEntry, ListAuditRequest, VerifyAuditRequest};
use serde_json::{Value, json};

use crate::client::{AdminClient, Server};
use crate::error::RpcError;
use crate::output::{self, Table};

/// Entries asked for per call when reading the whole log.
const PAGE_SIZE: u32 = 1000;

/// The DETAIL column's width, in characters.
const DETAIL_WIDTH: usize = 60;

/// The TARGETS column's width, in characters.
const TARGETS_WIDTH: usize = 50;

/// Flags of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Prints audit entries, oldest first.
    List(ListArgs),
    /// Checks the hash chain from the first entry to the newest; exits 1 if
    /// it is broken.
    Verify,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only entries after this sequence number.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after: u64,

    /// At most this many entries; every entry when not given.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,

    /// Only entries by this SPIFFE ID.
    #[arg(long, value_name = "ID")]
    actor: Option<String>,

    /// How to print the entries.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// How entries are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// A JSON array with every field.
    Json,
}

pub async fn run(server: &Server, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let mut admin = server.connect().await?;
    match args.command {
        AuditCommand::List(args) => list(&mut admin, args).await,
        AuditCommand::Verify => verify(&mut admin).await,
    }
}

async fn list(admin: &mut AdminClient, args: ListArgs) -> anyhow::Result<ExitCode> {
    let entries = read_entries(admin, &args).await?;
    let text = match args.output {
        Format::Table => table(&entries).render(),
        Format::Json => output::to_json(&Value::Array(entries.iter().map(to_json).collect())),
    };
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads page after page until the limit or the end of the log.
async fn read_entries(
    admin: &mut AdminClient,
    args: &ListArgs,
) -> Result<Vec<AuditEntry>, RpcError> {
    let wanted = args.limit.map_or(usize::MAX, |limit| limit as usize);
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut after = args.after;

    while entries.len() < wanted {
        let page_size = PAGE_SIZE.min(u32::try_from(wanted - entries.len()).unwrap_or(u32::MAX));
        let request = ListAuditRequest {
            after_sequence: after,
            limit: page_size,
            actor: args.actor.clone().unwrap_or_default(),
        };
        let page = admin
            .list_audit(request)
            .await
            .map_err(RpcError::of("audit list"))?;
        let page = page.into_inner().entries;

        let full = page.len() == page_size as usize;
        after = page.last().map_or(after, |entry| entry.sequence);
        entries.extend(page);
        if !full {
            break;
        }
    }
    Ok(entries)
}

fn table(entries: &[AuditEntry]) -> Table {
    let headers = [
        "SEQ", "TIME", "ACTOR", "ACTION", "OUTCOME", "REVISION", "TARGETS", "DETAIL",
    ];
    let mut table = Table::new(headers);
    for entry in entries {
        table.row([
            entry.sequence.to_string(),
            output::rfc3339_seconds(entry.time_unix_ms),
            entry.actor.clone(),
            entry.action.clone(),
            entry.outcome.clone(),
            entry.revision.to_string(),
            targets(&entry.targets),
            output::truncate(&entry.detail, DETAIL_WIDTH),
        ]);
    }
    table
}

/// The first target, and how many more there are.
fn targets(targets: &[String]) -> String {
    let text = match targets {
        [] => "-".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    };
    output::truncate(&text, TARGETS_WIDTH)
}

fn to_json(entry: &AuditEntry) -> Value {
    json!({
        "sequence": entry.sequence,
        "time": output::rfc3339_millis(entry.time_unix_ms),
        "timeUnixMs": entry.time_unix_ms,
        "actor": entry.actor,
        "action": entry.action,
        "targets": entry.targets,
        "revision": entry.revision,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "previousHash": entry.previous_hash,
        "hash": entry.hash,
    })
}

async fn verify(admin: &mut AdminClient) -> anyhow::Result<ExitCode> {
    let response = admin.verify_audit(VerifyAuditRequest {}).await;
    let response = response.map_err(RpcError::of("audit verify"))?.into_inner();

    if response.intact {
        output::print(&format!(
            "audit log intact: {} entries checked\n",
            response.entries_checked
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    output::print(&format!(
        "audit log broken at entry {}: {}\n",
        response.first_bad_sequence, response.problem
    ))?;
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_formats_time_and_truncates_detail() {
        let entry = AuditEntry {
            sequence: 3,
            time_unix_ms: 1_700_000_000_000,
            actor: "spiffe://corp/admin/ada".into(),
            action: "apply".into(),
            targets: vec!["Service/shop/web".into(), "Node//n1".into()],
            revision: 9,
            outcome: "denied".into(),
            detail: "x".repeat(100),
            ..AuditEntry::default()
        };

        let text = table(&[entry]).render();
        let row = text.lines().nth(1).unwrap();

        assert!(row.starts_with("3     2023-11-14T22:13:20Z   spiffe://corp/admin/ada   apply"));
        assert!(row.contains("Service/shop/web (+1 more)"));
        assert!(row.ends_with(&format!("{}…", "x".repeat(DETAIL_WIDTH - 1))));
    }
}
