//! `docker build` cannot run here (no daemon, no registry but crates.io, PyPI, Debian and npm), so
//! this test reads the `Dockerfile` instead and checks that it matches the workspace: the Rust image
//! is at least the workspace's `rust-version`, the build is release and `--locked`, it builds the
//! package of every binary under `bins/` and copies exactly those binaries from the build's target
//! directory, the runtime runs as a non-root user, its default command prints a binary's usage, and
//! the build context leaves out what must not go in (target, .venv, secrets).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

/// Parses a Dockerfile: comments and blank lines dropped, `\` continuations joined.
fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if pending.is_some() && trimmed.starts_with('#') {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        if !acc.is_empty() {
            acc.push(' ');
        }
        acc.push_str(body);
        if continued {
            pending = Some((start, acc));
            continue;
        }
        let (keyword, args) = acc.split_once(char::is_whitespace).unwrap_or((&acc, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
            line: start,
        });
    }
    assert!(pending.is_none(), "the Dockerfile ends in a continuation");
    out
}

/// `(package, binary)` of every crate under `bins/`, read from their Cargo.toml.
fn workspace_binaries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("bins")).expect("bins/") {
        let manifest = entry.expect("bins entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let mut package = None;
        let mut binary = None;
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            if let Some(value) = line.strip_prefix("name = ") {
                let value = value.trim_matches('"').to_owned();
                match section.as_str() {
                    "[package]" => package = Some(value),
                    "[[bin]]" => binary = Some(value),
                    _ => {}
                }
            }
        }
        let package = package.unwrap_or_else(|| panic!("{}: no package name", manifest.display()));
        let binary = binary.unwrap_or_else(|| package.clone());
        out.push((package, binary));
    }
    out.sort();
    out
}

/// `(major, minor)` of a version such as `1.95` or `1.95.0`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => panic!("`{version}` is not a Rust version"),
    }
}

fn workspace_rust_version() -> (u32, u32) {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .expect("the workspace declares rust-version");
    major_minor(line.trim_matches('"'))
}

#[test]
fn the_dockerfile_builds_and_ships_the_workspace_binaries() {
    let path = root().join("Dockerfile");
    let text = std::fs::read_to_string(&path).expect("a Dockerfile at the workspace root");
    let instructions = parse(&text);
    let binaries = workspace_binaries();
    assert_eq!(
        binaries.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(),
        ["efd-cronjob", "efd-job", "efd-monitor"],
        "the binaries under bins/"
    );

    // Stages: a Rust build stage at least as new as rust-version, then a runtime stage.
    let froms: Vec<&Instruction> = instructions
        .iter()
        .filter(|i| i.keyword == "FROM")
        .collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    let (image, stage) = froms[0]
        .args
        .split_once(" AS ")
        .or_else(|| froms[0].args.split_once(" as "))
        .expect("the build stage is named");
    let stage = stage.trim();
    let tag = image.strip_prefix("rust:").unwrap_or_else(|| {
        panic!(
            "line {}: the build stage uses the rust image",
            froms[0].line
        )
    });
    let version = tag.split('-').next().unwrap_or(tag);
    assert!(
        major_minor(version) >= workspace_rust_version(),
        "line {}: rust:{version} is older than the workspace's rust-version",
        froms[0].line
    );
    assert!(
        !froms[1].args.starts_with("rust:"),
        "the runtime stage is slim, without the toolchain"
    );

    // The build: release, locked, every binary's package, into a known target directory.
    let index_of = |keyword: &str, after: usize| {
        instructions
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, i)| i.keyword == keyword)
            .map(|(n, _)| n)
    };
    let runtime_start = instructions
        .iter()
        .position(|i| std::ptr::eq(i, froms[1]))
        .expect("runtime stage");
    let build = &instructions[..runtime_start];
    let workdir = build
        .iter()
        .find(|i| i.keyword == "WORKDIR")
        .map(|i| i.args.clone())
        .expect("the build stage sets WORKDIR");
    let target_dir = build
        .iter()
        .filter(|i| i.keyword == "ENV")
        .find_map(|i| i.args.strip_prefix("CARGO_TARGET_DIR=").map(str::to_owned))
        .unwrap_or_else(|| format!("{workdir}/target"));
    let cargo = build
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("a RUN cargo build in the build stage");
    for flag in ["--release", "--locked"] {
        assert!(cargo.args.contains(flag), "line {}: {flag}", cargo.line);
    }
    let built: BTreeSet<&str> = cargo
        .args
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p" || w[0] == "--package")
        .map(|w| w[1])
        .collect();
    let packages: BTreeSet<&str> = binaries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(built, packages, "line {}: packages built", cargo.line);
    assert!(
        build
            .iter()
            .any(|i| i.keyword == "COPY" && i.args.starts_with(". ")),
        "the build stage copies the workspace"
    );

    // The runtime: exactly the binaries, from the build stage's release directory.
    let copy = index_of("COPY", runtime_start).expect("the runtime stage copies the binaries");
    let copy = &instructions[copy];
    let words: Vec<&str> = copy.args.split_whitespace().collect();
    assert_eq!(words[0], format!("--from={stage}"), "line {}", copy.line);
    let (destination, sources) = words[1..]
        .split_last()
        .expect("COPY sources and destination");
    assert!(
        destination.ends_with('/'),
        "line {}: a directory",
        copy.line
    );
    let release = format!("{target_dir}/release/");
    let copied: BTreeSet<&str> = sources
        .iter()
        .map(|s| {
            s.strip_prefix(&release)
                .unwrap_or_else(|| panic!("line {}: {s} is not under {release}", copy.line))
        })
        .collect();
    let names: BTreeSet<&str> = binaries.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(copied, names, "line {}: binaries copied", copy.line);
    let on_path = ["/usr/local/bin/", "/usr/bin/", "/bin/"];
    assert!(
        on_path.contains(destination),
        "line {}: the binaries go on PATH (the manifests call them by name)",
        copy.line
    );

    // Non-root, and a default command that prints usage.
    let user = instructions[runtime_start..]
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("the runtime stage sets USER");
    let who = user.args.split(':').next().unwrap_or("");
    assert!(
        !who.is_empty() && who != "root" && who != "0",
        "line {}: runs as non-root",
        user.line
    );
    let cmd = instructions[runtime_start..]
        .iter()
        .rev()
        .find(|i| i.keyword == "CMD")
        .expect("the runtime stage sets CMD");
    let cmd: Vec<String> = serde_json::from_str(&cmd.args)
        .unwrap_or_else(|e| panic!("line {}: CMD in JSON form: {e}", cmd.line));
    assert!(
        names.contains(cmd[0].as_str()),
        "CMD runs a shipped binary: {cmd:?}"
    );
    assert!(
        cmd.iter().any(|a| a == "--help"),
        "CMD prints usage: {cmd:?}"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_venv_and_secrets() {
    let text = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    let patterns: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", ".venv", ".git", "kubernetes/**/etc/.secrets"] {
        assert!(patterns.contains(needed), ".dockerignore lacks {needed}");
    }
}

#[test]
fn the_parser_joins_continuations_and_skips_comments() {
    let parsed = parse("# c\nFROM a AS b\nRUN x \\\n  # inner\n  y\n\nCMD [\"z\"]\n");
    let shown: Vec<(&str, &str, usize)> = parsed
        .iter()
        .map(|i| (i.keyword.as_str(), i.args.as_str(), i.line))
        .collect();
    assert_eq!(
        shown,
        [
            ("FROM", "a AS b", 2),
            ("RUN", "x y", 3),
            ("CMD", "[\"z\"]", 7)
        ]
    );
}
