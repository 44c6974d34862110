//! Splitting a `[processes]` command into argv the way a POSIX shell splits
//! words: whitespace separates, single quotes keep everything literal, double
//! quotes keep spaces and let `\` escape `"`, `\`, `$` and `` ` ``, and a
//! backslash outside quotes escapes the next character. No expansion happens.

/// Why a command could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    UnclosedSingle,
    UnclosedDouble,
    TrailingBackslash,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SplitError::UnclosedSingle => "unclosed single quote",
            SplitError::UnclosedDouble => "unclosed double quote",
            SplitError::TrailingBackslash => "ends with a lone backslash",
        })
    }
}

pub fn split(command: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once any character or quote of it was seen ("" is a word).
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnclosedSingle),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(SplitError::UnclosedDouble),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnclosedDouble),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split("nginx -g 'daemon off;'").unwrap(),
            ["nginx", "-g", "daemon off;"]
        );
        assert_eq!(split("go run main.go").unwrap(), ["go", "run", "main.go"]);
        assert_eq!(
            split(r#"sh -c "echo \"hi\" \$HOME" ''"#).unwrap(),
            ["sh", "-c", "echo \"hi\" $HOME", ""]
        );
        assert_eq!(split(r"a\ b  c").unwrap(), ["a b", "c"]);
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("it's"), Err(SplitError::UnclosedSingle));
        assert_eq!(split("say \"hi"), Err(SplitError::UnclosedDouble));
        assert_eq!(split("x \\"), Err(SplitError::TrailingBackslash));
    }
}
