//! A client that reconnects after the control plane restarts resumes its
//! TLS session instead of paying for a full handshake, and is still known by
//! the certificate it first presented.

use palisade_tests::ControlPlane;
use palisade_tests::pb::{WhoAmIRequest, WhoAmIResponse};
use palisade_tests::raw::{Session, unary};

const WHOAMI: &str = "/palisade.admin.v1.Admin/WhoAmI";

#[tokio::test]
async fn a_session_resumes_across_a_restart_and_keeps_its_identity() {
    let mut cp = ControlPlane::init("resume.test").unwrap();
    cp.start().await.unwrap();
    let session = Session::new(&cp.admin_credentials()).unwrap();

    let (mut first, resumed) = session.connect(&cp).await.unwrap();
    let before: WhoAmIResponse = unary(&mut first, WHOAMI, &WhoAmIRequest {})
        .await
        .unwrap()
        .unwrap();
    assert!(!resumed, "the first connection has nothing to resume");
    drop(first);

    cp.kill();
    cp.start().await.unwrap();
    let (mut second, resumed) = session.connect(&cp).await.unwrap();
    let after: WhoAmIResponse = unary(&mut second, WHOAMI, &WhoAmIRequest {})
        .await
        .unwrap()
        .unwrap();

    assert!(
        resumed,
        "the restarted control plane did not resume the session"
    );
    assert_eq!(after.identity, before.identity);
    assert_eq!(after.identity, "spiffe://resume.test/admin/admin");
}
