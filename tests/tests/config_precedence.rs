//! `palisade-cp serve` takes its settings from a TOML file, then `PALISADE_*`
//! variables, then flags, each overriding the one before; bad settings stop
//! it with one line and exit code 64. The listen address (seen in
//! `<data-dir>/admin.addr`) and the log format (seen on stderr) show which
//! source won.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use palisade_tests::{ControlPlane, binary};

const BIND_TIMEOUT: Duration = Duration::from_secs(30);

/// A file that sets the listen address and the log format.
fn config_file(cp: &ControlPlane, listen: &str, log_format: &str) -> PathBuf {
    let text = format!(
        "data_dir = {:?}\nmaster_key_file = {:?}\nlisten = {listen:?}\n\
         log_format = {log_format:?}\n\n[identity]\njwks_listen = \"off\"\n",
        cp.data_dir, cp.master_key
    );
    let path = cp.root.path().join("palisade-cp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `serve` with nothing in its environment but `env`.
fn serve_command(config: &Path, env: &[(&str, &str)], flags: &[&str]) -> Command {
    let mut command = Command::new(binary("palisade-cp"));
    command
        .env_clear()
        .envs(env.iter().copied())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(flags);
    command
}

/// What one start showed: the address it bound and its first log line.
struct Started {
    address: SocketAddr,
    first_log_line: String,
}

/// Starts `serve`, waits until it has bound its address, and stops it.
fn start_once(cp: &ControlPlane, config: &Path, env: &[(&str, &str)], flags: &[&str]) -> Started {
    let addr_file = cp.data_dir.join("admin.addr");
    let log_file = cp.root.path().join("precedence.log");
    let _ = std::fs::remove_file(&addr_file);
    let mut child = serve_command(config, env, flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + BIND_TIMEOUT;
    let address = loop {
        let text = std::fs::read_to_string(&addr_file).unwrap_or_default();
        if let Ok(address) = text.trim().parse() {
            break address;
        }
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        assert!(child.try_wait().unwrap().is_none(), "serve exited:\n{log}");
        assert!(Instant::now() < deadline, "serve never bound:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_file).unwrap();
    let first_log_line = log.lines().next().unwrap_or_default().to_owned();
    Started {
        address,
        first_log_line,
    }
}

/// The first log line as JSON, if it is JSON.
fn json_line(started: &Started) -> Option<serde_json::Value> {
    serde_json::from_str(&started.first_log_line).ok()
}

fn ip(started: &Started) -> String {
    started.address.ip().to_string()
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let cp = ControlPlane::init("config.test").unwrap();
    let config = config_file(&cp, "127.0.0.2:0", "json");
    let env = [
        ("PALISADE_LISTEN", "127.0.0.3:0"),
        ("PALISADE_LOG_FORMAT", "human"),
    ];
    let flags = ["--listen", "127.0.0.4:0", "--log-format", "json"];

    let file_only = start_once(&cp, &config, &[], &[]);
    let with_env = start_once(&cp, &config, &env, &[]);
    let with_flags = start_once(&cp, &config, &env, &flags);

    assert_eq!(ip(&file_only), "127.0.0.2");
    let line = json_line(&file_only).expect("JSON logs from the file");
    assert_eq!(line["message"], "palisade-cp starting");
    assert_eq!(line["listen"], "127.0.0.2:0");

    assert_eq!(ip(&with_env), "127.0.0.3");
    assert!(
        json_line(&with_env).is_none(),
        "{}",
        with_env.first_log_line
    );
    assert!(with_env.first_log_line.contains("palisade-cp starting"));
    assert!(with_env.first_log_line.contains("listen=127.0.0.3:0"));

    assert_eq!(ip(&with_flags), "127.0.0.4");
    let line = json_line(&with_flags).expect("JSON logs from the flag");
    assert_eq!(line["listen"], "127.0.0.4:0");
}

#[test]
fn bad_settings_exit_64_with_one_line_naming_the_setting_and_its_source() {
    let cp = ControlPlane::init("config.test").unwrap();
    let config = config_file(&cp, "127.0.0.2:0", "json");
    let unknown = cp.root.path().join("unknown.toml");
    std::fs::write(&unknown, "listen = \"127.0.0.1:0\"\nlisten_port = 7443\n").unwrap();

    let bad_flag = serve_command(&config, &[], &["--listen", "nowhere"])
        .output()
        .unwrap();
    let bad_env = serve_command(&config, &[("PALISADE_LISTEN", "nowhere:1")], &[])
        .output()
        .unwrap();
    let bad_file = serve_command(&unknown, &[], &[]).output().unwrap();

    for (output, detail) in [
        (&bad_flag, r#"error: listen: "nowhere" is not an address"#),
        (&bad_env, r#"error: listen: "nowhere:1" is not an address"#),
        (&bad_file, "listen_port"),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(detail), "{stderr}");
    }
    assert!(!cp.data_dir.join("admin.addr").exists());
}
