//! The one switch between the corrected behaviour and the Python service's exact numbers.

use std::fmt;
use std::str::FromStr;

use crate::kernels::{RmsFormula, Underdetermined};

/// Which behaviour to follow where the Python service has defects (DESIGN.md, "Default semantics and
/// the reference-compatibility switch"). The parts that live in this crate:
///
/// | behaviour | `Default` | `Reference` |
/// |---|---|---|
/// | `rms_from_polynomial_fit` | residual RMS | n×n broadcast value |
/// | `start_offset` | widens the window start and the query | ignored |
/// | visit unpivoted rows with value 0 | stored | dropped |
/// | item timespans | ns | rounded to µs |
///
/// (The sources apply the reference's sample-time truncation, µs for `/query`, ms for packed series,
/// with the helpers in [`crate::time`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Semantics {
    /// Corrected behaviour.
    #[default]
    Default,
    /// Reproduce the Python service (`--compat reference`), so a migration can be diffed.
    Reference,
}

impl Semantics {
    /// Which RMS formula `rms_from_polynomial_fit` uses.
    pub fn rms_formula(self) -> RmsFormula {
        match self {
            Semantics::Default => RmsFormula::Residual,
            Semantics::Reference => RmsFormula::ReferenceBroadcast,
        }
    }

    /// What `rms_from_polynomial_fit` gives with too few points.
    pub fn rms_underdetermined(self) -> Underdetermined {
        match self {
            Semantics::Default => Underdetermined::None,
            Semantics::Reference => Underdetermined::Nan,
        }
    }

    /// Whether the config's `start_offset` is honoured.
    pub fn honours_start_offset(self) -> bool {
        self == Semantics::Default
    }

    /// Whether a visit's unpivoted value of 0 (or false) is stored.
    pub fn stores_zero_visit_unpivoted(self) -> bool {
        self == Semantics::Default
    }
}

impl fmt::Display for Semantics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Semantics::Default => "default",
            Semantics::Reference => "reference",
        })
    }
}

impl FromStr for Semantics {
    type Err = String;

    fn from_str(s: &str) -> Result<Semantics, String> {
        match s {
            "default" => Ok(Semantics::Default),
            "reference" => Ok(Semantics::Reference),
            other => Err(format!(
                "unknown semantics `{other}` (expected `default` or `reference`)"
            )),
        }
    }
}
