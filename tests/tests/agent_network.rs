//! Where the bed's hosts are (see `palisade_tests::bed::network`): where
//! the machine allows it, each agent runs in a network namespace of its
//! own, and nothing but the bed's links joins the hosts; where it does
//! not, the same calls hold with the hosts on loopback addresses.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use palisade_tests::bed::{Bed, Limits, Outcome, Site, baseline_calls, member};

/// The network namespace of the process `pid`, as the kernel names it.
fn namespace_of(pid: &str) -> String {
    let link = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let target = std::fs::read_link(&link).expect("a network namespace link");
    target.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_runs_on_a_host_of_its_own_that_only_the_bed_s_links_join() {
    let mut bed = Bed::start(Limits::default()).await;
    if !bed.network().is_namespaces() {
        eprintln!("skipped: the machine does not allow network namespaces");
        return;
    }

    // Four namespaces: the test's and one per agent.
    let mut namespaces = vec![namespace_of("self")];
    for agent in bed.agents() {
        let pid = agent.pid().expect("a running agent").to_string();
        namespaces.push(namespace_of(&pid));
    }
    let mut distinct = namespaces.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{namespaces:?}");

    // orders' application listens on 127.0.0.1 of node-b: it is reached
    // there, and from nowhere else.
    let app = SocketAddr::from((Ipv4Addr::LOCALHOST, bed.app("orders").port));
    let orders_host = bed.network().host(member("orders").host).clone();
    let web_host = bed.network().host(member("web").host).clone();
    assert!(orders_host.connect(app).await.is_ok());
    for (from, site) in [("node-a", web_host), ("the test", Site::here())] {
        let error = site.connect(app).await.expect_err(from);
        assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "from {from}");
    }

    // Across the links, calls go as the policies say, and web's reaches
    // orders from node-a's address.
    let before = bed.app("orders").connections();
    bed.check(&baseline_calls()).await.unwrap();
    let sources = bed.app("orders").sources()[before..].to_vec();
    let node_a = bed.host_address("node-a");
    assert_eq!(
        sources[0].map(|s| s.ip()),
        Some(node_a.into()),
        "{sources:?}"
    );
    assert!(!node_a.is_loopback(), "{node_a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_addresses_the_bed_allows_and_refuses_the_same_calls() {
    let mut bed = Bed::start_on_loopback(Limits::default()).await;
    let here = namespace_of("self");
    for agent in bed.agents() {
        let pid = agent.pid().expect("a running agent").to_string();
        assert_eq!(namespace_of(&pid), here, "{}", agent.node);
    }

    let before = bed.app("orders").connections();
    bed.check(&baseline_calls()).await.unwrap();
    let direct = bed.call_direct("orders", None).await;
    let (chain, key) = bed.workload_identity("web");
    let with_web = bed.call_direct("payments", Some((&chain, &key))).await;

    assert!(matches!(direct, Outcome::HandshakeFailed(_)), "{direct}");
    assert!(matches!(with_web, Outcome::Closed(_)), "{with_web}");
    let sources = bed.app("orders").sources()[before..].to_vec();
    let node_a = bed.host_address("node-a");
    assert_eq!(node_a, Ipv4Addr::new(127, 0, 0, 11));
    assert_eq!(
        sources[0].map(|s| s.ip()),
        Some(node_a.into()),
        "{sources:?}"
    );
}
