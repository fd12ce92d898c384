//! The limits a stream keeps to, and clients that break the protocol: each
//! is refused on a real stream with a status that says what was wrong, and
//! the server goes on serving everyone else.

use palisade_tests::xds::shop::{self, Shop};
use palisade_tests::xds::{
    Delta, Method, Sotw, delta_request, send_after_first, send_garbage, sotw_request, types,
};
use prost::Message;

/// The limits the control plane applies by default.
const NAMES_PER_REQUEST: usize = 10_000;
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
const REQUEST_BURST: usize = 200;
const STREAMS_PER_CLIENT: usize = 64;

fn assert_status(status: &tonic::Status, code: tonic::Code, says: &str) {
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(status.message().contains(says), "{}", status.message());
}

/// The server still answers a fresh stream of web-1.
async fn assert_still_serving(bed: &Shop) {
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();
    assert!(stream.recv().await.is_ok(), "the server still serves");
}

#[tokio::test]
async fn client_sending_garbage_first_is_disconnected_with_a_clear_status() {
    let bed = shop::start().await;

    let status = send_garbage(bed.web1.clone(), vec![0xff; 64]).await;

    assert_status(
        &status,
        tonic::Code::InvalidArgument,
        "could not be read as a discovery request",
    );
    assert_still_serving(&bed).await;
}

#[tokio::test]
async fn sotw_client_sending_garbage_later_is_disconnected_with_a_clear_status() {
    let bed = shop::start().await;
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]).encode_to_vec();

    let status = send_after_first(
        bed.web1.clone(),
        Method::StateOfTheWorld,
        first,
        vec![0xff; 64],
    )
    .await;

    assert_status(
        &status,
        tonic::Code::InvalidArgument,
        "the request could not be read",
    );
    assert_still_serving(&bed).await;
}

#[tokio::test]
async fn delta_client_sending_garbage_later_is_disconnected_with_a_clear_status() {
    let bed = shop::start().await;
    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]).encode_to_vec();

    let status = send_after_first(bed.web1.clone(), Method::Delta, first, vec![0xff; 64]).await;

    assert_status(
        &status,
        tonic::Code::InvalidArgument,
        "the request could not be read",
    );
    assert_still_serving(&bed).await;
}

#[tokio::test]
async fn request_naming_too_many_resources_is_refused() {
    let bed = shop::start().await;
    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();
    stream.recv().await.unwrap();

    let many: Vec<String> = (0..=NAMES_PER_REQUEST)
        .map(|i| format!("shop/w-{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    stream
        .send(delta_request(None, types::ENDPOINTS, &many, &[]))
        .await;

    let status = stream.recv().await.unwrap_err();
    assert_status(
        &status,
        tonic::Code::InvalidArgument,
        &format!("at most {NAMES_PER_REQUEST} are allowed"),
    );
    assert_still_serving(&bed).await;
}

#[tokio::test]
async fn request_over_the_size_limit_is_refused() {
    let bed = shop::start().await;
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();
    stream.recv().await.unwrap();

    let huge = "x".repeat(MAX_REQUEST_BYTES + 1);
    stream
        .send(sotw_request(None, types::ENDPOINTS, &[&huge]))
        .await;

    let status = stream.recv().await.unwrap_err();
    assert_status(
        &status,
        tonic::Code::ResourceExhausted,
        "larger than the limit",
    );
    assert_still_serving(&bed).await;
}

#[tokio::test]
async fn requests_over_the_rate_are_refused() {
    let bed = shop::start().await;
    let first = sotw_request(Some("web-1"), types::WORKLOAD, &[]);
    let mut stream = Sotw::open(bed.web1.clone(), first).await.unwrap();
    stream.recv().await.unwrap();

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
    assert_status(
        &status,
        tonic::Code::ResourceExhausted,
        "requests per second on one stream",
    );
    assert_still_serving(&bed).await;
}

#[tokio::test]
async fn streams_per_node_are_limited() {
    let bed = shop::start().await;
    let mut open = Vec::new();
    for _ in 0..STREAMS_PER_CLIENT {
        let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
        let mut stream = Delta::open(bed.web1.clone(), first).await.unwrap();
        stream.recv().await.unwrap();
        open.push(stream);
    }

    let first = delta_request(Some("web-1"), types::WORKLOAD, &["*"], &[]);
    let refused = match Delta::open(bed.web1.clone(), first).await {
        Ok(mut stream) => stream.recv().await.unwrap_err(),
        Err(status) => status,
    };

    assert_status(
        &refused,
        tonic::Code::ResourceExhausted,
        &format!("already has {STREAMS_PER_CLIENT} streams open"),
    );
    let other = delta_request(Some("web-2"), types::WORKLOAD, &["*"], &[]);
    let mut web2 = Delta::open(bed.web2.clone(), other).await.unwrap();
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
