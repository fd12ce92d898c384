//! The agent's local APIs through a real `palisade-agent run` (see
//! `palisade_tests::local`): Envoy's SDS on the Unix socket, where the
//! kernel's credentials for the connection decide whose secrets a caller
//! gets, and the certificate files for proxyless gRPC, replaced whole on
//! every renewal.
//!
//! This test process is the Envoy and the gRPC application of `orders-1`:
//! its uid, gid and executable are what the Workloads' selectors name.
//! Rotation tests give workload certificates 6 seconds, so the agent
//! renews one every 3.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use palisade_tests::local::{Host, Member, NAMESPACE, NODE, WAIT, id};
use palisade_tests::sds::{self, BUNDLE, Placement, SVID};
use palisade_tests::x509::{first_der, key_matches, openssl_verify, pem_blocks, serial, spiffe_id};
use palisade_tests::xds::{assert_status, refusal, sotw_ack};
use tonic::Code;

/// The workload-certificate lifetime of the rotation tests, in seconds.
const SHORT_TTL: &str = "6";

const ORDERS: Placement<'static> = Placement {
    namespace: NAMESPACE,
    workload: "orders-1",
    service: "orders",
    node: NODE,
};

/// The uid and gid this process runs as, which the agent sees as the
/// caller's.
fn own_ids() -> (u32, u32) {
    let metadata = std::fs::metadata("/proc/self").expect("/proc/self");
    (metadata.uid(), metadata.gid())
}

fn own_executable() -> String {
    let path = std::env::current_exe().expect("the test executable");
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// Selectors that pick this process by its uid and executable.
fn this_process() -> String {
    format!(
        "{{unixUid: {}, processPath: {:?}}}",
        own_ids().0,
        own_executable()
    )
}

/// Selectors that pick processes of another user only.
fn another_user() -> String {
    format!("{{unixUid: {}}}", own_ids().0 + 1)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("a file")
        .permissions()
        .mode()
        & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The control plane's trust bundle, certificate by certificate.
fn bundle_of(host: &Host) -> Vec<String> {
    pem_blocks(&read(&host.cp.data_dir.join("ca.pem")))
}

/// Checks that `chain` is a whole chain for the SPIFFE ID of `service`
/// and `key` its key; returns the leaf's serial.
fn check_identity(chain: &str, key: &str, service: &str) -> String {
    let leaf = first_der(chain);
    assert_eq!(spiffe_id(&leaf).as_deref(), Ok(id(service).as_str()));
    assert!(key_matches(&leaf, key), "the key is not the certificate's");
    serial(&leaf)
}

#[tokio::test]
async fn envoy_gets_its_workloads_certificate_and_the_bundle_over_the_sds_socket() {
    let orders = Member::new("orders", "orders-1");
    let host = Host::start(&[], &orders.yaml(&this_process())).await;

    // The socket: a socket, 0660, in a directory the agent made 0755.
    let socket = std::fs::symlink_metadata(&host.sds_socket).expect("the socket");
    assert!(socket.file_type().is_socket());
    assert_eq!(mode(&host.sds_socket), 0o660);
    assert_eq!(mode(host.sds_socket.parent().expect("a directory")), 0o755);

    // One stream per secret, as Envoy opens them, naming its bootstrap's node.
    let node = sds::envoy_node(ORDERS);
    let mut client = sds::connect(&host.sds_socket).await;
    let mut certificate = sds::stream(&mut client, sds::request(&node, &[SVID]))
        .await
        .expect("the default stream opens");
    let mut roots = sds::stream(&mut client, sds::request(&node, &[BUNDLE]))
        .await
        .expect("the ROOTCA stream opens");
    let certificate = certificate.recv().await.expect("default");
    let roots = roots.recv().await.expect("ROOTCA");

    // default: the workload's chain and key; ROOTCA: the control plane's bundle.
    let mut streamed = sds::secrets(&certificate);
    streamed.append(&mut sds::secrets(&roots));
    assert_eq!(streamed.keys().collect::<Vec<_>>(), [BUNDLE, SVID]);
    let (chain, key) = sds::chain_and_key(&streamed[SVID]);
    let bundle = sds::trusted_ca(&streamed[BUNDLE]);
    check_identity(&chain, &key, "orders");
    assert_eq!(pem_blocks(&bundle), bundle_of(&host));
    let scratch = tempfile::tempdir().expect("a scratch directory");
    openssl_verify(scratch.path(), &bundle, &chain, "sslclient").expect("the chain verifies");
    for response in [&certificate, &roots] {
        assert!(!response.version_info.is_empty() && !response.nonce.is_empty());
    }

    // Delta and fetch give the same secrets; a name that does not exist is left out.
    let first = sds::delta_request(&node, &[SVID, BUNDLE]);
    let mut delta = sds::delta(&mut client, first)
        .await
        .expect("a delta stream");
    let delta = delta.recv().await.expect("a delta response");
    let resources = delta.resources.iter().filter_map(|r| r.resource.as_ref());
    assert_eq!(sds::decode_all(resources), streamed);
    let request = sds::request(&node, &[SVID, BUNDLE, "unknown"]);
    let fetched = client.fetch_secrets(request).await.expect("FetchSecrets");
    assert_eq!(sds::secrets(fetched.get_ref()), streamed);
}

#[tokio::test]
async fn the_callers_credentials_decide_whose_secrets_it_gets_whatever_node_it_names() {
    let (orders, billing) = (
        Member::new("orders", "orders-1"),
        Member::new("billing", "billing-1"),
    );
    let orders = |selectors: &str| orders.yaml(selectors);
    let billing = |selectors: &str| billing.yaml(selectors);
    let mut host = Host::start(&[], &(orders(&this_process()) + &billing(&another_user()))).await;
    let node = sds::envoy_node(ORDERS);
    let mut client = sds::connect(&host.sds_socket).await;
    let mut open = sds::stream(&mut client, sds::request(&node, &[SVID]))
        .await
        .expect("the stream opens");
    open.recv().await.expect("orders-1's certificate");

    // orders-1 now belongs to another user: the open stream ends, new calls are refused.
    host.apply(&orders(&another_user())).await;
    let (uid, gid) = own_ids();
    let caller = format!(
        "no local workload selects the caller (uid {uid}, gid {gid}, pid {}, executable {})",
        std::process::id(),
        own_executable()
    );
    assert_status(
        &open.recv().await.unwrap_err(),
        Code::PermissionDenied,
        &caller,
    );
    let reopened = sds::stream(&mut client, sds::request(&node, &[SVID])).await;
    assert_status(&refusal(reopened).await, Code::PermissionDenied, &caller);
    let fetched = client.fetch_secrets(sds::request(&node, &[SVID])).await;
    assert_status(&fetched.unwrap_err(), Code::PermissionDenied, &caller);

    // Two workloads that both select the caller: neither is chosen.
    host.apply(&(orders(&this_process()) + &billing(&format!("{{unixGid: {gid}}}"))))
        .await;
    let fetched = client.fetch_secrets(sds::request(&node, &[SVID])).await;
    let several = "several local workloads select the caller";
    let status = fetched.unwrap_err();
    assert_status(&status, Code::PermissionDenied, several);
    assert!(
        status.message().ends_with("shop/billing-1, shop/orders-1"),
        "{status:?}"
    );

    // Only billing-1 selects the caller: naming orders-1's node gets billing's secrets.
    host.apply(&(orders(&another_user()) + &billing(&this_process())))
        .await;
    let fetched = client.fetch_secrets(sds::request(&node, &[SVID])).await;
    let secrets = sds::secrets(fetched.expect("billing-1's certificate").get_ref());
    let (chain, key) = sds::chain_and_key(&secrets[SVID]);
    check_identity(&chain, &key, "billing");
}

#[tokio::test]
async fn open_sds_streams_get_each_renewed_certificate_without_asking() {
    let serve = ["--workload-ttl-secs", SHORT_TTL];
    let orders = Member::new("orders", "orders-1");
    let host = Host::start(&serve, &orders.yaml(&this_process())).await;
    let node = sds::envoy_node(ORDERS);
    let mut client = sds::connect(&host.sds_socket).await;

    // Envoy's stream, which acknowledges; and a delta stream that sends nothing more.
    let mut stream = sds::stream(&mut client, sds::request(&node, &[SVID]))
        .await
        .expect("the stream opens");
    let first = stream.recv().await.expect("default");
    stream.send(sotw_ack(&first, &[SVID])).await;
    let mut delta = sds::delta(&mut client, sds::delta_request(&node, &[]))
        .await
        .expect("a delta stream");
    let delta_first = delta.recv().await.expect("a delta response");
    let held_bundle = delta_first.resources.iter().find(|r| r.name == BUNDLE);
    let held_bundle = held_bundle.expect("ROOTCA").version.clone();

    // Two renewals reach the state-of-the-world stream, each with a new serial.
    let mut serials = vec![pushed_serial(&first)];
    let mut versions = vec![first.version_info.clone()];
    for _ in 0..2 {
        let pushed = stream.recv().await.expect("a renewed default");
        serials.push(pushed_serial(&pushed));
        versions.push(pushed.version_info.clone());
        stream.send(sotw_ack(&pushed, &[SVID])).await;
    }
    assert_eq!(
        serials.iter().collect::<BTreeSet<_>>().len(),
        3,
        "{serials:?}"
    );
    assert_eq!(
        versions.iter().collect::<BTreeSet<_>>().len(),
        3,
        "{versions:?}"
    );

    // The delta stream is sent only default, renewed; ROOTCA has not changed.
    let delta_next = delta.recv().await.expect("a renewed default");
    let names: Vec<&str> = delta_next
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, [SVID]);
    let resource = delta_next.resources[0].resource.as_ref();
    let renewed = sds::decode_all(resource);
    let (chain, key) = sds::chain_and_key(&renewed[SVID]);
    let delta_serial = check_identity(&chain, &key, "orders");
    let first_delta = delta_first
        .resources
        .iter()
        .filter_map(|r| r.resource.as_ref());
    let (first_chain, _) = sds::chain_and_key(&sds::decode_all(first_delta)[SVID]);
    assert_ne!(delta_serial, serial(&first_der(&first_chain)));
    assert!(!held_bundle.is_empty());
}

/// The serial of the `default` certificate a response carries, after
/// checking that it is orders' with its key.
fn pushed_serial(response: &DiscoveryResponse) -> String {
    let secrets = sds::secrets(response);
    let (chain, key) = sds::chain_and_key(&secrets[SVID]);
    check_identity(&chain, &key, "orders")
}

/// What one read of a workload's three files saw.
struct Read {
    /// `current` before and after reading.
    before: PathBuf,
    after: PathBuf,
    chain: String,
    key: String,
    bundle: String,
}

impl Read {
    fn of(dir: &Path) -> std::io::Result<Read> {
        let current = || std::fs::read_link(dir.join("current"));
        let before = current()?;
        let chain = std::fs::read_to_string(dir.join("svid.pem"))?;
        let key = std::fs::read_to_string(dir.join("svid-key.pem"))?;
        let bundle = std::fs::read_to_string(dir.join("bundle.pem"))?;
        let after = current()?;
        Ok(Read {
            before,
            after,
            chain,
            key,
            bundle,
        })
    }
}

/// What a reader saw in a tight loop until `stop`.
#[derive(Debug, Default)]
struct Seen {
    reads: usize,
    /// Reads during which `current` was swapped; their pair may differ.
    straddling: usize,
    versions: BTreeSet<PathBuf>,
    problems: Vec<String>,
}

fn read_until(dir: &Path, bundle: &[String], stop: &AtomicBool) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        let read = match Read::of(dir) {
            Ok(read) => read,
            Err(error) => {
                seen.problems.push(format!("a read failed: {error}"));
                continue;
            }
        };
        seen.reads += 1;
        seen.versions.insert(read.before.clone());
        if pem_blocks(&read.bundle) != bundle {
            seen.problems
                .push(format!("bundle.pem was {:?}", read.bundle));
        }
        let leaf = x509_parser::pem::parse_x509_pem(read.chain.as_bytes());
        let Ok((_, leaf)) = leaf else {
            seen.problems.push(format!("svid.pem was {:?}", read.chain));
            continue;
        };
        if read.before != read.after {
            seen.straddling += 1;
        } else if !key_matches(&leaf.contents, &read.key) {
            seen.problems
                .push(format!("a key of another version in {:?}", read.before));
        }
    }
    seen
}

#[tokio::test]
async fn proxyless_grpc_files_are_private_and_replaced_whole_on_each_renewal() {
    let serve = ["--workload-ttl-secs", SHORT_TTL];
    let orders = Member::new("orders", "orders-1");
    let mut host = Host::start(&serve, &orders.yaml(&this_process())).await;
    let dir = orders.files_in(&host.cert_dir);
    host.wait_until("certificate files", |_| dir.join("svid.pem").exists())
        .await;

    // Layout and modes: three names through `current`; the key 0600 and its
    // user's; no directory writable by anyone else.
    for file in ["svid.pem", "svid-key.pem", "bundle.pem"] {
        let link = std::fs::read_link(dir.join(file)).expect("a link");
        assert_eq!(link, Path::new("current").join(file));
    }
    let current = std::fs::read_link(dir.join("current")).expect("the current link");
    assert!(current.to_string_lossy().starts_with(".v"), "{current:?}");
    assert_eq!(mode(&dir.join(&current).join("svid-key.pem")), 0o600);
    assert_eq!(mode(&dir.join(&current).join("svid.pem")), 0o644);
    let key = std::fs::metadata(dir.join("svid-key.pem")).expect("the key");
    assert_eq!(key.uid(), own_ids().0, "the workload's user owns its key");
    let directories = [
        &host.cert_dir,
        &dir.parent().unwrap().to_owned(),
        &dir,
        &dir.join(&current),
    ];
    for directory in directories {
        assert_eq!(
            mode(directory) & 0o022,
            0,
            "{} is writable by others",
            directory.display()
        );
    }
    assert_eq!(mode(&dir), 0o700);

    // Contents: the workload's identity with its key, and the bundle.
    let bundle = bundle_of(&host);
    let first = Read::of(&dir).expect("the files");
    check_identity(&first.chain, &first.key, "orders");
    assert_eq!(pem_blocks(&first.bundle), bundle);

    // Through two renewals, a reader in a tight loop sees whole files and
    // matching pairs whenever `current` held still while it read.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, bundle, stop) = (dir.clone(), bundle.clone(), stop.clone());
        tokio::task::spawn_blocking(move || read_until(&dir, &bundle, &stop))
    };
    let versions = wait_for_versions(&host, &dir, 3).await;
    stop.store(true, Ordering::Relaxed);
    let seen = reader.await.expect("the reader");
    assert!(seen.problems.is_empty(), "{:#?}", seen.problems);
    assert!(seen.versions.len() >= 3, "the reader saw {seen:?}");

    // Once the write is done, only the current version and the one before
    // it are left.
    let (previous, current) = (&versions[versions.len() - 2], &versions[versions.len() - 1]);
    let version = current.to_string_lossy().replacen(".v", "", 1);
    let written = format!("certificate files written workload=shop/orders-1 version={version}");
    host.wait_until("the write's end", |host| host.log().contains(&written))
        .await;
    let expected: BTreeSet<String> = ["svid.pem", "svid-key.pem", "bundle.pem", "current"]
        .into_iter()
        .map(str::to_owned)
        .chain([previous, current].map(|v| v.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(entries(&dir), expected);
    for version in [previous, current] {
        let names: BTreeSet<String> = entries(&dir.join(version));
        assert_eq!(
            names,
            ["bundle.pem", "svid-key.pem", "svid.pem"]
                .map(str::to_owned)
                .into()
        );
    }

    // Another user takes the directory over (when the agent may hand it
    // over); once the Workload names only a group, the former user keeps
    // nothing of it.
    let (uid, gid) = own_ids();
    let other = uid + 1;
    host.apply(&orders.yaml(&format!("{{unixUid: {other}}}")))
        .await;
    let handed_over = if uid == 0 { other } else { uid };
    wait_for_owner(&host, &dir, handed_over).await;
    host.apply(&orders.yaml(&format!("{{unixGid: {gid}}}")))
        .await;
    wait_for_owner(&host, &dir, uid).await;
    let key = std::fs::metadata(dir.join("svid-key.pem")).expect("the key");
    assert_eq!((key.uid(), key.gid(), mode(&dir)), (uid, gid, 0o750));
}

/// Waits until the workload's directory and its current key belong to `uid`.
async fn wait_for_owner(host: &Host, dir: &Path, uid: u32) {
    let deadline = Instant::now() + WAIT;
    let owners = || {
        let owner = |path: &Path| std::fs::metadata(path).map(|m| m.uid()).ok();
        (owner(dir), owner(&dir.join("svid-key.pem")))
    };
    while owners() != (Some(uid), Some(uid)) {
        assert!(
            Instant::now() < deadline,
            "{} belongs to {:?}, not {uid}:\n{}",
            dir.display(),
            owners(),
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `current` has named `count` versions, and returns them in
/// the order they came.
async fn wait_for_versions(host: &Host, dir: &Path, count: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + WAIT;
    let mut versions: Vec<PathBuf> = Vec::new();
    loop {
        let current = std::fs::read_link(dir.join("current")).expect("the current link");
        if versions.last() != Some(&current) {
            versions.push(current);
        }
        if versions.len() >= count {
            return versions;
        }
        assert!(
            Instant::now() < deadline,
            "only {versions:?} in {WAIT:?}:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn entries(dir: &Path) -> BTreeSet<String> {
    let listed = std::fs::read_dir(dir).expect("a directory");
    listed
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}
