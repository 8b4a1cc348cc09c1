//! Reads through the API are recorded on chain like reads at the prompt: each body a
//! logged-in member is shown that someone else wrote becomes part of an access record
//! signed by that member, once per body and member (within [`MAX_REMEMBERED_READS`]).

use std::sync::{Arc, Mutex};

use health_workflow::patient::MAX_ACCESS_BODIES;
use health_workflow::{Actor, BodyReader, PatientId, Reading};
use ledger_core::sealed::BodyId;
use ledger_core::{AccountId, BlockHash, BoundedSet};
use p2p::Vault;

use super::auth::Viewer;
use crate::fhir::export::ChainRecord;
use crate::launch::Handle;

/// Most (member, body) reads remembered as recorded; older ones may be recorded again.
pub(crate) const MAX_REMEMBERED_READS: usize = 100_000;

/// The reads this API has recorded.
pub(crate) struct ReadLog {
    recorded: Mutex<BoundedSet<(AccountId, BodyId)>>,
}

impl Default for ReadLog {
    fn default() -> Self {
        ReadLog {
            recorded: Mutex::new(BoundedSet::new(MAX_REMEMBERED_READS)),
        }
    }
}

/// The bodies of `records` that `viewer` opens and did not write.
pub(super) fn opened(
    genesis: BlockHash,
    viewer: &Viewer,
    records: &[ChainRecord],
    vault: &Vault,
) -> Vec<BodyId> {
    let reader = BodyReader::new(genesis, viewer.account, &viewer.key);
    let mut bodies = Vec::new();
    for record in records {
        let tx = &record.tx;
        let ledger_core::TxBody::App(event) = &tx.body else {
            continue;
        };
        if tx.author == viewer.account {
            continue;
        }
        for (section, reference) in event.sealed() {
            let read = reader.read_at(&tx.author, event, section, &reference, |h| {
                vault.get(h).ok().flatten()
            });
            if let Some(Reading::Clear(_)) = read {
                bodies.push(reference.body_id);
            }
        }
    }
    bodies
}

/// Records, in the background, that `viewer` read `bodies` about `patient`: the
/// bodies not recorded before, in access records signed by the viewer.
pub(super) fn record(
    handle: &Handle,
    log: &Arc<ReadLog>,
    viewer: &Arc<Viewer>,
    patient: PatientId,
    bodies: Vec<BodyId>,
) {
    let fresh: Vec<BodyId> = {
        let mut recorded = log
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bodies
            .into_iter()
            .filter(|b| recorded.record((viewer.account, *b)))
            .collect()
    };
    if fresh.is_empty() {
        return;
    }
    let (handle, viewer) = (handle.clone(), Arc::clone(viewer));
    tokio::spawn(async move {
        for chunk in fresh.chunks(MAX_ACCESS_BODIES) {
            let (viewer, chunk) = (Arc::clone(&viewer), chunk.to_vec());
            let signed = crate::care::sign_and_submit(&handle, move |ledger| {
                let actor =
                    Actor::new(ledger, &viewer.username, viewer.keys.clone()).map_err(|_| {
                        health_workflow::WorkflowError::Event(
                            health_workflow::EventError::NotAMember {
                                account: viewer.account,
                            },
                        )
                    })?;
                actor.record_access(
                    ledger,
                    patient,
                    viewer.account,
                    chunk.clone(),
                    crate::tools::now(),
                )
            })
            .await;
            if let Err(e) = signed {
                tracing::warn!("a read through the API was not recorded: {e}");
            }
        }
    });
}
