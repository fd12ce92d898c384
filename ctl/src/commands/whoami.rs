//! `palisadectl whoami`: the identity the control plane sees in our client
//! certificate, and the roles bound to it.

use std::process::ExitCode;

use palisade_proto::admin::{WhoAmIRequest, WhoAmIResponse};

use crate::client::Server;
use crate::error::RpcError;
use crate::output;

pub async fn run(server: &Server) -> anyhow::Result<ExitCode> {
    let mut admin = server.connect().await?;
    let response = admin
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(RpcError::of("whoami"))?;

    output::print(&render(&response.into_inner()))?;
    Ok(ExitCode::SUCCESS)
}

fn render(response: &WhoAmIResponse) -> String {
    let roles = match response.roles.as_slice() {
        [] => "(none)".to_owned(),
        roles => roles.join(", "),
    };
    format!("identity: {}\nroles:    {roles}\n", response.identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_identity_and_roles() {
        let response = WhoAmIResponse {
            identity: "spiffe://corp/admin/ada".into(),
            roles: vec!["admin".into(), "auditor".into()],
        };

        assert_eq!(
            render(&response),
            "identity: spiffe://corp/admin/ada\nroles:    admin, auditor\n"
        );
    }
}
