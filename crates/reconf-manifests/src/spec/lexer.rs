//! Splits one line of a spec into tokens that remember their column.

use std::fmt;

use super::error::{Location, SpecError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A name, possibly dotted (`device_migration.request`); [`Token::is_plain_name`] tells
    /// the undotted ones apart.
    Word(String),
    Arrow,
    Colon,
    Comma,
    Equals,
    OpenBracket,
    CloseBracket,
    At,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) column: u32,
}

impl Token {
    pub(crate) fn word(&self) -> Option<&str> {
        match &self.kind {
            TokenKind::Word(w) => Some(w),
            _ => None,
        }
    }

    pub(crate) fn is_plain_name(&self) -> bool {
        self.word().is_some_and(|w| !w.contains('.'))
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => write!(f, "`{w}`"),
            Self::Arrow => f.write_str("`->`"),
            Self::Colon => f.write_str("`:`"),
            Self::Comma => f.write_str("`,`"),
            Self::Equals => f.write_str("`=`"),
            Self::OpenBracket => f.write_str("`[`"),
            Self::CloseBracket => f.write_str("`]`"),
            Self::At => f.write_str("`@`"),
        }
    }
}

fn starts_word(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn continues_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The tokens of one line, and the column just past its last token (where "end of line"
/// errors point).
#[derive(Debug)]
pub(crate) struct Lexed {
    pub(crate) tokens: Vec<Token>,
    pub(crate) end_column: u32,
}

fn column_of(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Tokens of `text`, which is line `line` of `file`; a `#` starts a comment that runs to the
/// end of the line.
pub(crate) fn lex_line(file: &str, line: u32, text: &str) -> Result<Lexed, SpecError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    // Index just past the last token, so "end of line" errors ignore trailing comments.
    let mut end = 0;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let column = column_of(i);
        let start = i;
        let kind = match c {
            '#' => break,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ':' => TokenKind::Colon,
            ',' => TokenKind::Comma,
            '=' => TokenKind::Equals,
            '[' => TokenKind::OpenBracket,
            ']' => TokenKind::CloseBracket,
            '@' => TokenKind::At,
            '-' if chars.get(i + 1) == Some(&'>') => {
                i += 1;
                TokenKind::Arrow
            }
            c if starts_word(c) => {
                i = word_end(&chars, i);
                TokenKind::Word(chars.get(start..i).unwrap_or_default().iter().collect())
            }
            found => {
                return Err(SpecError::UnexpectedCharacter { at: Location::new(file, line, column), found })
            }
        };
        if !matches!(kind, TokenKind::Word(_)) {
            i += 1;
        }
        end = i;
        tokens.push(Token { kind, column });
    }
    Ok(Lexed { tokens, end_column: column_of(end) })
}

/// The index just past the (possibly dotted) word starting at `start`.
fn word_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    loop {
        while chars.get(i).copied().is_some_and(continues_word) {
            i += 1;
        }
        // A dot continues the word only when a segment follows, so in `a.` the dot is
        // reported on its own.
        if chars.get(i) == Some(&'.') && chars.get(i + 1).copied().is_some_and(starts_word) {
            i += 1;
        } else {
            return i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        lex_line("f", 1, text).unwrap().tokens.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn words_may_be_dotted_and_arrows_need_no_spaces() {
        use TokenKind::*;
        assert_eq!(
            kinds("A->B: x.y_1 # trailing comment"),
            vec![Word("A".into()), Arrow, Word("B".into()), Colon, Word("x.y_1".into())]
        );
    }

    #[test]
    fn columns_count_characters() {
        let t = lex_line("f", 1, "é A").unwrap_err();
        assert_eq!(t.location().column, 1);
        let lexed = lex_line("f", 1, "  [a, b]  # c").unwrap();
        assert_eq!(lexed.tokens.iter().map(|t| t.column).collect::<Vec<_>>(), vec![3, 4, 5, 7, 8]);
        assert_eq!(lexed.end_column, 9);
    }

    #[test]
    fn a_dangling_dot_or_lone_dash_is_unexpected() {
        let err = lex_line("f", 2, "a. b").unwrap_err();
        assert_eq!(err, SpecError::UnexpectedCharacter { at: Location::new("f", 2, 2), found: '.' });
        let err = lex_line("f", 2, "A - B").unwrap_err();
        assert_eq!(err, SpecError::UnexpectedCharacter { at: Location::new("f", 2, 3), found: '-' });
    }
}
