//! Owns the `efd_scheduler.<instrument>` task tables.
//!
//! Only this crate mutates task rows: creation, atomic claims with an owner and a lease, completion,
//! failure, retries and staleness. Not built yet: see the scheduler-store issue.
