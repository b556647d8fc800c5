//! The SMTP command parser. It works on one line (without its CRLF) and returns
//! slices of that line: command lines are never copied.

/// One parsed command. Arguments borrow from the input line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Ehlo(&'a str),
    Helo(&'a str),
    /// `MAIL FROM:` followed by `<path> [params]`, unparsed.
    Mail(&'a str),
    /// `RCPT TO:` followed by `<path> [params]`, unparsed.
    Rcpt(&'a str),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954), the rest of the line unparsed.
    Auth(&'a str),
}

/// Why a command line was refused. Each maps to exactly one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command")]
    Unknown,
    #[error("syntax error in parameters")]
    Syntax(&'static str),
    #[error("command line is not valid UTF-8")]
    NotUtf8,
}

/// Longest command line RFC 5321 4.5.3.1.4 requires us to take, CRLF included.
pub const MAX_COMMAND_LINE: usize = 512;

/// Parse a command line (CRLF already removed).
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let no_args = |cmd: Command<'static>, usage: &'static str| {
        if rest.trim().is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax(usage))
        }
    };
    let (4 | 8, Some(head)) = (verb.len(), verb.as_bytes().first_chunk::<4>()) else {
        return Err(CommandError::Unknown);
    };
    let upper = head.map(|b| b.to_ascii_uppercase());
    match &upper {
        b"EHLO" if verb.len() == 4 => domain_arg(rest, "EHLO hostname").map(Command::Ehlo),
        b"HELO" if verb.len() == 4 => domain_arg(rest, "HELO hostname").map(Command::Helo),
        b"MAIL" if verb.len() == 4 => {
            prefixed(rest, "FROM:", "MAIL FROM:<address>").map(Command::Mail)
        }
        b"RCPT" if verb.len() == 4 => prefixed(rest, "TO:", "RCPT TO:<address>").map(Command::Rcpt),
        b"DATA" if verb.len() == 4 => no_args(Command::Data, "DATA"),
        b"BDAT" if verb.len() == 4 => parse_bdat(rest),
        b"RSET" if verb.len() == 4 => no_args(Command::Rset, "RSET"),
        b"NOOP" if verb.len() == 4 => Ok(Command::Noop),
        b"QUIT" if verb.len() == 4 => no_args(Command::Quit, "QUIT"),
        b"VRFY" if verb.len() == 4 => Ok(Command::Vrfy),
        b"HELP" if verb.len() == 4 => Ok(Command::Help),
        b"AUTH" if verb.len() == 4 => Ok(Command::Auth(rest)),
        b"STAR" if verb.eq_ignore_ascii_case("STARTTLS") => no_args(Command::StartTls, "STARTTLS"),
        _ => Err(CommandError::Unknown),
    }
}

fn domain_arg<'a>(rest: &'a str, usage: &'static str) -> Result<&'a str, CommandError> {
    let arg = rest.trim();
    if arg.is_empty() || arg.contains(' ') {
        return Err(CommandError::Syntax(usage));
    }
    Ok(arg)
}

fn prefixed<'a>(rest: &'a str, prefix: &str, usage: &'static str) -> Result<&'a str, CommandError> {
    let rest = rest.trim_start();
    // Compare bytes: the client's text may put a multi-byte character where the
    // ASCII prefix should end, and a str slice there would panic.
    let matches = rest
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()));
    if !matches {
        return Err(CommandError::Syntax(usage));
    }
    rest.get(prefix.len()..).ok_or(CommandError::Syntax(usage))
}

fn parse_bdat(rest: &str) -> Result<Command<'static>, CommandError> {
    const USAGE: &str = "BDAT chunk-size [LAST]";
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.len() <= 19 && w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse().ok())
        .ok_or(CommandError::Syntax(USAGE))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax(USAGE)),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax(USAGE));
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_case_insensitive_and_arguments_borrowed() {
        let line = b"mail from:<a@b.example> SIZE=10";
        let cmd = parse_command(line).unwrap();
        assert_eq!(cmd, Command::Mail("<a@b.example> SIZE=10"));
        if let Command::Mail(arg) = cmd {
            // The argument is a slice of the input line, not a copy.
            let start = line.as_ptr() as usize;
            let p = arg.as_ptr() as usize;
            assert!(p >= start && p < start + line.len());
        }
        assert_eq!(
            parse_command(b"EHLO client.example").unwrap(),
            Command::Ehlo("client.example")
        );
        assert_eq!(parse_command(b"StartTLS").unwrap(), Command::StartTls);
        assert_eq!(
            parse_command(b"RCPT TO: <x@y>").unwrap(),
            Command::Rcpt(" <x@y>")
        );
    }

    #[test]
    fn multibyte_text_where_the_keyword_ends_is_a_syntax_error_not_a_panic() {
        // Found by fuzzing (fuzz/corpus/command_parser/regress-*).
        assert_eq!(
            parse_command("MAIL F:<jö".as_bytes()),
            Err(CommandError::Syntax("MAIL FROM:<address>"))
        );
        assert_eq!(
            parse_command("RCPT öö".as_bytes()),
            Err(CommandError::Syntax("RCPT TO:<address>"))
        );
        assert_eq!(
            parse_command("RCPT TÖ:<a@b>".as_bytes()),
            Err(CommandError::Syntax("RCPT TO:<address>"))
        );
    }

    #[test]
    fn bdat_sizes_and_last() {
        assert_eq!(
            parse_command(b"BDAT 100 LAST").unwrap(),
            Command::Bdat {
                size: 100,
                last: true
            }
        );
        assert_eq!(
            parse_command(b"BDAT 0").unwrap(),
            Command::Bdat {
                size: 0,
                last: false
            }
        );
        assert!(parse_command(b"BDAT -1").is_err());
        assert!(parse_command(b"BDAT 99999999999999999999999").is_err());
        assert!(parse_command(b"BDAT 10 FIRST").is_err());
    }

    #[test]
    fn unknown_and_malformed_commands() {
        assert_eq!(parse_command(b"FOO"), Err(CommandError::Unknown));
        assert_eq!(parse_command(b""), Err(CommandError::Unknown));
        assert_eq!(parse_command(b"STARTTLSX"), Err(CommandError::Unknown));
        assert_eq!(
            parse_command(b"MAIL TO:<a@b>"),
            Err(CommandError::Syntax("MAIL FROM:<address>"))
        );
        assert_eq!(
            parse_command(b"EHLO"),
            Err(CommandError::Syntax("EHLO hostname"))
        );
        assert_eq!(
            parse_command(b"DATA now"),
            Err(CommandError::Syntax("DATA"))
        );
        assert_eq!(parse_command(b"HELO \xff"), Err(CommandError::NotUtf8));
    }
}
