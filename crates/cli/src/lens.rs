//! What the person at the prompt may read: the sealed sections of events opened with
//! the logged-in member's encryption key, and a marker such as
//! `(sealed: consultation notes)` everywhere else.
//!
//! A [`Lens`] reads bodies from the node's [`Vault`]; it never touches the ledger, so
//! views call it where they turn data into lines, off the ledger's task. It notes each
//! body it opens that its reader did not write ([`ReadLog`]): the REPL records those
//! reads on chain for the patient's audit.

use health_workflow::{
    Body, BodyReader, ConsentTable, Event, Reading, Role, Section, read_reference, seal::SealedRef,
};
use ledger_core::sealed::BodyId;
use ledger_core::{AccountId, Hash};
use p2p::Vault;

/// The marker shown for a section the reader may not read.
pub(crate) fn sealed_marker(section: Section) -> String {
    format!("(sealed: {section})")
}

/// The bodies a lens opened for a reader who did not write them: (patient, body).
pub(crate) type ReadLog = std::cell::RefCell<Vec<(health_workflow::PatientId, BodyId)>>;

/// Opens sealed sections for one reader, or for nobody.
pub(crate) struct Lens<'a> {
    reader: Option<BodyReader<'a>>,
    role: Option<Role>,
    /// The reader is the patient: every body about them is sealed to them.
    reads_all: bool,
    vault: &'a Vault,
    log: Option<&'a ReadLog>,
}

impl<'a> Lens<'a> {
    /// A lens that reads nothing: every section shows its marker.
    pub(crate) fn sealed(vault: &'a Vault) -> Self {
        Lens {
            reader: None,
            role: None,
            reads_all: false,
            vault,
            log: None,
        }
    }

    /// A lens for `reader`, a member of role `role`, reading from `vault`.
    pub(crate) fn new(reader: BodyReader<'a>, role: Role, vault: &'a Vault) -> Self {
        Lens {
            reader: Some(reader),
            role: Some(role),
            reads_all: false,
            vault,
            log: None,
        }
    }

    /// A lens for the patient `reader`, reading from `vault`.
    pub(crate) fn patient(reader: BodyReader<'a>, vault: &'a Vault) -> Self {
        Lens {
            reader: Some(reader),
            role: None,
            reads_all: true,
            vault,
            log: None,
        }
    }

    /// Notes in `log` each body opened that the reader did not write.
    pub(crate) fn logging(mut self, log: &'a ReadLog) -> Self {
        self.log = Some(log);
        self
    }

    /// How `section` of `event`, written by `author`, reads: `None` if the event has no
    /// such section.
    pub(crate) fn reading(
        &self,
        author: &AccountId,
        event: &Event,
        section: Section,
    ) -> Option<Result<Reading, String>> {
        let reference = event.sealed_section(section)?;
        self.reading_at(author, event, section, &reference)
    }

    /// How the body `reference` names in `section` of `event` reads (for a section an
    /// event holds more than once: a consultation's test orders).
    pub(crate) fn reading_at(
        &self,
        author: &AccountId,
        event: &Event,
        section: Section,
        reference: &SealedRef,
    ) -> Option<Result<Reading, String>> {
        let failed = std::cell::RefCell::new(None);
        let vault = |hash: &Hash| match self.vault.get(hash) {
            Ok(body) => body,
            Err(e) => {
                *failed.borrow_mut() = Some(e.to_string());
                None
            }
        };
        let reading = read_reference(
            self.reader.as_ref(),
            author,
            event,
            section,
            reference,
            vault,
        )?;
        if let (Some(log), Some(reader), Reading::Clear(_), Some(patient)) =
            (self.log, &self.reader, &reading, event.patient_id())
            && reader.account() != *author
        {
            log.borrow_mut().push((patient, reference.body_id));
        }
        Some(match failed.into_inner() {
            Some(error) => Err(error),
            None => Ok(reading),
        })
    }

    /// The clear body of `section`, if this reader may read it and has it.
    pub(crate) fn body(&self, author: &AccountId, event: &Event, section: Section) -> Option<Body> {
        match self.reading(author, event, section)? {
            Ok(Reading::Clear(body)) => Some(body),
            _ => None,
        }
    }

    /// `section` of `event` as shown: its text quoted, or a marker saying why not.
    pub(crate) fn text(&self, author: &AccountId, event: &Event, section: Section) -> String {
        match self.body(author, event, section) {
            Some(body) => format!("'{}'", body.summary()),
            None => self.plain(author, event, section),
        }
    }

    /// The body `reference` names in `section` of `event`, as [`Lens::text`] shows it.
    pub(crate) fn text_at(
        &self,
        author: &AccountId,
        event: &Event,
        section: Section,
        reference: &SealedRef,
    ) -> String {
        match self.reading_at(author, event, section, reference) {
            Some(Ok(Reading::Clear(body))) => format!("'{}'", body.summary()),
            reading => self.show(section, reading),
        }
    }

    /// `section` of `event` as shown in a list: its text as it is, or the marker.
    pub(crate) fn plain(&self, author: &AccountId, event: &Event, section: Section) -> String {
        self.show(section, self.reading(author, event, section))
    }

    /// The body `reference` names in `section` of `event`, as [`Lens::plain`] shows it.
    pub(crate) fn plain_at(
        &self,
        author: &AccountId,
        event: &Event,
        section: Section,
        reference: &SealedRef,
    ) -> String {
        self.show(section, self.reading_at(author, event, section, reference))
    }

    fn show(&self, section: Section, reading: Option<Result<Reading, String>>) -> String {
        match reading {
            None => String::new(),
            Some(Ok(Reading::Clear(body))) => body.summary(),
            Some(Ok(Reading::Missing)) if self.should_read(section) => {
                format!("(not received yet: {section})")
            }
            Some(Ok(Reading::Refused(e))) => format!("(unreadable {section}: {e})"),
            Some(Ok(_)) => sealed_marker(section),
            Some(Err(e)) => format!("(vault unreadable: {e})"),
        }
    }

    /// Whether the reader's role reads `section` under the treatment default: a body it
    /// lacks is then one it has not received, rather than one sealed to others.
    fn should_read(&self, section: Section) -> bool {
        self.reads_all
            || self
                .role
                .is_some_and(|role| ConsentTable::treatment().may_read(role, section.category()))
    }
}
