//! Runnable examples of transformed-efd; each is an `[[example]]` target beside this file.
//!
//! - `plan_config`: load and validate a column config and print its query plan.
