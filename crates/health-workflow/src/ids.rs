//! Identifiers of patients, test orders and prescriptions.
//!
//! Each is a UUID version 4 chosen by the front end that creates the event (this crate
//! draws no randomness itself) and checked by the rules. Different things get different
//! types, so a test order id can never be passed where a prescription id is expected.
//! Lab results have no id of their own: a lab result is named by the [`TxId`] of the
//! transaction that recorded it, which is unique and known as soon as it is signed.
//!
//! [`TxId`]: ledger_core::TxId

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The version 4 id made of these random bytes (the version and variant bits
            /// are set over them). Callers draw the bytes, for example with
            /// `uuid::Uuid::new_v4()` or their own random source.
            pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
                $name(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            /// The underlying UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }

            /// Whether this is a version 4 (random) UUID, as the rules require.
            pub fn is_v4(&self) -> bool {
                self.0.get_version() == Some(uuid::Version::Random)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                $name(uuid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text.trim()).map($name)
            }
        }
    };
}

uuid_id!(
    /// A patient, chosen at registration.
    PatientId
);
uuid_id!(
    /// A test order, chosen by the doctor in a consultation.
    OrderId
);
uuid_id!(
    /// A prescription, chosen by the prescribing doctor.
    PrescriptionId
);
uuid_id!(
    /// A consent grant, chosen by the patient granting it.
    GrantId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_make_a_v4_id_that_parses_back() {
        let id = PatientId::from_random_bytes([7; 16]);
        assert!(id.is_v4());
        assert_eq!(id.to_string().parse::<PatientId>(), Ok(id));
        assert!(!PatientId(Uuid::nil()).is_v4());
        assert!("not a uuid".parse::<OrderId>().is_err());
    }
}
