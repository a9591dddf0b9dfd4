//! Owns the ConsDB `efd_<instrument>` schemas.
//!
//! Only this crate knows the ConsDB DDL and SQL: additive migrations from the column config, Felis
//! YAML emission, and wide and unpivoted upserts to a primary and its replicas. Not built yet: see the
//! consdb-writer issue.
