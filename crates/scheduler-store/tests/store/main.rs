//! Integration tests of the scheduler store against real databases: PostgreSQL (a throwaway
//! server per test) and SQLite files, every operation on both.

mod claims;
mod common;
mod create;
mod migrations;
mod replicas;
mod time_zone;
