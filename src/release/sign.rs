//! Signed changes to the policy in force (release.md, workstation.md): `policy_activated` (a
//! director; the policy file is stored by its SHA-256 and the signature carries that hash),
//! `policy_suspended` and `policy_resumed` (a supervisor or director; they name the policy in
//! force). Each is one `signatures` row in the hash chain, written in one transaction that
//! re-reads the signer's account as it is now; the password was checked by the caller at that
//! moment (`auth::users::authenticate` with `Purpose::Signature`).

use super::policy::Policy;
use super::store::active_in;
use crate::audit::AuditError;
use crate::auth::Principal;
use crate::domain::{Meaning, Role};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

/// What is signed.
#[derive(Debug, Clone)]
pub enum PolicyAction {
    /// Put this file (its exact bytes) in force.
    Activate(Vec<u8>),
    Suspend,
    Resume,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySigned {
    pub signature_id: i64,
    pub meaning: Meaning,
    /// The policy the signature names (activated, suspended or resumed).
    pub policy_sha256: String,
    pub policy_version: String,
    pub policy_name: String,
}

/// Records the signed action; refused for a role that may not sign it, a disabled account, a
/// file that is not a valid policy, a suspension of a suspended policy and a resumption of one
/// in force.
pub async fn sign_policy(
    pool: &PgPool,
    signer: &Principal,
    action: &PolicyAction,
    comment: Option<&str>,
) -> Result<PolicySigned, AuditError> {
    let meaning = match action {
        PolicyAction::Activate(_) => Meaning::PolicyActivated,
        PolicyAction::Suspend => Meaning::PolicySuspended,
        PolicyAction::Resume => Meaning::PolicyResumed,
    };
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.len() > 2000) {
        return Err(AuditError::Invalid(
            "comment: at most 2000 characters".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    // One policy signature at a time: each sees the state the previous one left.
    sqlx::query!("SELECT pg_advisory_xact_lock(7002, 0)")
        .execute(&mut *tx)
        .await?;
    let role = may_sign(&mut tx, signer, meaning).await?;
    let now = active_in(&mut *tx)
        .await
        .map_err(|e| AuditError::Invalid(e.to_string()))?;
    let (policy, bytes) = match action {
        PolicyAction::Activate(bytes) => {
            let p = Policy::parse(bytes)
                .map_err(|e| AuditError::Invalid(format!("not a valid policy: {e}")))?;
            (p, bytes.as_slice())
        }
        PolicyAction::Suspend if now.suspended => {
            return Err(AuditError::Invalid(
                "the release policy is already suspended".into(),
            ));
        }
        PolicyAction::Resume if !now.suspended => {
            return Err(AuditError::Invalid(
                "the release policy is not suspended".into(),
            ));
        }
        PolicyAction::Suspend | PolicyAction::Resume => {
            (now.policy.clone(), now.policy.bytes.as_slice())
        }
    };
    sqlx::query!(
        "INSERT INTO release_policies (sha256, version, name, body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sha256) DO NOTHING",
        &policy.sha256.as_bytes()[..],
        policy.version(),
        policy.name(),
        bytes,
    )
    .execute(&mut *tx)
    .await?;
    let signature_id: i64 = sqlx::query_scalar!(
        "INSERT INTO signatures (decision_id, decision_row_hash, user_id, username, full_name, \
           role, meaning, reason_text) \
         VALUES (NULL, $1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &policy.sha256.as_bytes()[..],
        signer.user_id,
        &signer.username,
        &signer.full_name,
        role as _,
        meaning as _,
        comment,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(PolicySigned {
        signature_id,
        meaning,
        policy_sha256: policy.sha256.to_string(),
        policy_version: policy.version().to_string(),
        policy_name: policy.name().to_string(),
    })
}

/// The signer's account as it is now: enabled, with a role that may sign `meaning`.
async fn may_sign(
    tx: &mut Transaction<'_, Postgres>,
    signer: &Principal,
    meaning: Meaning,
) -> Result<Role, AuditError> {
    let role = crate::audit::signing_role(tx, signer).await?;
    let allowed = match meaning {
        Meaning::PolicyActivated => role.activates_policy(),
        _ => role.suspends_policy(),
    };
    if !allowed {
        return Err(AuditError::Forbidden(format!(
            "a {} may not sign {meaning} (release.md: activation is a director's, suspension and \
             resumption a supervisor's or a director's)",
            role
        )));
    }
    Ok(role)
}
