//! Reading documents from YAML or JSON text.
//!
//! Text becomes a stream of generic values ([`stream`]), each value becomes a
//! [`Document`] ([`decode`]), and every problem is reported against the
//! document it came from ([`report`]).

mod decode;
mod report;
mod stream;
mod tree;

use thiserror::Error;

use crate::document::Document;
use crate::validate::{FieldError, validate};

pub(crate) use decode::decode_one;
pub use report::{DocumentError, DocumentErrors};
pub(crate) use tree::Tree;

use decode::Origin;
use report::Report;

/// The largest input text accepted, in bytes (16 MiB).
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// The most documents one input may hold.
pub const MAX_DOCUMENTS: usize = 100_000;

/// The most errors reported for one input; later ones are dropped.
pub const MAX_ERRORS: usize = 100;

/// Why a document, or the text holding it, could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The text is not well-formed YAML or JSON; the message names the line
    /// and column when known.
    #[error("{0}")]
    Syntax(String),

    /// The text is longer than [`MAX_TEXT_BYTES`].
    #[error("input is {0} bytes; the limit is 16 MiB")]
    TooLarge(usize),

    /// The text holds more than [`MAX_DOCUMENTS`] documents.
    #[error("input holds more than {MAX_DOCUMENTS} documents")]
    TooManyDocuments,

    /// The document is well-formed but its fields are not those of a
    /// Palisade resource.
    #[error("{}", invalid_message(.resource, .errors))]
    Invalid {
        /// The resource, e.g. `Service shop/orders`, when its kind and name are known.
        resource: Option<String>,
        /// What is wrong, field by field.
        errors: Vec<FieldError>,
    },
}

fn invalid_message(resource: &Option<String>, errors: &[FieldError]) -> String {
    let errors: Vec<String> = errors.iter().map(FieldError::to_string).collect();
    match resource {
        Some(resource) => format!("{resource}: {}", errors.join("; ")),
        None => errors.join("; "),
    }
}

/// Parses one or more documents.
///
/// The text is either a YAML stream of documents separated by `---` (empty
/// documents are skipped) or JSON, recognised by a first non-blank `{` or `[`:
/// one object, several objects, or an array of objects. A document of
/// `kind: List` stands for the documents in its `items`.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, DocumentErrors> {
    let mut report = Report::default();
    let docs = read(text, &mut report);
    report.finish(docs.into_iter().map(|(_, doc)| doc).collect())
}

/// Parses documents as [`parse_documents`] does, then validates each one.
/// Every error names the document (1-based) and, when known, the resource.
pub fn parse_and_validate(text: &str) -> Result<Vec<Document>, DocumentErrors> {
    let mut report = Report::default();
    let docs = read(text, &mut report);

    for (origin, doc) in &docs {
        if let Err(errors) = validate(doc) {
            report.fields(*origin, Some(doc.key().to_string()), &errors);
        }
    }

    report.finish(docs.into_iter().map(|(_, doc)| doc).collect())
}

fn read(text: &str, report: &mut Report) -> Vec<(Origin, Document)> {
    if text.len() > MAX_TEXT_BYTES {
        report.refuse(&ParseError::TooLarge(text.len()));
        return Vec::new();
    }

    let outcome = stream::read(text).and_then(|entries| decode_all(entries, report));
    outcome.unwrap_or_else(|err| {
        report.refuse(&err);
        Vec::new()
    })
}

/// Decodes every entry; the items of a List count as documents too.
fn decode_all(
    entries: Vec<stream::Entry>,
    report: &mut Report,
) -> Result<Vec<(Origin, Document)>, ParseError> {
    let mut docs = Vec::new();
    let mut count = 0;
    for (index, entry) in entries {
        let value = match entry {
            Ok(value) => value,
            Err(err) => {
                count += 1;
                report.parse_error(Origin { index, item: None }, &err);
                continue;
            }
        };

        for (origin, decoded) in decode::decode_entry(index, value) {
            count += 1;
            match decoded {
                Ok(doc) => docs.push((origin, doc)),
                Err(err) => report.parse_error(origin, &err),
            }
        }
    }

    if count > MAX_DOCUMENTS {
        return Err(ParseError::TooManyDocuments);
    }
    Ok(docs)
}

/// Reads exactly one document from JSON text.
pub(crate) fn one_json_document(text: &str) -> Result<Document, ParseError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ParseError::TooLarge(text.len()));
    }

    let value = serde_json::from_str::<Tree>(text).map_err(|err| stream::json_syntax(&err))?;
    decode_one(value.0)
}

#[cfg(test)]
mod tests;
