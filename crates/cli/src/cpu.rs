//! CPU time this process has used, read from `/proc/self/stat` (Linux): what the
//! metrics report and what `bench-net` counts for itself and for each node.

/// Clock ticks a second in `/proc` figures (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds of this process, where `/proc` tells.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User plus system CPU seconds from the text of a `/proc/<pid>/stat` file: fields 14
/// and 15, counted after the command name (which may hold spaces and parentheses).
fn parse_stat(text: &str) -> Option<f64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_after_an_awkward_command_name() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 300 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat(stat), Some(3.25));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        if std::path::Path::new("/proc/self/stat").exists() {
            let spent = process_cpu_seconds().expect("readable");
            assert!(spent >= 0.0);
        }
    }
}
