//! Go's `text/template`: the part of it that CoreDNS templates use.
//!
//! Supported: text and actions `{{ }}` with the `{{-`/`-}}` trim markers and `{{/* */}}`
//! comments; pipelines with `|`; fields (`.A.B`, map keys by field syntax), `$` and variables
//! (`$x := ...`, `$x = ...`, `range $i, $e := ...`); parenthesised pipelines; string, raw string,
//! character, number, `true`/`false`/`nil` constants; `if`/`else if`/`else`/`end`, `range`
//! (with `else`, `break`, `continue`), `with`; the builtins `and or not len index slice print
//! printf println eq ne lt le gt ge html js urlquery`, and CoreDNS's `parseInt`
//! ([`crate::strconv::parse_uint`]). Parse errors read as Go's (`template: NAME:LINE: ...`);
//! execution errors as Go's `template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`.
//!
//! Not supported: `define`, `template`, `block`, `call` (refused when parsed).
//!
//! The parts: the values templates run on (here), the parse tree and its string forms
//! (`tree`), the lexer (`lex`) and parser (`parse`), execution (`exec`) and the builtin
//! functions (`funcs`).

mod exec;
mod funcs;
mod lex;
mod parse;
mod tree;

use std::collections::BTreeMap;

use exec::{Flow, State};
use parse::{Item, Parser};
use tree::Node;

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

#[cfg(test)]
mod tests;
