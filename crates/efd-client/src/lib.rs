//! Fetches EFD telemetry for the planned queries of `transform-core`.
//!
//! Two sources will implement one async trait: InfluxQL over the InfluxDB 1.x `/query` HTTP API, and a
//! line-protocol file (the embedded default used by the demo). Only this crate knows InfluxQL and the
//! `/query` JSON. Not built yet: see the efd-client issue.
