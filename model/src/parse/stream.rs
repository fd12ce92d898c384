//! Splitting input text into top-level values, one per document.

use serde::Deserialize;
use serde_json::Value;

use super::tree::Tree;
use super::{MAX_DOCUMENTS, ParseError};

/// One document of the input: its 1-based index and its value, or why it
/// could not be read.
pub(crate) type Entry = (usize, Result<Value, ParseError>);

/// Reads every document in `text`, in order.
///
/// Empty documents are skipped and take no index; an array stands for its
/// elements, each with its own index. Reading stops at a syntax error that
/// leaves the rest of the text unreadable. More than [`MAX_DOCUMENTS`]
/// documents refuse the whole input.
pub(crate) fn read(text: &str) -> Result<Vec<Entry>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Entries::default();

    if text.trim_start().starts_with(['{', '[']) {
        read_json(text, &mut entries);
    } else {
        read_yaml(text, &mut entries);
    }

    if entries.list.len() > MAX_DOCUMENTS {
        return Err(ParseError::TooManyDocuments);
    }
    Ok(entries.list)
}

fn read_json(text: &str, entries: &mut Entries) {
    for next in serde_json::Deserializer::from_str(text).into_iter::<Tree>() {
        let more = match next {
            Ok(Tree(value)) => entries.push(value),
            Err(err) => entries.fail(json_syntax(&err)),
        };
        if !more {
            return;
        }
    }
}

fn read_yaml(text: &str, entries: &mut Entries) {
    let mut last_error = None;
    for document in serde_yaml::Deserializer::from_str(text) {
        let more = match Tree::deserialize(document) {
            Ok(Tree(value)) => entries.push(value),

            // After a syntax error the YAML reader repeats it for every
            // further document: the rest of the text cannot be read.
            Err(err) if last_error.as_ref() == Some(&err.to_string()) => return,
            Err(err) => {
                last_error = Some(err.to_string());
                entries.fail(yaml_syntax(&err))
            }
        };
        if !more {
            return;
        }
    }
}

/// Entries read so far; each method returns whether to keep reading.
#[derive(Default)]
struct Entries {
    list: Vec<Entry>,
}

impl Entries {
    fn push(&mut self, value: Value) -> bool {
        match value {
            Value::Null => true,
            Value::Array(items) => items.into_iter().all(|item| self.add(Ok(item))),
            value => self.add(Ok(value)),
        }
    }

    fn fail(&mut self, err: ParseError) -> bool {
        self.add(Err(err))
    }

    fn add(&mut self, entry: Result<Value, ParseError>) -> bool {
        self.list.push((self.list.len() + 1, entry));
        self.list.len() <= MAX_DOCUMENTS
    }
}

/// A JSON error as `line L column C: message`.
pub(crate) fn json_syntax(err: &serde_json::Error) -> ParseError {
    let at = (err.line() > 0).then(|| (err.line(), err.column()));
    located(err.to_string(), at)
}

/// A YAML error as `line L column C: message`.
fn yaml_syntax(err: &serde_yaml::Error) -> ParseError {
    let at = err
        .location()
        .map(|location| (location.line(), location.column()));
    located(err.to_string(), at)
}

fn located(message: String, at: Option<(usize, usize)>) -> ParseError {
    let Some((line, column)) = at else {
        return ParseError::Syntax(message);
    };

    let mark = format!(" at line {line} column {column}");
    let message = message.replacen(&mark, "", 1);
    ParseError::Syntax(format!("line {line} column {column}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(usize, Value)> {
        read(text)
            .unwrap()
            .into_iter()
            .map(|(i, entry)| (i, entry.unwrap()))
            .collect()
    }

    fn read_ok(text: &str) -> Vec<Entry> {
        read(text).unwrap()
    }

    #[test]
    fn more_than_the_document_limit_refuses_the_input() {
        let text = format!("[{}{{}}]", "{},".repeat(MAX_DOCUMENTS));
        assert_eq!(read(&text).unwrap_err(), ParseError::TooManyDocuments);
        let text = format!("[{}{{}}]", "{},".repeat(MAX_DOCUMENTS - 1));
        assert_eq!(read(&text).unwrap().len(), MAX_DOCUMENTS);
    }

    #[test]
    fn empty_yaml_documents_take_no_index() {
        let read = values("---\na: 1\n---\n---\n# nothing\n---\nb: 2\n---\n");
        assert_eq!(
            read,
            [
                (1, serde_json::json!({"a": 1})),
                (2, serde_json::json!({"b": 2}))
            ]
        );
        assert!(values("").is_empty());
    }

    #[test]
    fn json_arrays_and_concatenated_objects_are_documents() {
        let read = values(" [{\"a\": 1}, {\"b\": 2}]\n{\"c\": 3}");
        let indexes: Vec<usize> = read.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2, 3]);
        assert_eq!(read[2].1, serde_json::json!({"c": 3}));
    }

    #[test]
    fn yaml_syntax_error_stops_reading_and_names_its_place() {
        let entries = read_ok("a: 1\n---\nb: 2\n  c: 3\n---\nd: 4\n");
        assert_eq!(entries.len(), 2);
        let (index, err) = (&entries[1].0, entries[1].1.as_ref().unwrap_err());
        assert_eq!(*index, 2);
        assert_eq!(
            err.to_string(),
            "line 4 column 4: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn yaml_duplicate_key_spoils_only_its_own_document() {
        let entries = read_ok("a: 1\na: 2\n---\nb: 2\n");
        assert!(entries[0].1.is_err());
        assert_eq!(entries[1], (2, Ok(serde_json::json!({"b": 2}))));
    }

    #[test]
    fn json_syntax_error_names_line_and_column() {
        let entries = read_ok("{\n  \"a\": 1,\n}");
        let err = entries[0].1.as_ref().unwrap_err();
        assert_eq!(err.to_string(), "line 3 column 1: trailing comma");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(
            values("\u{feff}{\"a\": 1}"),
            [(1, serde_json::json!({"a": 1}))]
        );
    }
}
