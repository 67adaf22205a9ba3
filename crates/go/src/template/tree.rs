//! The parse tree of a template, and its string forms (Go's `parse.Node` `String`), which the
//! `template` plugin uses as a metric label.

use std::fmt::Write as _;

use super::Template;

/// One node of a template's tree.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Option<Vec<Node>>),
    Range(Pipe, Vec<Node>, Option<Vec<Node>>),
    With(Pipe, Vec<Node>, Option<Vec<Node>>),
    Break,
    Continue,
}

/// A pipeline, with the variables it declares or assigns.
#[derive(Debug, Clone)]
pub(super) struct Pipe {
    pub(super) decl: Vec<String>,
    pub(super) assign: bool,
    pub(super) cmds: Vec<Cmd>,
}

/// One command of a pipeline: its position in the text and its operands.
#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub(super) pos: usize,
    pub(super) args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone)]
pub(super) enum Arg {
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

/// A number constant.
#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
    Int(i64),
    Uint(u64),
    Float(f64),
}

/// The function names a template may use.
pub(super) const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "parseInt", "call",
];

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

pub(super) fn pipe_string(p: &Pipe) -> String {
    let mut s = String::new();
    if !p.decl.is_empty() {
        s.push_str(&p.decl.join(", "));
        s.push_str(if p.assign { " = " } else { " := " });
    }
    let cmds: Vec<String> = p.cmds.iter().map(cmd_string).collect();
    s.push_str(&cmds.join(" | "));
    s
}

pub(super) fn cmd_string(c: &Cmd) -> String {
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

pub(super) fn arg_string(a: &Arg) -> String {
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
