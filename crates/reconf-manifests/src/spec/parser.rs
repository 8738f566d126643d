//! Turns the lines of one spec into a [`ProtocolSpec`], checking it as it goes.

use std::collections::BTreeSet;

use super::error::{Location, SpecError};
use super::lexer::{lex_line, Token, TokenKind};
use super::{Interaction, LinkAnnotation, ProtocolSpec};

const STATEMENT: &str = "`protocol`, `namespace`, `roles`, an interaction `From -> To : Message` or `@link`";

/// The tokens of one line, consumed left to right.
struct Cursor<'a> {
    file: &'a str,
    line: u32,
    tokens: &'a [Token],
    pos: usize,
    end_column: u32,
}

impl<'a> Cursor<'a> {
    fn at(&self, column: u32) -> Location {
        Location::new(self.file, self.line, column)
    }

    fn peek(&self) -> Option<&'a TokenKind> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn peek_is(&self, kind: &TokenKind) -> bool {
        self.peek() == Some(kind)
    }

    /// Where the next token is, or the end of the line.
    fn here(&self) -> Location {
        self.at(self.tokens.get(self.pos).map_or(self.end_column, |t| t.column))
    }

    fn syntax(&self, expected: &'static str) -> SpecError {
        let found = self.peek().map_or_else(|| "end of line".to_owned(), ToString::to_string);
        SpecError::Syntax { at: self.here(), expected, found }
    }

    fn expect(&mut self, kind: &TokenKind, expected: &'static str) -> Result<Location, SpecError> {
        if self.peek_is(kind) {
            let at = self.here();
            self.pos += 1;
            Ok(at)
        } else {
            Err(self.syntax(expected))
        }
    }

    fn word(&mut self, plain: bool, expected: &'static str) -> Result<(String, Location), SpecError> {
        match self.tokens.get(self.pos) {
            Some(t) if t.word().is_some() && (!plain || t.is_plain_name()) => {
                self.pos += 1;
                Ok((t.word().unwrap_or_default().to_owned(), self.at(t.column)))
            }
            _ => Err(self.syntax(expected)),
        }
    }

    /// A name without dots: roles, messages, keywords.
    fn name(&mut self, expected: &'static str) -> Result<(String, Location), SpecError> {
        self.word(true, expected)
    }

    /// A possibly dotted id: protocol ids, namespaces, bundle ids, interfaces.
    fn path(&mut self, expected: &'static str) -> Result<(String, Location), SpecError> {
        self.word(false, expected)
    }

    fn end(&self, expected: &'static str) -> Result<(), SpecError> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }
}

/// What a spec has declared so far.
struct Builder<'a> {
    file: &'a str,
    protocol: Option<(String, Location)>,
    namespace: Option<(String, Location)>,
    roles: Option<(Vec<String>, Location)>,
    interactions: Vec<Interaction>,
    /// Every import with its position, checked once all exports are known.
    imports: Vec<(String, Location)>,
}

/// The keys of one `@link` as they are read.
#[derive(Default)]
struct LinkKeys {
    bundle: Option<String>,
    role: Option<String>,
    exports: Option<Vec<String>>,
    imports: Option<Vec<String>>,
}

pub(crate) fn parse(file: &str, text: &str) -> Result<ProtocolSpec, SpecError> {
    let mut builder = Builder {
        file,
        protocol: None,
        namespace: None,
        roles: None,
        interactions: Vec::new(),
        imports: Vec::new(),
    };
    for (index, text) in text.lines().enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let lexed = lex_line(file, line, text)?;
        if lexed.tokens.is_empty() {
            continue;
        }
        let mut cursor = Cursor { file, line, tokens: &lexed.tokens, pos: 0, end_column: lexed.end_column };
        builder.statement(&mut cursor)?;
    }
    builder.finish()
}

impl Builder<'_> {
    fn statement(&mut self, cur: &mut Cursor<'_>) -> Result<(), SpecError> {
        let first = cur.peek().cloned();
        let second_is_arrow = cur.tokens.get(1).is_some_and(|t| t.kind == TokenKind::Arrow);
        match first {
            Some(TokenKind::At) => self.annotation_line(cur),
            // Checked before the keywords so a role may be called `roles` or `protocol`.
            Some(TokenKind::Word(_)) if second_is_arrow => self.interaction(cur),
            Some(TokenKind::Word(w)) if w == "protocol" => {
                let at = cur.here();
                cur.pos += 1;
                let value = cur.path("a protocol id")?;
                cur.end("end of line after the protocol id")?;
                Self::set_once(&mut self.protocol, "protocol", at, value)
            }
            Some(TokenKind::Word(w)) if w == "namespace" => {
                let at = cur.here();
                cur.pos += 1;
                let value = cur.path("a namespace")?;
                cur.end("end of line after the namespace")?;
                Self::set_once(&mut self.namespace, "namespace", at, value)
            }
            Some(TokenKind::Word(w)) if w == "roles" => self.roles(cur),
            _ => Err(cur.syntax(STATEMENT)),
        }
    }

    fn set_once(
        slot: &mut Option<(String, Location)>,
        keyword: &'static str,
        at: Location,
        value: (String, Location),
    ) -> Result<(), SpecError> {
        if let Some((_, first)) = slot {
            return Err(SpecError::DuplicateStatement { at, keyword, first: first.clone() });
        }
        *slot = Some(value);
        Ok(())
    }

    fn roles(&mut self, cur: &mut Cursor<'_>) -> Result<(), SpecError> {
        let at = cur.here();
        cur.pos += 1;
        if let Some((_, first)) = &self.roles {
            return Err(SpecError::DuplicateStatement { at, keyword: "roles", first: first.clone() });
        }
        let mut roles: Vec<String> = Vec::new();
        loop {
            let (role, role_at) = cur.name("a role name")?;
            if roles.contains(&role) {
                return Err(SpecError::DuplicateRole { at: role_at, role });
            }
            roles.push(role);
            if cur.peek().is_none() {
                break;
            }
            cur.expect(&TokenKind::Comma, "`,` or end of line")?;
        }
        self.roles = Some((roles, at));
        Ok(())
    }

    fn check_role(&self, role: &str, at: Location) -> Result<(), SpecError> {
        let declared = self.roles.as_ref().map(|(r, _)| r.as_slice()).unwrap_or_default();
        if declared.iter().any(|r| r == role) {
            return Ok(());
        }
        let declared = if declared.is_empty() { "none".to_owned() } else { declared.join(", ") };
        Err(SpecError::UnknownRole { at, role: role.to_owned(), declared })
    }

    fn interaction(&mut self, cur: &mut Cursor<'_>) -> Result<(), SpecError> {
        let (from, from_at) = cur.name("a role name")?;
        cur.expect(&TokenKind::Arrow, "`->`")?;
        let (to, to_at) = cur.name("a role name")?;
        cur.expect(&TokenKind::Colon, "`:` before the message name")?;
        let (message, _) = cur.name("a message name")?;
        self.check_role(&from, from_at)?;
        self.check_role(&to, to_at.clone())?;
        if from == to {
            return Err(SpecError::SelfMessage { at: to_at, role: to, message });
        }
        let links = self.annotations(cur, &from)?;
        self.interactions.push(Interaction { from, to, message, links });
        Ok(())
    }

    fn annotation_line(&mut self, cur: &mut Cursor<'_>) -> Result<(), SpecError> {
        let Some(sender) = self.interactions.last().map(|i| i.from.clone()) else {
            return Err(SpecError::AnnotationWithoutInteraction { at: cur.here() });
        };
        let links = self.annotations(cur, &sender)?;
        if let Some(last) = self.interactions.last_mut() {
            last.links.extend(links);
        }
        Ok(())
    }

    /// Zero or more annotations up to the end of the line.
    fn annotations(&mut self, cur: &mut Cursor<'_>, sender: &str) -> Result<Vec<LinkAnnotation>, SpecError> {
        let mut links = Vec::new();
        while cur.peek_is(&TokenKind::At) {
            links.push(self.annotation(cur, sender)?);
        }
        cur.end("`@link` or end of line")?;
        Ok(links)
    }

    fn annotation(&mut self, cur: &mut Cursor<'_>, sender: &str) -> Result<LinkAnnotation, SpecError> {
        let at = cur.expect(&TokenKind::At, "`@`")?;
        let (name, name_at) = cur.name("an annotation name after `@`")?;
        if name != "link" {
            return Err(SpecError::UnknownAnnotation { at: name_at, name });
        }
        let mut keys = LinkKeys::default();
        if !matches!(cur.peek(), None | Some(TokenKind::At)) {
            loop {
                self.link_key(cur, &mut keys)?;
                match cur.peek() {
                    Some(TokenKind::Comma) => cur.pos += 1,
                    None | Some(TokenKind::At) => break,
                    Some(_) => return Err(cur.syntax("`,`, `@` or end of line")),
                }
            }
        }
        let Some(bundle) = keys.bundle else {
            return Err(SpecError::MissingBundleId { at });
        };
        Ok(LinkAnnotation {
            role: keys.role.unwrap_or_else(|| sender.to_owned()),
            bundle,
            exports: keys.exports.unwrap_or_default(),
            imports: keys.imports.unwrap_or_default(),
        })
    }

    fn link_key(&mut self, cur: &mut Cursor<'_>, keys: &mut LinkKeys) -> Result<(), SpecError> {
        let (key, key_at) = cur.name("a `@link` key")?;
        let already = match key.as_str() {
            "bundle" => keys.bundle.is_some(),
            "role" => keys.role.is_some(),
            "exports" => keys.exports.is_some(),
            "imports" => keys.imports.is_some(),
            _ => return Err(SpecError::UnknownAnnotationKey { at: key_at, key }),
        };
        if already {
            return Err(SpecError::DuplicateAnnotationKey { at: key_at, key });
        }
        cur.expect(&TokenKind::Equals, "`=` after the key")?;
        match key.as_str() {
            "bundle" => {
                if matches!(cur.peek(), None | Some(TokenKind::Comma | TokenKind::At)) {
                    return Err(SpecError::EmptyBundleId { at: key_at });
                }
                keys.bundle = Some(cur.path("a bundle id")?.0);
            }
            "role" => {
                let (role, role_at) = cur.name("a role name")?;
                self.check_role(&role, role_at)?;
                keys.role = Some(role);
            }
            "exports" => keys.exports = Some(interfaces(cur)?.into_iter().map(|(i, _)| i).collect()),
            _ => {
                let imports = interfaces(cur)?;
                keys.imports = Some(imports.iter().map(|(i, _)| i.clone()).collect());
                self.imports.extend(imports);
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<ProtocolSpec, SpecError> {
        let start = Location::new(self.file, 1, 1);
        let missing = |keyword| SpecError::MissingStatement { at: start.clone(), keyword };
        let (id, declared_at) = self.protocol.ok_or_else(|| missing("protocol"))?;
        let (namespace, _) = self.namespace.ok_or_else(|| missing("namespace"))?;
        let (roles, _) = self.roles.ok_or_else(|| missing("roles"))?;
        let exports: BTreeSet<&str> = self
            .interactions
            .iter()
            .flat_map(|i| &i.links)
            .flat_map(|l| &l.exports)
            .map(String::as_str)
            .collect();
        if let Some((interface, at)) = self.imports.iter().find(|(i, _)| !exports.contains(i.as_str())) {
            return Err(SpecError::UnresolvedImport {
                at: at.clone(),
                interface: interface.clone(),
                protocol: id,
            });
        }
        Ok(ProtocolSpec { id, namespace, roles, interactions: self.interactions, declared_at })
    }
}

/// `iface` or `[iface, ...]` (a trailing comma is allowed; `[]` is an empty list).
fn interfaces(cur: &mut Cursor<'_>) -> Result<Vec<(String, Location)>, SpecError> {
    if !cur.peek_is(&TokenKind::OpenBracket) {
        return Ok(vec![cur.path("an interface name or `[`")?]);
    }
    cur.pos += 1;
    let mut out = Vec::new();
    while !cur.peek_is(&TokenKind::CloseBracket) {
        out.push(cur.path("an interface name or `]`")?);
        if !cur.peek_is(&TokenKind::CloseBracket) {
            cur.expect(&TokenKind::Comma, "`,` or `]`")?;
        }
    }
    cur.pos += 1;
    Ok(out)
}
