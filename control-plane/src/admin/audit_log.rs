//! Reading and verifying the audit log.

use palisade_proto::admin as pb;
use tonic::{Response, Status};

use super::{AdminError, AdminService, Caller};
use crate::audit::AuditEntry;
use crate::authz::Permission;

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

impl AdminService {
    pub(super) async fn list_audit_entries(
        &self,
        caller: &Caller,
        request: pb::ListAuditRequest,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        self.authorize(caller, "audit list", Permission::audit(), &[])
            .await?;

        let result = self.read_audit(&request).await;
        self.finish(caller, "audit list", Vec::new(), result).await
    }

    async fn read_audit(
        &self,
        request: &pb::ListAuditRequest,
    ) -> Result<pb::ListAuditResponse, AdminError> {
        let limit = match request.limit as usize {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let mut response = pb::ListAuditResponse {
            head_sequence: self.state.store.audit_head().await?,
            ..Default::default()
        };
        let mut after = request.after_sequence;

        while response.entries.len() < limit {
            let entries = self.state.store.audit_entries(after, limit).await?;
            self.state.store.settled().await?;
            let Some(last) = entries.last() else { break };
            after = last.sequence;
            let wanted = entries
                .into_iter()
                .filter(|e| request.actor.is_empty() || e.record.actor == request.actor);
            response.entries.extend(wanted.map(entry_to_proto));
        }
        response.entries.truncate(limit);
        Ok(response)
    }

    pub(super) async fn verify_audit_chain(
        &self,
        caller: &Caller,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        self.authorize(caller, "audit verify", Permission::audit(), &[])
            .await?;

        let result = self
            .state
            .store
            .verify_audit()
            .await
            .map_err(AdminError::from);
        let result = result.map(|verification| {
            let (first_bad_sequence, problem) = verification.broken.unwrap_or_default();
            pb::VerifyAuditResponse {
                intact: problem.is_empty(),
                entries_checked: verification.entries_checked,
                first_bad_sequence,
                problem,
            }
        });
        self.finish(caller, "audit verify", Vec::new(), result)
            .await
    }
}

fn entry_to_proto(entry: AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        sequence: entry.sequence,
        time_unix_ms: entry.record.time_unix_ms,
        actor: entry.record.actor,
        action: entry.record.action,
        targets: entry.record.targets,
        revision: entry.revision,
        outcome: entry.record.outcome.as_str().to_owned(),
        detail: entry.record.detail,
        previous_hash: entry.previous_hash,
        hash: entry.hash,
    }
}
