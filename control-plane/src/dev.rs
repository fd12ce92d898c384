//! Development mode: a local data directory, initialized on first use, with
//! the master key kept beside it and a palisadectl config written for the
//! first admin. Convenient, and unsafe for anything but a laptop.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;

use crate::barrier::MasterKey;
use crate::config::ServeConfig;
use crate::data_dir::{DataDir, Opened};
use crate::init::{InitOptions, initialize};

/// The trust domain of a development control plane.
pub const DEV_TRUST_DOMAIN: &str = "palisade.local";
const MASTER_KEY_FILE: &str = "master.key";
const CTL_CONFIG_FILE: &str = "palisadectl.toml";
/// The example file the next steps apply.
const EXAMPLE_FILE: &str = "deploy/examples/shop.yaml";
/// The workload whose gRPC bootstrap the next steps print: in the example,
/// the one workload that may call [`EXAMPLE_TARGET`], so its view resolves it.
const EXAMPLE_CLIENT: &str = "shop/storefront-1";
/// The service the example client dials.
const EXAMPLE_TARGET: &str = "orders.shop";

/// Opens the development data directory, initializing it the first time.
pub async fn prepare(config: &ServeConfig) -> anyhow::Result<Opened> {
    let dir = DataDir::new(&config.data_dir);
    let key_path = config.data_dir.join(MASTER_KEY_FILE);

    if dir.is_initialized() {
        let master = MasterKey::load(Some(&key_path))?;
        return Ok(Opened::open(&dir, &master).await?);
    }

    crate::fsutil::create_private_dir(dir.root())
        .with_context(|| format!("creating {}", dir.root().display()))?;
    let master = MasterKey::generate()?;
    master
        .write_new(&key_path)
        .with_context(|| format!("writing {}", key_path.display()))?;
    let options = InitOptions {
        data_dir: dir,
        trust_domain: DEV_TRUST_DOMAIN.into(),
        server_names: Vec::new(),
        admin_name: "admin".into(),
        admin_ttl: crate::ca::ADMIN_LIFETIME,
        upstream: None,
    };
    Ok(initialize(&options, &master).await?)
}

/// Writes the palisadectl config for `address` and tells the user where
/// things are and what to try next.
pub fn announce(config: &ServeConfig, address: SocketAddr) -> anyhow::Result<()> {
    let root = std::path::absolute(&config.data_dir)?;
    let admin = root.join("admin");
    let ctl_config = root.join(CTL_CONFIG_FILE);
    write_ctl_config(&ctl_config, address, &admin)?;

    println!("Palisade control plane, development mode (trust domain {DEV_TRUST_DOMAIN})");
    println!("  admin API     https://{address} (mTLS; also the identity API)");
    if let Some(jwks) = config.identity.jwks_listen {
        println!("  JWKS          https://{jwks}/.well-known/jwks.json");
    }
    if let Some(xds) = config.xds_plaintext_listen {
        println!(
            "  xDS           {xds} (plaintext, development only; mTLS xDS is on the admin port)"
        );
    }
    println!(
        "  credentials   {}/{{admin.pem,admin-key.pem,ca.pem}}",
        admin.display()
    );
    println!(
        "  master key    {} (dev only: keep it apart in production)",
        root.join(MASTER_KEY_FILE).display()
    );
    println!("  palisadectl   {}", ctl_config.display());
    println!();
    println!("Next, in another terminal in this directory:");
    println!("  cargo run -q -p palisadectl -- whoami");
    println!("  cargo run -q -p palisadectl -- apply -f {EXAMPLE_FILE}");
    println!("  cargo run -q -p palisadectl -- get workloads -n shop");
    if let Some(xds) = config.xds_plaintext_listen {
        println!(
            "  cargo run -q -p palisadectl -- bootstrap grpc --workload {EXAMPLE_CLIENT} --insecure --xds-server {xds} > bootstrap.json"
        );
        println!("  GRPC_XDS_BOOTSTRAP=bootstrap.json <your gRPC client> xds:///{EXAMPLE_TARGET}");
    }
    println!("  cargo run -q -p palisadectl -- status");
    Ok(())
}

fn write_ctl_config(path: &Path, address: SocketAddr, admin: &Path) -> anyhow::Result<()> {
    let text = format!(
        "# Written by palisade-cp dev.\nserver = \"https://{address}\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
        admin.join("ca.pem").display().to_string(),
        admin.join("admin.pem").display().to_string(),
        admin.join("admin-key.pem").display().to_string(),
    );
    crate::fsutil::write_private(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredResource;
    use crate::xds::envoy::{Flavor, proxy_keys};
    use crate::xds::world::World;

    const EXAMPLE: &str = include_str!("../../deploy/examples/shop.yaml");

    fn example_world() -> World {
        let mut world = World::new(DEV_TRUST_DOMAIN);
        for document in palisade_model::parse_and_validate(EXAMPLE).unwrap() {
            world.insert(&StoredResource {
                key: document.key().store_key(),
                revision: 1,
                create_revision: 1,
                document: document.to_json(),
            });
        }
        world
    }

    #[test]
    fn suggested_grpc_client_can_resolve_the_suggested_target() {
        let world = example_world();
        let (namespace, name) = EXAMPLE_CLIENT.split_once('/').unwrap();
        let client = (namespace.to_owned(), name.to_owned());

        let keys = proxy_keys(&world, &client, Flavor::Grpc).expect("the client exists");

        assert!(
            keys.listeners.iter().any(|l| l == EXAMPLE_TARGET),
            "{EXAMPLE_CLIENT} cannot see {EXAMPLE_TARGET}: {:?}",
            keys.listeners
        );
    }
}
