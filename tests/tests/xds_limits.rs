//! The limits a stream keeps to, and clients that break the protocol: each
//! is refused on a real stream with a status that says what was wrong, and
//! the server goes on serving everyone else.

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use palisade_tests::xds::shop::{self, Shop, sotw_names};
use palisade_tests::xds::{
    Delta, Method, Sotw, assert_status, delta_request, names, refusal, send_after_first,
    send_garbage, sotw_request, types,
};
use prost::Message;

/// The limits the control plane applies by default.
const NAMES_PER_REQUEST: usize = 10_000;
const INITIAL_VERSIONS_PER_REQUEST: usize = 100_000;
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
const REQUEST_BURST: usize = 200;
const STREAMS_PER_CLIENT: usize = 64;

/// Checks that `status` refuses with `code` and says `says`, and that the
/// server still answers a fresh stream of web-1.
async fn assert_refused(bed: &Shop, status: &tonic::Status, code: tonic::Code, says: &str) {
    assert_status(status, code, says);
    let mut stream = bed.sotw("web-1", types::WORKLOAD, &[]).await;
    assert!(stream.recv().await.is_ok(), "the server still serves");
}

/// A SotW stream of web-1's workloads that received orders-1, so that no
/// further answer is due.
async fn answered_sotw(bed: &Shop) -> Sotw {
    let mut stream = bed.sotw("web-1", types::WORKLOAD, &[]).await;
    while sotw_names(&stream.recv().await.unwrap()).is_empty() {}
    stream
}

/// A delta stream of all web-1's workloads that received orders-1, so that
/// no further answer is due.
async fn answered_delta(bed: &Shop) -> Delta {
    let mut stream = bed.delta("web-1", types::WORKLOAD, &["*"]).await;
    while names(&stream.recv().await.unwrap()).is_empty() {}
    stream
}

/// Checks that garbage sent on a stream of web-1, after a first request
/// the server answers, ends the call with a clear status, and that the
/// server goes on serving.
async fn assert_garbage_later_refused(method: Method) {
    let bed = shop::start().await;
    let first = match method {
        Method::StateOfTheWorld => {
            sotw_request(Some("web-1"), types::WORKLOAD, &[]).encode_to_vec()
        }
        Method::Delta => delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]).encode_to_vec(),
    };

    let status = send_after_first(bed.web1.clone(), method, first, vec![0xff; 64]).await;

    let says = "the request could not be read";
    assert_refused(&bed, &status, tonic::Code::InvalidArgument, says).await;
}

#[tokio::test]
async fn client_sending_garbage_first_is_disconnected_with_a_clear_status() {
    let bed = shop::start().await;

    let status = send_garbage(bed.web1.clone(), vec![0xff; 64]).await;

    let says = "could not be read as a discovery request";
    assert_refused(&bed, &status, tonic::Code::InvalidArgument, says).await;
}

#[tokio::test]
async fn sotw_client_sending_garbage_later_is_disconnected_with_a_clear_status() {
    assert_garbage_later_refused(Method::StateOfTheWorld).await;
}

#[tokio::test]
async fn delta_client_sending_garbage_later_is_disconnected_with_a_clear_status() {
    assert_garbage_later_refused(Method::Delta).await;
}

#[tokio::test]
async fn request_naming_too_many_resources_is_refused() {
    let bed = shop::start().await;
    let mut stream = answered_delta(&bed).await;

    let many: Vec<String> = (0..=NAMES_PER_REQUEST)
        .map(|i| format!("shop/w-{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let request = delta_request(None, types::ENDPOINTS, &many, &[]);

    let status = stream.ask(request).await.unwrap_err();
    let says = format!("at most {NAMES_PER_REQUEST} are allowed");
    assert_refused(&bed, &status, tonic::Code::InvalidArgument, &says).await;
}

/// A delta request of web-1's workloads resuming with the versions of
/// `held` resources, as a client that reconnects.
fn resuming(held: usize) -> DeltaDiscoveryRequest {
    let mut request = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    request.initial_resource_versions = (0..held)
        .map(|i| (format!("shop/w-{i}"), "v".to_owned()))
        .collect();
    request
}

#[tokio::test]
async fn resuming_client_may_hold_more_resources_than_a_request_may_name() {
    let bed = shop::start().await;
    let _current = answered_delta(&bed).await;

    let first = resuming(NAMES_PER_REQUEST * 2);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();

    let answer = stream.recv().await.expect("the resumed stream is served");
    assert_eq!(names(&answer), ["shop/orders-1"]);
    assert_eq!(
        answer.removed_resources.len(),
        NAMES_PER_REQUEST * 2,
        "everything else the client held is gone"
    );
}

#[tokio::test]
async fn resuming_with_too_many_initial_versions_is_refused() {
    let bed = shop::start().await;

    let first = resuming(INITIAL_VERSIONS_PER_REQUEST + 1);
    let status = refusal(Delta::open(bed.web1.clone(), first).await).await;

    let says = format!(
        "initial_resource_versions: {} entries",
        INITIAL_VERSIONS_PER_REQUEST + 1
    );
    assert_refused(&bed, &status, tonic::Code::InvalidArgument, &says).await;
}

#[tokio::test]
async fn request_over_the_size_limit_is_refused() {
    let bed = shop::start().await;
    let mut stream = answered_sotw(&bed).await;

    let huge = "x".repeat(MAX_REQUEST_BYTES + 1);
    let request = sotw_request(None, types::ENDPOINTS, &[&huge]);

    let status = stream.ask(request).await.unwrap_err();
    let says = "larger than the limit";
    assert_refused(&bed, &status, tonic::Code::ResourceExhausted, says).await;
}

#[tokio::test]
async fn requests_over_the_rate_are_refused() {
    let bed = shop::start().await;
    let mut stream = answered_sotw(&bed).await;

    // Requests that change nothing, as fast as the client can send them.
    let sender = stream.sender();
    tokio::spawn(async move {
        for _ in 0..REQUEST_BURST * 2 {
            let same = sotw_request(None, types::WORKLOAD, &[]);
            if sender.send(same).await.is_err() {
                return;
            }
        }
    });

    let status = stream.recv().await.unwrap_err();
    let says = "requests per second on one stream";
    assert_refused(&bed, &status, tonic::Code::ResourceExhausted, says).await;
}

#[tokio::test]
async fn streams_per_node_are_limited() {
    let bed = shop::start().await;
    let mut open = Vec::new();
    for _ in 0..STREAMS_PER_CLIENT {
        open.push(answered_delta(&bed).await);
    }

    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let refused = refusal(Delta::open(bed.web1.clone(), first).await).await;

    let says = format!("already has {STREAMS_PER_CLIENT} streams open");
    assert_status(&refused, tonic::Code::ResourceExhausted, &says);
    let mut web2 = bed.delta("web-2", types::WORKLOAD, &["*"]).await;
    assert!(
        web2.recv().await.is_ok(),
        "other nodes are not limited by web-1's streams"
    );

    open.pop();
    assert!(reopens(&bed).await, "a closed stream frees its place");
}

/// Whether web-1 can open one more stream within a few seconds.
async fn reopens(bed: &Shop) -> bool {
    for _ in 0..50 {
        let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
        if let Ok(mut stream) = Delta::open(bed.web1.clone(), first).await
            && stream.recv().await.is_ok()
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}
