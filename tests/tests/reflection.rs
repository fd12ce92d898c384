//! The admin port speaks the standard gRPC discovery services, so that
//! grpcurl and load balancers work against it: server reflection (v1 and
//! v1alpha) names and describes the services, and the health service says
//! SERVING for each of them.

use palisade_tests::ControlPlane;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use tonic_reflection::pb::v1alpha;

const ADMIN: &str = "palisade.admin.v1.Admin";
const IDENTITY: &str = "palisade.identity.v1.Identity";
const HEALTH: &str = "grpc.health.v1.Health";

async fn channel() -> (ControlPlane, Channel) {
    let mut cp = ControlPlane::init("reflection.test").unwrap();
    cp.start().await.unwrap();
    let channel = cp.channel(&cp.admin_credentials()).await.unwrap();
    (cp, channel)
}

/// Sends one reflection request and returns the one answer, or the status
/// that ended the stream instead.
async fn reflect(channel: &Channel, request: MessageRequest) -> Result<MessageResponse, Status> {
    let mut client = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer: ServerReflectionResponse = answers.message().await?.expect("an answer");
    Ok(answer.message_response.expect("a message"))
}

#[tokio::test]
async fn reflection_lists_the_admin_identity_and_health_services() {
    let (_cp, channel) = channel().await;

    let answer = reflect(&channel, MessageRequest::ListServices(String::new()))
        .await
        .unwrap();

    let MessageResponse::ListServicesResponse(list) = answer else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [ADMIN, IDENTITY, HEALTH] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn reflection_describes_the_admin_service() {
    let (_cp, channel) = channel().await;

    let request = MessageRequest::FileContainingSymbol(ADMIN.into());
    let answer = reflect(&channel, request).await.unwrap();

    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a file descriptor: {answer:?}");
    };
    let described = files
        .file_descriptor_proto
        .iter()
        .find(|file| contains(file, b"palisade/admin/v1/admin.proto"))
        .expect("admin.proto among the descriptors");
    for method in ["Apply", "Watch", "ListAudit"] {
        assert!(
            contains(described, method.as_bytes()),
            "{method} is not described"
        );
    }
}

#[tokio::test]
async fn reflection_answers_an_unknown_symbol_with_not_found() {
    let (_cp, channel) = channel().await;

    let request = MessageRequest::FileContainingSymbol("palisade.admin.v1.Nothing".into());
    let status = reflect(&channel, request).await.unwrap_err();

    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("palisade.admin.v1.Nothing"),
        "{status:?}"
    );
}

#[tokio::test]
async fn older_clients_find_the_same_services_through_v1alpha() {
    use v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use v1alpha::server_reflection_response::MessageResponse as AlphaResponse;

    let (_cp, channel) = channel().await;
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };

    let mut answers = AlphaClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();

    let Some(AlphaResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list");
    };
    assert!(list.service.iter().any(|s| s.name == ADMIN));
}

#[tokio::test]
async fn health_says_serving_for_the_server_and_each_service() {
    let (_cp, channel) = channel().await;
    let mut health = HealthClient::new(channel);

    for service in ["", ADMIN, IDENTITY] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let status = health.check(request).await.unwrap().into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }
    let unknown = HealthCheckRequest {
        service: "palisade.admin.v1.Nothing".into(),
    };
    let status = health.check(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
