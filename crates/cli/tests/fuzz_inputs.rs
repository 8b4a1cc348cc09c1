//! The REPL's command parser on arbitrary input: the stable counterpart of the
//! `repl_command` fuzz target. Whatever a user types or a script feeds, parsing never
//! panics, and quoted values come back exactly as they were written.

#![allow(clippy::unwrap_used)]

use healthchain_cli::command::{Command, parse};
use proptest::prelude::*;

/// Quotes `value` the way the REPL documents: inside double quotes, `\"` is a quote
/// and `\\` a backslash.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_line_parses_or_is_refused_without_panicking(line in any::<String>()) {
        let _ = parse(&line);
    }

    #[test]
    fn any_bytes_read_lossily_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn lines_made_of_command_words_never_panic(
        words in proptest::collection::vec(
            prop_oneof![
                Just("login".to_string()), Just("register".to_string()),
                Just("consult".to_string()), Just("--test".to_string()),
                Just("perform_test".to_string()), Just("--order".to_string()),
                Just("prescribe".to_string()), Just("fill".to_string()),
                Just("--prescription".to_string()), Just("set_patient".to_string()),
                Just("\"".to_string()), Just("\\".to_string()), Just("y".to_string()),
                "[a-z0-9\" \\\\-]{0,12}",
            ],
            0..8,
        )
    ) {
        let _ = parse(&words.join(" "));
    }

    #[test]
    fn quoted_login_values_come_back_exactly(
        user in "[a-zA-Z0-9_\"\\\\ ]{1,20}",
        password in "[ -~]{1,20}",
    ) {
        let line = format!("login {} {}", quoted(&user), quoted(&password));
        prop_assert_eq!(
            parse(&line).unwrap(),
            Some(Command::Login { username: Some(user), password: Some(password) })
        );
    }
}
