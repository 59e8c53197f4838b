//! docs/cli.md, the CLI reference, is the `--help` of every command, so it
//! cannot drift from the binary: this test renders it from `squall --help`
//! (finding subcommands in each help's "Commands:" list) and fails when the
//! file differs. Run it with `SQUALL_UPDATE_DOCS=1` to rewrite the file
//! after a deliberate change.

use std::process::Command;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md");

/// `squall PATH --help`, as a person reading 100 columns sees it, with no
/// environment variable showing through (clap prints their values).
fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(path)
        .arg("--help")
        .env_clear()
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "squall {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists, without `help`.
fn subcommands(help: &str) -> Vec<String> {
    let Some((_, after)) = help.split_once("\nCommands:\n") else {
        return Vec::new();
    };
    after
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// Every command's help, depth first.
fn reference() -> String {
    let mut out = String::from(
        "# CLI reference\n\n\
         The `--help` of every `squall` command. Generated from the binary by\n\
         `cli/tests/cli_reference.rs`, which fails when this file differs; after a\n\
         change to the flags, run `SQUALL_UPDATE_DOCS=1 cargo test --workspace --test cli_reference`.\n\
         The [user guide](guide.md) shows the commands at work.\n",
    );
    let mut pending = vec![Vec::<String>::new()];
    while let Some(path) = pending.pop() {
        let text = help(&path);
        let name = if path.is_empty() {
            "squall".to_string()
        } else {
            format!("squall {}", path.join(" "))
        };
        out.push_str(&format!(
            "\n## `{name}`\n\n```text\n{}\n```\n",
            text.trim_end()
        ));
        for sub in subcommands(&text).into_iter().rev() {
            let mut next = path.clone();
            next.push(sub);
            pending.push(next);
        }
    }
    out
}

#[test]
fn the_cli_reference_is_the_help_of_every_command() {
    let rendered = reference();
    for command in [
        "squall sql",
        "squall gen tpch",
        "squall deploy lambda",
        "squall report",
    ] {
        assert!(
            rendered.contains(&format!("## `{command}`")),
            "{command} is missing"
        );
    }
    assert!(
        !rendered.contains("## `squall worker`"),
        "hidden commands stay hidden"
    );
    if std::env::var_os("SQUALL_UPDATE_DOCS").is_some() {
        std::fs::write(DOC, &rendered).unwrap();
        return;
    }
    let written = std::fs::read_to_string(DOC).unwrap_or_default();
    assert!(
        written == rendered,
        "docs/cli.md is not the binary's --help: run SQUALL_UPDATE_DOCS=1 cargo test --workspace --test cli_reference"
    );
}
