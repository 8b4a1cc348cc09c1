//! Where the REPL's lines come from and where asynchronous messages go.
//!
//! On a terminal, lines are read with rustyline (editing, history, masked password
//! entry) and messages from the node (blocks, reorgs, rejected transactions) are
//! printed above the prompt with rustyline's external printer, so typing is not
//! disturbed. When standard input is not a terminal, lines are read one by one and
//! messages are printed as plain lines: a whole session can be scripted. There, each
//! question a command asks is printed on a line of its own before its answer is read,
//! so a script's transcript shows which line answered what.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};

use rustyline::completion::Completer;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, ExternalPrinter, Helper};

/// What reading a line gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line, without its line ending.
    Text(String),
    /// Ctrl-C on a terminal: abandon the current input.
    Interrupted,
    /// End of input (Ctrl-D or end of the script).
    End,
}

/// A source of lines: a terminal with line editing, or plain standard input.
pub(crate) enum Input {
    /// Interactive terminal.
    Terminal(Box<Editor<Masking, DefaultHistory>>),
    /// Script or pipe.
    Plain(std::io::StdinLock<'static>),
}

impl Input {
    /// Line editing when standard input and output are terminals, plain lines otherwise.
    pub(crate) fn from_stdin() -> Input {
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            let config = Config::builder().auto_add_history(false).build();
            if let Ok(mut editor) = Editor::with_config(config) {
                editor.set_helper(Some(Masking { masking: false }));
                return Input::Terminal(Box::new(editor));
            }
        }
        Input::Plain(std::io::stdin().lock())
    }

    /// A printer for messages that arrive while a line is being read.
    pub(crate) fn printer(&mut self) -> Printer {
        if let Input::Terminal(editor) = self
            && let Ok(printer) = editor.create_external_printer()
        {
            return Printer {
                external: Some(Arc::new(Mutex::new(Box::new(printer)))),
            };
        }
        Printer { external: None }
    }

    /// Reads a command line, showing `prompt` on a terminal.
    pub(crate) fn command(&mut self, prompt: &str) -> std::io::Result<Line> {
        self.read(prompt, Asked::Command)
    }

    /// Adds a line to the history (terminal only).
    pub(crate) fn remember(&mut self, line: &str) {
        if let Input::Terminal(editor) = self {
            let _ = editor.add_history_entry(line);
        }
    }

    /// Loads the history from `path`, if it exists (terminal only).
    pub(crate) fn load_history(&mut self, path: &std::path::Path) {
        if let Input::Terminal(editor) = self
            && path.exists()
        {
            let _ = editor.load_history(path);
        }
    }

    /// Saves the history to `path` (terminal only).
    pub(crate) fn save_history(&mut self, path: &std::path::Path) {
        if let Input::Terminal(editor) = self
            && let Err(e) = editor.save_history(path)
        {
            tracing::warn!("cannot save the command history to {}: {e}", path.display());
        }
    }

    /// Reads the answer to a question (not kept in the history).
    pub(crate) fn answer(&mut self, question: &str) -> std::io::Result<Line> {
        self.read(question, Asked::Question)
    }

    /// Reads a secret; on a terminal the typed characters are hidden.
    pub(crate) fn secret(&mut self, question: &str) -> std::io::Result<Line> {
        self.read(question, Asked::Secret)
    }

    fn read(&mut self, prompt: &str, asked: Asked) -> std::io::Result<Line> {
        let secret = asked == Asked::Secret;
        match self {
            Input::Terminal(editor) => {
                if let Some(helper) = editor.helper_mut() {
                    helper.masking = secret;
                }
                let result = editor.readline(prompt);
                if let Some(helper) = editor.helper_mut() {
                    helper.masking = false;
                }
                match result {
                    Ok(text) => Ok(Line::Text(text)),
                    Err(rustyline::error::ReadlineError::Interrupted) => Ok(Line::Interrupted),
                    Err(rustyline::error::ReadlineError::Eof) => Ok(Line::End),
                    Err(rustyline::error::ReadlineError::Io(e)) => Err(e),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
            Input::Plain(stdin) => {
                if asked != Asked::Command {
                    // A line of its own, before the answer is read: a program driving
                    // the prompt sees what is asked, and a transcript shows which line
                    // answered it.
                    println!("{}", prompt.trim_end());
                }
                let mut text = String::new();
                if stdin.read_line(&mut text)? == 0 {
                    return Ok(Line::End);
                }
                while text.ends_with(['\n', '\r']) {
                    text.pop();
                }
                Ok(Line::Text(text))
            }
        }
    }
}

/// What a line is read for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// The next command (its prompt is not printed when scripted).
    Command,
    /// The answer to a question.
    Question,
    /// A secret answer (a password), hidden on a terminal.
    Secret,
}

/// Prints messages that arrive from the node while the REPL waits for input.
#[derive(Clone, Default)]
pub(crate) struct Printer {
    external: Option<Arc<Mutex<Box<dyn ExternalPrinter + Send>>>>,
}

impl Printer {
    /// Prints one message (one or more lines) above the prompt, or as plain lines.
    pub(crate) fn print(&self, message: impl Into<String>) {
        let message = message.into();
        if let Some(external) = &self.external
            && let Ok(mut printer) = external.lock()
            && printer.print(format!("{message}\n")).is_ok()
        {
            return;
        }
        println!("{message}");
    }
}

/// rustyline helper that hides what is typed while `masking` is on (passwords).
pub(crate) struct Masking {
    masking: bool,
}

impl Highlighter for Masking {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.masking {
            Cow::Owned("*".repeat(line.chars().count()))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.masking && kind != CmdKind::MoveCursor
    }
}

impl Completer for Masking {
    type Candidate = String;
}

impl Hinter for Masking {
    type Hint = String;
}

impl Validator for Masking {}

impl Helper for Masking {}
