//! State-of-the-world SDS streams, as Envoy opens them: each response
//! carries every secret the stream asked for that exists.
//!
//! A request that echoes the newest response's nonce acknowledges it, or
//! rejects it when it carries `error_detail`; a request with any other
//! nonce is stale and ignored. A response is sent when the set's version
//! (a content hash) differs from the last one sent, so a rejected set is not
//! sent again until the secrets change. Names that do not exist are left
//! out; nothing is sent until at least one asked-for secret exists.

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::feed::Feed;
use super::secrets::{self, Names, Packed};

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// The response that carries `secrets`.
pub fn response(secrets: &[Packed], nonce: String) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: secrets::version_of(secrets),
        resources: secrets.iter().map(|s| s.resource.clone()).collect(),
        type_url: secrets::type_url(),
        nonce,
        ..Default::default()
    }
}

/// Checks a request's type: SDS serves secrets only.
pub fn check_type(type_url: &str) -> Result<(), Status> {
    if type_url.is_empty() || type_url == secrets::type_url() {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "type_url: {type_url:?} is not {}",
        secrets::type_url()
    )))
}

/// What was last sent.
#[derive(Debug)]
struct Sent {
    version: String,
    nonce: String,
}

/// One stream's subscription.
#[derive(Debug, Default)]
struct Stream {
    /// `None` until the first request.
    names: Option<Names>,
    sent: Option<Sent>,
    responses: u64,
}

/// Serves one stream until the client leaves, the agent stops, or the
/// caller loses its workload.
pub async fn run(mut feed: Feed, mut inbound: Streaming<DiscoveryRequest>, tx: Tx) {
    let mut stream = Stream::default();
    loop {
        tokio::select! {
            message = inbound.message() => {
                let request = match message {
                    Ok(Some(request)) => request,
                    Ok(None) => {
                        tracing::info!("SDS stream closed by the client");
                        return;
                    }
                    Err(status) => {
                        tracing::info!(%status, "SDS stream broken");
                        return;
                    }
                };
                if let Err(status) = stream.accept(&request) {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
            changed = feed.changed() => {
                if let Err(end) = changed {
                    let _ = tx.send(Err(end.status())).await;
                    return;
                }
            }
        }

        if stream.push(&feed, &tx).await.is_err() {
            tracing::info!("SDS stream closed by the client");
            return;
        }
    }
}

impl Stream {
    /// Takes in a request: its names, and its acknowledgement.
    fn accept(&mut self, request: &DiscoveryRequest) -> Result<(), Status> {
        check_type(&request.type_url)?;

        if let Some(sent) = &self.sent {
            if request.response_nonce != sent.nonce {
                tracing::debug!(nonce = %request.response_nonce, "stale SDS request ignored");
                return Ok(());
            }
            acknowledge(request, sent);
        }
        self.names = Some(Names::of_request(&request.resource_names));
        Ok(())
    }

    /// Sends the secrets if they differ from the last response.
    async fn push(&mut self, feed: &Feed, tx: &Tx) -> Result<(), ()> {
        let Some(names) = &self.names else {
            return Ok(());
        };
        let secrets = feed.secrets(names);
        let version = secrets::version_of(&secrets);
        let last = self.sent.as_ref().map(|sent| sent.version.as_str());
        if last == Some(version.as_str()) || (last.is_none() && secrets.is_empty()) {
            return Ok(());
        }

        self.responses += 1;
        let nonce = self.responses.to_string();
        let response = response(&secrets, nonce.clone());
        tx.send(Ok(response)).await.map_err(|_| ())?;
        tracing::debug!(version, nonce, secrets = secrets.len(), "secrets sent");
        self.sent = Some(Sent { version, nonce });
        Ok(())
    }
}

/// Logs what the client said of the response `sent`.
fn acknowledge(request: &DiscoveryRequest, sent: &Sent) {
    match &request.error_detail {
        Some(detail) => tracing::warn!(
            version = %sent.version,
            nonce = %sent.nonce,
            kept = %request.version_info,
            error = %detail.message,
            "secrets rejected by the client"
        ),
        None => {
            tracing::debug!(version = %sent.version, nonce = %sent.nonce, "secrets acknowledged")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::rpc::Status as RpcStatus;

    fn request(names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            response_nonce: nonce.into(),
            type_url: secrets::type_url(),
            ..Default::default()
        }
    }

    fn sent(stream: &mut Stream, nonce: &str) {
        stream.sent = Some(Sent {
            version: "v1".into(),
            nonce: nonce.into(),
        });
    }

    #[test]
    fn the_first_request_sets_the_names() {
        let mut stream = Stream::default();

        stream.accept(&request(&["default"], "")).unwrap();

        assert!(stream.names.as_ref().unwrap().includes("default"));
        assert!(!stream.names.as_ref().unwrap().includes("ROOTCA"));
    }

    #[test]
    fn stale_nonce_is_ignored() {
        let mut stream = Stream::default();
        stream.accept(&request(&["default"], "")).unwrap();
        sent(&mut stream, "2");

        stream.accept(&request(&["ROOTCA"], "1")).unwrap();

        assert!(stream.names.as_ref().unwrap().includes("default"));
    }

    #[test]
    fn an_ack_or_a_nack_of_the_newest_response_may_change_the_names() {
        let mut stream = Stream::default();
        sent(&mut stream, "2");
        let mut nack = request(&["ROOTCA"], "2");
        nack.error_detail = Some(RpcStatus {
            message: "bad".into(),
            ..Default::default()
        });

        stream.accept(&nack).unwrap();

        assert!(stream.names.as_ref().unwrap().includes("ROOTCA"));
    }

    #[test]
    fn another_type_is_refused() {
        let mut stream = Stream::default();
        let mut wrong = request(&[], "");
        wrong.type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();

        let status = stream.accept(&wrong).unwrap_err();

        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
