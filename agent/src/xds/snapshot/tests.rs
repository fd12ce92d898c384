use super::*;
use crate::xds::testing::{bundle, response, workload, workloads};

fn resources_of(
    responses: &[envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse],
) -> Resources {
    let mut resources = Resources::default();
    for response in responses {
        resources.apply_delta(response).unwrap();
    }
    resources
}

fn rejection(
    responses: &[envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse],
) -> String {
    build(&resources_of(responses)).unwrap_err().to_string()
}

#[test]
fn every_type_builds_into_one_snapshot() {
    let denied = pb::DenyList {
        revision: 9,
        certificates: vec![pb::RevokedCertificate {
            serial: "0abc".into(),
            not_after_unix: 1,
            node: "web-9".into(),
        }],
    };
    let authorization = pb::Authorization {
        revision: 4,
        namespace: "shop".into(),
        service: "orders".into(),
        ..Default::default()
    };
    let responses = [
        response(types::TRUST_BUNDLE, "1", &[("bundle", &bundle())], &[]),
        response(types::DENY_LIST, "2", &[("revoked", &denied)], &[]),
        workloads("3", &[&workload("orders-1")]),
        response(
            types::AUTHORIZATION,
            "4",
            &[("shop/orders", &authorization)],
            &[],
        ),
    ];

    let snapshot = build(&resources_of(&responses)).unwrap();

    assert_eq!(snapshot.revision, 9);
    assert_eq!(snapshot.workloads["shop/orders-1"].app_port, 9090);
    assert!(snapshot.authorizations.contains_key("shop/orders"));
    assert!(snapshot.denied_serials.contains("0abc"));
    assert_eq!(snapshot.bundle.unwrap().trust_domain, "example.org");
    assert_eq!(snapshot.versions[types::WORKLOAD].len(), 1);
}

#[test]
fn removed_resources_leave_the_snapshot() {
    let mut resources = resources_of(&[workloads(
        "1",
        &[&workload("orders-1"), &workload("orders-2")],
    )]);
    let removal = response::<pb::Workload>(types::WORKLOAD, "2", &[], &["shop/orders-1"]);

    resources.apply_delta(&removal).unwrap();
    let snapshot = build(&resources).unwrap();

    assert_eq!(
        snapshot.workloads.keys().collect::<Vec<_>>(),
        ["shop/orders-2"]
    );
}

#[test]
fn a_zero_port_is_rejected_naming_the_resource_and_the_field() {
    let mut zero = workload("orders-1");
    zero.inbound_port = 0;

    assert_eq!(
        rejection(&[workloads("1", &[&zero])]),
        "Workload shop/orders-1: inbound_port: must be 1 to 65535, not 0"
    );
}

#[test]
fn a_message_that_names_another_resource_is_rejected() {
    let other = workload("orders-2");
    let misnamed = response(types::WORKLOAD, "1", &[("shop/orders-1", &other)], &[]);

    assert_eq!(
        rejection(&[misnamed]),
        "Workload shop/orders-1: name: the message names shop/orders-2, not the resource's name"
    );
}

#[test]
fn a_malformed_spiffe_id_is_rejected() {
    let mut bad = workload("orders-1");
    bad.spiffe_id = "spiffe://Example.org/ns/shop".into();

    let reason = rejection(&[workloads("1", &[&bad])]);

    assert!(
        reason.starts_with(
            "Workload shop/orders-1: spiffe_id: \"spiffe://Example.org/ns/shop\" is not a SPIFFE ID"
        ),
        "{reason}"
    );
}

#[test]
fn a_bundle_without_certificates_is_rejected() {
    let mut empty = bundle();
    empty.x509_pem = "not pem".into();
    let mut garbled = bundle();
    garbled.x509_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();

    assert_eq!(
        rejection(&[response(
            types::TRUST_BUNDLE,
            "1",
            &[("bundle", &empty)],
            &[]
        )]),
        "TrustBundle bundle: x509_pem: holds no certificate"
    );
    let reason = rejection(&[response(
        types::TRUST_BUNDLE,
        "1",
        &[("bundle", &garbled)],
        &[],
    )]);
    assert!(
        reason.starts_with("TrustBundle bundle: x509_pem: certificate 1: not X.509"),
        "{reason}"
    );
}

#[test]
fn bytes_that_do_not_decode_are_rejected() {
    let mut resources = Resources::default();
    let raw = RawResource {
        version: "v".into(),
        value: vec![0xff, 0xff, 0xff],
    };
    resources.insert(types::AUTHORIZATION, "shop/orders", raw);

    let reason = build(&resources).unwrap_err().to_string();

    assert!(
        reason.starts_with("Authorization shop/orders: does not decode"),
        "{reason}"
    );
}

#[test]
fn rule_fields_are_named_by_their_path() {
    let authorization = pb::Authorization {
        namespace: "shop".into(),
        service: "orders".into(),
        allow: vec![pb::AuthorizationRule {
            from: vec![pb::Source {
                ip_blocks: vec![pb::IpNetwork {
                    address: vec![10, 0, 0, 0],
                    prefix_len: 33,
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let responses = [response(
        types::AUTHORIZATION,
        "1",
        &[("shop/orders", &authorization)],
        &[],
    )];

    assert_eq!(
        rejection(&responses),
        "Authorization shop/orders: allow[0].from[0].ip_blocks[0].prefix_len: 33 is longer than 32"
    );
}

#[test]
fn endpoints_need_an_identity_and_ports() {
    let endpoints = pb::Endpoints {
        namespace: "shop".into(),
        service: "orders".into(),
        spiffe_id: "spiffe://example.org/ns/shop/sa/orders".into(),
        endpoints: vec![pb::Endpoint {
            address: "10.0.0.1".into(),
            inbound_port: 0,
            ..Default::default()
        }],
        ..Default::default()
    };
    let responses = [response(
        types::ENDPOINTS,
        "1",
        &[("shop/orders", &endpoints)],
        &[],
    )];

    assert_eq!(
        rejection(&responses),
        "Endpoints shop/orders: endpoints[0].inbound_port: must be 1 to 65535, not 0"
    );
}

#[test]
fn deny_list_serials_must_be_lowercase_hex() {
    let list = pb::DenyList {
        revision: 1,
        certificates: vec![pb::RevokedCertificate {
            serial: "0ABC".into(),
            ..Default::default()
        }],
    };
    let responses = [response(types::DENY_LIST, "1", &[("revoked", &list)], &[])];

    assert_eq!(
        rejection(&responses),
        "DenyList revoked: certificates[0].serial: \"0ABC\" is not lowercase hex"
    );
}

#[test]
fn a_response_of_an_unknown_type_or_with_a_foreign_body_is_refused() {
    let unknown = response::<pb::Workload>("type.googleapis.com/example.Nothing", "1", &[], &[]);
    let mut foreign = workloads("2", &[&workload("orders-1")]);
    foreign.resources[0].resource.as_mut().unwrap().type_url = types::ENDPOINTS.into();
    let mut resources = Resources::default();

    assert_eq!(
        resources.apply_delta(&unknown).unwrap_err().to_string(),
        "type type.googleapis.com/example.Nothing: not a type this agent subscribes to"
    );
    assert_eq!(
        resources.apply_delta(&foreign).unwrap_err().to_string(),
        format!("Workload shop/orders-1: its type is {}", types::ENDPOINTS)
    );
}
