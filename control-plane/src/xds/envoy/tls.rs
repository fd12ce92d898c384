//! mTLS settings: where the workload's certificate and the trust bundle come
//! from, and which identity the peer must prove.
//!
//! Envoy reads both over SDS from the host agent (secrets
//! [`WORKLOAD_CERTIFICATE`] and [`ROOT_CERTIFICATE`] through the bootstrap
//! cluster [`AGENT_SDS_CLUSTER`]). gRPC does not speak SDS: it reads them
//! from the bootstrap's certificate provider [`CERTIFICATE_PROVIDER`].
//!
//! The peer check differs too. Envoy gets `match_typed_subject_alt_names`
//! (URI SAN, exact). gRPC C-core (and so Python and C++) reads only the
//! older `match_subject_alt_names`, and gRPC Java mishandles the typed
//! field, so gRPC gets the older field: an exact match on the SPIFFE ID,
//! which only a URI SAN can carry.

use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, ConfigSource, GrpcService, TransportSocket, api_config_source,
    config_source, grpc_service,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    DownstreamTlsContext, SdsSecretConfig, SubjectAltNameMatcher, UpstreamTlsContext,
    common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::BoolValue;

use super::Flavor;
use super::names::{
    AGENT_SDS_CLUSTER, CERTIFICATE_PROVIDER, ROOT_CERTIFICATE, WORKLOAD_CERTIFICATE,
};
use super::proto::{pack, tls_socket};

/// ALPN for HTTP/2 only, which gRPC needs.
const H2: &[&str] = &["h2"];

/// ALPN for a listener that speaks HTTP/2 or HTTP/1.1.
const H2_OR_HTTP1: &[&str] = &["h2", "http/1.1"];

/// Client side: present the workload's certificate, require the upstream
/// to prove `peer` (a SPIFFE ID). `h2` asks for HTTP/2 by ALPN (Envoy only;
/// gRPC negotiates it itself).
pub fn upstream(flavor: Flavor, peer: &str, h2: bool) -> TransportSocket {
    let mut common = common(flavor, peer_check(flavor, peer));
    if flavor == Flavor::Envoy && h2 {
        common.alpn_protocols = strings(H2);
    }

    tls_socket(pack(UpstreamTlsContext {
        common_tls_context: Some(common),
        ..UpstreamTlsContext::default()
    }))
}

/// Server side: present the workload's certificate and require a client
/// certificate that chains to the trust bundle. Who the client is, is for
/// the RBAC filters to judge. `http` offers HTTP/2 and HTTP/1.1 by ALPN
/// (Envoy only).
pub fn downstream(flavor: Flavor, http: bool) -> TransportSocket {
    let mut common = common(flavor, CertificateValidationContext::default());
    if flavor == Flavor::Envoy && http {
        common.alpn_protocols = strings(H2_OR_HTTP1);
    }

    tls_socket(pack(DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue { value: true }),
        ..DownstreamTlsContext::default()
    }))
}

/// The certificate and the validation context, from SDS or the provider.
fn common(flavor: Flavor, mut validation: CertificateValidationContext) -> CommonTlsContext {
    use common_tls_context::ValidationContextType;

    match flavor {
        Flavor::Envoy => CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds(WORKLOAD_CERTIFICATE)],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(validation),
                    validation_context_sds_secret_config: Some(sds(ROOT_CERTIFICATE)),
                    ..Default::default()
                },
            )),
            ..CommonTlsContext::default()
        },
        Flavor::Grpc => {
            validation.ca_certificate_provider_instance = Some(provider(ROOT_CERTIFICATE));
            CommonTlsContext {
                tls_certificate_provider_instance: Some(provider(WORKLOAD_CERTIFICATE)),
                validation_context_type: Some(ValidationContextType::ValidationContext(validation)),
                ..CommonTlsContext::default()
            }
        }
    }
}

/// A validation context that requires the peer's SPIFFE ID to be `peer`.
/// gRPC's field is deprecated in Envoy's API, but it is the one gRPC reads.
#[allow(deprecated)]
fn peer_check(flavor: Flavor, peer: &str) -> CertificateValidationContext {
    let exact = StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(peer.to_owned())),
        ..StringMatcher::default()
    };
    match flavor {
        Flavor::Envoy => CertificateValidationContext {
            match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                san_type: subject_alt_name_matcher::SanType::Uri.into(),
                matcher: Some(exact),
                ..SubjectAltNameMatcher::default()
            }],
            ..CertificateValidationContext::default()
        },
        Flavor::Grpc => CertificateValidationContext {
            match_subject_alt_names: vec![exact],
            ..CertificateValidationContext::default()
        },
    }
}

/// A secret fetched over SDS from the host agent.
fn sds(name: &str) -> SdsSecretConfig {
    let agent = GrpcService {
        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
            grpc_service::EnvoyGrpc {
                cluster_name: AGENT_SDS_CLUSTER.to_owned(),
                ..Default::default()
            },
        )),
        ..GrpcService::default()
    };
    let source = ApiConfigSource {
        api_type: api_config_source::ApiType::Grpc.into(),
        transport_api_version: ApiVersion::V3.into(),
        grpc_services: vec![agent],
        ..ApiConfigSource::default()
    };

    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ConfigSource {
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
                source,
            )),
            resource_api_version: ApiVersion::V3.into(),
            ..ConfigSource::default()
        }),
    }
}

/// A certificate from the bootstrap's provider.
fn provider(certificate: &str) -> CertificateProviderPluginInstance {
    CertificateProviderPluginInstance {
        instance_name: CERTIFICATE_PROVIDER.to_owned(),
        certificate_name: certificate.to_owned(),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|&value| value.to_owned()).collect()
}
