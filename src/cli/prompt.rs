//! Where commands read what must never be on the command line (passwords) and what they ask
//! for (a user name): the terminal, with the password unechoed, or standard input one line per
//! answer when it is not a terminal, so scripts can answer. Tests hand in their own lines.

use std::io::{BufRead, IsTerminal, Write};

pub enum Input {
    /// Ask on the terminal (`/dev/tty`), passwords unechoed.
    Terminal,
    /// Read one line per answer, with no prompt.
    Lines(Box<dyn BufRead + Send>),
}

impl Input {
    /// The terminal when standard input is one, else standard input's lines.
    pub fn from_stdin() -> Input {
        if std::io::stdin().is_terminal() {
            Input::Terminal
        } else {
            Input::Lines(Box::new(std::io::BufReader::new(std::io::stdin())))
        }
    }

    /// Answers given in advance, one per line (tests, embedding).
    pub fn lines(text: &str) -> Input {
        Input::Lines(Box::new(std::io::Cursor::new(
            text.to_string().into_bytes(),
        )))
    }

    fn read_line(r: &mut dyn BufRead, what: &str) -> anyhow::Result<String> {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            anyhow::bail!("standard input ended before the {what}");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// A visible answer (a user name).
    pub fn line(&mut self, prompt: &str) -> anyhow::Result<String> {
        match self {
            Input::Terminal => {
                eprint!("{prompt}: ");
                std::io::stderr().flush()?;
                Self::read_line(&mut std::io::stdin().lock(), prompt)
            }
            Input::Lines(r) => Self::read_line(r.as_mut(), prompt),
        }
    }

    /// A password (unechoed on a terminal).
    pub fn secret(&mut self, prompt: &str) -> anyhow::Result<String> {
        match self {
            Input::Terminal => Ok(rpassword::prompt_password(format!("{prompt}: "))?),
            Input::Lines(r) => Self::read_line(r.as_mut(), prompt),
        }
    }

    /// A new password: asked twice on a terminal, once from lines.
    pub fn new_secret(&mut self, prompt: &str) -> anyhow::Result<String> {
        let first = self.secret(prompt)?;
        if let Input::Terminal = self {
            let again = rpassword::prompt_password("again: ")?;
            if again != first {
                anyhow::bail!("the two passwords differ");
            }
        }
        Ok(first)
    }
}
