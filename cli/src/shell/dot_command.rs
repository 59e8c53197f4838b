//! The shell's dot commands (`.tables`, `.mode csv`, ...), in the spirit of
//! duckdb's and sqlite's.

use std::path::PathBuf;

use crate::args::{BackendKind, OutputFormat};

/// One dot command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotCommand {
    Tables,
    Schema(String),
    Timer(bool),
    Mode(OutputFormat),
    /// `None`: every row.
    MaxRows(Option<usize>),
    Backend(BackendKind),
    Read(PathBuf),
    /// `None`: back to standard output.
    Output(Option<PathBuf>),
    Help,
    Quit,
}

/// Every command, with its arguments and what it does (`.help`).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (".tables", "", "list the tables"),
    (".schema", "NAME", "show a table's columns and their types"),
    (
        ".timer",
        "on|off",
        "show the elapsed time, tasks and bytes read after each result (on)",
    ),
    (".mode", "table|csv|json|line", "how results print (table)"),
    (
        ".maxrows",
        "N",
        "most rows a table shows, the first and last half (40; 0: all)",
    ),
    (
        ".backend",
        "local|process|lambda",
        "where the next statements' tasks run; tables stay",
    ),
    (
        ".read",
        "FILE",
        "run the statements and dot commands of FILE",
    ),
    (
        ".output",
        "[FILE]",
        "write results to FILE (from now on); without FILE, to the terminal again",
    ),
    (".help", "", "show this message"),
    (".quit", "", "leave the shell (or Ctrl-D)"),
];

/// The `.help` text.
pub fn help() -> String {
    let mut text = String::from(
        "End SQL statements with ';' (they may span lines). Ctrl-C cancels a running \
         statement, or clears the line; Ctrl-D leaves.\n",
    );
    for (name, arguments, what) in COMMANDS {
        text.push_str(&format!("{:<30} {what}\n", format!("{name} {arguments}")));
    }
    text
}

/// Parses `line` (starting with '.'); an error says what is wrong and
/// what would be right.
pub fn parse(line: &str) -> Result<DotCommand, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or(".");
    let rest: Vec<&str> = words.collect();
    let argument = |what: &str| -> Result<&str, String> {
        match rest.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("{name} needs {what}")),
            _ => Err(format!("{name} takes one argument: {what}")),
        }
    };
    let no_argument = |command: DotCommand| -> Result<DotCommand, String> {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(format!("{name} takes no argument"))
        }
    };
    match name {
        ".tables" => no_argument(DotCommand::Tables),
        ".schema" => argument("a table name").map(|t| DotCommand::Schema(t.to_string())),
        ".timer" => match argument("on or off")? {
            "on" => Ok(DotCommand::Timer(true)),
            "off" => Ok(DotCommand::Timer(false)),
            other => Err(format!(".timer is on or off, not '{other}'")),
        },
        ".mode" => match argument("table, csv, json or line")? {
            "table" => Ok(DotCommand::Mode(OutputFormat::Table)),
            "csv" => Ok(DotCommand::Mode(OutputFormat::Csv)),
            "json" => Ok(DotCommand::Mode(OutputFormat::Json)),
            "line" => Ok(DotCommand::Mode(OutputFormat::Line)),
            other => Err(format!(
                ".mode is table, csv, json or line, not '{other}' (Parquet: COPY (...) TO 'file.parquet')"
            )),
        },
        ".maxrows" => {
            let n = argument("a number of rows")?;
            match n.parse::<usize>() {
                Ok(0) => Ok(DotCommand::MaxRows(None)),
                Ok(n) => Ok(DotCommand::MaxRows(Some(n))),
                Err(_) => Err(format!(".maxrows needs a number of rows, not '{n}'")),
            }
        }
        ".backend" => match argument("local, process or lambda")? {
            "local" => Ok(DotCommand::Backend(BackendKind::Local)),
            "process" => Ok(DotCommand::Backend(BackendKind::Process)),
            "lambda" => Ok(DotCommand::Backend(BackendKind::Lambda)),
            other => Err(format!(
                ".backend is local, process or lambda, not '{other}'"
            )),
        },
        ".read" => argument("a file").map(|f| DotCommand::Read(PathBuf::from(f))),
        ".output" => match rest.as_slice() {
            [] => Ok(DotCommand::Output(None)),
            [file] => Ok(DotCommand::Output(Some(PathBuf::from(file)))),
            _ => Err(".output takes at most one file".to_string()),
        },
        ".help" => Ok(DotCommand::Help),
        ".quit" | ".exit" => no_argument(DotCommand::Quit),
        other => Err(format!(
            "unknown command '{other}': .help lists the commands"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(".tables"), Ok(DotCommand::Tables));
        assert_eq!(
            parse(".schema  lineitem "),
            Ok(DotCommand::Schema("lineitem".into()))
        );
        assert_eq!(
            parse(".mode line"),
            Ok(DotCommand::Mode(OutputFormat::Line))
        );
        assert_eq!(parse(".maxrows 0"), Ok(DotCommand::MaxRows(None)));
        assert_eq!(parse(".maxrows 7"), Ok(DotCommand::MaxRows(Some(7))));
        assert_eq!(parse(".output"), Ok(DotCommand::Output(None)));
        assert_eq!(parse(".exit"), Ok(DotCommand::Quit));
    }

    #[test]
    fn mistakes_say_what_is_expected() {
        assert_eq!(parse(".schema"), Err(".schema needs a table name".into()));
        assert_eq!(
            parse(".timer maybe"),
            Err(".timer is on or off, not 'maybe'".into())
        );
        assert_eq!(
            parse(".maxrows many"),
            Err(".maxrows needs a number of rows, not 'many'".into())
        );
        assert_eq!(
            parse(".frobnicate"),
            Err("unknown command '.frobnicate': .help lists the commands".into())
        );
        assert_eq!(parse(".tables x"), Err(".tables takes no argument".into()));
    }

    #[test]
    fn help_lists_every_command() {
        let help = help();
        for (name, _, _) in COMMANDS {
            assert!(help.contains(name), "{name}");
        }
    }
}
