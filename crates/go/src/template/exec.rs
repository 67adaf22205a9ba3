//! Execution: walking the tree over the data, with Go's error texts.

use super::funcs::call;
use super::tree::{Arg, Cmd, Node, Number, Pipe, arg_string, cmd_string, pipe_string};
use super::{Template, Value};

/// How a walk ends other than normally.
pub(super) enum Flow {
    Break,
    Continue,
    Error(String),
}

/// One execution's state.
pub(super) struct State<'t> {
    pub(super) tmpl: &'t Template,
    /// Answers `.Meta NAME`.
    pub(super) meta: &'t dyn Fn(&str) -> String,
    /// The variables in scope, innermost last.
    pub(super) vars: Vec<(String, Value)>,
    /// What the template wrote so far.
    pub(super) out: String,
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

    pub(super) fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), Flow> {
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
