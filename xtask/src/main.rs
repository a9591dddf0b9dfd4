//! Repository chores. `cargo run -p xtask -- tidy` checks the conventions the tidy test enforces.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool reports on the terminal.

mod tidy;

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("tidy") => {
            let problems = tidy::check(&tidy::workspace_root())?;
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::ensure!(problems.is_empty(), "{} tidy problem(s)", problems.len());
            println!("tidy: ok");
            Ok(())
        }
        _ => anyhow::bail!("usage: cargo run -p xtask -- tidy"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn workspace_is_tidy() {
        let problems =
            crate::tidy::check(&crate::tidy::workspace_root()).expect("walk the workspace");
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }
}
