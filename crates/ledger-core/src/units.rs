//! Quantities with a meaning: amounts of e-cash, heights, timestamps.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of e-cash. Arithmetic is checked only: there is no `+` that can wrap.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize,
)]
pub struct Amount(pub u64);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// The number of units.
    pub fn units(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The height of a block: genesis is 0, its child 1.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize,
)]
pub struct Height(pub u64);

impl Height {
    /// The height of the next block, saturating (a chain of 2^64 blocks is not a concern).
    pub fn next(self) -> Height {
        Height(self.0.saturating_add(1))
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Milliseconds since the Unix epoch. The ledger never reads a clock: callers pass the
/// current time in.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating.
    pub fn plus_millis(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_arithmetic_is_checked() {
        assert_eq!(Amount(u64::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(5).checked_sub(Amount(2)), Some(Amount(3)));
        assert_eq!(Amount(5).checked_add(Amount(2)), Some(Amount(7)));
        assert_eq!(Amount(5).checked_sub(Amount(5)), Some(Amount::ZERO));
    }

    #[test]
    fn accessors_return_the_value() {
        assert_eq!(Amount(1_100).units(), 1_100);
        assert_eq!(Timestamp(1_742_947_200_000).millis(), 1_742_947_200_000);
        assert_eq!(Height(7).next(), Height(8));
        assert_eq!(Height(u64::MAX).next(), Height(u64::MAX));
        assert_eq!(Timestamp(10).plus_millis(5), Timestamp(15));
        assert_eq!(Timestamp(u64::MAX).plus_millis(5), Timestamp(u64::MAX));
    }

    #[test]
    fn quantities_display_as_people_read_them() {
        assert_eq!(Amount(998_800).to_string(), "998800");
        assert_eq!(Height(42).to_string(), "42");
        assert_eq!(Timestamp(1_500).to_string(), "1500ms");
        // Width and alignment pass through to the number.
        assert_eq!(format!("{:>6}", Amount(700)), "   700");
        assert_eq!(format!("{:<4}|", Height(3)), "3   |");
    }
}
