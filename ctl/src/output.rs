//! Printing results: plain lines, tables, and documents as YAML or JSON.

use std::io::{self, Write};

use palisade_proto::admin::{Change, ChangeAction};

mod documents;
mod table;
mod time;

pub use documents::{list_document, parse_document, to_json, to_yaml};
pub use table::Table;
pub use time::{rfc3339_millis, rfc3339_seconds};

/// Writes `text` to stdout.
pub fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// `Service shop/web`, or `Node web-1` for a cluster-scoped resource.
pub fn resource_name(kind: &str, namespace: &str, name: &str) -> String {
    match namespace {
        "" => format!("{kind} {name}"),
        namespace => format!("{kind} {namespace}/{name}"),
    }
}

/// What happened to a resource, in one word.
pub fn action_word(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Created => "created",
        ChangeAction::Updated => "updated",
        ChangeAction::Unchanged => "unchanged",
        ChangeAction::Deleted => "deleted",
        ChangeAction::Unspecified => "changed",
    }
}

/// `Service shop/web created`.
pub fn change_line(change: &Change) -> String {
    let resource = resource_name(&change.kind, &change.namespace, &change.name);
    format!("{resource} {}", action_word(change.action()))
}

/// The text on one line, cut to at most `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let kept: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_show_the_namespace_when_there_is_one() {
        assert_eq!(resource_name("Service", "shop", "web"), "Service shop/web");
        assert_eq!(resource_name("Node", "", "n1"), "Node n1");
    }

    #[test]
    fn truncate_keeps_short_text_and_cuts_long_text() {
        assert_eq!(truncate("lacks\npermission", 20), "lacks permission");
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
        assert_eq!(truncate("abcde", 5), "abcde");
    }
}
