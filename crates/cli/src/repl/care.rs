//! What the REPL does for the patient's audit: recording the reads of each command,
//! and a doctor's break-glass read.

use health_workflow::{PatientId, records};

use super::{Backend, Conversation, Outcome, Repl, refuse, refused, tx_reason};
use crate::args::NodeRole;

impl<B: Backend> Repl<B> {
    /// Records on chain the reads of the command just run: one access record per
    /// patient (and per [`MAX_ACCESS_BODIES`](health_workflow::patient::MAX_ACCESS_BODIES)
    /// bodies), signed by the reader, for bodies this session has not recorded yet.
    pub(super) fn record_reads(&mut self, io: &mut dyn Conversation) -> Outcome {
        let opened = std::mem::take(&mut *self.read_log.borrow_mut());
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        let reader = user.account();
        let mut by_patient: std::collections::BTreeMap<PatientId, Vec<_>> =
            std::collections::BTreeMap::new();
        for (patient, body) in opened {
            if self.recorded.insert((reader, patient, body)) {
                by_patient.entry(patient).or_default().push(body);
            }
        }
        for (patient, bodies) in by_patient {
            for chunk in bodies.chunks(health_workflow::patient::MAX_ACCESS_BODIES) {
                let (actor, chunk, now) = (user.clone(), chunk.to_vec(), self.backend.now());
                let tx = self
                    .backend
                    .query(move |ledger| actor.record_access(ledger, patient, reader, chunk, now))?
                    .map_err(refused)?;
                if let Err(e) = self.backend.submit(tx)? {
                    io.say(&format!(
                        "Warning: your read of patient {patient}'s records was not recorded: {}",
                        tx_reason(&e)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Breaks the glass for the active patient: the read is recorded on chain with its
    /// reason (the patient sees it flagged) and, once mined, opens a window in which
    /// this node fetches the patient's records wrapped to the doctor's key.
    pub(super) fn break_glass(
        &mut self,
        reason: Option<String>,
        io: &mut dyn Conversation,
    ) -> Outcome {
        let actor = self.user_for("break_glass", NodeRole::Doctor)?;
        let (patient, patient_name) = self.active_patient()?;
        let Some(reason) = reason.or_else(|| io.ask("Reason (public: no clinical details): "))
        else {
            return refuse("break-glass abandoned");
        };
        let now = self.backend.now();
        let (tx, minutes) = self.backend.query(move |ledger| {
            let bodies: Vec<_> = records::patient_history(ledger, &patient)
                .ok()
                .flatten()
                .into_iter()
                .flatten()
                .flat_map(|e| {
                    e.event
                        .sealed()
                        .into_iter()
                        .map(|(_, r)| r.body_id)
                        .collect::<Vec<_>>()
                })
                .take(health_workflow::patient::MAX_ACCESS_BODIES)
                .collect();
            let minutes = ledger.genesis().parameter(
                health_workflow::patient::PARAM_BREAK_GLASS_MINUTES,
                health_workflow::patient::DEFAULT_BREAK_GLASS_MINUTES,
            );
            (
                actor.break_glass(ledger, patient, reason.trim(), bodies, now),
                minutes,
            )
        })?;
        let tx = tx.map_err(refused)?;
        match self.backend.submit(tx)? {
            Ok(_) => {
                io.say(&format!(
                    "Break-glass read of {patient_name} recorded (pending until mined); the patient sees it."
                ));
                io.say(&format!(
                    "For {minutes} minutes from its block this node fetches the patient's records: use history."
                ));
                Ok(())
            }
            Err(e) => refuse(format!("break-glass refused: {}", tx_reason(&e))),
        }
    }
}
