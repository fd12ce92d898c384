//! Turning `-f` arguments into the files to read.

use std::path::{Path, PathBuf};

use super::InputError;

/// Extensions of the files read from a directory.
const DOCUMENT_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One thing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

/// Expands each argument: `-` is stdin, a directory is its document files in
/// name order (descending into subdirectories when `recursive`), anything
/// else is a file.
pub fn expand(paths: &[PathBuf], recursive: bool) -> Result<Vec<Input>, InputError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
        } else if path.is_dir() {
            let found = directory_files(path, recursive)?;
            if found.is_empty() {
                return Err(InputError::EmptyDirectory(path.clone()));
            }
            inputs.extend(found.into_iter().map(Input::File));
        } else {
            inputs.push(Input::File(path.clone()));
        }
    }
    Ok(inputs)
}

/// The document files in `dir`, sorted by path. Symbolic links to files are
/// followed; links to directories are not, so that a loop cannot trap us.
fn directory_files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, InputError> {
    let unreadable = |source| InputError::Unreadable {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();

    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let is_real_dir = entry.file_type().map_err(unreadable)?.is_dir();

        if is_real_dir && recursive {
            files.extend(directory_files(&path, true)?);
        } else if !is_real_dir && is_document_file(&path) && path.is_file() {
            files.push(path);
        }
    }

    files.sort();
    Ok(files)
}

fn is_document_file(path: &Path) -> bool {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return false;
    };
    DOCUMENT_EXTENSIONS
        .iter()
        .any(|known| extension.eq_ignore_ascii_case(known))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding `files` (paths relative to it).
    fn tree(name: &str, files: &[&str]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("palisadectl-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for file in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "kind: Node\n").unwrap();
        }
        dir
    }

    fn names(inputs: &[Input], dir: &Path) -> Vec<String> {
        let name = |input: &Input| match input {
            Input::Stdin => "-".to_owned(),
            Input::File(path) => path.strip_prefix(dir).unwrap_or(path).display().to_string(),
        };
        inputs.iter().map(name).collect()
    }

    #[test]
    fn directory_gives_its_document_files_sorted() {
        let dir = tree(
            "flat",
            &["b.yml", "a.yaml", "c.JSON", "notes.txt", "sub/d.yaml"],
        );

        let inputs = expand(std::slice::from_ref(&dir), false).unwrap();

        assert_eq!(names(&inputs, &dir), ["a.yaml", "b.yml", "c.JSON"]);
    }

    #[test]
    fn recursive_directory_descends_into_subdirectories() {
        let dir = tree(
            "recursive",
            &["b.yaml", "a/z.yaml", "c/d/e.json", "c/skip.md"],
        );

        let inputs = expand(std::slice::from_ref(&dir), true).unwrap();

        assert_eq!(names(&inputs, &dir), ["a/z.yaml", "b.yaml", "c/d/e.json"]);
    }

    #[test]
    fn files_and_stdin_keep_their_order() {
        let paths = [
            PathBuf::from("z.yaml"),
            PathBuf::from("-"),
            PathBuf::from("a.txt"),
        ];

        let inputs = expand(&paths, false).unwrap();

        assert_eq!(
            inputs,
            [
                Input::File("z.yaml".into()),
                Input::Stdin,
                Input::File("a.txt".into())
            ]
        );
    }

    #[test]
    fn directory_without_documents_is_an_error() {
        let dir = tree("empty", &["README.md"]);

        let err = expand(&[dir], false).unwrap_err();

        assert!(matches!(err, InputError::EmptyDirectory(_)));
    }
}
