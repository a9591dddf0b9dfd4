//! Reads exposure and visit records, with their timespans, from a data Butler registry.
//!
//! Only this crate knows the registry schema (PostgreSQL or SQLite) and `butler.yaml`. Timespans are
//! stored as TAI nanoseconds and converted to UTC here. Not built yet: see the butler-reader issue.
