//! One SQL lexer for the gates that read statement texts (pg_stat_statements keeps
//! them normalized, constants as `$n`): PostgreSQL's rules for comments, quoted
//! strings and identifiers, dollar quoting, numbers and operators. A lexer, not a
//! parser: callers walk the tokens; where a parse tree is needed use `infra::parse`.
//! Pure Rust, no pgrx types.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An unquoted word, folded to lower case.
    Word(String),
    /// A double-quoted identifier, as written.
    Quoted(String),
    /// `$1`
    Param,
    Num,
    Str,
    Op(String),
    Punct(char),
}

impl Tok {
    pub fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            _ => None,
        }
    }
    pub fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(x) if x == w)
    }
    pub fn is_punct(&self, c: char) -> bool {
        matches!(self, Tok::Punct(x) if *x == c)
    }
    pub fn is_op(&self, o: &str) -> bool {
        matches!(self, Tok::Op(x) if x == o)
    }
    pub fn is_value(&self) -> bool {
        matches!(self, Tok::Param | Tok::Num | Tok::Str)
    }
}

const OP_CHARS: &str = "+-*/<>=~!@#%^&|`?";

/// Split SQL text into tokens; comments and whitespace are dropped, and a
/// dollar-quoted string is one [`Tok::Str`].
pub fn tokenize(sql: &str) -> Vec<Tok> {
    lex(sql, Dollar::Literal)
}

/// Like [`tokenize`], but the bodies of dollar-quoted strings are tokenized too (their
/// `$tag$` delimiters dropped), so statements inside DO blocks and function bodies
/// are seen.
pub fn tokenize_bodies(sql: &str) -> Vec<Tok> {
    lex(sql, Dollar::Body)
}

/// What a `$tag$ … $tag$` string is to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dollar {
    /// A string constant: one `Tok::Str`.
    Literal,
    /// Code: the delimiters go, the body is lexed.
    Body,
}

fn lex(sql: &str, dollar: Dollar) -> Vec<Tok> {
    let c: Vec<char> = sql.chars().collect();
    let n = c.len();
    let mut i = 0;
    let mut out = Vec::new();
    // skip a quoted string starting at the opening quote; returns the index after it
    let skip_quoted = |mut i: usize, q: char, backslash: bool| -> usize {
        i += 1;
        while i < n {
            if backslash && c[i] == '\\' {
                i += 2;
                continue;
            }
            if c[i] == q {
                if i + 1 < n && c[i + 1] == q {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        n
    };
    while i < n {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '-' && i + 1 < n && c[i + 1] == '-' {
            while i < n && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && i + 1 < n && c[i + 1] == '*' {
            let mut depth = 0;
            while i < n {
                if c[i] == '/' && i + 1 < n && c[i + 1] == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && i + 1 < n && c[i + 1] == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '\'' {
            i = skip_quoted(i, '\'', false);
            out.push(Tok::Str);
        } else if ch == '"' {
            let end = skip_quoted(i, '"', false);
            // the closing quote is not part of the name; an unterminated one runs to the end
            let close = if end <= n && end > i + 1 && c[end - 1] == '"' {
                end - 1
            } else {
                end
            };
            let inner: String = c[i + 1..close.max(i + 1)].iter().collect();
            out.push(Tok::Quoted(inner.replace("\"\"", "\"")));
            i = end;
        } else if ch == '$' && i + 1 < n && c[i + 1].is_ascii_digit() {
            i += 1;
            while i < n && c[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Param);
        } else if ch == '$' {
            // dollar quoting: $tag$ ... $tag$
            let mut j = i + 1;
            while j < n && (c[j].is_alphanumeric() || c[j] == '_') {
                j += 1;
            }
            if j < n && c[j] == '$' && dollar == Dollar::Body {
                // a delimiter: dropped, and the body is lexed as code
                i = j + 1;
            } else if j < n && c[j] == '$' {
                let tag: String = c[i..=j].iter().collect();
                let tag: Vec<char> = tag.chars().collect();
                let mut k = j + 1;
                while k + tag.len() <= n && c[k..k + tag.len()] != tag[..] {
                    k += 1;
                }
                i = (k + tag.len()).min(n);
                out.push(Tok::Str);
            } else {
                out.push(Tok::Punct('$'));
                i += 1;
            }
        } else if ch.is_ascii_digit() || (ch == '.' && i + 1 < n && c[i + 1].is_ascii_digit()) {
            while i < n && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                // an exponent's sign belongs to the number
                if (c[i] == 'e' || c[i] == 'E') && i + 1 < n && (c[i + 1] == '+' || c[i + 1] == '-')
                {
                    i += 1;
                }
                i += 1;
            }
            out.push(Tok::Num);
        } else if ch.is_alphabetic() || ch == '_' {
            let s = i;
            while i < n && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                i += 1;
            }
            let w: String = c[s..i].iter().collect::<String>().to_lowercase();
            // E'..', B'..', X'..', N'..' string constants
            if i < n && c[i] == '\'' && matches!(w.as_str(), "e" | "b" | "x" | "n") {
                i = skip_quoted(i, '\'', w == "e");
                out.push(Tok::Str);
            } else {
                out.push(Tok::Word(w));
            }
        } else if ch == ':' && i + 1 < n && c[i + 1] == ':' {
            out.push(Tok::Op("::".into()));
            i += 2;
        } else if OP_CHARS.contains(ch) {
            let s = i;
            while i < n && OP_CHARS.contains(c[i]) {
                // a comment start ends the operator
                if (c[i] == '-' && i + 1 < n && c[i + 1] == '-')
                    || (c[i] == '/' && i + 1 < n && c[i + 1] == '*')
                {
                    break;
                }
                i += 1;
            }
            let mut op: String = c[s..i].iter().collect();
            // PostgreSQL: a multi-character operator ends in + or - only if it has one
            // of ~ ! @ # % ^ & | ` ? in it ("=-1" is "=" and "-1")
            if op.len() > 1 && !op.chars().any(|x| "~!@#%^&|`?".contains(x)) {
                while op.len() > 1 && (op.ends_with('+') || op.ends_with('-')) {
                    op.pop();
                    i -= 1;
                }
            }
            out.push(Tok::Op(op));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn tokens() {
        let t = tokenize("SELECT 'a''b', \"Odd\"\"Name\", $1, 1.5e-3, x::int -- c\n /* d /* e */ */ FROM $q$ x $q$");
        assert_eq!(
            t,
            vec![
                Tok::Word("select".into()),
                Tok::Str,
                Tok::Punct(','),
                Tok::Quoted("Odd\"Name".into()),
                Tok::Punct(','),
                Tok::Param,
                Tok::Punct(','),
                Tok::Num,
                Tok::Punct(','),
                Tok::Word("x".into()),
                Tok::Op("::".into()),
                Tok::Word("int".into()),
                Tok::Word("from".into()),
                Tok::Str,
            ]
        );
    }

    #[test]
    fn operators_follow_postgres() {
        assert_eq!(
            tokenize("a=-1"),
            vec![
                Tok::Word("a".into()),
                Tok::Op("=".into()),
                Tok::Op("-".into()),
                Tok::Num
            ]
        );
        assert_eq!(tokenize("a<=b").get(1), Some(&Tok::Op("<=".into())));
        // a comment start ends an operator
        assert_eq!(tokenize("a=--x\nb").len(), 3);
    }

    #[test]
    fn escape_strings_and_identifiers() {
        assert_eq!(
            tokenize(r"SELECT E'it\'s', x"),
            vec![
                Tok::Word("select".into()),
                Tok::Str,
                Tok::Punct(','),
                Tok::Word("x".into())
            ]
        );
        assert_eq!(tokenize("\"ab"), vec![Tok::Quoted("ab".into())]);
        assert_eq!(tokenize("\"\""), vec![Tok::Quoted(String::new())]);
        assert_eq!(tokenize("Ab$1"), vec![Tok::Word("ab$1".into())]);
    }

    #[test]
    fn dollar_bodies_are_code_when_asked() {
        let sql = "DO $$ BEGIN PERFORM f(7); END $$";
        assert_eq!(tokenize(sql), vec![Tok::Word("do".into()), Tok::Str]);
        let body = tokenize_bodies(sql);
        assert_eq!(body.first(), Some(&Tok::Word("do".into())));
        assert!(body.contains(&Tok::Word("perform".into())));
        assert!(body.contains(&Tok::Punct(';')));
        assert!(!body.contains(&Tok::Str));
        // a tagged body, and $n parameters stay parameters
        assert_eq!(
            tokenize_bodies("$fn$ x $fn$ $2"),
            vec![Tok::Word("x".into()), Tok::Param]
        );
    }

    #[test]
    fn token_predicates() {
        let t = tokenize("a \"B\" = $1 (");
        assert_eq!(t[0].ident(), Some("a"));
        assert_eq!(t[1].ident(), Some("B"));
        assert!(t[0].is_word("a") && !t[1].is_word("b"));
        assert!(t[2].is_op("="));
        assert!(t[3].is_value());
        assert!(t[4].is_punct('('));
    }
}
