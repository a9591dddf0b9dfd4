//! `efd-job`: create tasks for a date range and process them.
//!
//! A thin binary: it will parse options, build the pipeline and run one mode. Until the pipeline
//! issue lands it only says so and exits with status 1.

#[allow(clippy::print_stderr)] // Reporting to the operator is this binary's job.
fn main() -> std::process::ExitCode {
    eprintln!("efd-job: not implemented yet (the pipeline and binaries issue builds it)");
    std::process::ExitCode::FAILURE
}
