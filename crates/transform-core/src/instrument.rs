//! The instruments the service knows, with the names each system uses for them.

use std::fmt;
use std::str::FromStr;

/// A camera whose exposures and visits get EFD summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Instrument {
    /// The Auxiliary Telescope's camera.
    Latiss,
    /// The LSST Camera.
    LsstCam,
    /// The commissioning camera.
    LsstComCam,
    /// The commissioning camera's simulator.
    LsstComCamSim,
}

impl Instrument {
    /// Every instrument.
    pub const ALL: [Instrument; 4] = [
        Instrument::Latiss,
        Instrument::LsstCam,
        Instrument::LsstComCam,
        Instrument::LsstComCamSim,
    ];

    /// The lower-case name used on the command line and in schema and table names.
    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::Latiss => "latiss",
            Instrument::LsstCam => "lsstcam",
            Instrument::LsstComCam => "lsstcomcam",
            Instrument::LsstComCamSim => "lsstcomcamsim",
        }
    }

    /// The name in the Butler registry's `instrument` dimension.
    pub fn butler_name(self) -> &'static str {
        match self {
            Instrument::Latiss => "LATISS",
            Instrument::LsstCam => "LSSTCam",
            Instrument::LsstComCam => "LSSTComCam",
            Instrument::LsstComCamSim => "LSSTComCamSim",
        }
    }

    /// The ConsDB schema of its EFD summaries, `efd_<instrument>`.
    pub fn consdb_schema(self) -> String {
        format!("efd_{}", self.as_str())
    }
}

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Instrument {
    type Err = String;

    /// Parses a name case-insensitively (`LATISS`, `LSSTCam`, `lsstcam`, ...).
    fn from_str(s: &str) -> Result<Instrument, String> {
        let lower = s.trim().to_ascii_lowercase();
        Instrument::ALL
            .into_iter()
            .find(|i| i.as_str() == lower)
            .ok_or_else(|| {
                format!(
                    "unknown instrument `{s}` (expected one of {})",
                    Instrument::ALL.map(Instrument::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!("LSSTCam".parse::<Instrument>(), Ok(Instrument::LsstCam));
        assert_eq!(
            " latiss ".parse::<Instrument>().unwrap().butler_name(),
            "LATISS"
        );
        assert_eq!(Instrument::LsstComCam.consdb_schema(), "efd_lsstcomcam");
        assert!(
            "hsc"
                .parse::<Instrument>()
                .unwrap_err()
                .contains("latiss, lsstcam")
        );
    }
}
