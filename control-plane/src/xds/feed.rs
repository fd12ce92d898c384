//! Feeding the compiler: the world loaded from the store at start-up, then
//! every change batch after it and every change of the trust bundle, in
//! order. Batches that arrive together are compiled together.

use std::sync::{Arc, Mutex};

use palisade_model::Kind;

use super::compile::Compiler;
use super::world::{Bundle, Touched, World};
use crate::identity::authority::Authority;
use crate::identity::records::{self, NODE_REVOCATION};
use crate::store::{Revision, Store, StoreError, watch};
use crate::tasks::AbortOnDrop;

/// The kinds xDS compiles from.
const KINDS: [Kind; 6] = [
    Kind::Node,
    Kind::Service,
    Kind::Workload,
    Kind::AuthorizationPolicy,
    Kind::JwtIssuer,
    Kind::RequestAuthentication,
];
/// Batches compiled together at most.
const MAX_BATCHES: usize = 256;
/// Resources read per page while loading.
const PAGE: usize = 1000;

/// Reads the world from the store; returns it with the revision it reflects
/// (changes after it must be applied on top).
pub async fn load(store: &dyn Store, authority: &Authority) -> Result<World, StoreError> {
    let mut world = World::new(authority.trust_domain());
    world.revision = store.revision();
    world.set_bundle(bundle(authority));

    let mut prefixes: Vec<String> = KINDS.iter().map(|k| format!("{k}/")).collect();
    prefixes.push(records::prefix(NODE_REVOCATION, None));
    for prefix in prefixes {
        let mut after: Option<String> = None;
        loop {
            let page = store.list(&prefix, after.as_deref(), PAGE).await?;
            for resource in &page.resources {
                world.insert(resource);
            }
            after = page.resources.last().map(|r| r.key.clone());
            if !page.more {
                break;
            }
        }
    }
    store.settled().await?;
    Ok(world)
}

/// The trust bundle and JWKS the authority publishes now.
pub fn bundle(authority: &Authority) -> Bundle {
    let material = authority.current();
    Bundle {
        x509_pem: material.bundle_pem.clone(),
        jwks_json: material.jwks_json.to_string(),
    }
}

/// Follows the store after `after` and the authority's key material, and
/// applies every change to the compiler.
pub fn spawn(
    compiler: Arc<Mutex<Compiler>>,
    store: Arc<dyn Store>,
    authority: Arc<Authority>,
    after: Revision,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut changes = watch::changes(store, after);
        let mut material = authority.watch();
        loop {
            tokio::select! {
                first = changes.recv() => {
                    let Some(first) = first else { return };
                    let mut batches = vec![first];
                    while batches.len() < MAX_BATCHES {
                        match changes.try_recv() {
                            Ok(next) => batches.push(next),
                            Err(_) => break,
                        }
                    }
                    // Compiling many views is CPU work: keep it off the
                    // threads that serve streams.
                    let compiler = compiler.clone();
                    let compiled = tokio::task::spawn_blocking(move || apply_batches(&compiler, batches));
                    if compiled.await.is_err() {
                        tracing::error!("compiling a change panicked; xDS stops following the store");
                        return;
                    }
                }
                changed = material.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let bundle = bundle(&authority);
                    let views = compiler.lock().expect("compiler lock").update(|w| w.set_bundle(bundle));
                    tracing::debug!(views, "trust bundle compiled");
                }
            }
        }
    }))
}

fn apply_batches(compiler: &Mutex<Compiler>, batches: Vec<watch::Followed>) {
    let mut compiler = compiler.lock().expect("compiler lock");
    let started = std::time::Instant::now();
    let mut revision = None;

    let views = compiler.update(|world| {
        let mut touched = Touched::default();
        for batch in &batches {
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "xDS stopped following the store");
                    continue;
                }
            };
            for event in &batch.events {
                touched.merge(world.change(event));
            }
            world.revision = batch.revision;
            revision = Some(batch.revision);
        }
        touched
    });
    if let Some(revision) = revision {
        tracing::debug!(revision, views, elapsed = ?started.elapsed(), "change compiled");
    }
}
