//! The environment a rule is checked against: the variables (event fields, features, …) the host declares
//! with their types, the value lists, and the function registry.

use crate::functions::{self, FunctionDef};
use crate::types::Type;
use crate::value::Val;
use std::collections::BTreeMap;

/// A declared variable: its dotted name (`event.amount`, `features.orders_1h`) and type.
#[derive(Debug, Clone)]
pub struct VarDecl {
    pub name: String,
    pub ty: Type,
}

/// What rules may refer to.
#[derive(Debug, Clone)]
pub struct Env {
    vars: Vec<VarDecl>,
    by_name: BTreeMap<String, usize>,
    lists: Vec<(String, Type)>,
    pub functions: Vec<FunctionDef>,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// An environment with the standard function library and no variables.
    pub fn new() -> Env {
        Env {
            vars: Vec::new(),
            by_name: BTreeMap::new(),
            lists: Vec::new(),
            functions: functions::all(),
        }
    }

    /// Declares a variable; returns its index in [`Activation::vars`].
    pub fn var(&mut self, name: &str, ty: Type) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            self.vars[i].ty = ty;
            return i;
        }
        self.vars.push(VarDecl {
            name: name.to_string(),
            ty,
        });
        self.by_name.insert(name.to_string(), self.vars.len() - 1);
        self.vars.len() - 1
    }

    /// Declares a value list usable as `x in @name`; returns its index for [`ListLookup`].
    pub fn list(&mut self, name: &str, elem: Type) -> usize {
        if let Some(i) = self.lists.iter().position(|(n, _)| n == name) {
            return i;
        }
        self.lists.push((name.to_string(), elem));
        self.lists.len() - 1
    }

    pub fn lookup(&self, name: &str) -> Option<(usize, &Type)> {
        self.by_name.get(name).map(|&i| (i, &self.vars[i].ty))
    }

    pub fn lookup_list(&self, name: &str) -> Option<(usize, &Type)> {
        self.lists
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| (i, &self.lists[i].1))
    }

    pub fn vars(&self) -> &[VarDecl] {
        &self.vars
    }

    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|v| v.name.as_str())
    }

    pub fn list_names(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().map(|(n, _)| n.as_str())
    }
}

/// Membership in value lists, provided by the host at evaluation time.
pub trait ListLookup {
    fn contains(&self, list: usize, value: &Val) -> bool;
}

/// No lists.
pub struct NoLists;

impl ListLookup for NoLists {
    fn contains(&self, _: usize, _: &Val) -> bool {
        false
    }
}

/// The values of one evaluation: one per declared variable (in declaration order), and the lists.
pub struct Activation<'a> {
    pub vars: &'a [Val],
    pub lists: &'a dyn ListLookup,
}
