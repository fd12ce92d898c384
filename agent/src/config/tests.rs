use super::*;

fn required() -> Overrides {
    Overrides {
        control_plane: Some(vec!["cp.example.org:7443".into()]),
        node: Some("web-1".into()),
        trust_bundle: Some("/etc/palisade/ca.pem".into()),
        ..Overrides::default()
    }
}

#[test]
fn defaults_fill_what_nobody_set() {
    let config = AgentConfig::resolve(FileConfig::default(), required()).unwrap();

    assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(config.data_path.bind_address.to_string(), "0.0.0.0");
    assert_eq!(config.data_path.outbound_address.to_string(), "127.0.0.1");
    assert!(!config.data_path.proxy_protocol);
    assert_eq!(config.drain_timeout, Duration::from_secs(10));
    assert_eq!(config.worker_threads, 1);
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.control_plane[0].uri, "https://cp.example.org:7443");
    assert_eq!(config.control_plane[0].server_name, "cp.example.org");
    assert_eq!(config.data_path.max_handshakes, DEFAULT_MAX_HANDSHAKES);
    assert_eq!(
        config.data_path.max_handshakes_per_source,
        DEFAULT_MAX_HANDSHAKES_PER_SOURCE
    );
}

#[test]
fn a_missing_trust_bundle_says_what_it_is_and_where_to_get_it() {
    let over = Overrides {
        trust_bundle: None,
        ..required()
    };

    let error = AgentConfig::resolve(FileConfig::default(), over)
        .unwrap_err()
        .to_string();

    assert!(error.starts_with("trust_bundle: required: "), "{error}");
    assert!(error.contains("<data-dir>/ca.pem"), "{error}");
    assert!(error.contains("--trust-bundle"), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");
}

#[test]
fn flags_override_the_file_and_the_file_overrides_defaults() {
    let file: FileConfig = toml::from_str(
        r#"
        node = "from-file"
        data_dir = "/from/file"
        bind_address = "10.0.0.1"
        proxy_protocol = true
        max_connections = 7
        "#,
    )
    .unwrap();
    let over = Overrides {
        data_dir: Some("/from/flag".into()),
        proxy_protocol: Some(false),
        ..required()
    };

    let config = AgentConfig::resolve(file, over).unwrap();

    assert_eq!(config.node, "web-1");
    assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(config.data_path.bind_address.to_string(), "10.0.0.1");
    assert!(!config.data_path.proxy_protocol);
    assert_eq!(config.data_path.max_connections, 7);
}

#[test]
fn comma_separated_addresses_are_each_an_address() {
    let over = Overrides {
        control_plane: Some(vec!["https://a:1, b:2".into(), "[::1]:3".into()]),
        ..required()
    };

    let config = AgentConfig::resolve(FileConfig::default(), over).unwrap();

    let uris: Vec<&str> = config
        .control_plane
        .iter()
        .map(|a| a.uri.as_str())
        .collect();
    assert_eq!(uris, ["https://a:1", "https://b:2", "https://[::1]:3"]);
    assert_eq!(config.control_plane[2].server_name, "::1");
}

#[test]
fn missing_required_settings_name_the_setting() {
    let cases = [
        (
            Overrides {
                control_plane: None,
                ..required()
            },
            "control_plane: required",
        ),
        (
            Overrides {
                node: None,
                ..required()
            },
            "node: required",
        ),
        (
            Overrides {
                trust_bundle: None,
                ..required()
            },
            "trust_bundle: required",
        ),
    ];

    for (over, expected) in cases {
        let error = AgentConfig::resolve(FileConfig::default(), over).unwrap_err();
        assert!(error.to_string().starts_with(expected), "{error}");
    }
}

#[test]
fn bad_values_are_refused_with_the_value() {
    let cases = [
        (
            Overrides {
                bind_address: Some("everywhere".into()),
                ..required()
            },
            "bind_address: \"everywhere\" is not an IP address",
        ),
        (
            Overrides {
                node: Some("Web_1".into()),
                ..required()
            },
            "node: \"Web_1\" is not a DNS-1123 name",
        ),
        (
            Overrides {
                control_plane: Some(vec!["http://cp:7443".into()]),
                ..required()
            },
            "control_plane: \"http://cp:7443\": only https",
        ),
        (
            Overrides {
                max_connections: Some(0),
                ..required()
            },
            "max_connections: must be at least 1",
        ),
        (
            Overrides {
                max_handshakes: Some(0),
                ..required()
            },
            "max_handshakes: must be at least 1",
        ),
        (
            Overrides {
                max_handshakes_per_source: Some(0),
                ..required()
            },
            "max_handshakes_per_source: must be at least 1",
        ),
        (
            Overrides {
                outbound_address: Some("0.0.0.0".into()),
                ..required()
            },
            "outbound_address: 0.0.0.0 is not a loopback address",
        ),
        (
            Overrides {
                outbound_address: Some("10.1.2.3".into()),
                ..required()
            },
            "outbound_address: 10.1.2.3 is not a loopback address",
        ),
        (
            Overrides {
                worker_threads: Some(0),
                ..required()
            },
            "worker_threads: must be at least 1",
        ),
        (
            Overrides {
                worker_threads: Some(100_000),
                ..required()
            },
            "worker_threads: 100000 is more than 256",
        ),
    ];

    for (over, expected) in cases {
        let error = AgentConfig::resolve(FileConfig::default(), over).unwrap_err();
        assert!(error.to_string().starts_with(expected), "{error}");
    }
}

#[test]
fn unknown_file_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "node = \"web-1\"\nnode_name = \"web-2\"\n").unwrap();

    let error = FileConfig::read(&path).unwrap_err();

    assert!(error.to_string().contains("node_name"), "{error}");
}

#[test]
fn file_errors_are_one_line_that_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let cases = [
        (
            "node = \"web-1\"\nnode_name = \"web-2\"\n",
            "line 2, column 1: unknown field `node_name`",
        ),
        (
            "node = \"web-1\"\nmax_connections = \"many\"\n",
            "line 2, column 19: max_connections: invalid type",
        ),
        (
            "control_plane = [\n  \"cp:7443\",\n  7,\n]\n",
            "line 3, column 3: invalid type",
        ),
    ];

    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let error = FileConfig::read(&path).unwrap_err().to_string();

        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(
            error.contains(&format!("agent.toml: {expected}")),
            "{error}"
        );
    }
}

#[test]
fn a_file_may_list_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        r#"
        control_plane = ["cp-1:7443", "cp-2:7443"]
        node = "web-1"
        join_token_file = "/etc/palisade/join-token"
        data_dir = "/var/lib/palisade-agent"
        trust_bundle = "/etc/palisade/ca.pem"
        server_name = "cp.example.org"
        bind_address = "0.0.0.0"
        outbound_address = "127.0.0.1"
        proxy_protocol = true
        handshake_timeout_secs = 5
        max_connections = 100
        max_handshakes = 50
        max_handshakes_per_source = 5
        drain_timeout_secs = 3
        worker_threads = 2
        log_format = "json"
        log_level = "debug"
        "#,
    )
    .unwrap();

    let file = FileConfig::read(&path).unwrap();
    let config = AgentConfig::resolve(file, Overrides::default()).unwrap();

    assert_eq!(config.control_plane.len(), 2);
    assert_eq!(config.server_name.as_deref(), Some("cp.example.org"));
    assert_eq!(config.data_path.handshake_timeout, Duration::from_secs(5));
    assert_eq!(config.data_path.max_handshakes, 50);
    assert_eq!(config.data_path.max_handshakes_per_source, 5);
    assert_eq!(config.worker_threads, 2);
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn outbound_listeners_may_bind_any_loopback_address() {
    for address in ["127.0.0.21", "::1"] {
        let over = Overrides {
            outbound_address: Some(address.into()),
            ..required()
        };

        let config = AgentConfig::resolve(FileConfig::default(), over).unwrap();

        assert_eq!(config.data_path.outbound_address.to_string(), address);
    }
}
