//! Reading a SavedModel's graph: which ops consume a signature's input, through function
//! calls, and the constants those ops read.
//!
//! TF1 exports keep everything in the main graph; TF2 exports call a function
//! (`StatefulPartitionedCall`, attribute `f`) that may call others, so a trace follows
//! function arguments into function bodies. Only what a signature input flows into is
//! followed, so two signatures sharing a graph find their own parse ops.

use std::collections::{HashMap, HashSet};

use crate::proto::{attr_value, AttrValue, FunctionDef, GraphDef, NodeDef, TensorProto};

/// Ops a value passes through unchanged in meaning (a serialized tf.Example stays one).
const PASS_THROUGH: &[&str] = &["Identity", "IdentityN", "Reshape", "ExpandDims", "Squeeze", "StopGradient", "PlaceholderWithDefault"];

/// Ops that call the function named in their `f` attribute with their inputs as arguments.
const CALLS: &[&str] = &["PartitionedCall", "StatefulPartitionedCall"];

/// Upper bound on trace steps, so a pathological graph cannot stall loading.
const MAX_STEPS: usize = 100_000;

/// A node in the main graph (`function: None`) or in a function body.
#[derive(Clone, Copy)]
pub(crate) struct Located<'g> {
    pub function: Option<&'g str>,
    pub node: &'g NodeDef,
}

/// Nodes by name and consumers by producer, for the main graph and each function.
pub(crate) struct GraphIndex<'g> {
    scopes: HashMap<Option<&'g str>, Scope<'g>>,
    functions: HashMap<&'g str, &'g FunctionDef>,
}

#[derive(Default)]
struct Scope<'g> {
    nodes: HashMap<&'g str, &'g NodeDef>,
    /// Producer (node or function argument) -> (consumer, input position).
    consumers: HashMap<&'g str, Vec<(&'g NodeDef, usize)>>,
}

impl<'g> Scope<'g> {
    fn new(nodes: &'g [NodeDef]) -> Scope<'g> {
        let mut scope = Scope::default();
        for node in nodes {
            scope.nodes.insert(node.name.as_str(), node);
            for (position, input) in node.input.iter().enumerate() {
                if let Some(producer) = producer_of(input) {
                    scope.consumers.entry(producer).or_default().push((node, position));
                }
            }
        }
        scope
    }
}

/// The producing node (or function argument) of an input reference: `node`, `node:1`,
/// `node:output:0`; `None` for control inputs (`^node`).
pub(crate) fn producer_of(input: &str) -> Option<&str> {
    if input.starts_with('^') {
        return None;
    }
    Some(input.split(':').next().unwrap_or(input))
}

impl<'g> GraphIndex<'g> {
    pub fn new(graph: &'g GraphDef) -> GraphIndex<'g> {
        let mut scopes = HashMap::new();
        let mut functions = HashMap::new();
        scopes.insert(None, Scope::new(&graph.node));
        for function in graph.library.iter().flat_map(|l| &l.function) {
            if let Some(signature) = &function.signature {
                scopes.insert(Some(signature.name.as_str()), Scope::new(&function.node_def));
                functions.insert(signature.name.as_str(), function);
            }
        }
        GraphIndex { scopes, functions }
    }

    /// Every node with an op in `ops` that reads the main-graph tensor `tensor_name` (or a
    /// pass-through copy of it) as its input 0, in the main graph or in called functions.
    pub fn consumers_of(&self, tensor_name: &str, ops: &[&str]) -> Vec<Located<'g>> {
        let Some(start) = producer_of(tensor_name) else { return Vec::new() };
        let mut found = Vec::new();
        let mut queue: Vec<(Option<&'g str>, &'g str)> = Vec::new();
        let mut seen: HashSet<(Option<&'g str>, &'g str)> = HashSet::new();
        if let Some(scope) = self.scopes.get(&None)
            && let Some((name, _)) = scope.nodes.get_key_value(start) {
                queue.push((None, name));
            }
        let mut steps = 0;
        while let Some((function, producer)) = queue.pop() {
            steps += 1;
            if steps > MAX_STEPS || !seen.insert((function, producer)) {
                continue;
            }
            let Some(consumers) = self.scopes.get(&function).and_then(|s| s.consumers.get(producer)) else { continue };
            for &(node, position) in consumers {
                if ops.contains(&node.op.as_str()) {
                    if position == 0 {
                        found.push(Located { function, node });
                    }
                } else if PASS_THROUGH.contains(&node.op.as_str()) {
                    if position == 0 || node.op == "IdentityN" {
                        queue.push((function, node.name.as_str()));
                    }
                } else if let Some(callee) = self.callee(node) {
                    let argument = callee.signature.as_ref().and_then(|s| s.input_arg.get(position));
                    if let (Some(argument), Some(signature)) = (argument, &callee.signature) {
                        queue.push((Some(signature.name.as_str()), argument.name.as_str()));
                    }
                }
            }
        }
        found
    }

    /// The function a node calls: `f` of a call op, or a function used as an op.
    fn callee(&self, node: &'g NodeDef) -> Option<&'g FunctionDef> {
        if CALLS.contains(&node.op.as_str()) {
            match node.attr.get("f").and_then(|a| a.value.as_ref()) {
                Some(attr_value::Value::Func(f)) => self.functions.get(f.name.as_str()).copied(),
                _ => None,
            }
        } else {
            self.functions.get(node.op.as_str()).copied()
        }
    }

    /// The constant an input of `at` reads, looking through pass-through ops.
    pub fn constant(&self, at: Located<'g>, input: usize) -> Option<&'g TensorProto> {
        let scope = self.scopes.get(&at.function)?;
        let mut reference = at.node.input.get(input)?.as_str();
        for _ in 0..16 {
            let node = scope.nodes.get(producer_of(reference)?)?;
            match node.op.as_str() {
                "Const" => {
                    return match node.attr.get("value").and_then(|a| a.value.as_ref()) {
                        Some(attr_value::Value::Tensor(tensor)) => Some(tensor),
                        _ => None,
                    }
                }
                op if PASS_THROUGH.contains(&op) => reference = node.input.first()?.as_str(),
                _ => return None,
            }
        }
        None
    }
}

/// An attribute of a node.
pub(crate) fn attr<'a>(node: &'a NodeDef, name: &str) -> Option<&'a attr_value::Value> {
    node.attr.get(name).and_then(|a: &AttrValue| a.value.as_ref())
}

/// An integer attribute.
pub(crate) fn attr_int(node: &NodeDef, name: &str) -> Option<i64> {
    match attr(node, name) {
        Some(attr_value::Value::I(i)) => Some(*i),
        _ => None,
    }
}

/// A list-of-types attribute (empty when absent).
pub(crate) fn attr_types(node: &NodeDef, name: &str) -> Vec<i32> {
    match attr(node, name) {
        Some(attr_value::Value::List(list)) => list.r#type.clone(),
        _ => Vec::new(),
    }
}

/// A list-of-shapes attribute (`None` entries for unknown rank; empty when absent).
pub(crate) fn attr_shapes(node: &NodeDef, name: &str) -> Vec<Option<Vec<i64>>> {
    match attr(node, name) {
        Some(attr_value::Value::List(list)) => list.shape.iter().map(|s| s.dims()).collect(),
        _ => Vec::new(),
    }
}

/// A list-of-strings attribute (empty when absent).
pub(crate) fn attr_strings(node: &NodeDef, name: &str) -> Vec<String> {
    match attr(node, name) {
        Some(attr_value::Value::List(list)) => list.s.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect(),
        _ => Vec::new(),
    }
}

/// The strings of a string constant.
pub(crate) fn tensor_strings(tensor: &TensorProto) -> Vec<String> {
    tensor.string_val.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ArgDef, FunctionDefLibrary, NameAttrList, OpDef};

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef { name: name.into(), op: op.into(), input: inputs.iter().map(|s| s.to_string()).collect(), attr: HashMap::new() }
    }

    fn call(name: &str, function: &str, inputs: &[&str]) -> NodeDef {
        let mut node = node(name, "StatefulPartitionedCall", inputs);
        node.attr.insert("f".into(), AttrValue { value: Some(attr_value::Value::Func(NameAttrList { name: function.into() })) });
        node
    }

    fn constant(name: &str, strings: &[&str]) -> NodeDef {
        let mut node = node(name, "Const", &[]);
        let tensor = TensorProto { dtype: 7, string_val: strings.iter().map(|s| s.as_bytes().to_vec()).collect(), ..TensorProto::default() };
        node.attr.insert("value".into(), AttrValue { value: Some(attr_value::Value::Tensor(tensor)) });
        node
    }

    fn function(name: &str, args: &[&str], nodes: Vec<NodeDef>) -> FunctionDef {
        FunctionDef {
            signature: Some(OpDef { name: name.into(), input_arg: args.iter().map(|a| ArgDef { name: a.to_string() }).collect() }),
            node_def: nodes,
        }
    }

    #[test]
    fn follows_an_input_through_nested_function_calls_to_its_own_parse_op() {
        let graph = GraphDef {
            node: vec![
                node("serving_default_examples", "Placeholder", &[]),
                node("other_examples", "Placeholder", &[]),
                call("StatefulPartitionedCall", "wrapper", &["unused", "serving_default_examples"]),
                call("StatefulPartitionedCall_1", "other", &["other_examples"]),
            ],
            library: Some(FunctionDefLibrary {
                function: vec![
                    function("wrapper", &["first", "examples"], vec![call("inner_call", "inner", &["examples:0"])]),
                    function("inner", &["serialized"], vec![
                        node("copy", "Identity", &["serialized"]),
                        constant("keys", &["x", "y"]),
                        node("parse", "ParseExampleV2", &["copy:output:0", "names:output:0", "keys:output:0"]),
                    ]),
                    function("other", &["serialized"], vec![node("other_parse", "ParseExampleV2", &["serialized"])]),
                ],
            }),
        };
        let index = GraphIndex::new(&graph);
        let found = index.consumers_of("serving_default_examples:0", &["ParseExampleV2"]);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].function, found[0].node.name.as_str()), (Some("inner"), "parse"));
        let keys = index.constant(found[0], 2).expect("keys constant");
        assert_eq!(tensor_strings(keys), vec!["x", "y"]);
        assert!(index.constant(found[0], 1).is_none(), "no such node");
    }

    #[test]
    fn a_parse_op_reading_the_input_as_a_key_is_not_a_match() {
        let graph = GraphDef {
            node: vec![node("s", "Placeholder", &[]), node("p", "ParseExample", &["other", "s"])],
            library: None,
        };
        assert!(GraphIndex::new(&graph).consumers_of("s", &["ParseExample"]).is_empty());
    }
}
