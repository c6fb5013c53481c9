//! The command lines our users read are the ones the programs take: every `vrouter`
//! and `vrouter-lab` command in the README (fenced blocks of any kind, and inline
//! commands) parses, every synopsis names real subcommands and flags, the scripts it
//! names exist; and `vrouter --help` lists the operator's commands, not the lab's.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const README: &str = include_str!("../../README.md");

/// Every command the README shows, with `sudo`, `target/release/` and trailing
/// comments taken off, and whether it stands in a fenced block (a whole command) or
/// inline (a whole command, or one named in prose: `vrouter run`).
fn readme_commands() -> Vec<(String, bool)> {
    let clean = |c: &str| {
        let c = c.split(" # ").next().unwrap_or_default().replace("\\|", "|");
        c.trim().trim_start_matches("sudo ").replace("target/release/", "")
    };
    let mut out = Vec::new();
    // Prose, joined so that an inline span broken across lines stays whole.
    let mut prose = String::new();
    let mut fenced = false;
    for line in README.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push((clean(line), true));
        } else {
            prose.push_str(line);
            prose.push(' ');
        }
    }
    out.extend(prose.split('`').skip(1).step_by(2).map(|c| (clean(c), false)));
    out.retain(|(c, _)| !c.is_empty());
    out
}

/// True for a synopsis (placeholders, optional parts) rather than a command to run.
fn is_synopsis(words: &[&str]) -> bool {
    words
        .iter()
        .any(|w| w.contains('[') || (w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == ']')))
}

/// Checks a synopsis against the command: its subcommand path exists, and every flag
/// it shows is one that subcommand takes.
fn check_synopsis(command: &clap::Command, words: &[&str]) -> Result<(), String> {
    let mut current = command;
    for word in &words[1..] {
        for alternative in word.trim_matches(|c| c == '[' || c == ']').split('|') {
            if let Some(flag) = alternative.strip_prefix("--") {
                let flag = flag.split('=').next().unwrap_or_default();
                if !current.get_arguments().any(|a| a.get_long() == Some(flag)) {
                    return Err(format!("no --{flag} in `{}`", current.get_name()));
                }
            } else if let Some(sub) = current.find_subcommand(alternative) {
                current = sub;
            }
        }
    }
    Ok(())
}

#[test]
fn every_command_in_the_readme_is_one_the_programs_take() {
    let mut vrouter = vrouter::cli::command();
    vrouter.build();
    let mut lab = vrouter_lab::cli::command();
    lab.build();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (mut parsed, mut synopses, mut scripts) = (0, 0, 0);
    for (line, fenced) in readme_commands() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = match words[0] {
            "vrouter" => &vrouter,
            "vrouter-lab" => &lab,
            w if w.starts_with("scripts/") && w.ends_with(".sh") => {
                assert!(root.join(w).is_file(), "the README names {w}, which does not exist");
                scripts += 1;
                continue;
            }
            _ => continue,
        };
        if is_synopsis(&words) {
            check_synopsis(command, &words).unwrap_or_else(|e| panic!("README synopsis `{line}`: {e}"));
            synopses += 1;
        } else {
            use clap::error::ErrorKind::{
                DisplayHelp, DisplayHelpOnMissingArgumentOrSubcommand, DisplayVersion, MissingRequiredArgument,
            };
            match command.clone().try_get_matches_from(&words) {
                Ok(_) => parsed += 1,
                Err(e) if matches!(e.kind(), DisplayHelp | DisplayVersion) => parsed += 1,
                // Prose names a command without its arguments.
                Err(e)
                    if !fenced
                        && matches!(
                            e.kind(),
                            MissingRequiredArgument | DisplayHelpOnMissingArgumentOrSubcommand
                        ) =>
                {
                    check_synopsis(command, &words).unwrap_or_else(|e| panic!("README mentions `{line}`: {e}"));
                    synopses += 1;
                }
                Err(e) => panic!("README command `{line}` does not parse:\n{e}"),
            }
        }
    }
    // The README's reference sections are all seen (a parser that found nothing would
    // pass vacuously).
    assert!(parsed >= 20, "only {parsed} commands found");
    assert!(synopses >= 8, "only {synopses} synopses found");
    assert!(scripts >= 2, "only {scripts} scripts found");
}

#[test]
fn a_synopsis_with_a_flag_that_does_not_exist_is_caught() {
    let mut lab = vrouter_lab::cli::command();
    lab.build();
    let words = ["vrouter-lab", "soak", "[--minutes", "N]", "[--colour", "C]"];
    assert!(is_synopsis(&words));
    assert_eq!(check_synopsis(&lab, &words), Err("no --colour in `soak`".to_string()));
    assert_eq!(check_synopsis(&lab, &words[..4]), Ok(()));
}

#[test]
fn help_lists_the_operators_commands_and_not_the_tools() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for operator in [
        "run",
        "check-config",
        "vif",
        "rt",
        "flow",
        "dropstats",
        "xmpp",
        "status",
    ] {
        assert!(
            commands.contains(&operator),
            "`{operator}` missing from --help:\n{help}"
        );
    }
    for tool in ["lab", "soak", "gen", "sink", "bench", "minfwd", "control-node"] {
        assert!(
            !commands.contains(&tool),
            "`{tool}` is the lab's, not the operator's:\n{help}"
        );
    }
}
