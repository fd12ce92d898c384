//! Reading the documents that `-f` names: files, directories and stdin.

use std::io::Read;
use std::path::PathBuf;

use thiserror::Error;

mod bundle;
mod files;
mod keys;

pub use bundle::bundle;
pub use keys::{DocumentKey, document_keys};

use files::Input;

/// One input, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The path as given or found, or `-` for stdin.
    pub name: String,
    pub text: String,
}

/// Why the inputs could not be read.
#[derive(Debug, Error)]
pub enum InputError {
    #[error("cannot read {}", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{} holds no .yaml, .yml or .json files", .0.display())]
    EmptyDirectory(PathBuf),

    #[error("{name} is not valid JSON")]
    Json {
        name: String,
        source: serde_json::Error,
    },

    #[error("{name} is not valid YAML")]
    Yaml {
        name: String,
        source: serde_yaml::Error,
    },

    #[error("document {index} of {name} {reason}")]
    Unnamed {
        name: String,
        index: usize,
        reason: String,
    },
}

/// Reads every file the `-f` arguments name, in order.
pub fn read_inputs(paths: &[PathBuf], recursive: bool) -> Result<Vec<InputFile>, InputError> {
    files::expand(paths, recursive)?
        .into_iter()
        .map(read)
        .collect()
}

fn read(input: Input) -> Result<InputFile, InputError> {
    match input {
        Input::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| InputError::Unreadable {
                    path: PathBuf::from("-"),
                    source,
                })?;
            Ok(InputFile {
                name: "-".to_owned(),
                text,
            })
        }
        Input::File(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| InputError::Unreadable {
                path: path.clone(),
                source,
            })?;
            Ok(InputFile {
                name: path.display().to_string(),
                text,
            })
        }
    }
}

/// Whether `text` is JSON rather than YAML: its first non-blank character
/// opens an object or an array, as the control plane decides too.
fn looks_like_json(text: &str) -> bool {
    without_bom(text).trim_start().starts_with(['{', '['])
}

fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}
