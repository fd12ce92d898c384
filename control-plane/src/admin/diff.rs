//! Unified diffs of documents, for apply's dry runs and change reports.

use similar::TextDiff;

/// A unified diff from `old` to `new`, labelled with `name`. An empty `old`
/// means the resource is new.
pub fn unified_diff(name: &str, old: &str, new: &str) -> String {
    let old_label = if old.is_empty() {
        "/dev/null".to_owned()
    } else {
        format!("a/{name}")
    };
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_the_changed_line_only() {
        let diff = unified_diff("Service/shop/web", "a: 1\nb: 2\n", "a: 1\nb: 3\n");

        assert!(diff.contains("-b: 2\n+b: 3\n"), "{diff}");
        assert!(!diff.contains("-a: 1"), "{diff}");
    }

    #[test]
    fn new_resource_diffs_from_nothing() {
        let diff = unified_diff("Node//n1", "", "kind: Node\n");

        assert!(
            diff.starts_with("--- /dev/null\n+++ b/Node//n1\n"),
            "{diff}"
        );
    }
}
