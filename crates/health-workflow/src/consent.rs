//! Who may read what: the consent table.
//!
//! Each [`Category`] of sealed body has the roles whose members may read it. The
//! default, [`ConsentTable::treatment`], is what a patient consents to by being
//! treated:
//!
//! | category | readers |
//! |---|---|
//! | demographics | the whole care team (doctors, lab, pharmacy) |
//! | consultation notes | doctors |
//! | test orders and results | doctors and the lab |
//! | prescriptions (and so fills) | doctors and the pharmacy |
//!
//! The author of a body always reads it too. A body is sealed to the readers the
//! table names when it is written; a member whose role the table leaves out gets no
//! wrap, so no node of theirs can open it, whatever it stores.

use std::collections::BTreeMap;

use ledger_core::{AccountId, Genesis};

use crate::body::Category;
use crate::role::Role;
use crate::seal::Reader;
use crate::state::HealthState;

/// The roles that may read each category of sealed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentTable {
    readers: BTreeMap<Category, Vec<Role>>,
}

impl Default for ConsentTable {
    fn default() -> Self {
        ConsentTable::treatment()
    }
}

impl ConsentTable {
    /// The treatment-consent default: demographics to the care team, notes to doctors,
    /// tests and results to doctors and the lab, prescriptions to doctors and the pharmacy.
    pub fn treatment() -> ConsentTable {
        use Role::{Doctor, LabTechnician, Pharmacist};
        ConsentTable {
            readers: BTreeMap::from([
                (
                    Category::Demographics,
                    vec![Doctor, LabTechnician, Pharmacist],
                ),
                (Category::ConsultationNotes, vec![Doctor]),
                (Category::TestsAndResults, vec![Doctor, LabTechnician]),
                (Category::Prescriptions, vec![Doctor, Pharmacist]),
            ]),
        }
    }

    /// A table in which no role reads anything (only each body's author).
    pub fn empty() -> ConsentTable {
        ConsentTable {
            readers: BTreeMap::new(),
        }
    }

    /// Lets `role` read `category`.
    pub fn grant(&mut self, category: Category, role: Role) {
        let roles = self.readers.entry(category).or_default();
        if !roles.contains(&role) {
            roles.push(role);
        }
    }

    /// Stops `role` reading `category` (bodies written from now on).
    pub fn revoke(&mut self, category: Category, role: Role) {
        if let Some(roles) = self.readers.get_mut(&category) {
            roles.retain(|r| *r != role);
        }
    }

    /// The roles that read `category`.
    pub fn roles(&self, category: Category) -> &[Role] {
        self.readers.get(&category).map_or(&[], Vec::as_slice)
    }

    /// Whether `role` reads `category`.
    pub fn may_read(&self, role: Role, category: Category) -> bool {
        self.roles(category).contains(&role)
    }

    /// The readers of a body of `category` written by `author`: the author, then every
    /// roster member whose role reads the category, each with its current encryption
    /// key ([`HealthState::encryption_key`]). Members without an encryption key are
    /// left out: they cannot read anything.
    pub fn readers(
        &self,
        category: Category,
        author: &AccountId,
        genesis: &Genesis,
        state: &HealthState,
    ) -> Vec<Reader> {
        let mut readers: Vec<Reader> = Vec::new();
        if let Some(key) = state.encryption_key(author) {
            readers.push(Reader {
                account: *author,
                key,
            });
        }
        for member in &genesis.roster {
            if member.account == *author {
                continue;
            }
            let reads = Role::from_label(&member.role).is_some_and(|r| self.may_read(r, category));
            if let (true, Some(key)) = (reads, state.encryption_key(&member.account)) {
                readers.push(Reader {
                    account: member.account,
                    key,
                });
            }
        }
        readers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_treatment_default_keeps_each_category_to_its_team() {
        let table = ConsentTable::treatment();
        for role in [Role::Doctor, Role::LabTechnician, Role::Pharmacist] {
            assert!(table.may_read(role, Category::Demographics));
        }
        assert!(table.may_read(Role::Doctor, Category::ConsultationNotes));
        assert!(!table.may_read(Role::LabTechnician, Category::ConsultationNotes));
        assert!(!table.may_read(Role::Pharmacist, Category::ConsultationNotes));
        assert!(table.may_read(Role::LabTechnician, Category::TestsAndResults));
        assert!(!table.may_read(Role::Pharmacist, Category::TestsAndResults));
        assert!(table.may_read(Role::Pharmacist, Category::Prescriptions));
        assert!(!table.may_read(Role::LabTechnician, Category::Prescriptions));
        for category in Category::ALL {
            assert!(!table.may_read(Role::System, category));
        }
    }

    #[test]
    fn grants_and_revocations_change_one_cell() {
        let mut table = ConsentTable::treatment();
        table.revoke(Category::Demographics, Role::Pharmacist);
        assert!(!table.may_read(Role::Pharmacist, Category::Demographics));
        assert!(table.may_read(Role::LabTechnician, Category::Demographics));
        table.grant(Category::ConsultationNotes, Role::Pharmacist);
        table.grant(Category::ConsultationNotes, Role::Pharmacist);
        assert_eq!(
            table.roles(Category::ConsultationNotes),
            [Role::Doctor, Role::Pharmacist]
        );
        assert!(
            ConsentTable::empty()
                .roles(Category::Demographics)
                .is_empty()
        );
    }
}
