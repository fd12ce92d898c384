//! Incremental SDS streams: each response carries only the secrets whose
//! version the client does not hold, and names those that went away.
//!
//! The first request subscribes to everything when it names nothing (or
//! `*`); later requests add and drop names. `initial_resource_versions`
//! says what a reconnecting client already holds, so that it is not sent
//! again. A rejected response is logged and not sent again: what the
//! stream records as held is what it last sent.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::feed::Feed;
use super::secrets::{self, Names, Packed};
use super::sotw::check_type;

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

/// The name that subscribes to everything.
const WILDCARD: &str = "*";

/// One stream's subscription and what its client holds.
#[derive(Debug, Default)]
struct Stream {
    names: Names,
    /// Name to version, of every secret the client holds.
    held: BTreeMap<String, String>,
    responses: u64,
    started: bool,
}

/// Serves one stream until the client leaves, the agent stops, or the
/// caller loses its workload.
pub async fn run(mut feed: Feed, mut inbound: Streaming<DeltaDiscoveryRequest>, tx: Tx) {
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
                if let Err(status) = stream.accept(request) {
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
    /// Takes in a request: its acknowledgement and its subscription changes.
    fn accept(&mut self, request: DeltaDiscoveryRequest) -> Result<(), Status> {
        check_type(&request.type_url)?;
        acknowledge(&request);

        if !self.started {
            self.started = true;
            self.names.wildcard = request.resource_names_subscribe.is_empty();
            self.held = request.initial_resource_versions.into_iter().collect();
        }
        for name in request.resource_names_subscribe {
            if name == WILDCARD {
                self.names.wildcard = true;
            } else {
                self.names.names.insert(name);
            }
        }
        for name in request.resource_names_unsubscribe {
            if name == WILDCARD {
                self.names.wildcard = false;
            } else {
                self.names.names.remove(&name);
            }
            self.held.remove(&name);
        }
        Ok(())
    }

    /// Sends what the client does not hold and names what went away.
    async fn push(&mut self, feed: &Feed, tx: &Tx) -> Result<(), ()> {
        if !self.started {
            return Ok(());
        }
        let secrets = feed.secrets(&self.names);
        let changed: Vec<&Packed> = secrets
            .iter()
            .filter(|s| self.held.get(&s.name) != Some(&s.version))
            .collect();
        let removed: Vec<String> = self
            .held
            .keys()
            .filter(|name| !secrets.iter().any(|s| &s.name == *name))
            .cloned()
            .collect();
        if changed.is_empty() && removed.is_empty() {
            return Ok(());
        }

        self.responses += 1;
        let nonce = self.responses.to_string();
        let response = DeltaDiscoveryResponse {
            system_version_info: secrets::version_of(&secrets),
            resources: changed.iter().map(|s| resource(s)).collect(),
            type_url: secrets::type_url(),
            removed_resources: removed,
            nonce: nonce.clone(),
            ..Default::default()
        };
        tx.send(Ok(response)).await.map_err(|_| ())?;

        tracing::debug!(nonce, changed = changed.len(), "secrets sent");
        self.held = secrets.into_iter().map(|s| (s.name, s.version)).collect();
        Ok(())
    }
}

fn resource(secret: &Packed) -> Resource {
    Resource {
        name: secret.name.clone(),
        version: secret.version.clone(),
        resource: Some(secret.resource.clone()),
        ..Default::default()
    }
}

/// Logs what the client said of an earlier response.
fn acknowledge(request: &DeltaDiscoveryRequest) {
    let nonce = &request.response_nonce;
    match &request.error_detail {
        Some(detail) => tracing::warn!(
            %nonce,
            error = %detail.message,
            "secrets rejected by the client"
        ),
        None if !nonce.is_empty() => tracing::debug!(%nonce, "secrets acknowledged"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(subscribe: &[&str], unsubscribe: &[&str]) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: secrets::type_url(),
            resource_names_subscribe: subscribe.iter().map(|n| (*n).to_owned()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_first_request_without_names_subscribes_to_everything() {
        let mut stream = Stream::default();

        stream.accept(request(&[], &[])).unwrap();

        assert!(stream.names.includes("default"));
        assert!(stream.names.includes("ROOTCA"));
    }

    #[test]
    fn names_are_added_and_dropped() {
        let mut stream = Stream::default();
        stream.accept(request(&["default"], &[])).unwrap();
        stream.held.insert("default".into(), "v1".into());

        stream.accept(request(&["ROOTCA"], &["default"])).unwrap();

        assert!(!stream.names.includes("default"));
        assert!(stream.names.includes("ROOTCA"));
        assert!(stream.held.is_empty());
    }

    #[test]
    fn initial_versions_are_what_the_client_holds() {
        let mut stream = Stream::default();
        let mut first = request(&["default"], &[]);
        first
            .initial_resource_versions
            .insert("default".into(), "v1".into());

        stream.accept(first).unwrap();

        assert_eq!(stream.held.get("default").map(String::as_str), Some("v1"));
    }
}
