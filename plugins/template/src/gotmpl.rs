//! The part of Go's `text/template` that CoreDNS templates use.
//!
//! Supported: text and actions `{{ }}` with the `{{-`/`-}}` trim markers and `{{/* */}}`
//! comments; pipelines with `|`; fields (`.A.B`, map keys by field syntax), `$` and variables
//! (`$x := ...`, `$x = ...`, `range $i, $e := ...`); parenthesised pipelines; string, raw string,
//! character, number, `true`/`false`/`nil` constants; `if`/`else if`/`else`/`end`, `range`
//! (with `else`, `break`, `continue`), `with`; the builtins `and or not len index slice print
//! printf println eq ne lt le gt ge html js urlquery`, and CoreDNS's `parseInt`
//! (`strconv.ParseUint`). Parse errors read as Go's (`template: NAME:LINE: ...`); execution
//! errors as Go's `template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`.
//!
//! Not supported: `define`, `template`, `block`, `call` (refused when parsed).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value in template data.
#[derive(Debug, Clone)]
pub enum Value {
    /// Go's invalid value (a missing map key): printed `<no value>`.
    Invalid,
    /// nil.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (`uint16` fields, `parseInt` results).
    Uint(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A slice.
    List(Vec<Value>),
    /// A `map[string]...`.
    Map(BTreeMap<String, Value>),
    /// A struct (or pointer to one) with named fields.
    Struct(Box<Struct>),
}

/// A struct value: its Go type name (for errors), fields, optional `String()` form and the
/// `Meta` method's values.
#[derive(Debug, Clone, Default)]
pub struct Struct {
    /// Go type name, e.g. `*template.templateData`.
    pub type_name: String,
    /// Fields in declaration order.
    pub fields: Vec<(String, Value)>,
    /// What `fmt` prints for it (its `String` method), if it has one.
    pub display: Option<String>,
    /// Whether it has the `Meta NAME` method (answered by the `meta` function given to
    /// [`Template::execute`]).
    pub meta: bool,
}

impl Value {
    fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Struct(_) => true,
        }
    }

    fn type_name(&self) -> String {
        match self {
            Value::Invalid => "invalid".into(),
            Value::Nil => "nil".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Uint(_) => "uint64".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(_) => "[]string".into(),
            Value::Map(_) => "map[string]string".into(),
            Value::Struct(s) => s.type_name.clone(),
        }
    }

    /// Go's `%v`.
    pub fn display(&self) -> String {
        match self {
            Value::Invalid => "<no value>".into(),
            Value::Nil => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Uint(u) => u.to_string(),
            Value::Float(f) => go_float(*f),
            Value::Str(s) => s.clone(),
            Value::List(l) => {
                let parts: Vec<String> = l.iter().map(Value::display).collect();
                format!("[{}]", parts.join(" "))
            }
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.display()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
            Value::Struct(s) => match &s.display {
                Some(d) => d.clone(),
                None => {
                    let parts: Vec<String> = s.fields.iter().map(|(_, v)| v.display()).collect();
                    format!("{{{}}}", parts.join(" "))
                }
            },
        }
    }
}

fn go_float(f: f64) -> String {
    if f == f.trunc() && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    text: String,
    root: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Option<Vec<Node>>),
    Range(Pipe, Vec<Node>, Option<Vec<Node>>),
    With(Pipe, Vec<Node>, Option<Vec<Node>>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    Field(usize, Vec<String>),
    Var(usize, String, Vec<String>),
    Ident(String),
    Str(String, String),
    Num(Number, String),
    Bool(bool),
    Nil,
    Pipe(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Uint(u64),
    Float(f64),
}

const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "parseInt", "call",
];

// ---------------------------------------------------------------------------------------------
// String forms (Go's parse.Node String), used as the `template` metric label.

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&list_string(&self.root))
    }
}

fn list_string(nodes: &[Node]) -> String {
    let mut s = String::new();
    for n in nodes {
        s.push_str(&node_string(n));
    }
    s
}

fn node_string(n: &Node) -> String {
    let branch = |kw: &str, p: &Pipe, l: &[Node], e: &Option<Vec<Node>>| {
        let mut s = format!("{{{{{kw} {}}}}}{}", pipe_string(p), list_string(l));
        if let Some(e) = e {
            let _ = write!(s, "{{{{else}}}}{}", list_string(e));
        }
        s.push_str("{{end}}");
        s
    };
    match n {
        Node::Text(t) => t.clone(),
        Node::Action(p) => format!("{{{{{}}}}}", pipe_string(p)),
        Node::If(p, l, e) => branch("if", p, l, e),
        Node::Range(p, l, e) => branch("range", p, l, e),
        Node::With(p, l, e) => branch("with", p, l, e),
        Node::Break => "{{break}}".into(),
        Node::Continue => "{{continue}}".into(),
    }
}

fn pipe_string(p: &Pipe) -> String {
    let mut s = String::new();
    if !p.decl.is_empty() {
        s.push_str(&p.decl.join(", "));
        s.push_str(if p.assign { " = " } else { " := " });
    }
    let cmds: Vec<String> = p.cmds.iter().map(cmd_string).collect();
    s.push_str(&cmds.join(" | "));
    s
}

fn cmd_string(c: &Cmd) -> String {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| match a {
            Arg::Pipe(p, fields) if fields.is_empty() => format!("({})", pipe_string(p)),
            other => arg_string(other),
        })
        .collect();
    args.join(" ")
}

fn arg_string(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".into(),
        Arg::Field(_, f) => f.iter().map(|x| format!(".{x}")).collect(),
        Arg::Var(_, v, f) => {
            let mut s = v.clone();
            for x in f {
                let _ = write!(s, ".{x}");
            }
            s
        }
        Arg::Ident(i) => i.clone(),
        Arg::Str(_, raw) | Arg::Num(_, raw) => raw.clone(),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Pipe(p, f) => {
            let mut s = format!("({})", pipe_string(p));
            for x in f {
                let _ = write!(s, ".{x}");
            }
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexing and parsing.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String, String),
    Char(i64, String),
    Num(String),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    pos: usize,
    vars: Vec<Vec<String>>,
    range_depth: usize,
}

/// A parse error in Go's words.
fn perr(name: &str, text: &str, pos: usize, msg: impl std::fmt::Display) -> String {
    let line = 1 + text[..pos.min(text.len())].matches('\n').count();
    format!("template: {name}:{line}: {msg}")
}

enum Item {
    Node(Node),
    Else(Option<Pipe>, bool, usize),
    End(usize),
    Eof,
}

impl<'a> Parser<'a> {
    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        perr(self.name, self.text, pos, msg)
    }

    /// The next text run or action. `trim_next` says the previous action ended with `-}}`.
    fn next_item(&mut self, trim_left: &mut bool) -> Result<Item, String> {
        loop {
            if self.pos >= self.text.len() {
                return Ok(Item::Eof);
            }
            let rest = &self.text[self.pos..];
            match rest.find("{{") {
                Some(0) => {}
                found => {
                    let end = found.unwrap_or(rest.len());
                    let mut t = &rest[..end];
                    if *trim_left {
                        t = t.trim_start_matches([' ', '\t', '\r', '\n']);
                    }
                    // A following `{{- ` trims this text's end.
                    let after = &rest[end..];
                    if after.starts_with("{{- ")
                        || after.starts_with("{{-\t")
                        || after.starts_with("{{-\n")
                        || after.starts_with("{{-\r")
                    {
                        t = t.trim_end_matches([' ', '\t', '\r', '\n']);
                    }
                    self.pos += end;
                    *trim_left = false;
                    if !t.is_empty() {
                        return Ok(Item::Node(Node::Text(t.to_string())));
                    }
                    continue;
                }
            }
            // An action.
            let start = self.pos;
            self.pos += 2;
            let b = self.text.as_bytes();
            if b.get(self.pos) == Some(&b'-')
                && matches!(b.get(self.pos + 1), Some(b' ' | b'\t' | b'\r' | b'\n'))
            {
                self.pos += 2;
            }
            *trim_left = false;
            // Comment.
            // A comment must follow the delimiter (and its trim marker) directly, as in Go.
            let inner = &self.text[self.pos..];
            if inner.starts_with("/*") {
                let cstart = self.text.len() - inner.len();
                let Some(close) = self.text[cstart + 2..].find("*/") else {
                    return Err(self.err(start, "unclosed comment"));
                };
                let mut p = cstart + 2 + close + 2;
                let after = &self.text[p..];
                let trimmed = after.trim_start_matches([' ', '\t', '\r', '\n']);
                let mut q = self.text.len() - trimmed.len();
                if trimmed.starts_with("-}}") && q > p {
                    *trim_left = true;
                    q += 3;
                } else if trimmed.starts_with("}}") {
                    q += 2;
                } else {
                    return Err(self.err(start, "comment ends before closing delimiter"));
                }
                p = q;
                self.pos = p;
                continue;
            }
            return self.action(start, trim_left);
        }
    }

    fn lex_action(
        &mut self,
        start: usize,
        trim_left: &mut bool,
    ) -> Result<Vec<(Tok, usize, bool)>, String> {
        let b = self.text.as_bytes();
        let mut toks = Vec::new();
        let mut space = true;
        let mut depth = 0i32;
        loop {
            let Some(&c) = b.get(self.pos) else {
                return Err(self.err(start, "unclosed action"));
            };
            let here = self.pos;
            if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
                // ` -}}` closes with a trim.
                let rest = &self.text[self.pos..];
                let t = rest.trim_start_matches([' ', '\t', '\r', '\n']);
                if t.starts_with("-}}") {
                    self.pos = self.text.len() - t.len() + 3;
                    *trim_left = true;
                    if depth > 0 {
                        return Err(self.err(start, "unclosed left paren"));
                    }
                    return Ok(toks);
                }
                if c == b'\n' && depth == 0 {
                    // Newlines are allowed inside actions in Go 1.16+.
                }
                self.pos += 1;
                space = true;
                continue;
            }
            if self.text[self.pos..].starts_with("}}") {
                self.pos += 2;
                if depth > 0 {
                    return Err(self.err(start, "unclosed left paren"));
                }
                return Ok(toks);
            }
            let tok = match c {
                b'|' => {
                    self.pos += 1;
                    Tok::Pipe
                }
                b'(' => {
                    self.pos += 1;
                    depth += 1;
                    Tok::LParen
                }
                b')' => {
                    self.pos += 1;
                    depth -= 1;
                    if depth < 0 {
                        return Err(self.err(here, "unexpected right paren"));
                    }
                    Tok::RParen
                }
                b',' => {
                    self.pos += 1;
                    Tok::Comma
                }
                b':' => {
                    if b.get(self.pos + 1) == Some(&b'=') {
                        self.pos += 2;
                        Tok::Declare
                    } else {
                        return Err(self.err(here, "expected :="));
                    }
                }
                b'=' => {
                    self.pos += 1;
                    Tok::Assign
                }
                b'"' => {
                    let mut i = self.pos + 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                return Err(self.err(here, "unterminated quoted string"));
                            }
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            _ => i += 1,
                        }
                    }
                    let raw = &self.text[self.pos..=i];
                    let v = unquote(raw)
                        .ok_or_else(|| self.err(here, format!("invalid syntax: {raw}")))?;
                    self.pos = i + 1;
                    Tok::Str(v, raw.to_string())
                }
                b'`' => {
                    let Some(end) = self.text[self.pos + 1..].find('`') else {
                        return Err(self.err(here, "unterminated raw quoted string"));
                    };
                    let raw = &self.text[self.pos..self.pos + end + 2];
                    self.pos += end + 2;
                    Tok::Str(raw[1..raw.len() - 1].to_string(), raw.to_string())
                }
                b'\'' => {
                    let mut i = self.pos + 1;
                    loop {
                        match b.get(i) {
                            None | Some(b'\n') => {
                                return Err(self.err(here, "unterminated character constant"));
                            }
                            Some(b'\\') => i += 2,
                            Some(b'\'') => break,
                            _ => i += 1,
                        }
                    }
                    let raw = &self.text[self.pos..=i];
                    let inner = format!("\"{}\"", &raw[1..raw.len() - 1]);
                    let v = unquote(&inner)
                        .and_then(|s| {
                            let mut cs = s.chars();
                            match (cs.next(), cs.next()) {
                                (Some(c), None) => Some(c as i64),
                                _ => None,
                            }
                        })
                        .ok_or_else(|| {
                            self.err(here, format!("malformed character constant: {raw}"))
                        })?;
                    self.pos = i + 1;
                    Tok::Char(v, raw.to_string())
                }
                b'$' => {
                    let mut i = self.pos + 1;
                    while b
                        .get(i)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        i += 1;
                    }
                    let v = self.text[self.pos..i].to_string();
                    self.pos = i;
                    Tok::Var(v)
                }
                b'.' => {
                    let next = b.get(self.pos + 1).copied();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        self.number()?
                    } else {
                        let mut i = self.pos + 1;
                        while b
                            .get(i)
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                        {
                            i += 1;
                        }
                        let f = self.text[self.pos + 1..i].to_string();
                        self.pos = i;
                        if f.is_empty() {
                            Tok::Dot
                        } else {
                            Tok::Field(f)
                        }
                    }
                }
                b'+' | b'-' | b'0'..=b'9' => self.number()?,
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    let mut i = self.pos;
                    while let Some(ch) = self.text[i..].chars().next() {
                        if ch.is_alphanumeric() || ch == '_' {
                            i += ch.len_utf8();
                        } else {
                            break;
                        }
                    }
                    let w = self.text[self.pos..i].to_string();
                    self.pos = i;
                    Tok::Ident(w)
                }
                b'/' => {
                    return Err(self.err(here, "unexpected \"/\" in command"));
                }
                _ => {
                    let ch = self.text[self.pos..].chars().next().unwrap_or('?');
                    return Err(self.err(
                        here,
                        format!(
                            "unrecognized character in action: U+{:04X} {}",
                            ch as u32,
                            go_quote_char(ch)
                        ),
                    ));
                }
            };
            toks.push((tok, here, space));
            space = false;
        }
    }

    fn number(&mut self) -> Result<Tok, String> {
        let b = self.text.as_bytes();
        let start = self.pos;
        let mut i = self.pos;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while b.get(i).is_some_and(|c| {
            c.is_ascii_alphanumeric()
                || *c == b'.'
                || *c == b'_'
                || ((*c == b'+' || *c == b'-')
                    && matches!(b.get(i - 1), Some(b'e' | b'E' | b'p' | b'P')))
        }) {
            i += 1;
        }
        self.pos = i;
        let raw = &self.text[start..i];
        if parse_number(raw).is_none() {
            return Err(self.err(start, format!("bad number syntax: {}", go_quote_str(raw))));
        }
        Ok(Tok::Num(raw.to_string()))
    }

    fn action(&mut self, start: usize, trim_left: &mut bool) -> Result<Item, String> {
        let toks = self.lex_action(start, trim_left)?;
        let mut i = 0;
        let kw = match toks.first() {
            Some((Tok::Ident(w), _, _)) => w.as_str(),
            None => return Err(self.err(start, "missing value for command")),
            _ => "",
        };
        match kw {
            "end" => {
                if toks.len() > 1 {
                    return Err(
                        self.err(start, format!("unexpected {} in end", tok_desc(&toks[1].0)))
                    );
                }
                Ok(Item::End(start))
            }
            "else" => {
                if toks.len() == 1 {
                    return Ok(Item::Else(None, false, start));
                }
                match &toks[1].0 {
                    Tok::Ident(w) if w == "if" || w == "with" => {
                        i = 2;
                        let p = self.pipeline(&toks, &mut i, start, w)?;
                        self.expect_end(&toks, i, start, w)?;
                        Ok(Item::Else(Some(p), w == "with", start))
                    }
                    t => Err(self.err(start, format!("unexpected {} in else", tok_desc(t)))),
                }
            }
            "if" | "with" | "range" => {
                i = 1;
                self.vars
                    .push(self.vars.last().cloned().unwrap_or_default());
                let p = self.pipeline(&toks, &mut i, start, kw)?;
                self.expect_end(&toks, i, start, kw)?;
                let r = self.branch(kw, p, start);
                self.vars.pop();
                r.map(Item::Node)
            }
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return Err(self.err(start, format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                }
                if toks.len() > 1 {
                    return Err(self.err(
                        start,
                        format!("unexpected {} in {{{{{kw}}}}}", tok_desc(&toks[1].0)),
                    ));
                }
                Ok(Item::Node(if kw == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            "define" | "template" | "block" => Err(self.err(
                start,
                format!("{kw} is not supported by ferrodns templates"),
            )),
            _ => {
                let p = self.pipeline(&toks, &mut i, start, "command")?;
                if i < toks.len() {
                    return Err(self.err(
                        start,
                        format!("unexpected {} in operand", tok_desc(&toks[i].0)),
                    ));
                }
                Ok(Item::Node(Node::Action(p)))
            }
        }
    }

    fn expect_end(
        &self,
        toks: &[(Tok, usize, bool)],
        i: usize,
        start: usize,
        ctx: &str,
    ) -> Result<(), String> {
        if i < toks.len() {
            return Err(self.err(
                start,
                format!("unexpected {} in {ctx}", tok_desc(&toks[i].0)),
            ));
        }
        Ok(())
    }

    fn branch(&mut self, kw: &str, p: Pipe, start: usize) -> Result<Node, String> {
        let mut trim = false;
        if kw == "range" {
            self.range_depth += 1;
        }
        let listed = self.list(&mut trim);
        if kw == "range" {
            self.range_depth -= 1;
        }
        let (list, end) = listed?;
        let (else_list, _) = match end {
            Item::End(_) => (None, ()),
            Item::Else(None, _, _) => {
                let (l, e2) = self.list(&mut trim)?;
                if !matches!(e2, Item::End(_)) {
                    return Err(self.err(start, "unexpected EOF".to_string()));
                }
                (Some(l), ())
            }
            Item::Else(Some(p2), with, pos) => {
                // `else if` / `else with`: a nested branch ending at the same `end`.
                let nested = self.branch(if with { "with" } else { "if" }, p2, pos)?;
                (Some(vec![nested]), ())
            }
            _ => return Err(self.err(self.text.len(), "unexpected EOF")),
        };
        Ok(match kw {
            "if" => Node::If(p, list, else_list),
            "with" => Node::With(p, list, else_list),
            _ => Node::Range(p, list, else_list),
        })
    }

    /// Nodes up to an `else` or `end` (returned as the item that ended the list).
    fn list(&mut self, trim: &mut bool) -> Result<(Vec<Node>, Item), String> {
        let mut out = Vec::new();
        loop {
            match self.next_item(trim)? {
                Item::Node(n) => out.push(n),
                Item::Eof => return Err(self.err(self.text.len(), "unexpected EOF")),
                other => return Ok((out, other)),
            }
        }
    }

    fn pipeline(
        &mut self,
        toks: &[(Tok, usize, bool)],
        i: &mut usize,
        start: usize,
        context: &str,
    ) -> Result<Pipe, String> {
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $e :=`.
        if let Some((Tok::Var(v), _, _)) = toks.get(*i) {
            match toks.get(*i + 1).map(|t| &t.0) {
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = toks[*i + 1].0 == Tok::Assign;
                    decl.push(v.clone());
                    *i += 2;
                }
                Some(Tok::Comma) => {
                    if let (Some((Tok::Var(v2), _, _)), Some((Tok::Declare | Tok::Assign, _, _))) =
                        (toks.get(*i + 2), toks.get(*i + 3))
                    {
                        assign = toks[*i + 3].0 == Tok::Assign;
                        decl.push(v.clone());
                        decl.push(v2.clone());
                        *i += 4;
                    }
                }
                _ => {}
            }
        }
        // Go records assigned variables as declared too (an undefined one fails when run).
        for d in &decl {
            if let Some(top) = self.vars.last_mut() {
                top.push(d.clone());
            }
        }
        let mut cmds = Vec::new();
        if matches!(toks.get(*i), None | Some((Tok::RParen, _, _))) {
            return Err(self.err(start, format!("missing value for {context}")));
        }
        loop {
            let cmd = self.command(toks, i, start)?;
            cmds.push(cmd);
            match toks.get(*i) {
                Some((Tok::Pipe, _, _)) => {
                    *i += 1;
                    // A trailing `|` is accepted, as Go's parser does.
                    if matches!(toks.get(*i), None | Some((Tok::RParen, _, _))) {
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn known_var(&self, v: &str) -> bool {
        v == "$" || self.vars.iter().any(|s| s.iter().any(|x| x == v))
    }

    fn command(
        &mut self,
        toks: &[(Tok, usize, bool)],
        i: &mut usize,
        start: usize,
    ) -> Result<Cmd, String> {
        let pos = toks.get(*i).map(|t| t.1).unwrap_or(start);
        let mut args = Vec::new();
        loop {
            match toks.get(*i) {
                None | Some((Tok::Pipe, _, _)) | Some((Tok::RParen, _, _)) => break,
                Some((_, _, _))
                    if !args.is_empty() && !toks[*i].2 && !matches!(toks[*i].0, Tok::LParen) =>
                {
                    return Err(self.err(start, "missing space?".to_string()));
                }
                _ => {}
            }
            let a = self.operand(toks, i, start)?;
            args.push(a);
        }
        if args.is_empty() {
            return Err(self.err(start, "missing value for command"));
        }
        Ok(Cmd { pos, args })
    }

    fn fields(&self, toks: &[(Tok, usize, bool)], i: &mut usize) -> Vec<String> {
        let mut f = Vec::new();
        while let Some((Tok::Field(x), _, false)) = toks.get(*i) {
            f.push(x.clone());
            *i += 1;
        }
        f
    }

    fn operand(
        &mut self,
        toks: &[(Tok, usize, bool)],
        i: &mut usize,
        start: usize,
    ) -> Result<Arg, String> {
        let (tok, pos, _) = toks[*i].clone();
        *i += 1;
        Ok(match tok {
            Tok::Dot => Arg::Dot,
            Tok::Field(f) => {
                let mut all = vec![f];
                all.extend(self.fields(toks, i));
                Arg::Field(pos, all)
            }
            Tok::Var(v) => {
                if !self.known_var(&v) {
                    return Err(self.err(pos, format!("undefined variable \"{v}\"")));
                }
                let f = self.fields(toks, i);
                Arg::Var(pos, v, f)
            }
            Tok::Ident(w) => match w.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ if FUNCS.contains(&w.as_str()) => {
                    if w == "call" {
                        return Err(self.err(pos, "call is not supported by ferrodns templates"));
                    }
                    Arg::Ident(w)
                }
                _ => return Err(self.err(pos, format!("function \"{w}\" not defined"))),
            },
            Tok::Str(v, raw) => Arg::Str(v, raw),
            Tok::Char(v, raw) => Arg::Num(Number::Int(v), raw),
            Tok::Num(raw) => Arg::Num(parse_number(&raw).unwrap_or(Number::Int(0)), raw),
            Tok::LParen => {
                let p = self.pipeline(toks, i, start, "parenthesized pipeline")?;
                match toks.get(*i) {
                    Some((Tok::RParen, _, _)) => *i += 1,
                    _ => return Err(self.err(start, "unclosed left paren")),
                }
                let f = self.fields(toks, i);
                Arg::Pipe(Box::new(p), f)
            }
            other => {
                return Err(self.err(pos, format!("unexpected {} in operand", tok_desc(&other))));
            }
        })
    }
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Dot => "<.>".into(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Var(v) => format!("<{v}>"),
        Tok::Ident(w) => format!("<{w}>"),
        Tok::Str(_, raw) | Tok::Char(_, raw) | Tok::Num(raw) => raw.clone(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}

fn go_quote_char(c: char) -> String {
    format!("'{c}'")
}

fn go_quote_str(s: &str) -> String {
    ferrodns_plugin::text::go_quote(s)
}

fn parse_number(raw: &str) -> Option<Number> {
    let s = raw.replace('_', "");
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r.to_string()),
        None => (false, s.strip_prefix('+').unwrap_or(&s).to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        u64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|c| c.is_ascii_digit()) {
        lower.parse::<u64>().ok()
    } else {
        None
    };
    if let Some(u) = int {
        if neg {
            return i64::try_from(u).ok().map(|v| Number::Int(-v));
        }
        return Some(match i64::try_from(u) {
            Ok(v) => Number::Int(v),
            Err(_) => Number::Uint(u),
        });
    }
    let f: f64 = lower.parse().ok()?;
    Some(Number::Float(if neg { -f } else { f }))
}

/// Go's `strconv.Unquote` for a double-quoted string (common escapes).
fn unquote(raw: &str) -> Option<String> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => {
                let h: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&h, 16).ok()?));
            }
            'u' => {
                let h: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            'U' => {
                let h: String = chars.by_ref().take(8).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            d @ '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u8::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                out.push(char::from(v));
            }
            _ => return None,
        }
    }
    Some(out)
}

impl Template {
    /// Parse `text` as template `name`. The error is Go's text.
    pub fn parse(name: &str, text: &str) -> Result<Template, String> {
        let mut p = Parser {
            name,
            text,
            pos: 0,
            vars: vec![vec!["$".to_string()]],
            range_depth: 0,
        };
        let mut trim = false;
        let mut root = Vec::new();
        loop {
            match p.next_item(&mut trim)? {
                Item::Node(n) => root.push(n),
                Item::Eof => break,
                Item::End(pos) => return Err(p.err(pos, "unexpected {{end}}")),
                Item::Else(_, _, pos) => return Err(p.err(pos, "unexpected {{else}}")),
            }
        }
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            root,
        })
    }

    /// Run the template on `data`.
    pub fn execute(&self, data: &Value, meta: &dyn Fn(&str) -> String) -> Result<String, String> {
        let mut st = State {
            tmpl: self,
            meta,
            vars: vec![("$".to_string(), data.clone())],
            out: String::new(),
        };
        match st.walk(data, &self.root) {
            Ok(()) | Err(Flow::Break) | Err(Flow::Continue) => Ok(st.out),
            Err(Flow::Error(e)) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Execution.

enum Flow {
    Break,
    Continue,
    Error(String),
}

struct State<'t> {
    tmpl: &'t Template,
    meta: &'t dyn Fn(&str) -> String,
    vars: Vec<(String, Value)>,
    out: String,
}

impl State<'_> {
    fn errf(&self, pos: usize, context: &str, msg: impl std::fmt::Display) -> Flow {
        let text = &self.tmpl.text[..pos.min(self.tmpl.text.len())];
        let line = 1 + text.matches('\n').count();
        let col = match text.rfind('\n') {
            Some(n) => pos - (n + 1),
            None => pos,
        };
        Flow::Error(format!(
            "template: {}:{line}:{col}: executing \"{}\" at <{context}>: {msg}",
            self.tmpl.name, self.tmpl.name
        ))
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(dot, p)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.display());
                    }
                }
                Node::If(p, l, e) | Node::With(p, l, e) => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, p)?;
                    let is_with = matches!(n, Node::With(..));
                    let r = if v.truth() {
                        if is_with {
                            self.walk(&v, l)
                        } else {
                            self.walk(dot, l)
                        }
                    } else if let Some(e) = e {
                        self.walk(dot, e)
                    } else {
                        Ok(())
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, l, e) => {
                    let mark = self.vars.len();
                    let mut p2 = p.clone();
                    let decl = std::mem::take(&mut p2.decl);
                    let v = self.pipe(dot, &p2)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::List(xs) => xs
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                            .collect(),
                        Value::Map(m) => m
                            .iter()
                            .map(|(k, x)| (Value::Str(k.clone()), x.clone()))
                            .collect(),
                        Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Invalid | Value::Nil => Vec::new(),
                        other => {
                            return Err(self.errf(
                                p.cmds[0].pos,
                                &pipe_string(p),
                                format!("range can't iterate over {}", other.display()),
                            ));
                        }
                    };
                    if items.is_empty()
                        && let Some(e) = e
                    {
                        self.walk(dot, e)?;
                    }
                    for (k, x) in items {
                        let inner = self.vars.len();
                        match decl.len() {
                            1 => self.vars.push((decl[0].clone(), x.clone())),
                            2 => {
                                self.vars.push((decl[0].clone(), k));
                                self.vars.push((decl[1].clone(), x.clone()));
                            }
                            _ => {}
                        }
                        let r = self.walk(&x, l);
                        self.vars.truncate(inner);
                        match r {
                            Ok(()) | Err(Flow::Continue) => {}
                            Err(Flow::Break) => break,
                            Err(e) => return Err(e),
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Break => return Err(Flow::Break),
                Node::Continue => return Err(Flow::Continue),
            }
        }
        Ok(())
    }

    fn pipe(&mut self, dot: &Value, p: &Pipe) -> Result<Value, Flow> {
        let mut last: Option<Value> = None;
        for c in &p.cmds {
            last = Some(self.command(dot, c, last)?);
        }
        let v = last.unwrap_or(Value::Invalid);
        for d in &p.decl {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == d) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        let pos = p.cmds.first().map(|c| c.pos).unwrap_or(0);
                        return Err(self.errf(
                            pos,
                            &pipe_string(p),
                            format!("undefined variable: {d}"),
                        ));
                    }
                }
            } else {
                self.vars.push((d.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, dot: &Value, c: &Cmd, fin: Option<Value>) -> Result<Value, Flow> {
        let first = &c.args[0];
        match first {
            Arg::Ident(name) => {
                let ctx = cmd_string(c);
                let mut args = Vec::new();
                // and/or short-circuit.
                if name == "and" || name == "or" {
                    let mut all: Vec<&Arg> = c.args[1..].iter().collect();
                    let _ = &mut all;
                    if all.is_empty() && fin.is_none() {
                        return Err(self.errf(
                            c.pos,
                            &ctx,
                            format!("wrong number of args for {name}: want at least 1 got 0"),
                        ));
                    }
                    let mut v = Value::Invalid;
                    for a in all {
                        v = self.arg(dot, a)?;
                        if (name == "and") != v.truth() {
                            return Ok(v);
                        }
                    }
                    if let Some(f) = fin {
                        v = f;
                    }
                    return Ok(v);
                }
                for a in &c.args[1..] {
                    args.push(self.arg(dot, a)?);
                }
                if let Some(f) = fin {
                    args.push(f);
                }
                call(name, args).map_err(|e| self.errf(c.pos, &ctx, e))
            }
            _ => {
                if c.args.len() > 1 || fin.is_some() {
                    // A method call: only `.Meta NAME` exists.
                    if let Arg::Field(pos, f) = first
                        && f.last().map(String::as_str) == Some("Meta")
                    {
                        let recv = self.chain(dot, dot, *pos, &f[..f.len() - 1], first)?;
                        let mut args = Vec::new();
                        for a in &c.args[1..] {
                            args.push(self.arg(dot, a)?);
                        }
                        if let Some(v) = fin {
                            args.push(v);
                        }
                        return self.meta(&recv, args, *pos, first);
                    }
                    let ctx = arg_string(first);
                    return Err(self.errf(
                        c.pos,
                        &ctx,
                        format!("can't give argument to non-function {ctx}"),
                    ));
                }
                self.arg(dot, first)
            }
        }
    }

    fn meta(&self, recv: &Value, args: Vec<Value>, pos: usize, node: &Arg) -> Result<Value, Flow> {
        let ctx = arg_string(node);
        let Value::Struct(s) = recv else {
            return Err(self.errf(
                pos,
                &ctx,
                format!("can't evaluate field Meta in type {}", recv.type_name()),
            ));
        };
        if !s.meta {
            return Err(self.errf(
                pos,
                &ctx,
                format!("can't evaluate field Meta in type {}", s.type_name),
            ));
        };
        if args.len() != 1 {
            return Err(self.errf(
                pos,
                &ctx,
                format!("wrong number of args for Meta: want 1 got {}", args.len()),
            ));
        }
        let Value::Str(k) = &args[0] else {
            return Err(self.errf(
                pos,
                &ctx,
                format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                ),
            ));
        };
        Ok(Value::Str((self.meta)(k)))
    }

    fn arg(&mut self, dot: &Value, a: &Arg) -> Result<Value, Flow> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(pos, f) => {
                if f.last().map(String::as_str) == Some("Meta") {
                    let ctx = arg_string(a);
                    return Err(self.errf(
                        *pos,
                        &ctx,
                        "wrong number of args for Meta: want 1 got 0",
                    ));
                }
                self.chain(dot, dot, *pos, f, a)?
            }
            Arg::Var(pos, v, f) => {
                let base = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == v)
                    .map(|(_, x)| x.clone())
                    .unwrap_or(Value::Invalid);
                self.chain(dot, &base, *pos, f, a)?
            }
            Arg::Ident(name) => call(name, Vec::new()).map_err(|e| self.errf(0, name, e))?,
            Arg::Str(s, _) => Value::Str(s.clone()),
            Arg::Num(n, _) => match n {
                Number::Int(i) => Value::Int(*i),
                Number::Uint(u) => Value::Uint(*u),
                Number::Float(f) => Value::Float(*f),
            },
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Nil,
            Arg::Pipe(p, f) => {
                let v = self.pipe(dot, p)?;
                self.chain(dot, &v, 0, f, a)?
            }
        })
    }

    fn chain(
        &self,
        _dot: &Value,
        base: &Value,
        pos: usize,
        fields: &[String],
        node: &Arg,
    ) -> Result<Value, Flow> {
        let mut cur = base.clone();
        for f in fields {
            cur = match &cur {
                Value::Struct(s) => match s.fields.iter().find(|(n, _)| n == f) {
                    Some((_, v)) => v.clone(),
                    None => {
                        return Err(self.errf(
                            pos,
                            &arg_string(node),
                            format!("can't evaluate field {f} in type {}", s.type_name),
                        ));
                    }
                },
                Value::Map(m) => m.get(f).cloned().unwrap_or(Value::Invalid),
                Value::Invalid | Value::Nil => {
                    return Err(self.errf(
                        pos,
                        &arg_string(node),
                        format!("nil pointer evaluating {}.{f}", cur.type_name()),
                    ));
                }
                other => {
                    return Err(self.errf(
                        pos,
                        &arg_string(node),
                        format!("can't evaluate field {f} in type {}", other.type_name()),
                    ));
                }
            };
        }
        Ok(cur)
    }
}

// ---------------------------------------------------------------------------------------------
// Builtins.

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Uint(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    match name {
        "not" => {
            want(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            want(name, &args, 1)?;
            let n = match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ));
                }
            };
            Ok(Value::Int(n as i64))
        }
        "index" => {
            if args.is_empty() {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            }
            let mut cur = args[0].clone();
            for ix in &args[1..] {
                cur = match &cur {
                    Value::List(l) => {
                        let i = as_int(ix).ok_or_else(|| {
                            format!(
                                "error calling index: cannot index slice/array with type {}",
                                ix.type_name()
                            )
                        })?;
                        if i < 0 || i as usize >= l.len() {
                            return Err(format!("error calling index: index out of range: {i}"));
                        }
                        l[i as usize].clone()
                    }
                    Value::Str(s) => {
                        let i = as_int(ix).ok_or_else(|| {
                            format!(
                                "error calling index: cannot index slice/array with type {}",
                                ix.type_name()
                            )
                        })?;
                        if i < 0 || i as usize >= s.len() {
                            return Err(format!("error calling index: index out of range: {i}"));
                        }
                        Value::Uint(u64::from(s.as_bytes()[i as usize]))
                    }
                    Value::Map(m) => match ix {
                        Value::Str(k) => m.get(k).cloned().unwrap_or(Value::Str(String::new())),
                        other => {
                            return Err(format!(
                                "error calling index: value has type {}; should be string",
                                other.type_name()
                            ));
                        }
                    },
                    Value::Nil | Value::Invalid => {
                        return Err("error calling index: index of untyped nil".into());
                    }
                    other => {
                        return Err(format!(
                            "error calling index: can't index item of type {}",
                            other.type_name()
                        ));
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            if args.is_empty() {
                return Err("wrong number of args for slice: want at least 1 got 0".into());
            }
            let idx: Vec<i64> = args[1..]
                .iter()
                .map(|v| {
                    as_int(v).ok_or_else(|| {
                        "error calling slice: cannot index slice/array with nil".to_string()
                    })
                })
                .collect::<Result<_, _>>()?;
            match &args[0] {
                Value::Str(s) => {
                    if idx.len() > 2 {
                        return Err(
                            "error calling slice: cannot 3-index slice a string".to_string()
                        );
                    }
                    let lo = idx.first().copied().unwrap_or(0);
                    let hi = idx.get(1).copied().unwrap_or(s.len() as i64);
                    if lo < 0 || hi < lo || hi as usize > s.len() {
                        return Err(format!("error calling slice: index out of range: {hi}"));
                    }
                    Ok(Value::Str(
                        String::from_utf8_lossy(&s.as_bytes()[lo as usize..hi as usize])
                            .into_owned(),
                    ))
                }
                Value::List(l) => {
                    let lo = idx.first().copied().unwrap_or(0);
                    let hi = idx.get(1).copied().unwrap_or(l.len() as i64);
                    if lo < 0 || hi < lo || hi as usize > l.len() {
                        return Err(format!("error calling slice: index out of range: {hi}"));
                    }
                    Ok(Value::List(l[lo as usize..hi as usize].to_vec()))
                }
                other => Err(format!(
                    "error calling slice: can't slice item of type {}",
                    other.type_name()
                )),
            }
        }
        "print" => Ok(Value::Str(go_sprint(&args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::display).collect();
            Ok(Value::Str(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            if args.is_empty() {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            }
            let Value::Str(f) = &args[0] else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                ));
            };
            Ok(Value::Str(sprintf(f, &args[1..])))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("error calling eq: missing argument for comparison".to_string());
            }
            for b in &args[1..] {
                if compare(&args[0], b).map_err(|e| format!("error calling eq: {e}"))?
                    == std::cmp::Ordering::Equal
                {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, &args, 2)?;
            let o =
                compare(&args[0], &args[1]).map_err(|e| format!("error calling {name}: {e}"))?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "html" => Ok(Value::Str(html_escape(&go_sprint(&args)))),
        "js" => Ok(Value::Str(js_escape(&go_sprint(&args)))),
        "urlquery" => Ok(Value::Str(query_escape(&go_sprint(&args)))),
        "parseInt" => {
            want(name, &args, 3)?;
            let Value::Str(s) = &args[0] else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                ));
            };
            let base = as_int(&args[1]).ok_or_else(|| {
                format!(
                    "wrong type for value; expected int; got {}",
                    args[1].type_name()
                )
            })?;
            let bits = as_int(&args[2]).ok_or_else(|| {
                format!(
                    "wrong type for value; expected int; got {}",
                    args[2].type_name()
                )
            })?;
            parse_uint(s, base, bits)
                .map(Value::Uint)
                .map_err(|e| format!("error calling parseInt: {e}"))
        }
        other => Err(format!("function \"{other}\" not defined")),
    }
}

/// Go's `strconv.ParseUint(s, base, bitSize)`.
pub fn parse_uint(s: &str, base: i64, bits: i64) -> Result<u64, String> {
    let q = go_quote_str(s);
    let syntax = || format!("strconv.ParseUint: parsing {q}: invalid syntax");
    if s.is_empty() {
        return Err(syntax());
    }
    let bits = if bits == 0 { 64 } else { bits };
    if !(0..=64).contains(&bits) {
        return Err(format!(
            "strconv.ParseUint: parsing {q}: invalid bit size {bits}"
        ));
    }
    let (digits, base) = if base == 0 {
        let l = s.to_ascii_lowercase();
        if let Some(r) = l.strip_prefix("0x") {
            (r.replace('_', ""), 16)
        } else if let Some(r) = l.strip_prefix("0o") {
            (r.replace('_', ""), 8)
        } else if let Some(r) = l.strip_prefix("0b") {
            (r.replace('_', ""), 2)
        } else if l.len() > 1 && l.starts_with('0') {
            (l[1..].replace('_', ""), 8)
        } else {
            (l, 10)
        }
    } else if (2..=36).contains(&base) {
        (s.to_string(), base as u32)
    } else {
        return Err(format!(
            "strconv.ParseUint: parsing {q}: invalid base {base}"
        ));
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    let max: u64 = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut v: u64 = 0;
    let mut over = false;
    for c in digits.chars() {
        let d = c.to_digit(base).ok_or_else(syntax)?;
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(x) => v = x,
            None => over = true,
        }
    }
    if over || v > max {
        return Err(format!(
            "strconv.ParseUint: parsing {q}: value out of range"
        ));
    }
    Ok(v)
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Uint(x), Value::Uint(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Uint(y)) => Ok(if *x < 0 {
            std::cmp::Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (Value::Uint(x), Value::Int(y)) => Ok(if *y < 0 {
            std::cmp::Ordering::Greater
        } else {
            x.cmp(&(*y as u64))
        }),
        (Value::Float(x), Value::Float(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| "incompatible types for comparison".into()),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither side is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            s.push(' ');
        }
        s.push_str(&a.display());
    }
    s
}

/// Go's `fmt.Sprintf` for the common verbs.
fn sprintf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = f.chars().peekable();
    let mut n = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&x) = it.peek() {
            if "+-# 0".contains(x) {
                flags.push(x);
                it.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&x) = it.peek() {
            if x.is_ascii_digit() {
                width.push(x);
                it.next();
            } else {
                break;
            }
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&x) = it.peek() {
                if x.is_ascii_digit() {
                    p.push(x);
                    it.next();
                } else {
                    break;
                }
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(n) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        n += 1;
        let body = match (verb, a) {
            ('d', Value::Int(i)) => i.to_string(),
            ('d', Value::Uint(u)) => u.to_string(),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('x', Value::Uint(u)) => format!("{u:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('X', Value::Uint(u)) => format!("{u:X}"),
            ('o', Value::Int(i)) => format!("{i:o}"),
            ('o', Value::Uint(u)) => format!("{u:o}"),
            ('b', Value::Int(i)) => format!("{i:b}"),
            ('b', Value::Uint(u)) => format!("{u:b}"),
            ('c', Value::Int(i)) => char::from_u32(*i as u32)
                .map(String::from)
                .unwrap_or_default(),
            ('c', Value::Uint(u)) => char::from_u32(*u as u32)
                .map(String::from)
                .unwrap_or_default(),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('q', Value::Str(s)) => go_quote_str(s),
            ('s' | 'v', v) => {
                let s = v.display();
                match prec {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            ('t', Value::Bool(b)) => b.to_string(),
            ('f' | 'F', Value::Float(x)) => format!("{:.*}", prec.unwrap_or(6), x),
            ('f' | 'F', Value::Int(x)) => format!("%!f(int={x})"),
            (v, other) => format!("%!{v}({}={})", other.type_name(), other.display()),
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len < w {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && matches!(verb, 'd' | 'x' | 'X' | 'o' | 'b' | 'f') {
                if let Some(rest) = body.strip_prefix('-') {
                    out.push('-');
                    out.push_str(&"0".repeat(pad));
                    out.push_str(rest);
                } else {
                    out.push_str(&"0".repeat(pad));
                    out.push_str(&body);
                }
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if n < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[n..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.display()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            _ => {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        let mut group = BTreeMap::new();
        group.insert("a".to_string(), Value::Str("10".into()));
        group.insert("0".to_string(), Value::Str("ip-10.example.".into()));
        Value::Struct(Box::new(Struct {
            type_name: "*template.templateData".into(),
            fields: vec![
                ("Name".into(), Value::Str("ip-10.example.".into())),
                (
                    "Match".into(),
                    Value::List(vec![
                        Value::Str("ip-10.example.".into()),
                        Value::Str("10".into()),
                    ]),
                ),
                ("Group".into(), Value::Map(group)),
            ],
            display: None,
            meta: true,
        }))
    }

    fn run(t: &str) -> Result<String, String> {
        let meta = |k: &str| {
            if k == "a/b" {
                "v".to_string()
            } else {
                String::new()
            }
        };
        Template::parse("answer", t)?.execute(&data(), &meta)
    }

    #[test]
    fn fields_index_and_functions() {
        assert_eq!(
            run("{{ .Name }} A 10.0.0.{{ .Group.a }}").unwrap(),
            "ip-10.example. A 10.0.0.10"
        );
        assert_eq!(run("{{ index .Match 1 }}").unwrap(), "10");
        assert_eq!(run("{{ parseInt \"0a\" 16 8 }}").unwrap(), "10");
        assert_eq!(run("{{ .Group.zz }}").unwrap(), "<no value>");
        assert_eq!(
            run("{{ printf \"%03d-%s\" 7 .Name }}").unwrap(),
            "007-ip-10.example."
        );
        assert_eq!(run("{{ .Meta \"a/b\" }}|{{ .Meta \"x\" }}").unwrap(), "v|");
        assert_eq!(run("{{ len .Match }}").unwrap(), "2");
        assert_eq!(
            run("{{ if eq .Group.a \"10\" }}yes{{ else }}no{{ end }}").unwrap(),
            "yes"
        );
        assert_eq!(
            run("{{ range $i, $m := .Match }}{{ $i }}={{ $m }};{{ end }}").unwrap(),
            "0=ip-10.example.;1=10;"
        );
        assert_eq!(run("a  {{- .Group.a -}}  b").unwrap(), "a10b");
        assert_eq!(run("{{/* c */}}x").unwrap(), "x");
        assert_eq!(run("a {{- /* c */ -}} x").unwrap(), "ax");
        assert_eq!(
            Template::parse("answer", "{{ /* c */ }}").unwrap_err(),
            "template: answer:1: unexpected \"/\" in command"
        );
        assert_eq!(run("{{ $x := .Group.a }}{{ $x }}").unwrap(), "10");
        assert_eq!(run("{{ with .Group.a }}{{ . }}{{ end }}").unwrap(), "10");
        assert_eq!(
            run("{{ .Name | printf \"%s!\" }}").unwrap(),
            "ip-10.example.!"
        );
    }

    #[test]
    fn parse_errors_read_as_go() {
        assert_eq!(
            Template::parse("answer", "{{").unwrap_err(),
            "template: answer:1: unclosed action"
        );
        assert_eq!(
            Template::parse("answer", "{{ notAFunction }}").unwrap_err(),
            "template: answer:1: function \"notAFunction\" not defined"
        );
        assert!(Template::parse("answer", "{{ if .A }}").is_err());
        assert!(Template::parse("answer", "{{ end }}").is_err());
        assert!(Template::parse("answer", "{{ $x }}").is_err());
        assert!(Template::parse("answer", "{{ parseInt }}").is_ok());
    }

    #[test]
    fn execution_errors() {
        assert_eq!(
            run("{{ .Name }} {{ .Grup.d }}").unwrap_err(),
            "template: answer:1:15: executing \"answer\" at <.Grup.d>: can't evaluate field Grup in type *template.templateData"
        );
        assert_eq!(
            run("{{ parseInt }}").unwrap_err(),
            "template: answer:1:3: executing \"answer\" at <parseInt>: wrong number of args for parseInt: want 3 got 0"
        );
        assert!(
            run("{{ index .Match 5 }}")
                .unwrap_err()
                .contains("error calling index: index out of range: 5")
        );
        assert!(run("{{ parseInt .Name 16 8 }}").unwrap_err().contains(
            "error calling parseInt: strconv.ParseUint: parsing \"ip-10.example.\": invalid syntax"
        ));
    }

    #[test]
    fn string_forms() {
        let t = Template::parse("answer", "{{ .Name }} 60 IN A {{  index .Match 1 }}").unwrap();
        assert_eq!(t.to_string(), "{{.Name}} 60 IN A {{index .Match 1}}");
        let t = Template::parse("answer", "{{ if .Name }}x{{ else }}y{{ end }}").unwrap();
        assert_eq!(t.to_string(), "{{if .Name}}x{{else}}y{{end}}");
    }
}
