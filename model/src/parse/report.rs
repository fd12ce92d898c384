//! Errors reported against the document they belong to.

use std::fmt;

use thiserror::Error;

use super::decode::Origin;
use super::{MAX_ERRORS, ParseError};
use crate::validate::FieldError;

/// One problem in one document of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    /// The 1-based index of the document; 0 when the problem is the whole
    /// input (for example, the text is too large).
    pub index: usize,
    /// The resource, e.g. `AuthorizationPolicy shop/orders`, when known.
    pub resource: Option<String>,
    /// What is wrong, usually `path: message`.
    pub error: String,
}

/// `doc 3 (AuthorizationPolicy shop/orders): spec.rules[0]...: ...`, or
/// `doc 2: line 14 column 3: ...` when the resource is unknown.
impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == 0 {
            return f.write_str(&self.error);
        }

        write!(f, "doc {}", self.index)?;
        if let Some(resource) = &self.resource {
            write!(f, " ({resource})")?;
        }
        write!(f, ": {}", self.error)
    }
}

impl std::error::Error for DocumentError {}

/// Every problem found in an input, at most [`MAX_ERRORS`], one per line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct DocumentErrors(pub Vec<DocumentError>);

impl fmt::Display for DocumentErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

/// Collects the errors of one input, dropping those past [`MAX_ERRORS`].
#[derive(Default)]
pub(crate) struct Report {
    errors: Vec<DocumentError>,
}

impl Report {
    /// Refuses the input as a whole: `err` replaces anything reported so far.
    pub(crate) fn refuse(&mut self, err: &ParseError) {
        self.errors = vec![DocumentError {
            index: 0,
            resource: None,
            error: err.to_string(),
        }];
    }

    /// A document that could not be read.
    pub(crate) fn parse_error(&mut self, origin: Origin, err: &ParseError) {
        match err {
            ParseError::Invalid { resource, errors } => {
                self.fields(origin, resource.clone(), errors)
            }
            other => {
                let error = other.to_string();
                self.push(DocumentError {
                    index: origin.index,
                    resource: None,
                    error,
                });
            }
        }
    }

    /// Field problems of one document.
    pub(crate) fn fields(
        &mut self,
        origin: Origin,
        resource: Option<String>,
        errors: &[FieldError],
    ) {
        for err in errors {
            let error = origin.qualify(err).to_string();
            self.push(DocumentError {
                index: origin.index,
                resource: resource.clone(),
                error,
            });
        }
    }

    fn push(&mut self, err: DocumentError) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(err);
        }
    }

    /// `value` when nothing was reported, otherwise the errors.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, DocumentErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(DocumentErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_tags_index_and_resource_when_known() {
        let tagged = DocumentError {
            index: 3,
            resource: Some("Service shop/orders".into()),
            error: "spec.ports: must name at least one port".into(),
        };
        assert_eq!(
            tagged.to_string(),
            "doc 3 (Service shop/orders): spec.ports: must name at least one port"
        );

        let untagged = DocumentError {
            index: 2,
            resource: None,
            error: "line 1 column 2: x".into(),
        };
        assert_eq!(untagged.to_string(), "doc 2: line 1 column 2: x");
    }

    #[test]
    fn report_keeps_at_most_the_error_limit() {
        let mut report = Report::default();
        let errors = vec![FieldError::new("spec", "bad"); MAX_ERRORS + 5];
        report.fields(
            Origin {
                index: 1,
                item: None,
            },
            None,
            &errors,
        );
        let DocumentErrors(kept) = report.finish(()).unwrap_err();
        assert_eq!(kept.len(), MAX_ERRORS);
    }
}
