//! Field checks for one document, with no reference to other resources.
//!
//! [`validate`] returns every problem it finds, each as a [`FieldError`] with
//! the exact path at fault and the offending value quoted in the message.
//! The helpers in the submodules each own one vocabulary: names, SPIFFE IDs,
//! HTTP, network addresses, and the checks of each kind's spec.

mod admin;
mod http;
mod jwt;
mod metadata;
mod names;
mod net;
mod policy;
mod service;
mod spiffe;
mod workload;

use std::fmt;

use thiserror::Error;

use crate::document::{API_VERSION, Document};
use crate::spec::Spec;

pub use names::{is_dns1123_label, is_dns1123_subdomain};
pub use spiffe::validate_spiffe_id;

/// The most items any list field may hold.
pub const MAX_LIST_ITEMS: usize = 1000;

/// One problem with one field of a document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct FieldError {
    /// Where the problem is, e.g. `spec.rules[0].from[1].ipBlocks[0]`; empty
    /// for the document as a whole.
    pub path: String,
    /// What is wrong, e.g. `"10.0.0.0/33" is not a CIDR`.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `path: message`, or just the message when the path is empty.
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Checks one document's fields and returns every problem found.
///
/// Cross-resource rules (that a referenced Service exists, say) are not
/// checked here; see [`Document::references`].
pub fn validate(doc: &Document) -> Result<(), Vec<FieldError>> {
    let mut problems = Problems::default();

    if doc.api_version != API_VERSION {
        let message = format!(
            "{:?} is not supported (expected {API_VERSION:?})",
            doc.api_version
        );
        problems.add("apiVersion", message);
    }
    if doc.kind != doc.spec.kind() {
        problems.add(
            "kind",
            format!("{} does not match a {} spec", doc.kind, doc.spec.kind()),
        );
    }
    metadata::check(doc.kind, &doc.metadata, &mut problems);
    check_spec(&doc.spec, &mut problems);

    problems.finish()
}

fn check_spec(spec: &Spec, p: &mut Problems) {
    match spec {
        Spec::Node(spec) => workload::check_node(spec, p),
        Spec::Service(spec) => service::check(spec, p),
        Spec::Workload(spec) => workload::check(spec, p),
        Spec::AuthorizationPolicy(spec) => policy::check(spec, p),
        Spec::JwtIssuer(spec) => jwt::check_issuer(spec, p),
        Spec::RequestAuthentication(spec) => jwt::check_request_authentication(spec, p),
        Spec::AdminRole(spec) => admin::check_role(spec, p),
        Spec::AdminBinding(spec) => admin::check_binding(spec, p),
    }
}

/// The problems found so far in one document.
#[derive(Default)]
pub(crate) struct Problems(Vec<FieldError>);

impl Problems {
    /// Records a problem at `path`.
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Records the outcome of one check at `path`.
    pub(crate) fn check(&mut self, path: &str, outcome: Result<(), String>) {
        if let Err(message) = outcome {
            self.add(path, message);
        }
    }

    /// Checks a list's length; returns whether its items should be checked.
    pub(crate) fn length<T>(&mut self, path: &str, items: &[T]) -> bool {
        if items.len() <= MAX_LIST_ITEMS {
            return true;
        }
        let message = format!(
            "has {} items; at most {MAX_LIST_ITEMS} are allowed",
            items.len()
        );
        self.add(path, message);
        false
    }

    /// Checks a list's length, then each item at `path[i]`.
    pub(crate) fn each<T>(
        &mut self,
        path: &str,
        items: &[T],
        check: impl Fn(&T) -> Result<(), String>,
    ) {
        if !self.length(path, items) {
            return;
        }
        for (i, item) in items.iter().enumerate() {
            if let Err(message) = check(item) {
                self.add(format!("{path}[{i}]"), message);
            }
        }
    }

    /// Records `must name at least one <what>` when a required list is empty.
    pub(crate) fn required<T>(&mut self, path: &str, items: &[T], what: &str) {
        if items.is_empty() {
            self.add(path, format!("must name at least one {what}"));
        }
    }

    fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests;
