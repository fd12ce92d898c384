use super::*;
use crate::state::types;
use crate::xds::RawResource;

fn resources() -> Resources {
    let mut resources = Resources::default();
    let raw = RawResource {
        version: "abc".into(),
        value: vec![0, 1, 2, 255],
    };
    resources.insert(types::WORKLOAD, "shop/orders-1", raw);
    resources
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn last_known_good_round_trips() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::open(root.path()).unwrap();
    let saved = LastKnownGood::new(resources(), 42, 1_700_000_000);

    saved.save(&dir).unwrap();
    let loaded = LastKnownGood::load(&dir).unwrap().unwrap();

    assert_eq!(loaded, saved);
    let mode = std::fs::metadata(dir.last_known_good())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, PRIVATE);
}

#[test]
fn nothing_saved_loads_as_none() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::open(&root.path().join("new")).unwrap();

    assert_eq!(LastKnownGood::load(&dir).unwrap(), None);
    let mode = std::fs::metadata(dir.root()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_behind() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("sub/file.pem");

    write_atomic(&path, b"first", PRIVATE).unwrap();
    write_atomic(&path, b"second", PUBLIC).unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(names_in(&root.path().join("sub")), ["file.pem"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, PUBLIC);
}

#[test]
fn a_failed_write_keeps_the_old_file() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("file");
    write_atomic(&path, b"old", PRIVATE).unwrap();
    std::fs::create_dir(root.path().join("file.d")).unwrap();

    let into_directory = write_atomic(&root.path().join("file.d"), b"new", PRIVATE);

    assert!(into_directory.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(names_in(root.path()), ["file", "file.d"]);
}

#[test]
fn a_corrupt_or_unknown_last_known_good_is_an_error_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::open(root.path()).unwrap();

    std::fs::write(dir.last_known_good(), b"{not json").unwrap();
    let error = LastKnownGood::load(&dir).unwrap_err();
    assert!(
        error.to_string().contains("last-known-good.json"),
        "{error}"
    );

    let mut future = LastKnownGood::new(resources(), 1, 0);
    future.format = 99;
    future.save(&dir).unwrap();
    let error = LastKnownGood::load(&dir).unwrap_err();
    assert!(error.to_string().ends_with("unknown format 99"), "{error}");
}

#[test]
fn the_status_file_names_its_source_in_kebab_case() {
    let root = tempfile::tempdir().unwrap();
    let dir = DataDir::open(root.path()).unwrap();
    let status = Status {
        node: "web-1".into(),
        source: Source::LastKnownGood,
        revision: 7,
        ..Status::default()
    };

    status.save(&dir).unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.status()).unwrap()).unwrap();
    assert_eq!(json["source"], "last-known-good");
    assert_eq!(json["revision"], 7);
}
