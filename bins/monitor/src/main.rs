//! `efd-monitor`: retry failed tasks with backoff, mark stale ones, reconcile with the Butler.
//!
//! A thin binary: it will parse options, build the pipeline and run one mode. Until the pipeline
//! issue lands it only says so and exits with status 1.

#[allow(clippy::print_stderr)] // Reporting to the operator is this binary's job.
fn main() -> std::process::ExitCode {
    eprintln!("efd-monitor: not implemented yet (the pipeline and binaries issue builds it)");
    std::process::ExitCode::FAILURE
}
