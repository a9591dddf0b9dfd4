//! The one pipeline the three binaries share.
//!
//! It wires a config, an EFD source, a Butler reader, a ConsDB writer and a scheduler store into a task
//! loop with bounded concurrency and graceful shutdown. Not built yet: see the pipeline issue.
