//! Fleet status: every connected xDS stream, what it subscribed to, what it
//! acknowledged and what it rejected.

use std::time::{SystemTime, UNIX_EPOCH};

use palisade_proto::admin as pb;
use tonic::{Response, Status};

use super::{AdminService, Caller};
use crate::authz::{Permission, Verb};
use crate::xds::fleet::{Protocol, StreamStatus, TypeStatus};
use crate::xds::view::{ClientKey, Flavor};

impl AdminService {
    pub(super) async fn fleet_status(
        &self,
        caller: &Caller,
        request: pb::FleetStatusRequest,
    ) -> Result<Response<pb::FleetStatusResponse>, Status> {
        let action = "status";
        self.authorize(caller, action, Permission::unscoped(Verb::Get), &[])
            .await?;

        let xds = &self.state.xds;
        let mut streams = Vec::new();
        let mut revision = 0;
        for stream in xds.fleet().snapshot() {
            let node = xds.node_of(&stream.client).unwrap_or_default();
            if !request.node.is_empty() && node != request.node {
                continue;
            }
            let (view, current) = xds.revisions(&stream.client);
            revision = current;
            streams.push(stream_to_proto(
                stream,
                node,
                view.unwrap_or(0),
                request.resources,
            ));
        }
        if streams.is_empty() {
            revision = self.state.store.revision();
        }
        Ok(Response::new(pb::FleetStatusResponse { revision, streams }))
    }
}

fn stream_to_proto(
    stream: StreamStatus,
    node: String,
    view: u64,
    resources: bool,
) -> pb::XdsStream {
    let (client, workload) = match &stream.client {
        ClientKey::Agent(_) => ("agent", String::new()),
        ClientKey::Proxy { workload, flavor } => {
            let kind = match flavor {
                Flavor::Envoy => "envoy",
                Flavor::Grpc => "grpc",
            };
            (kind, format!("{}/{}", workload.0, workload.1))
        }
    };
    let protocol = match stream.protocol {
        Protocol::StateOfTheWorld => "sotw",
        Protocol::Delta => "delta",
    };
    pb::XdsStream {
        id: stream.id,
        node,
        client: client.into(),
        workload,
        protocol: protocol.into(),
        peer: stream.peer,
        connected_unix_ms: unix_ms(stream.connected_since),
        view_revision: view,
        types: stream
            .types
            .into_iter()
            .map(|(type_url, status)| type_to_proto(type_url, status, resources))
            .collect(),
    }
}

fn type_to_proto(type_url: String, status: TypeStatus, resources: bool) -> pb::XdsTypeStatus {
    let nack = status.last_nack;
    let held = match resources {
        true => status
            .held
            .into_iter()
            .map(|(name, version)| pb::HeldResource { name, version })
            .collect(),
        false => Vec::new(),
    };
    pb::XdsTypeStatus {
        type_url,
        wildcard: status.subscribed.is_none(),
        subscribed: status.subscribed.unwrap_or(0) as u32,
        sent_revision: status.sent_revision.unwrap_or(0),
        acked_revision: status.acked_revision.unwrap_or(0),
        last_nack_revision: nack.as_ref().map(|n| n.version.clone()).unwrap_or_default(),
        last_nack_error: nack.as_ref().map(|n| n.error.clone()).unwrap_or_default(),
        last_nack_unix_ms: nack.map(|n| unix_ms(n.at)).unwrap_or(0),
        held,
    }
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
