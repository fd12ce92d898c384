//! `palisade-cp dev`, the README's one command: in an empty directory it
//! initializes `./.palisade-dev`, serves on loopback, and says how to
//! connect; `palisadectl` run from the same directory finds the admin
//! credentials on its own; SIGTERM stops it cleanly; run again, it serves
//! the same data directory instead of making a new one.
//!
//! Development mode serves its JWKS and plaintext xDS on fixed loopback
//! ports (7444 and 7445), so this test needs them free.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use palisade_tests::binary;
use palisade_tests::xds::envoy::envoy_names;
use palisade_tests::xds::{Sotw, sotw_ack, sotw_request, types};
use serde_json::Value;
use tonic::transport::Channel;

/// How long dev mode may take to initialize and announce itself.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The example that the announcement's next steps apply.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/shop.yaml");

/// How the announcement's next steps run palisadectl from a checkout.
const CARGO_RUN: &str = "cargo run -q -p palisadectl -- ";

/// A running `palisade-cp dev` and what it printed so far.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    printed: Vec<String>,
}

impl Dev {
    /// Starts dev mode in `dir` on a free admin port.
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(binary("palisade-cp"))
            .args(["dev", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("PALISADE_DATA_DIR")
            .env_remove("PALISADE_LISTEN")
            .env_remove("PALISADE_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("dev.log")).unwrap())
            .spawn()
            .unwrap();

        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// Waits until the announcement names the palisadectl config, and
    /// returns everything printed until then.
    fn announcement(&mut self, dir: &Path) -> String {
        self.printed_until(dir, "palisadectl   ")
    }

    /// Waits until a printed line contains `needle`, and returns everything
    /// printed until then.
    fn printed_until(&mut self, dir: &Path, needle: &str) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.printed.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.printed.push(line),
                Err(_) => panic!(
                    "dev mode did not announce itself; it printed {:?} and logged:\n{}",
                    self.printed,
                    log(dir)
                ),
            }
        }
        self.printed.join("\n")
    }

    /// Waits until the server logs that it serves. (The announcement comes
    /// before the server is serving.)
    fn wait_serving(&self, dir: &Path) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !log(dir).contains("admin API serving") {
            assert!(
                Instant::now() < deadline,
                "dev mode never served:\n{}",
                log(dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server serves, then sends SIGTERM and waits for the
    /// exit. (A signal before then meets the default disposition.)
    fn terminate(mut self, dir: &Path) -> ExitStatus {
        self.wait_serving(dir);

        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dev mode did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("dev.log")).unwrap_or_default()
}

/// `palisadectl whoami` run from `dir`, with nothing but the files there to
/// tell it where the server is.
fn whoami(dir: &Path) -> Output {
    ctl(dir, &["whoami"])
}

/// `palisadectl` with `args` run from `dir` as [`whoami`] is.
fn ctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary("palisadectl"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("PALISADECTL_SERVER")
        .env_remove("PALISADECTL_CONFIG")
        .env_remove("PALISADECTL_CA")
        .env_remove("PALISADECTL_CERT")
        .env_remove("PALISADECTL_KEY")
        .output()
        .unwrap()
}

/// Dev mode's fixed ports allow one instance at a time; tests take turns.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

fn assert_ports_free() {
    for port in [7444, 7445] {
        let bound = std::net::TcpListener::bind(("127.0.0.1", port));
        assert!(
            bound.is_ok(),
            "127.0.0.1:{port} is taken; is a palisade-cp dev already running?"
        );
    }
}

#[test]
fn dev_mode_initializes_serves_and_lets_palisadectl_in_from_the_same_directory() {
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_ports_free();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path());

    let announced = dev.announcement(dir.path());
    let who = whoami(dir.path());
    let status = dev.terminate(dir.path());

    let data = dir.path().join(".palisade-dev");
    assert!(
        announced.contains("trust domain palisade.local"),
        "{announced}"
    );
    let config = std::fs::canonicalize(data.join("palisadectl.toml")).unwrap();
    assert!(announced.contains(config.to_str().unwrap()), "{announced}");
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let who = String::from_utf8_lossy(&who.stdout);
    assert!(
        who.starts_with("identity: spiffe://palisade.local/admin/admin\n"),
        "{who}"
    );
    assert!(who.lines().any(|l| l == "roles:    admin"), "{who}");
    assert!(
        status.success(),
        "dev exited with {status}:\n{}",
        log(dir.path())
    );
    assert!(
        log(dir.path()).contains("store flushed; stopped"),
        "{}",
        log(dir.path())
    );
}

#[test]
fn dev_mode_run_again_serves_the_data_directory_it_made() {
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_ports_free();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join(".palisade-dev/ca.pem");
    let mut first = Dev::start(dir.path());
    first.announcement(dir.path());
    assert!(first.terminate(dir.path()).success(), "{}", log(dir.path()));
    let first_bundle = std::fs::read(&bundle).unwrap();

    let mut second = Dev::start(dir.path());
    second.announcement(dir.path());
    let who = whoami(dir.path());
    let status = second.terminate(dir.path());

    assert_eq!(std::fs::read(&bundle).unwrap(), first_bundle);
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    assert!(status.success(), "{}", log(dir.path()));
}

/// The rest of the first announced line that starts with `label`.
fn announced<'a>(announcement: &'a str, label: &str) -> &'a str {
    announcement
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("nothing announced as {label:?}:\n{announcement}"))
}

/// The arguments of the announced `palisadectl bootstrap grpc` command,
/// without its redirection.
fn bootstrap_command(announcement: &str) -> Vec<&str> {
    let command = announced(announcement, &format!("{CARGO_RUN}bootstrap grpc"));
    let (args, _redirection) = command.split_once(" > ").expect("a redirection to a file");
    ["bootstrap", "grpc"]
        .into_iter()
        .chain(args.split_whitespace())
        .collect()
}

/// The names of the Listeners the plaintext xDS server named by
/// `bootstrap` sends for `target` to a client that names itself as the
/// bootstrap's node, once the server knows the example's workloads.
async fn listeners_for(bootstrap: &Value, target: &str) -> Vec<String> {
    let uri = bootstrap["xds_servers"][0]["server_uri"].as_str().unwrap();
    let node = bootstrap["node"]["id"].as_str().unwrap();
    let channel = Channel::from_shared(format!("http://{uri}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let first = sotw_request(Some(node), types::LISTENER, &[target]);
    let mut stream = Sotw::open(channel, first).await.unwrap();
    loop {
        let response = stream.recv().await.unwrap();
        let names = envoy_names(&response);
        if !names.is_empty() {
            return names;
        }
        stream.send(sotw_ack(&response, &[target])).await;
    }
}

#[test]
fn dev_mode_prints_a_grpc_bootstrap_command_whose_bootstrap_reaches_its_xds() {
    let _turn = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    assert_ports_free();
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path());

    let announcement = dev.printed_until(dir.path(), "GRPC_XDS_BOOTSTRAP=");
    let xds = announced(&announcement, "xDS")
        .split_whitespace()
        .next()
        .unwrap();
    let command = bootstrap_command(&announcement);
    let target = announced(&announcement, "GRPC_XDS_BOOTSTRAP=bootstrap.json ");
    let target = target
        .rsplit(' ')
        .next()
        .unwrap()
        .strip_prefix("xds:///")
        .unwrap();
    dev.wait_serving(dir.path());
    let applied = ctl(dir.path(), &["apply", "-f", EXAMPLE]);
    let printed = ctl(dir.path(), &command);
    let bootstrap: Value = serde_json::from_slice(&printed.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&printed.stderr));
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listeners = runtime.block_on(listeners_for(&bootstrap, target));
    let status = dev.terminate(dir.path());

    assert_eq!(xds, "127.0.0.1:7445", "{announcement}");
    assert!(
        command.windows(2).any(|pair| pair == ["--xds-server", xds]),
        "{command:?}"
    );
    assert!(applied.status.success(), "{applied:?}");
    let server = &bootstrap["xds_servers"][0];
    assert_eq!(server["server_uri"], xds, "{bootstrap:#}");
    assert_eq!(
        server["channel_creds"][0]["type"], "insecure",
        "{bootstrap:#}"
    );
    assert_eq!(
        bootstrap["node"]["id"], "shop/storefront-1",
        "{bootstrap:#}"
    );
    assert_eq!(listeners, [target]);
    assert!(status.success(), "{}", log(dir.path()));
}
