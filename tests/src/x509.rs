//! Reading certificates the control plane issued, and checking them with
//! openssl, an independent verifier.

use std::path::Path;
use std::process::Command;

use x509_parser::extensions::GeneralName;

/// The URI SANs of a DER certificate.
pub fn uris(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let Some(sans) = parsed
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
    else {
        return Ok(Vec::new());
    };
    Ok(sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect())
}

/// The single SPIFFE ID of a DER certificate.
pub fn spiffe_id(der: &[u8]) -> Result<String, String> {
    match uris(der)?.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!("expected one URI SAN, found {other:?}")),
    }
}

/// The first certificate of a PEM text, as DER.
pub fn first_der(pem: &str) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("a PEM certificate");
    block.contents
}

/// The serial number of a DER certificate, in lowercase hex.
pub fn serial(der: &[u8]) -> String {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).expect("a certificate");
    parsed
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `key_pem` is the private key of the DER certificate's public
/// key; false when either does not parse.
pub fn key_matches(der: &[u8], key_pem: &str) -> bool {
    let Ok(key) = rcgen::KeyPair::from_pem(key_pem) else {
        return false;
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    parsed.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// `openssl verify -x509_strict -purpose <purpose>` of the first
/// certificate in `chain_pem` against `bundle_pem`, the rest of the chain
/// given as untrusted intermediates. Returns openssl's output on failure.
pub fn openssl_verify(
    dir: &Path,
    bundle_pem: &str,
    chain_pem: &str,
    purpose: &str,
) -> Result<(), String> {
    run_openssl_verify(dir, bundle_pem, chain_pem, purpose, &[])
}

/// [`openssl_verify`] as of `unix_time` (`-attime`): checks a chain at a
/// moment of the test's choosing, so that an expired certificate can still
/// show whether a bundle trusts its issuer.
pub fn openssl_verify_at(
    dir: &Path,
    bundle_pem: &str,
    chain_pem: &str,
    purpose: &str,
    unix_time: i64,
) -> Result<(), String> {
    let at = ["-attime".to_owned(), unix_time.to_string()];
    run_openssl_verify(dir, bundle_pem, chain_pem, purpose, &at)
}

fn run_openssl_verify(
    dir: &Path,
    bundle_pem: &str,
    chain_pem: &str,
    purpose: &str,
    extra: &[String],
) -> Result<(), String> {
    crate::system::ensure_command("openssl", "openssl");
    let bundle = dir.join("bundle.pem");
    let leaf = dir.join("leaf.pem");
    let untrusted = dir.join("untrusted.pem");
    let mut blocks = pem_blocks(chain_pem);
    let first = blocks.remove(0);
    std::fs::write(&bundle, bundle_pem).map_err(|e| e.to_string())?;
    std::fs::write(&leaf, first).map_err(|e| e.to_string())?;

    let mut command = Command::new("openssl");
    command
        .args(["verify", "-x509_strict", "-purpose", purpose])
        .args(extra)
        .arg("-CAfile")
        .arg(&bundle);
    if !blocks.is_empty() {
        std::fs::write(&untrusted, blocks.concat()).map_err(|e| e.to_string())?;
        command.arg("-untrusted").arg(&untrusted);
    }
    let output = command.arg(&leaf).output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && text.trim_end().ends_with(": OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// The PEM blocks of a text, each with its armour.
pub fn pem_blocks(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END)
        .filter(|block| block.contains("BEGIN CERTIFICATE"))
        .map(|block| format!("{}\n", block.trim()))
        .collect()
}
