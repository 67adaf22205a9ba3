//! The parser: actions into the tree (`if`/`range`/`with` branches, pipelines, commands,
//! operands), with Go's error texts.

use super::lex::{Tok, parse_number, tok_desc};
use super::tree::{Arg, Cmd, FUNCS, Node, Number, Pipe};

/// The parser's state over one template text.
pub(super) struct Parser<'a> {
    pub(super) name: &'a str,
    pub(super) text: &'a str,
    pub(super) pos: usize,
    /// The variables in scope, one list per nesting level.
    pub(super) vars: Vec<Vec<String>>,
    /// How many `range` bodies enclose the current position.
    pub(super) range_depth: usize,
}

/// A parse error in Go's words.
fn perr(name: &str, text: &str, pos: usize, msg: impl std::fmt::Display) -> String {
    let line = 1 + text[..pos.min(text.len())].matches('\n').count();
    format!("template: {name}:{line}: {msg}")
}

/// What the next piece of text is.
pub(super) enum Item {
    Node(Node),
    Else(Option<Pipe>, bool, usize),
    End(usize),
    Eof,
}

impl<'a> Parser<'a> {
    pub(super) fn err(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        perr(self.name, self.text, pos, msg)
    }

    /// Parse the action starting at `start` (its `{{` already consumed).
    pub(super) fn action(&mut self, start: usize, trim_left: &mut bool) -> Result<Item, String> {
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
