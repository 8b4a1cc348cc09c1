//! The REPL's command language: one line in, one [`Command`] out. Pure, no I/O.
//!
//! Words are separated by spaces; a value with spaces goes in double quotes
//! (`"twice a day"`, with `\"` and `\\` inside quotes for a quote or a backslash).
//! Every command that asks questions also takes its answers on the line; whatever is
//! left out is asked for afterwards (on a terminal, or as the next lines of a script).
//!
//! | command | syntax |
//! |---|---|
//! | `help` | `help` |
//! | `login` | `login [USERNAME [PASSWORD]]` |
//! | `logout` | `logout` |
//! | `register` | `register [NAME...]` (the rest of the line is the name) |
//! | `consult` | `consult [--test y\|n] [NOTES...]` |
//! | `perform_test` | `perform_test [--order N] [RESULTS...]` |
//! | `prescribe` | `prescribe [MEDICATION [DOSAGE [INSTRUCTIONS...]]]` |
//! | `fill` | `fill [--prescription N] [y\|n]` |
//! | `set_patient` | `set_patient ID` (a patient id, or a unique prefix of one) |
//! | `export` | `export [FILE]` (the active patient as a FHIR R4 Bundle) |
//! | `break_glass` | `break_glass [REASON...]` (a doctor reads without the patient's grant) |
//! | `history`, `mine`, `chain`, `pending`, `balances`, `peers`, `sync`, `recalc_balances` | no arguments |
//! | `exit` | `exit` or `quit` |
//!
//! `N` picks among several open test orders or prescriptions of the active patient,
//! counting from 1 in the order the command lists them.

use std::fmt;

/// A parsed REPL command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Show the commands of this node's role.
    Help,
    /// Log in; missing fields are asked for.
    Login {
        /// The login name.
        username: Option<String>,
        /// The password.
        password: Option<String>,
    },
    /// Log out.
    Logout,
    /// Register a new patient.
    Register {
        /// The patient's name.
        name: Option<String>,
    },
    /// Record a consultation of the active patient.
    Consult {
        /// Consultation notes.
        notes: Option<String>,
        /// Whether to order a blood test.
        order_test: Option<bool>,
    },
    /// Record the result of an open test order of the active patient.
    PerformTest {
        /// Which open order (1-based), when there are several.
        order: Option<usize>,
        /// The results.
        results: Option<String>,
    },
    /// Prescribe for the active patient (pays the lab for the results it read).
    Prescribe {
        /// The medication.
        medication: Option<String>,
        /// The dosage.
        dosage: Option<String>,
        /// How to take it.
        instructions: Option<String>,
    },
    /// Fill an open prescription of the active patient.
    Fill {
        /// Which open prescription (1-based), when there are several.
        prescription: Option<usize>,
        /// The confirmation.
        confirm: Option<bool>,
    },
    /// Choose the active patient.
    SetPatient {
        /// Patient id or unique prefix.
        id: String,
    },
    /// Show the active patient's events.
    History,
    /// A doctor reads the active patient's records without a grant, for a reason.
    BreakGlass {
        /// Why (public on the chain: no clinical details).
        reason: Option<String>,
    },
    /// Write the active patient's record as a FHIR R4 Bundle, as the logged-in user
    /// may read it.
    Export {
        /// Where (default: `<patient id>.fhir.json`).
        out: Option<String>,
    },
    /// Mine a block of the pending transactions.
    Mine,
    /// Show the chain.
    Chain,
    /// Show the pending transactions.
    Pending,
    /// Show every account's balance.
    Balances,
    /// Show the connected peers.
    Peers,
    /// Ask every peer for blocks this node lacks.
    Sync,
    /// Recompute the state from genesis and compare it with the incremental one.
    RecalcBalances,
    /// Leave.
    Exit,
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The first word is not a command.
    Unknown(String),
    /// The command is known but its arguments are wrong; carries the usage line.
    Usage {
        /// What is wrong.
        problem: String,
        /// The right syntax.
        usage: &'static str,
    },
    /// A double quote is not closed.
    UnclosedQuote,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(word) => {
                write!(f, "unknown command '{word}' (type 'help' for the list)")
            }
            ParseError::Usage { problem, usage } => write!(f, "{problem}; usage: {usage}"),
            ParseError::UnclosedQuote => f.write_str("unclosed double quote"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Usage lines, also used by `help`.
pub(crate) mod usage {
    /// `login`.
    pub(crate) const LOGIN: &str = "login [USERNAME [PASSWORD]]";
    /// `register`.
    pub(crate) const REGISTER: &str = "register [NAME...]";
    /// `consult`.
    pub(crate) const CONSULT: &str = "consult [--test y|n] [NOTES...]";
    /// `perform_test`.
    pub(crate) const PERFORM_TEST: &str = "perform_test [--order N] [RESULTS...]";
    /// `prescribe`.
    pub(crate) const PRESCRIBE: &str = "prescribe [MEDICATION [DOSAGE [INSTRUCTIONS...]]]";
    /// `fill`.
    pub(crate) const FILL: &str = "fill [--prescription N] [y|n]";
    /// `set_patient`.
    pub(crate) const SET_PATIENT: &str = "set_patient ID";
    /// `export`.
    pub(crate) const EXPORT: &str = "export [FILE]";
    /// `break_glass`.
    pub(crate) const BREAK_GLASS: &str = "break_glass [REASON...]";
}

/// Splits a line into words, honouring double quotes.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(ParseError::UnclosedQuote),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped @ ('"' | '\\')) => current.push(escaped),
                            Some(other) => {
                                current.push('\\');
                                current.push(other);
                            }
                            None => return Err(ParseError::UnclosedQuote),
                        },
                        Some(other) => current.push(other),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Whether a line may be kept in the command history: not a `login` that carries a
/// password.
pub(crate) fn may_remember(line: &str) -> bool {
    if line.trim().is_empty() {
        return false;
    }
    match split_words(line) {
        Ok(words) => !(words.first().map(String::as_str) == Some("login") && words.len() > 2),
        Err(_) => !line.trim_start().starts_with("login"),
    }
}

/// Reads a yes/no answer (`y`, `yes`, `n`, `no`, any case).
pub(crate) fn parse_yes_no(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

/// Parses one line. `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let words = split_words(line)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let no_args = |command: Command| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(ParseError::Usage {
                problem: format!("'{name}' takes no arguments"),
                usage: usage_of_bare(name),
            })
        }
    };
    let command = match name.as_str() {
        "help" | "?" => Command::Help,
        "login" => {
            if args.len() > 2 {
                return Err(usage_error("too many words", usage::LOGIN));
            }
            Command::Login {
                username: args.first().cloned(),
                password: args.get(1).cloned(),
            }
        }
        "logout" => no_args(Command::Logout)?,
        "register" => Command::Register { name: rest(args) },
        "consult" => {
            let (flag, rest_words) = take_flag(args, &["--test", "--order-test"], usage::CONSULT)?;
            let order_test = match flag {
                None => None,
                Some(v) => Some(parse_yes_no(&v).ok_or_else(|| {
                    usage_error(&format!("'--test {v}' must be y or n"), usage::CONSULT)
                })?),
            };
            Command::Consult {
                notes: rest(&rest_words),
                order_test,
            }
        }
        "perform_test" => {
            let (flag, rest_words) = take_flag(args, &["--order"], usage::PERFORM_TEST)?;
            Command::PerformTest {
                order: flag
                    .map(|v| parse_choice(&v, usage::PERFORM_TEST))
                    .transpose()?,
                results: rest(&rest_words),
            }
        }
        "prescribe" => Command::Prescribe {
            medication: args.first().cloned(),
            dosage: args.get(1).cloned(),
            instructions: args.get(2..).and_then(rest),
        },
        "fill" => {
            let (flag, rest_words) = take_flag(args, &["--prescription"], usage::FILL)?;
            let confirm = match rest_words.as_slice() {
                [] => None,
                [answer] => Some(parse_yes_no(answer).ok_or_else(|| {
                    usage_error(&format!("'{answer}' is not y or n"), usage::FILL)
                })?),
                _ => return Err(usage_error("too many words", usage::FILL)),
            };
            Command::Fill {
                prescription: flag.map(|v| parse_choice(&v, usage::FILL)).transpose()?,
                confirm,
            }
        }
        "set_patient" => match args {
            [id] => Command::SetPatient { id: id.clone() },
            [] => return Err(usage_error("a patient id is needed", usage::SET_PATIENT)),
            _ => return Err(usage_error("one patient id only", usage::SET_PATIENT)),
        },
        "history" => no_args(Command::History)?,
        "break_glass" => Command::BreakGlass { reason: rest(args) },
        "export" => match args {
            [] => Command::Export { out: None },
            [file] => Command::Export {
                out: Some(file.clone()),
            },
            _ => return Err(usage_error("one file name only", usage::EXPORT)),
        },
        "mine" => no_args(Command::Mine)?,
        "chain" => no_args(Command::Chain)?,
        "pending" => no_args(Command::Pending)?,
        "balances" => no_args(Command::Balances)?,
        "peers" => no_args(Command::Peers)?,
        "sync" => no_args(Command::Sync)?,
        "recalc_balances" => no_args(Command::RecalcBalances)?,
        "exit" | "quit" => no_args(Command::Exit)?,
        other => return Err(ParseError::Unknown(other.to_string())),
    };
    Ok(Some(command))
}

fn usage_of_bare(name: &str) -> &'static str {
    match name {
        "logout" => "logout",
        "history" => "history",
        "mine" => "mine",
        "chain" => "chain",
        "pending" => "pending",
        "balances" => "balances",
        "peers" => "peers",
        "sync" => "sync",
        "recalc_balances" => "recalc_balances",
        _ => "exit",
    }
}

fn usage_error(problem: &str, usage: &'static str) -> ParseError {
    ParseError::Usage {
        problem: problem.to_string(),
        usage,
    }
}

/// The remaining words joined by single spaces, or `None` if there are none.
fn rest(words: &[String]) -> Option<String> {
    let text = words.join(" ");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Removes one `--flag VALUE` (or `--flag=VALUE`) from `words`, wherever it is.
fn take_flag(
    words: &[String],
    names: &[&str],
    usage: &'static str,
) -> Result<(Option<String>, Vec<String>), ParseError> {
    let mut value = None;
    let mut rest = Vec::new();
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        let inline = names.iter().find_map(|n| {
            word.strip_prefix(n)
                .and_then(|tail| tail.strip_prefix('='))
                .map(str::to_string)
        });
        let found = if let Some(v) = inline {
            Some(v)
        } else if names.contains(&word.as_str()) {
            Some(
                iter.next()
                    .cloned()
                    .ok_or_else(|| usage_error(&format!("'{word}' needs a value"), usage))?,
            )
        } else {
            None
        };
        match found {
            Some(v) if value.is_some() => {
                return Err(usage_error(
                    &format!("'{v}': the option is given twice"),
                    usage,
                ));
            }
            Some(v) => value = Some(v),
            None if word.starts_with("--") && word.len() > 2 => {
                return Err(usage_error(&format!("unknown option '{word}'"), usage));
            }
            None => rest.push(word.clone()),
        }
    }
    Ok((value, rest))
}

fn parse_choice(text: &str, usage: &'static str) -> Result<usize, ParseError> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(usage_error(
            &format!("'{text}' is not a number from 1"),
            usage,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line).expect("parses").expect("not blank")
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split_words(r#"  a "b c"  d"e"f "" "x\"y\\" "#).expect("splits"),
            ["a", "b c", "def", "", "x\"y\\"]
        );
        assert_eq!(split_words("say \"hi"), Err(ParseError::UnclosedQuote));
        assert!(split_words("   ").expect("splits").is_empty());
    }

    #[test]
    fn blank_line() {
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn bare_commands() {
        for (line, command) in [
            ("help", Command::Help),
            ("logout", Command::Logout),
            ("history", Command::History),
            ("mine", Command::Mine),
            ("chain", Command::Chain),
            ("pending", Command::Pending),
            ("balances", Command::Balances),
            ("peers", Command::Peers),
            ("sync", Command::Sync),
            ("recalc_balances", Command::RecalcBalances),
            ("exit", Command::Exit),
            ("quit", Command::Exit),
        ] {
            assert_eq!(ok(line), command, "{line}");
        }
        assert!(matches!(parse("mine now"), Err(ParseError::Usage { .. })));
    }

    #[test]
    fn export_takes_one_file_or_none() {
        assert_eq!(ok("export"), Command::Export { out: None });
        assert_eq!(
            ok("export \"my record.json\""),
            Command::Export {
                out: Some("my record.json".into())
            }
        );
        assert!(matches!(parse("export a b"), Err(ParseError::Usage { .. })));
    }

    #[test]
    fn login_forms() {
        assert_eq!(
            ok("login"),
            Command::Login {
                username: None,
                password: None
            }
        );
        assert_eq!(
            ok("login dr_alice password123"),
            Command::Login {
                username: Some("dr_alice".into()),
                password: Some("password123".into())
            }
        );
        assert_eq!(
            ok("login dr_alice"),
            Command::Login {
                username: Some("dr_alice".into()),
                password: None
            }
        );
        assert!(parse("login a b c").is_err());
    }

    #[test]
    fn register_takes_the_rest_of_the_line() {
        assert_eq!(
            ok("register Jane Doe"),
            Command::Register {
                name: Some("Jane Doe".into())
            }
        );
        assert_eq!(
            ok("register \"Jane  Doe\""),
            Command::Register {
                name: Some("Jane  Doe".into())
            }
        );
        assert_eq!(ok("register"), Command::Register { name: None });
    }

    #[test]
    fn consult_forms() {
        assert_eq!(
            ok("consult --test y Fever and cough"),
            Command::Consult {
                notes: Some("Fever and cough".into()),
                order_test: Some(true)
            }
        );
        assert_eq!(
            ok("consult \"Fever, cough\" --test=no"),
            Command::Consult {
                notes: Some("Fever, cough".into()),
                order_test: Some(false)
            }
        );
        assert_eq!(
            ok("consult"),
            Command::Consult {
                notes: None,
                order_test: None
            }
        );
        assert!(parse("consult --test maybe x").is_err());
        assert!(parse("consult --test").is_err());
        assert!(parse("consult --urgent x").is_err());
        assert!(parse("consult --test y --test n").is_err());
    }

    #[test]
    fn perform_test_and_fill() {
        assert_eq!(
            ok("perform_test --order 2 Hb 13.5 g/dL"),
            Command::PerformTest {
                order: Some(2),
                results: Some("Hb 13.5 g/dL".into())
            }
        );
        assert!(parse("perform_test --order 0 x").is_err());
        assert!(parse("perform_test --order two x").is_err());
        assert_eq!(
            ok("fill y"),
            Command::Fill {
                prescription: None,
                confirm: Some(true)
            }
        );
        assert_eq!(
            ok("fill --prescription 1 n"),
            Command::Fill {
                prescription: Some(1),
                confirm: Some(false)
            }
        );
        assert!(parse("fill perhaps").is_err());
    }

    #[test]
    fn prescribe_and_set_patient() {
        assert_eq!(
            ok("prescribe Amoxicillin \"500 mg\" three times a day"),
            Command::Prescribe {
                medication: Some("Amoxicillin".into()),
                dosage: Some("500 mg".into()),
                instructions: Some("three times a day".into())
            }
        );
        assert_eq!(
            ok("prescribe \"Vitamin D\""),
            Command::Prescribe {
                medication: Some("Vitamin D".into()),
                dosage: None,
                instructions: None
            }
        );
        assert_eq!(
            ok("set_patient 1234abcd"),
            Command::SetPatient {
                id: "1234abcd".into()
            }
        );
        assert!(parse("set_patient").is_err());
        assert!(parse("set_patient a b").is_err());
    }

    #[test]
    fn unknown_command() {
        let err = parse("launch rockets").expect_err("unknown");
        assert_eq!(err, ParseError::Unknown("launch".into()));
        assert!(err.to_string().contains("help"));
    }

    #[test]
    fn passwords_stay_out_of_the_history() {
        assert!(may_remember("login dr_alice"));
        assert!(!may_remember("login dr_alice password123"));
        assert!(!may_remember("  login dr_alice \"pass word"));
        assert!(may_remember("register Jane"));
        assert!(!may_remember("   "));
    }

    #[test]
    fn yes_no() {
        assert_eq!(parse_yes_no(" Y "), Some(true));
        assert_eq!(parse_yes_no("no"), Some(false));
        assert_eq!(parse_yes_no("sure"), None);
    }
}
