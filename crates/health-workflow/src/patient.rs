//! The patient's own part of the ledger: keys, consent, audited reads, break-glass and
//! erasure.
//!
//! - **Keys.** A registration records the patient's signing account and X25519
//!   encryption key ([`PatientKeys`]), signed by the patient over the network, the
//!   patient id and both keys, so nobody can register a key the patient does not hold.
//!   A patient key may author only the patient's own events: [`ConsentGrant`],
//!   [`ConsentRevocation`], [`ErasureRequest`] and an encryption key rotation. It earns
//!   and pays nothing: no transfer from or to it is valid.
//! - **Consent.** Each member's access to a patient's [`Category`] of records is a
//!   grant: the treatment-consent default ([`ConsentTable::treatment`]: by role, with
//!   no end) until the patient revokes it ([`GrantRef::Treatment`]), and the grants the
//!   patient signs (to a member or a role, for some categories, within a validity window
//!   `[not_before, not_after)`, for a stated purpose). A member records an event about a
//!   patient only under a live grant for each category the event writes, checked
//!   against the block time; each refusal is its own [`EventError`]: no grant, revoked,
//!   expired, not yet valid, not signed by the patient.
//! - **Audited reads.** An [`AccessRecord`] names a reader, a patient, the bodies read,
//!   and the purpose; its block gives the time. The patient's audit lists them.
//! - **Break-glass.** A doctor without a grant reads with a stated reason
//!   ([`AccessPurpose::BreakGlass`]): recorded on chain, it opens a window of
//!   [`PARAM_BREAK_GLASS_MINUTES`] in which that doctor has the care team's access, and
//!   the patient sees it flagged. Only doctors, only with a reason, never after erasure.
//! - **Erasure.** From the block of the patient's [`ErasureRequest`] on, nothing more is
//!   recorded about the patient, grants are void and no body is served. Each node
//!   deletes what it holds and posts an [`ErasureReceipt`]; the patient sees which
//!   members confirmed.
//!
//! The public strings (a grant's purpose, a break-glass reason) are on the chain for
//! every node to check: they must not hold clinical details.
//!
//! [`ConsentTable::treatment`]: crate::ConsentTable::treatment

use std::fmt;

use ledger_core::sealed::EncryptionPublicKey;
use ledger_core::{AccountId, BlockHash, Keypair, Signature, Timestamp, TxId, verify_signature};
use serde::{Deserialize, Serialize};

use crate::body::Category;
use crate::consent::ConsentTable;
use crate::event::EventError;
use crate::ids::{GrantId, PatientId};
use crate::role::Role;
use crate::seal::{BodyId, EncryptionKey};
use crate::state::{HistoryEntry, Recorded};

/// Domain of the patient's signature over its keys in a registration.
pub const PATIENT_KEYS_DOMAIN: &[u8] = b"healthchain/patient-keys/v1";

/// Genesis parameter: minutes a break-glass read lets its doctor read the patient's
/// records.
pub const PARAM_BREAK_GLASS_MINUTES: &str = "break_glass_minutes";
/// Default of [`PARAM_BREAK_GLASS_MINUTES`]: one hour.
pub const DEFAULT_BREAK_GLASS_MINUTES: u64 = 60;

/// Longest purpose of a grant, or reason of a break-glass read, in bytes.
pub const MAX_PURPOSE: usize = 200;
/// Most bodies one access record names.
pub const MAX_ACCESS_BODIES: usize = 64;

/// The patient's public keys, as a registration records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientKeys {
    /// The patient's signing account: it authors the patient's own events.
    pub account: AccountId,
    /// The patient's X25519 encryption key: every body about the patient is sealed to
    /// it.
    pub encryption: EncryptionPublicKey,
    /// The patient's signature over [`PatientKeys::message`]: proof the patient holds
    /// the signing key and chose the encryption key.
    pub proof: Signature,
}

impl PatientKeys {
    /// What the patient signs: the domain, the network, the patient id, both keys.
    pub fn message(
        genesis: &BlockHash,
        patient: &PatientId,
        account: &AccountId,
        encryption: &EncryptionPublicKey,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(PATIENT_KEYS_DOMAIN.len() + 32 * 3 + 16);
        out.extend_from_slice(PATIENT_KEYS_DOMAIN);
        out.extend_from_slice(genesis.hash().as_bytes());
        out.extend_from_slice(patient.uuid().as_bytes());
        out.extend_from_slice(account.as_bytes());
        out.extend_from_slice(&encryption.to_byte_array());
        out
    }

    /// The keys of the patient who holds `keys` (its encryption key derived from the
    /// same secret, [`EncryptionKey::of_member`]), signed for `patient` on `genesis`.
    pub fn sign(genesis: &BlockHash, patient: &PatientId, keys: &Keypair) -> PatientKeys {
        let encryption = EncryptionKey::of_member(keys).public();
        let account = keys.account();
        let proof = keys.sign(&Self::message(genesis, patient, &account, &encryption));
        PatientKeys {
            account,
            encryption,
            proof,
        }
    }

    /// Whether the proof is the account's signature over these keys for `patient` on
    /// `genesis`.
    pub fn is_proven(&self, genesis: &BlockHash, patient: &PatientId) -> bool {
        verify_signature(
            &self.account,
            &Self::message(genesis, patient, &self.account, &self.encryption),
            &self.proof,
        )
    }
}

/// To whom a grant gives access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Grantee {
    /// One member, by signing account.
    Member(AccountId),
    /// Every member of a role of the care team.
    Role(Role),
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Member(account) => write!(f, "member {account:#}"),
            Grantee::Role(role) => write!(f, "every {role}"),
        }
    }
}

/// The patient grants a member or a role access to some categories of their records,
/// for a window of time and a stated purpose. Signed by the patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGrant {
    /// The grant's id (UUID v4, unused so far); a revocation names it.
    pub grant_id: GrantId,
    /// The patient granting.
    pub patient_id: PatientId,
    /// Who may read.
    pub grantee: Grantee,
    /// What they may read: at least one category, each once.
    pub categories: Vec<Category>,
    /// The first block time at which the grant is live.
    pub not_before: Timestamp,
    /// The first block time at which it is no longer live (it has expired).
    pub not_after: Timestamp,
    /// Why (public: no clinical details), at most [`MAX_PURPOSE`] bytes.
    pub purpose: String,
}

/// Which grant a revocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantRef {
    /// The treatment-consent default of a role (every category the role reads by
    /// default).
    Treatment(Role),
    /// A grant the patient signed.
    Grant(GrantId),
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantRef::Treatment(role) => write!(f, "the treatment consent of every {role}"),
            GrantRef::Grant(id) => write!(f, "grant {id}"),
        }
    }
}

/// The patient revokes a grant: from its block on, the grantee records nothing under it
/// and no node serves or seals a body to it under it. A data key already delivered
/// cannot be taken back. Signed by the patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRevocation {
    /// The patient revoking.
    pub patient_id: PatientId,
    /// The grant revoked.
    pub grant: GrantRef,
}

/// The patient asks for erasure: from its block on, nothing more is recorded about the
/// patient, every grant is void, and every node deletes the patient's bodies. Signed
/// by the patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// The patient.
    pub patient_id: PatientId,
}

/// Why a body was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessPurpose {
    /// Care under a live grant.
    Treatment,
    /// An emergency read by a doctor without a grant, with the reason (public, at most
    /// [`MAX_PURPOSE`] bytes).
    BreakGlass {
        /// Why.
        reason: String,
    },
}

impl AccessPurpose {
    /// Whether this is a break-glass read.
    pub fn is_break_glass(&self) -> bool {
        matches!(self, AccessPurpose::BreakGlass { .. })
    }
}

impl fmt::Display for AccessPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessPurpose::Treatment => f.write_str("treatment"),
            AccessPurpose::BreakGlass { reason } => write!(f, "BREAK-GLASS: {reason}"),
        }
    }
}

/// A member's node records that a reader read (or was served) bodies about a patient.
/// Its block gives the time. With [`AccessPurpose::BreakGlass`] it is the doctor's own
/// emergency read, which opens the doctor's break-glass window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// The patient the bodies are about.
    pub patient_id: PatientId,
    /// Who read them.
    pub reader: AccountId,
    /// The bodies read: at least one, at most [`MAX_ACCESS_BODIES`].
    pub bodies: Vec<BodyId>,
    /// Why.
    pub purpose: AccessPurpose,
}

/// A member confirms that its node has erased an erased patient's bodies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReceipt {
    /// The erased patient.
    pub patient_id: PatientId,
    /// The transaction of the erasure request it answers.
    pub request: TxId,
}

/// A grant as the state keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// The grant.
    pub grant: ConsentGrant,
    /// Where it was recorded.
    pub granted: Recorded,
    /// Its revocation, once there is one.
    pub revoked: Option<Recorded>,
}

/// A break-glass window: a doctor reads the patient's records until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakGlassWindow {
    /// The doctor.
    pub doctor: AccountId,
    /// The first block time at which it is closed.
    pub until: Timestamp,
    /// The access record that opened it.
    pub opened: Recorded,
}

/// A patient's consent and its record: grants, revocations, break-glass windows, reads,
/// erasure and receipts, each where the chain recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consent {
    /// Roles whose treatment-consent default the patient revoked, with the revocation.
    pub treatment_revoked: Vec<(Role, Recorded)>,
    /// The grants the patient signed, in chain order.
    pub grants: Vec<GrantRecord>,
    /// Break-glass windows, in chain order.
    pub break_glass: Vec<BreakGlassWindow>,
    /// The access records naming the patient, in chain order.
    pub accesses: Vec<HistoryEntry>,
    /// The erasure request, once recorded.
    pub erased: Option<Recorded>,
    /// The erasure receipts, in chain order (their authors are the members that
    /// confirmed).
    pub receipts: Vec<Recorded>,
}

/// Who asks for access, and when: a member, its role, a block time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asker {
    pub(crate) account: AccountId,
    pub(crate) role: Option<Role>,
    pub(crate) time: Timestamp,
}

/// Why no grant covers an access, most telling first.
enum Miss {
    Revoked(GrantRef),
    Expired(Timestamp),
    NotYet(Timestamp),
    None,
}

impl Consent {
    /// Whether `asker` holds a live grant for `category` of `patient` at its time: the
    /// treatment default of its role (unless revoked), a live grant to it or its role,
    /// or, for a doctor, an open break-glass window. The error says why not.
    pub(crate) fn check(
        consent: Option<&Consent>,
        patient: PatientId,
        asker: Asker,
        category: Category,
    ) -> Result<(), EventError> {
        let miss = match consent {
            None => {
                if asker
                    .role
                    .is_some_and(|r| ConsentTable::treatment().may_read(r, category))
                {
                    return Ok(());
                }
                Miss::None
            }
            Some(c) => match c.find(asker, category) {
                Ok(()) => return Ok(()),
                Err(miss) => miss,
            },
        };
        let account = asker.account;
        Err(match miss {
            Miss::Revoked(grant) => EventError::GrantRevoked {
                patient,
                account,
                category,
                grant,
            },
            Miss::Expired(at) => EventError::GrantExpired {
                patient,
                account,
                category,
                expired: at,
            },
            Miss::NotYet(from) => EventError::GrantNotYetValid {
                patient,
                account,
                category,
                from,
            },
            Miss::None => EventError::NoGrant {
                patient,
                account,
                category,
            },
        })
    }

    /// Finds a live grant for `asker`; without one, says why: the newest signed grant
    /// that covers it (revoked, expired, not yet live), else its role's revoked
    /// treatment default, else nothing at all.
    fn find(&self, asker: Asker, category: Category) -> Result<(), Miss> {
        if self.erased.is_some() {
            return Err(Miss::None);
        }
        if asker.role == Some(Role::Doctor)
            && self
                .break_glass
                .iter()
                .any(|w| w.doctor == asker.account && asker.time < w.until)
        {
            return Ok(());
        }
        let mut miss = Miss::None;
        if let Some(role) = asker.role
            && ConsentTable::treatment().may_read(role, category)
        {
            if !self.treatment_revoked.iter().any(|(r, _)| *r == role) {
                return Ok(());
            }
            miss = Miss::Revoked(GrantRef::Treatment(role));
        }
        let mut signed = None;
        for record in &self.grants {
            let grant = &record.grant;
            let covers = match grant.grantee {
                Grantee::Member(account) => account == asker.account,
                Grantee::Role(role) => asker.role == Some(role),
            } && grant.categories.contains(&category);
            if !covers {
                continue;
            }
            signed = Some(if record.revoked.is_some() {
                Miss::Revoked(GrantRef::Grant(grant.grant_id))
            } else if asker.time >= grant.not_after {
                Miss::Expired(grant.not_after)
            } else if asker.time < grant.not_before {
                Miss::NotYet(grant.not_before)
            } else {
                return Ok(());
            });
        }
        Err(signed.unwrap_or(miss))
    }

    /// The grants live at `time`: the treatment defaults not revoked (as
    /// [`GrantRef::Treatment`]) and the signed grants neither revoked nor outside their
    /// window.
    pub fn live_grants(&self, time: Timestamp) -> Vec<GrantRef> {
        if self.erased.is_some() {
            return Vec::new();
        }
        let mut live: Vec<GrantRef> = Role::ALL
            .into_iter()
            .filter(|r| r.is_clinical())
            .filter(|r| !self.treatment_revoked.iter().any(|(x, _)| x == r))
            .map(GrantRef::Treatment)
            .collect();
        live.extend(
            self.grants
                .iter()
                .filter(|g| {
                    g.revoked.is_none() && g.grant.not_before <= time && time < g.grant.not_after
                })
                .map(|g| GrantRef::Grant(g.grant.grant_id)),
        );
        live
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::{Hash, Height};
    use proptest::prelude::*;

    use super::*;

    fn account(n: u8) -> AccountId {
        Keypair::from_seed([n; 32]).account()
    }

    fn at(n: u64) -> Recorded {
        Recorded {
            tx_id: TxId::from_hash(Hash::of(&n.to_le_bytes())),
            height: Height(n),
            time: Timestamp(n),
            author: account(9),
        }
    }

    fn grant(n: u8, grantee: Grantee, category: Category, window: (u64, u64)) -> GrantRecord {
        GrantRecord {
            grant: ConsentGrant {
                grant_id: GrantId::from_random_bytes([n; 16]),
                patient_id: PatientId::from_random_bytes([1; 16]),
                grantee,
                categories: vec![category],
                not_before: Timestamp(window.0),
                not_after: Timestamp(window.1),
                purpose: "care".into(),
            },
            granted: at(u64::from(n)),
            revoked: None,
        }
    }

    fn asker(n: u8, role: Option<Role>, time: u64) -> Asker {
        Asker {
            account: account(n),
            role,
            time: Timestamp(time),
        }
    }

    #[test]
    fn names_read_as_people_say_them() {
        assert_eq!(
            Grantee::Role(Role::Pharmacist).to_string(),
            "every pharmacist"
        );
        assert!(
            Grantee::Member(account(1))
                .to_string()
                .starts_with("member ")
        );
        assert_eq!(
            GrantRef::Treatment(Role::Doctor).to_string(),
            "the treatment consent of every doctor"
        );
        let id = GrantId::from_random_bytes([2; 16]);
        assert_eq!(GrantRef::Grant(id).to_string(), format!("grant {id}"));
        assert_eq!(AccessPurpose::Treatment.to_string(), "treatment");
        let glass = AccessPurpose::BreakGlass {
            reason: "ER".into(),
        };
        assert_eq!(glass.to_string(), "BREAK-GLASS: ER");
        assert!(glass.is_break_glass() && !AccessPurpose::Treatment.is_break_glass());
    }

    #[test]
    fn patient_keys_are_proven_only_for_their_network_and_patient() {
        let keys = Keypair::from_seed([3; 32]);
        let genesis = BlockHash::from_byte_array([4; 32]);
        let patient = PatientId::from_random_bytes([5; 16]);
        let signed = PatientKeys::sign(&genesis, &patient, &keys);
        assert!(signed.is_proven(&genesis, &patient));
        assert!(!signed.is_proven(&BlockHash::from_byte_array([6; 32]), &patient));
        assert!(!signed.is_proven(&genesis, &PatientId::from_random_bytes([7; 16])));
        let mut other_key = signed;
        other_key.encryption = EncryptionKey::from_seed(&[8; 32]).public();
        assert!(!other_key.is_proven(&genesis, &patient));
        assert_eq!(signed.encryption, EncryptionKey::of_member(&keys).public());
    }

    #[test]
    fn the_newest_signed_grant_explains_a_refusal_before_the_treatment_default() {
        let patient = PatientId::from_random_bytes([1; 16]);
        let category = Category::Prescriptions;
        let mut consent = Consent::default();
        consent.treatment_revoked.push((Role::Pharmacist, at(1)));
        let pharmacist = asker(3, Some(Role::Pharmacist), 50);
        assert!(matches!(
            Consent::check(Some(&consent), patient, pharmacist, category),
            Err(EventError::GrantRevoked {
                grant: GrantRef::Treatment(Role::Pharmacist),
                ..
            })
        ));
        consent.grants.push(grant(
            2,
            Grantee::Role(Role::Pharmacist),
            category,
            (10, 40),
        ));
        assert!(matches!(
            Consent::check(Some(&consent), patient, pharmacist, category),
            Err(EventError::GrantExpired { expired, .. }) if expired == Timestamp(40)
        ));
        consent
            .grants
            .push(grant(3, Grantee::Member(account(3)), category, (60, 90)));
        assert!(matches!(
            Consent::check(Some(&consent), patient, pharmacist, category),
            Err(EventError::GrantNotYetValid { from, .. }) if from == Timestamp(60)
        ));
        // Another member of the role is not covered by a member's grant.
        assert!(matches!(
            Consent::check(
                Some(&consent),
                patient,
                asker(4, Some(Role::Pharmacist), 70),
                category
            ),
            Err(EventError::GrantExpired { .. })
        ));
        assert_eq!(
            Consent::check(
                Some(&consent),
                patient,
                asker(3, Some(Role::Pharmacist), 70),
                category
            ),
            Ok(())
        );
        // Without a record the treatment default holds; an outsider has no grant.
        assert_eq!(Consent::check(None, patient, pharmacist, category), Ok(()));
        assert!(matches!(
            Consent::check(None, patient, asker(5, None, 1), category),
            Err(EventError::NoGrant { .. })
        ));
        // Erasure voids everything.
        consent.erased = Some(at(80));
        assert!(
            Consent::check(
                Some(&consent),
                patient,
                asker(3, Some(Role::Pharmacist), 70),
                category
            )
            .is_err()
        );
        assert!(consent.live_grants(Timestamp(70)).is_empty());
    }

    #[test]
    fn live_grants_list_the_defaults_not_revoked_and_the_grants_in_their_window() {
        let mut consent = Consent::default();
        consent.treatment_revoked.push((Role::Doctor, at(1)));
        consent.grants.push(grant(
            1,
            Grantee::Role(Role::Doctor),
            Category::ConsultationNotes,
            (10, 20),
        ));
        let mut revoked = grant(
            2,
            Grantee::Role(Role::Doctor),
            Category::ConsultationNotes,
            (0, 100),
        );
        revoked.revoked = Some(at(5));
        consent.grants.push(revoked);
        let live = consent.live_grants(Timestamp(15));
        assert_eq!(
            live,
            [
                GrantRef::Treatment(Role::LabTechnician),
                GrantRef::Treatment(Role::Pharmacist),
                GrantRef::Grant(GrantId::from_random_bytes([1; 16])),
            ]
        );
        assert_eq!(consent.live_grants(Timestamp(20)).len(), 2);
        assert_eq!(consent.live_grants(Timestamp(9)).len(), 2);
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![
            Just(Role::Doctor),
            Just(Role::LabTechnician),
            Just(Role::Pharmacist)
        ]
    }

    fn category() -> impl Strategy<Value = Category> {
        prop::sample::select(Category::ALL.to_vec())
    }

    proptest! {
        /// Against a model: an asker may write (or be served) a category at a time
        /// exactly when the patient is not erased and either its role's treatment
        /// default covers the category and is not revoked, or a grant naming it or its
        /// role covers the category, is not revoked and has the time in its window, or
        /// (a doctor) a break-glass window of its is open.
        #[test]
        fn access_is_granted_exactly_when_a_live_grant_covers_it(
            revoked_roles in prop::collection::vec(role(), 0..3),
            grants in prop::collection::vec(
                (any::<bool>(), 0u8..3, role(), category(), 0u64..100, 0u64..100, any::<bool>()),
                0..6,
            ),
            glass in prop::option::of((0u8..3, 0u64..100)),
            erased in any::<bool>(),
            who in 0u8..3,
            who_role in prop::option::of(role()),
            wanted in category(),
            time in 0u64..100,
        ) {
            let mut consent = Consent::default();
            for r in &revoked_roles {
                if !consent.treatment_revoked.iter().any(|(x, _)| x == r) {
                    consent.treatment_revoked.push((*r, at(1)));
                }
            }
            for (i, (to_member, member, role, category, start, length, revoked)) in grants.iter().enumerate() {
                let grantee = if *to_member { Grantee::Member(account(*member)) } else { Grantee::Role(*role) };
                let mut record = grant(i as u8 + 10, grantee, *category, (*start, start + length + 1));
                if *revoked {
                    record.revoked = Some(at(2));
                }
                consent.grants.push(record);
            }
            if let Some((doctor, until)) = glass {
                consent.break_glass.push(BreakGlassWindow { doctor: account(doctor), until: Timestamp(until), opened: at(3) });
            }
            if erased {
                consent.erased = Some(at(4));
            }
            let asker = asker(who, who_role, time);
            let treatment = who_role.is_some_and(|r| {
                ConsentTable::treatment().may_read(r, wanted) && !consent.treatment_revoked.iter().any(|(x, _)| *x == r)
            });
            let signed = consent.grants.iter().any(|g| {
                let covers = match g.grant.grantee {
                    Grantee::Member(a) => a == asker.account,
                    Grantee::Role(r) => who_role == Some(r),
                };
                covers && g.grant.categories.contains(&wanted) && g.revoked.is_none()
                    && g.grant.not_before <= asker.time && asker.time < g.grant.not_after
            });
            let glass_open = who_role == Some(Role::Doctor)
                && consent.break_glass.iter().any(|w| w.doctor == asker.account && asker.time < w.until);
            let expected = !erased && (treatment || signed || glass_open);
            let patient = PatientId::from_random_bytes([1; 16]);
            prop_assert_eq!(Consent::check(Some(&consent), patient, asker, wanted).is_ok(), expected);
        }
    }
}
