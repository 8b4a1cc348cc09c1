//! The rules of the patient's own events, of reads and of erasure receipts, and whom a
//! patient's records may be given to: the consent half of [`HealthPolicy`](super::HealthPolicy).

use ledger_core::sealed::BodyAccess;
use ledger_core::{AccountId, Genesis, Timestamp, TxContext};

use super::{HealthUndo, UNDO_ORDER};
use crate::body::Category;
use crate::event::{EventError, EventKind};
use crate::ids::PatientId;
use crate::patient::{
    AccessRecord, Asker, BreakGlassWindow, Consent, ConsentGrant, ConsentRevocation,
    DEFAULT_BREAK_GLASS_MINUTES, ErasureReceipt, GrantRecord, GrantRef, Grantee,
    PARAM_BREAK_GLASS_MINUTES,
};
use crate::role::Role;
use crate::state::{HealthState, HistoryEntry, Patient, Recorded};

/// The author of `ctx` asking for access at the block time.
pub(super) fn asker(ctx: &TxContext<'_>) -> Asker {
    Asker {
        account: ctx.author,
        role: ctx.member.and_then(|m| Role::from_label(&m.role)),
        time: ctx.block_time,
    }
}

/// Checks that `patient` is not erased and that `asker` holds a live grant for each of
/// `categories`.
pub(super) fn consented(
    patient: &Patient,
    asker: Asker,
    categories: &[Category],
) -> Result<(), EventError> {
    if patient.is_erased() {
        return Err(EventError::PatientErased {
            patient: patient.id,
        });
    }
    for category in categories {
        Consent::check(patient.consent.as_deref(), patient.id, asker, *category)?;
    }
    Ok(())
}

/// The patient's consent record, created on first use.
pub(super) fn consent_mut(patient: &mut Patient) -> &mut Consent {
    patient.consent.get_or_insert_with(Box::default)
}

/// Drops a consent record an undo emptied, so the state equals a replay's.
pub(super) fn tidy(patient: &mut Patient) {
    if patient.consent.as_deref() == Some(&Consent::default()) {
        patient.consent = None;
    }
}

// The patient's own events, reads and erasure receipts.
impl HealthState {
    /// Reverts one change to a patient's consent record.
    pub(super) fn undo_consent(&mut self, id: &PatientId, change: impl FnOnce(&mut Consent)) {
        let patient = self.patients.get_mut(id).expect(UNDO_ORDER);
        change(consent_mut(patient));
        tidy(patient);
    }

    fn patient_mut(&mut self, id: &PatientId) -> Result<&mut Patient, EventError> {
        self.patients
            .get_mut(id)
            .map(Box::as_mut)
            .ok_or(EventError::UnknownPatient { patient: *id })
    }

    pub(super) fn grant(
        &mut self,
        ctx: &TxContext<'_>,
        g: &ConsentGrant,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let care_team = match g.grantee {
            Grantee::Member(account) => ctx
                .genesis
                .member(&account)
                .and_then(|m| Role::from_label(&m.role))
                .is_some_and(Role::is_clinical),
            Grantee::Role(role) => role.is_clinical(),
        };
        let patient = self.patient_mut(&g.patient_id)?;
        if patient.is_erased() {
            return Err(EventError::PatientErased {
                patient: g.patient_id,
            });
        }
        if !care_team {
            return Err(EventError::NotCareTeam { grantee: g.grantee });
        }
        // Grant ids are unique per patient (a grant is only ever named with its
        // patient).
        if let Some(c) = &patient.consent
            && c.grants.iter().any(|r| r.grant.grant_id == g.grant_id)
        {
            return Err(EventError::DuplicateGrant { grant: g.grant_id });
        }
        consent_mut(patient).grants.push(GrantRecord {
            grant: g.clone(),
            granted: at,
            revoked: None,
        });
        Ok(HealthUndo::Granted(g.patient_id))
    }

    pub(super) fn revoke(
        &mut self,
        r: &ConsentRevocation,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let patient = self.patient_mut(&r.patient_id)?;
        if patient.is_erased() {
            return Err(EventError::PatientErased {
                patient: r.patient_id,
            });
        }
        let id = patient.id;
        let unknown = EventError::UnknownGrant {
            patient: id,
            grant: r.grant,
        };
        let already = EventError::AlreadyRevoked {
            patient: id,
            grant: r.grant,
        };
        match r.grant {
            GrantRef::Treatment(role) => {
                if !role.is_clinical() {
                    return Err(unknown);
                }
                let consent = consent_mut(patient);
                if consent.treatment_revoked.iter().any(|(x, _)| *x == role) {
                    tidy(patient);
                    return Err(already);
                }
                consent.treatment_revoked.push((role, at));
            }
            GrantRef::Grant(grant) => {
                let record = patient
                    .consent
                    .as_mut()
                    .and_then(|c| c.grants.iter_mut().find(|g| g.grant.grant_id == grant))
                    .ok_or(unknown)?;
                if record.revoked.is_some() {
                    return Err(already);
                }
                record.revoked = Some(at);
            }
        }
        Ok(HealthUndo::Revoked(id, r.grant))
    }

    pub(super) fn record_access(
        &mut self,
        ctx: &TxContext<'_>,
        a: &AccessRecord,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let patient = self.patient_mut(&a.patient_id)?;
        let break_glass = a.purpose.is_break_glass();
        if break_glass {
            let role = ctx.member.and_then(|m| Role::from_label(&m.role));
            if role != Some(Role::Doctor) || a.reader != ctx.author {
                return Err(EventError::BreakGlassNotPermitted {
                    role: ctx.member.map_or_else(String::new, |m| m.role.clone()),
                });
            }
            if patient.is_erased() {
                return Err(EventError::PatientErased {
                    patient: a.patient_id,
                });
            }
        }
        let consent = consent_mut(patient);
        consent
            .accesses
            .push(HistoryEntry::of(at, EventKind::AccessRecord));
        if break_glass {
            let minutes = ctx
                .genesis
                .parameter(PARAM_BREAK_GLASS_MINUTES, DEFAULT_BREAK_GLASS_MINUTES);
            consent.break_glass.push(BreakGlassWindow {
                doctor: ctx.author,
                until: ctx.block_time.plus_millis(minutes.saturating_mul(60_000)),
                opened: at,
            });
        }
        Ok(HealthUndo::Accessed(a.patient_id, break_glass))
    }

    pub(super) fn request_erasure(
        &mut self,
        id: &PatientId,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let patient = self.patient_mut(id)?;
        if patient.is_erased() {
            return Err(EventError::PatientErased { patient: *id });
        }
        consent_mut(patient).erased = Some(at);
        self.erased.push(*id);
        Ok(HealthUndo::ErasureRequested(*id))
    }

    pub(super) fn confirm_erasure(
        &mut self,
        r: &ErasureReceipt,
        at: Recorded,
    ) -> Result<HealthUndo, EventError> {
        let patient = self.patient_mut(&r.patient_id)?;
        let not_erased = EventError::NotErased {
            patient: r.patient_id,
            request: r.request,
        };
        let consent = patient.consent.as_mut().ok_or(not_erased.clone())?;
        if consent.erased.map(|e| e.tx_id) != Some(r.request) {
            return Err(not_erased);
        }
        if consent.receipts.iter().any(|x| x.author == at.author) {
            return Err(EventError::DuplicateReceipt {
                patient: r.patient_id,
                member: at.author,
            });
        }
        consent.receipts.push(at);
        Ok(HealthUndo::ErasureConfirmed(r.patient_id))
    }

    /// Whether `reader` may be given a body of `category` about `patient` at `now`.
    pub fn body_access(
        &self,
        genesis: &Genesis,
        patient: &PatientId,
        category: Category,
        reader: &AccountId,
        now: Timestamp,
    ) -> BodyAccess {
        let role = genesis
            .member(reader)
            .and_then(|m| Role::from_label(&m.role));
        let asker = Asker {
            account: *reader,
            role,
            time: now,
        };
        let Some(record) = self.patients.get(patient) else {
            // A registration still on its way: the treatment default.
            return match Consent::check(None, *patient, asker, category) {
                Ok(()) => BodyAccess::Granted,
                Err(_) => BodyAccess::Denied,
            };
        };
        if record.is_erased() {
            BodyAccess::Erased
        } else if record.account == *reader
            || Consent::check(record.consent.as_deref(), *patient, asker, category).is_ok()
        {
            BodyAccess::Granted
        } else {
            BodyAccess::Denied
        }
    }

    /// Whether `account` holds a live grant for `category` of `patient` at `now` (the
    /// patient always does): whom a body written now is sealed to. The error says why
    /// not.
    pub fn may_read(
        &self,
        genesis: &Genesis,
        patient: &PatientId,
        category: Category,
        account: &AccountId,
        now: Timestamp,
    ) -> Result<(), EventError> {
        let role = genesis
            .member(account)
            .and_then(|m| Role::from_label(&m.role));
        let asker = Asker {
            account: *account,
            role,
            time: now,
        };
        match self.patients.get(patient) {
            None => Consent::check(None, *patient, asker, category),
            Some(p) if p.account == *account => Ok(()),
            Some(p) => consented(p, asker, &[category]),
        }
    }
}
