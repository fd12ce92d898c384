//! The bootstrap of a proxyless gRPC application (gRFCs A27, A29, A36,
//! A65): the ADS server with TLS channel credentials from the workload's
//! files, the `palisade` certificate provider over the same files for the
//! data plane, and the server listener template.

use serde_json::{Value, json};

use super::{BUNDLE_FILE, CERTIFICATE_FILE, Client, Inputs, KEY_FILE, REFRESH_INTERVAL};

/// The certificate provider instance the control plane's TLS contexts name.
const CERTIFICATE_PROVIDER: &str = "palisade";

/// The name of a server's Listener; the control plane builds these names.
const SERVER_LISTENER_TEMPLATE: &str = "grpc/server?xds.resource.listening_address=%s";

pub fn bootstrap(inputs: &Inputs) -> Value {
    json!({
        "xds_servers": [{
            "server_uri": inputs.xds_server,
            "channel_creds": [channel_creds(inputs)],
            "server_features": ["xds_v3"],
        }],
        "node": inputs.node(Client::Grpc),
        "certificate_providers": {
            CERTIFICATE_PROVIDER: {
                "plugin_name": "file_watcher",
                "config": files(inputs),
            },
        },
        "server_listener_resource_name_template": SERVER_LISTENER_TEMPLATE,
    })
}

/// mTLS to the control plane with the workload's files (A65), or plaintext.
fn channel_creds(inputs: &Inputs) -> Value {
    match inputs.insecure {
        true => json!({"type": "insecure"}),
        false => json!({"type": "tls", "config": files(inputs)}),
    }
}

/// The certificate, key and bundle, re-read every [`REFRESH_INTERVAL`].
fn files(inputs: &Inputs) -> Value {
    json!({
        "certificate_file": inputs.file(CERTIFICATE_FILE),
        "private_key_file": inputs.file(KEY_FILE),
        "ca_certificate_file": inputs.file(BUNDLE_FILE),
        "refresh_interval": REFRESH_INTERVAL,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::inputs;
    use super::*;

    #[test]
    fn grpc_bootstrap_has_tls_channel_creds_and_a_file_watcher_provider() {
        let bootstrap = bootstrap(&inputs());

        let server = &bootstrap["xds_servers"][0];
        assert_eq!(server["server_uri"], "cp.example:7443");
        assert_eq!(server["server_features"], json!(["xds_v3"]));
        let creds = &server["channel_creds"][0];
        assert_eq!(creds["type"], "tls");
        assert_eq!(creds["config"]["certificate_file"], "/run/certs/svid.pem");
        assert_eq!(
            creds["config"]["private_key_file"],
            "/run/certs/svid-key.pem"
        );
        assert_eq!(
            creds["config"]["ca_certificate_file"],
            "/run/certs/bundle.pem"
        );

        let provider = &bootstrap["certificate_providers"]["palisade"];
        assert_eq!(provider["plugin_name"], "file_watcher");
        assert_eq!(provider["config"]["refresh_interval"], "60s");
        assert_eq!(bootstrap["node"]["id"], "shop/orders-1");
        assert_eq!(
            bootstrap["server_listener_resource_name_template"],
            "grpc/server?xds.resource.listening_address=%s"
        );
    }

    #[test]
    fn insecure_grpc_bootstrap_uses_insecure_channel_creds() {
        let inputs = Inputs {
            insecure: true,
            ..inputs()
        };

        let bootstrap = bootstrap(&inputs);

        assert_eq!(
            bootstrap["xds_servers"][0]["channel_creds"],
            json!([{"type": "insecure"}])
        );
    }
}
