//! `compile`: validated model → flat [`Program`].
//!
//! Input: a [`Machine`] from `validate`, the handler [`Registry`] and optional mocks.
//! Output: a [`Program`]: states laid out as op ranges, nested graphs (Parallel branches,
//! Map processors) as further ranges of the same op vector, every transition resolved to a
//! pc, every Task bound to its handler or mock.
//! Never touches: definition JSON, execution.
//!
//! The compiler emits only the ops a state needs: a Pass state with no fields is `enter;
//! next`, because `Enter` already makes the state input the output.

use std::sync::Arc;

use crate::handlers::{Binding, MockBinding, MockReply, Registry};
use crate::mocks::{MockEntry, MockSet};
use crate::program::*;
use crate::validate::{
    self, Amount, FailText, Graph, Io, Kind, Machine, PathField, ResultPathField, Seconds, StateDef, Transition,
    WaitDef,
};

/// What tasks are bound to.
#[derive(Clone, Copy, Default)]
pub struct Bindings<'r> {
    pub handlers: Option<&'r Registry>,
    pub mocks: Option<&'r MockSet>,
}

/// Compiles a validated machine.
pub fn compile(machine: Machine, bindings: Bindings<'_>) -> Program {
    let Machine { machine_type, timeout_seconds, root, names, mut consts } = machine;
    let prog = Program {
        ops: Vec::new(),
        states: Vec::new(),
        paths: Vec::new(),
        ref_paths: Vec::new(),
        templates: Vec::new(),
        assigns: Vec::new(),
        tasks: Vec::new(),
        waits: Vec::new(),
        choices: Vec::new(),
        fails: Vec::new(),
        parallels: Vec::new(),
        maps: Vec::new(),
        retriers: Vec::new(),
        catchers: Vec::new(),
        // Built at the end: compiling adds constants (mock responses).
        consts: ConstPool::build(&[]),
        names,
        start: 0,
        machine_type,
        timeout_seconds,
        uses_context: false,
        frames_hint: 1,
    };
    let mut c = Compiler { prog, bindings, consts: &mut consts, fail_uses_context: false };
    c.prog.start = c.graph(root);
    let mut prog = c.prog;
    prog.uses_context = c.fail_uses_context
        || prog.paths.iter().any(|p| p.root() == crate::paths::Root::Context)
        || prog.templates.iter().any(|t| t.uses_context())
        || prog.assigns.iter().any(|a| a.vars.iter().any(|(_, t)| t.uses_context()))
        || prog.choices.iter().any(|ch| ch.rules.iter().any(|r| r.rule.uses_context()));
    prog.consts = ConstPool::build(&consts.values);
    let branches: usize = prog.parallels.iter().map(|p| p.branches.len()).sum();
    prog.frames_hint = (1 + branches).min(FRAMES_HINT_MAX as usize) as u32;
    prog
}

/// The program being built, plus what binding Tasks needs.
struct Compiler<'r, 'c> {
    prog: Program,
    bindings: Bindings<'r>,
    consts: &'c mut crate::template::Consts,
    /// A Fail state's ErrorPath/CausePath reads `$$` (not visible in the other tables).
    fail_uses_context: bool,
}

/// A reference to a state of the current graph that must be patched with its pc.
enum Fixup {
    Op(usize, usize),
    ChoiceRule(u32, usize, usize),
    ChoiceDefault(u32, usize),
    Catch(u32, usize),
}

const UNRESOLVED: Pc = Pc::MAX;

impl Compiler<'_, '_> {
    /// Emits a graph; returns the pc of its start state.
    fn graph(&mut self, g: Graph) -> Pc {
        let mut enter_pcs = vec![UNRESOLVED; g.states.len()];
        let mut fixups = Vec::new();
        for (i, s) in g.states.into_iter().enumerate() {
            enter_pcs[i] = self.state(s, &mut fixups);
        }
        for f in fixups {
            match f {
                Fixup::Op(at, local) => self.prog.ops[at] = Op::Next(enter_pcs[local]),
                Fixup::ChoiceRule(c, r, local) => self.prog.choices[c as usize].rules[r].target = enter_pcs[local],
                Fixup::ChoiceDefault(c, local) => self.prog.choices[c as usize].default = Some(enter_pcs[local]),
                Fixup::Catch(k, local) => self.prog.catchers[k as usize].target = enter_pcs[local],
            }
        }
        enter_pcs[g.start]
    }

    fn push<T>(v: &mut Vec<T>, x: T) -> u32 {
        v.push(x);
        v.len() as u32 - 1
    }

    fn path(&mut self, p: crate::paths::Path) -> u32 {
        Self::push(&mut self.prog.paths, p)
    }

    fn template(&mut self, t: crate::template::Template) -> u32 {
        Self::push(&mut self.prog.templates, t)
    }

    fn assign(&mut self, a: validate::Assign) -> u32 {
        Self::push(&mut self.prog.assigns, a)
    }

    fn placement(&mut self, r: ResultPathField) -> ResultPlacement {
        match r {
            ResultPathField::Default => ResultPlacement::Replace,
            ResultPathField::Null => ResultPlacement::Discard,
            ResultPathField::Path(p) => ResultPlacement::At(Self::push(&mut self.prog.ref_paths, p)),
        }
    }

    fn seconds(&mut self, s: Seconds) -> SecondsSpec {
        match s {
            Seconds::Fixed(n) => SecondsSpec::Fixed(n),
            Seconds::Path(p) => SecondsSpec::Path(self.path(p)),
            Seconds::Query(t) => SecondsSpec::Query(self.template(t)),
        }
    }

    fn amount(&mut self, a: Amount) -> AmountSpec {
        match a {
            Amount::Fixed(n) => AmountSpec::Fixed(n),
            Amount::Path(p) => AmountSpec::Path(self.path(p)),
            Amount::Query(t) => AmountSpec::Query(self.template(t)),
        }
    }

    fn state(&mut self, s: StateDef, fixups: &mut Vec<Fixup>) -> Pc {
        let StateDef { name, kind, io, assign, transition, retry, catch, .. } = s;
        let Io { input_path, parameters, result_selector, result_path, output_path, output, jsonata } = io;

        // Nested graphs first, so that this state's own ops stay contiguous.
        let nested = match kind {
            Kind::Parallel { branches } => {
                let starts = branches.into_iter().map(|b| self.graph(b)).collect();
                NestedKind::Parallel(Self::push(&mut self.prog.parallels, ParallelSpec { branches: starts }))
            }
            Kind::Map(m) => {
                let m = *m;
                let start = self.graph(m.processor);
                let spec = MapSpec {
                    start,
                    mode: m.mode,
                    items_path: m.items_path.map(|p| self.path(p)),
                    items: m.items.map(|t| self.template(t)),
                    item_selector: m.item_selector.map(|t| self.template(t)),
                    jsonata,
                    max_concurrency: m.max_concurrency.map(|a| self.amount(a)),
                    tolerated_count: m.tolerated_failure_count.map(|a| self.amount(a)),
                    tolerated_percentage: m.tolerated_failure_percentage.map(|a| self.amount(a)),
                };
                NestedKind::Map(Self::push(&mut self.prog.maps, spec))
            }
            other => NestedKind::Plain(other),
        };

        let state_kind = match &nested {
            NestedKind::Parallel(_) => StateKind::Parallel,
            NestedKind::Map(_) => StateKind::Map,
            NestedKind::Plain(k) => match k {
                Kind::Pass { .. } => StateKind::Pass,
                Kind::Task(_) => StateKind::Task,
                Kind::Choice { .. } => StateKind::Choice,
                Kind::Wait(_) => StateKind::Wait,
                Kind::Succeed => StateKind::Succeed,
                Kind::Fail(_) => StateKind::Fail,
                Kind::Parallel { .. } | Kind::Map(_) => unreachable!("handled above"),
            },
        };
        let id = self.prog.states.len() as StateId;
        let enter = self.prog.ops.len() as Pc;
        self.prog.ops.push(Op::Enter(id));
        let retriers_start = self.prog.retriers.len() as u32;
        for r in retry {
            self.prog.retriers.push(RetrySpec {
                errors: ErrorMatcher::new(&r.error_equals),
                interval_seconds: r.interval_seconds,
                max_attempts: r.max_attempts,
                backoff_rate: r.backoff_rate,
                max_delay_seconds: r.max_delay_seconds,
                jitter_full: r.jitter_full,
            });
        }
        let catchers_start = self.prog.catchers.len() as u32;
        for c in catch {
            let result = match c.output {
                Some(t) => ResultPlacement::Output(self.template(t)),
                None => self.placement(c.result_path),
            };
            let assign = c.assign.map(|a| self.assign(a));
            let k = Self::push(
                &mut self.prog.catchers,
                CatchSpec { errors: ErrorMatcher::new(&c.error_equals), result, assign, target: UNRESOLVED },
            );
            fixups.push(Fixup::Catch(k, c.next));
        }
        self.prog.states.push(StateInfo {
            name: name.as_str().into(),
            kind: state_kind,
            enter,
            retry_pc: enter + 1,
            retriers: retriers_start..self.prog.retriers.len() as u32,
            catchers: catchers_start..self.prog.catchers.len() as u32,
            // Set below when the Task op is emitted.
            task: None,
        });

        // Input processing. InputPath and Parameters both make `res` equal to the new `eff`.
        let mut input_changed = true;
        match input_path {
            PathField::Default => input_changed = false,
            PathField::Null => self.prog.ops.push(Op::InputNull),
            PathField::Path(p) => {
                let i = self.path(p);
                self.prog.ops.push(Op::InputPath(i));
            }
        }
        if let Some(t) = parameters {
            let i = self.template(t);
            self.prog.ops.push(Op::Parameters(i));
            input_changed = true;
        }

        // The state's own work; `produces` says whether `res` may now differ from `raw`.
        let produces = match nested {
            NestedKind::Parallel(p) => {
                self.prog.ops.push(Op::Parallel(p));
                true
            }
            NestedKind::Map(m) => {
                self.prog.ops.push(Op::Map(m));
                true
            }
            NestedKind::Plain(Kind::Pass { result }) => match result {
                Some(cid) => {
                    self.prog.ops.push(Op::PassResult(const_index(cid)));
                    true
                }
                None => input_changed,
            },
            NestedKind::Plain(Kind::Task(t)) => {
                let binding = self.bind(&name, &t.resource);
                let spec = TaskSpec {
                    kind: ResourceKind::classify(&t.resource),
                    callback: t.resource.ends_with(".waitForTaskToken"),
                    binding,
                    timeout: t.timeout.map(|s| self.seconds(s)),
                    heartbeat: t.heartbeat.map(|s| self.seconds(s)),
                    credentials: t.credentials.map(|c| self.template(c)),
                    resource: t.resource.into(),
                };
                let i = Self::push(&mut self.prog.tasks, spec);
                self.prog.states[id as usize].task = Some(i);
                self.prog.ops.push(Op::Task(i));
                true
            }
            NestedKind::Plain(Kind::Wait(w)) => {
                let spec = match w {
                    WaitDef::Seconds(n) => WaitSpec::Seconds(n),
                    WaitDef::SecondsPath(p) => WaitSpec::SecondsPath(self.path(p)),
                    WaitDef::Timestamp(t) => WaitSpec::Timestamp(t),
                    WaitDef::TimestampPath(p) => WaitSpec::TimestampPath(self.path(p)),
                    WaitDef::SecondsQuery(t) => WaitSpec::SecondsQuery(self.template(t)),
                    WaitDef::TimestampQuery(t) => WaitSpec::TimestampQuery(self.template(t)),
                };
                let i = Self::push(&mut self.prog.waits, spec);
                self.prog.ops.push(Op::Wait(i));
                input_changed
            }
            NestedKind::Plain(Kind::Succeed) => input_changed,
            NestedKind::Plain(Kind::Fail(f)) => {
                let mut field = |t: Option<FailText>| {
                    t.map(|t| match t {
                        FailText::Literal(s) => FailField::Literal(s.into()),
                        FailText::Dynamic { field, expr } => FailField::Dynamic { field, expr },
                        FailText::Query(t) => FailField::Query(self.template(t)),
                    })
                };
                let spec = FailSpec { error: field(f.error), cause: field(f.cause) };
                if spec
                    .error
                    .iter()
                    .chain(spec.cause.iter())
                    .any(|f| matches!(f, FailField::Dynamic { expr, .. } if expr.uses_context()))
                {
                    self.fail_uses_context = true;
                }
                let i = Self::push(&mut self.prog.fails, spec);
                self.prog.ops.push(Op::Fail(i));
                return enter;
            }
            NestedKind::Plain(Kind::Choice { branches, default }) => {
                let output = match (output, output_path) {
                    (Some(t), _) => ChoiceOutput::Template(self.template(t)),
                    (None, PathField::Default) => ChoiceOutput::Input,
                    (None, PathField::Null) => ChoiceOutput::Null,
                    (None, PathField::Path(p)) => ChoiceOutput::Path(self.path(p)),
                };
                let state_assign = assign.map(|a| self.assign(a));
                let ci = self.prog.choices.len() as u32;
                let mut rules = Vec::with_capacity(branches.len());
                for (r, b) in branches.into_iter().enumerate() {
                    let assign = b.assign.map(|a| self.assign(a));
                    let output = b.output.map(|t| self.template(t));
                    fixups.push(Fixup::ChoiceRule(ci, r, b.next));
                    rules.push(ChoiceRule { rule: b.rule, target: UNRESOLVED, assign, output });
                }
                if let Some(d) = default {
                    fixups.push(Fixup::ChoiceDefault(ci, d));
                }
                self.prog.choices.push(ChoiceSpec { rules, default: None, assign: state_assign, output });
                self.prog.ops.push(Op::Choice(ci));
                return enter;
            }
            NestedKind::Plain(Kind::Parallel { .. } | Kind::Map(_)) => unreachable!("handled above"),
        };

        // Result processing. JSONata: `Output` (default: the result of a Task, Parallel or
        // Map, else the input), evaluated before `Assign` so that it sees the variables as
        // they were at state entry.
        if jsonata {
            match output {
                Some(t) => {
                    let i = self.template(t);
                    self.prog.ops.push(Op::Output(i));
                }
                None if state_kind.can_retry() => self.prog.ops.push(Op::ResultToOutput),
                None => {}
            }
            if let Some(a) = assign {
                let i = self.assign(a);
                self.prog.ops.push(Op::Assign(i));
            }
            self.transition(transition, fixups);
            return enter;
        }
        if let Some(t) = result_selector {
            let i = self.template(t);
            self.prog.ops.push(Op::ResultSelector(i));
        }
        match result_path {
            ResultPathField::Default if produces => self.prog.ops.push(Op::ResultToOutput),
            ResultPathField::Default => {}
            ResultPathField::Null => self.prog.ops.push(Op::DiscardResult),
            ResultPathField::Path(p) => {
                let i = Self::push(&mut self.prog.ref_paths, p);
                self.prog.ops.push(Op::ResultPath(i));
            }
        }
        match output_path {
            PathField::Default => {}
            PathField::Null => self.prog.ops.push(Op::OutputNull),
            PathField::Path(p) => {
                let i = self.path(p);
                self.prog.ops.push(Op::OutputPath(i));
            }
        }
        if let Some(a) = assign {
            let i = self.assign(a);
            self.prog.ops.push(Op::Assign(i));
        }
        self.transition(transition, fixups);
        enter
    }

    fn transition(&mut self, transition: Transition, fixups: &mut Vec<Fixup>) {
        match transition {
            Transition::Next(local) => {
                fixups.push(Fixup::Op(self.prog.ops.len(), local));
                self.prog.ops.push(Op::Next(UNRESOLVED));
            }
            Transition::End | Transition::None => self.prog.ops.push(Op::End),
        }
    }

    /// Binds a Task: a mock for this state if the mock set has one, else a registered
    /// handler for its resource, else unbound.
    fn bind(&mut self, state: &str, resource: &str) -> Binding {
        if let Some(mocks) = self.bindings.mocks {
            if let Some(entries) = mocks.states.get(state) {
                let legacy_lambda = ResourceKind::classify(resource) == ResourceKind::LambdaFunction;
                let replies = entries
                    .iter()
                    .map(|e| {
                        e.as_ref().map(|e| match e {
                            MockEntry::Return(v) => {
                                // A legacy Lambda task's result is the function's payload; mock
                                // files hold Lambda's Invoke response (`{StatusCode, Payload}`),
                                // as Step Functions Local expects, or the bare payload.
                                let v = match v {
                                    serde_json::Value::Object(m)
                                        if legacy_lambda
                                            && m.contains_key("Payload")
                                            && m.contains_key("StatusCode") =>
                                    {
                                        m["Payload"].clone()
                                    }
                                    other => other.clone(),
                                };
                                MockReply::Return(self.consts.add(v))
                            }
                            MockEntry::Throw { error, cause } => {
                                MockReply::Throw { error: error.clone(), cause: cause.clone() }
                            }
                        })
                    })
                    .collect();
                return Binding::Mock(Arc::new(MockBinding { test_case: mocks.test_case.clone(), replies }));
            }
        }
        match self.bindings.handlers.and_then(|h| h.resolve(resource)) {
            Some(h) => Binding::Handler(h.clone()),
            None => Binding::Unbound,
        }
    }
}

// One short-lived value per state while compiling; never stored, so its size is irrelevant.
#[allow(clippy::large_enum_variant)]
enum NestedKind {
    Parallel(u32),
    Map(u32),
    Plain(Kind),
}
