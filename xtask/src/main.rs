//! Repository chores. `cargo run -p xtask -- tidy` checks the conventions the tidy test enforces;
//! `cargo run -p xtask -- reliability` writes the table of `docs/reliability.md` from the fault
//! suite's records.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool reports on the terminal.

mod reliability;
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
        Some("reliability") => {
            let root = tidy::workspace_root();
            let records = reliability::read_records(&reliability::faults_dir(&root))?;
            let doc_path = root.join("docs/reliability.md");
            let doc = std::fs::read_to_string(&doc_path)?;
            let new = reliability::splice(&doc, &reliability::table(&records))?;
            std::fs::write(&doc_path, new)?;
            println!(
                "reliability: {} records into {}",
                records.len(),
                doc_path.display()
            );
            Ok(())
        }
        _ => anyhow::bail!("usage: cargo run -p xtask -- tidy|reliability"),
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
