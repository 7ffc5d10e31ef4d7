//! Property tests of transactions and watches against a simple model of the committed tree.
mod common;
use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use xsstate::wire::MsgType;
use xsstate::{ConnId, TxId, XsError};

/// The model: absolute path -> value, for `/m` and everything below it.
type Tree = BTreeMap<String, Vec<u8>>;

const WATCHED: &str = "/m/a";

#[derive(Clone, Debug)]
enum Op {
    Write(usize, String, Vec<u8>),
    Mkdir(usize, String),
    Rm(usize, String),
    Read(usize, String),
    Dir(usize, String),
    Start(usize),
    End(usize, bool),
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b"]), 1..=3)
        .prop_map(|parts| format!("/m/{}", parts.join("/")))
}

fn op_strategy(conns: usize) -> impl Strategy<Value = Op> {
    let c = 0..conns;
    prop_oneof![
        4 => (c.clone(), path_strategy(), prop::collection::vec(prop::sample::select(vec![0u8, b'x', b'y']), 0..3))
            .prop_map(|(c, p, v)| Op::Write(c, p, v)),
        2 => (c.clone(), path_strategy()).prop_map(|(c, p)| Op::Mkdir(c, p)),
        2 => (c.clone(), path_strategy()).prop_map(|(c, p)| Op::Rm(c, p)),
        2 => (c.clone(), path_strategy()).prop_map(|(c, p)| Op::Read(c, p)),
        1 => (c.clone(), path_strategy()).prop_map(|(c, p)| Op::Dir(c, p)),
        2 => c.clone().prop_map(Op::Start),
        2 => (c, any::<bool>()).prop_map(|(c, commit)| Op::End(c, commit)),
    ]
}

fn parent(p: &str) -> &str {
    &p[..p.rfind('/').unwrap()]
}

fn below(p: &str, anc: &str) -> bool {
    p == anc || p.starts_with(&format!("{anc}/"))
}

/// Applies a write to a tree; returns the watch events it fires.
fn m_write(t: &mut Tree, p: &str, v: &[u8]) -> Vec<String> {
    let mut cur = parent(p);
    while !t.contains_key(cur) {
        t.insert(cur.to_string(), vec![]);
        cur = parent(cur);
    }
    t.insert(p.to_string(), v.to_vec());
    vec![p.to_string()]
}

fn m_mkdir(t: &mut Tree, p: &str) -> Vec<String> {
    if t.contains_key(p) {
        return vec![];
    }
    m_write(t, p, b"")
}

/// RM: `Err` when the parent is missing.
fn m_rm(t: &mut Tree, p: &str) -> Result<Vec<String>, XsError> {
    if !t.contains_key(p) {
        return if t.contains_key(parent(p)) {
            Ok(vec![])
        } else {
            Err(XsError::Enoent)
        };
    }
    let gone: Vec<String> = t.keys().filter(|k| below(k, p)).cloned().collect();
    for k in &gone {
        t.remove(k);
    }
    Ok(gone)
}

fn m_children(t: &Tree, p: &str) -> BTreeSet<String> {
    t.keys()
        .filter(|k| {
            k.len() > p.len() + 1
                && k.starts_with(&format!("{p}/"))
                && !k[p.len() + 1..].contains('/')
        })
        .map(|k| k[p.len() + 1..].to_string())
        .collect()
}

/// Which events a watch on [`WATCHED`] sees for changed `paths` (removed subtrees fire
/// exact events for descendants, so only the removed root and the watched node count).
fn expected_events(changed: &[String], removed_root: Option<&str>) -> BTreeSet<String> {
    changed
        .iter()
        .filter(|p| match removed_root {
            Some(root) if p.as_str() != root => p.as_str() == WATCHED,
            _ => below(p, WATCHED),
        })
        .cloned()
        .collect()
}

/// An open transaction. Like C xenstored, a transaction is optimistic, not a snapshot: a
/// node it has not touched yet is read from the committed tree when first accessed, and the
/// commit fails with EAGAIN when a node changed after that first access.
struct Tx {
    id: TxId,
    /// Committed-change counter when the transaction started.
    started_at: u64,
    /// The transaction's own changes: `None` deleted.
    overlay: BTreeMap<String, Option<Vec<u8>>>,
    /// Committed state (value, children) of nodes the transaction read, at first read.
    read: BTreeMap<String, (Option<Vec<u8>>, BTreeSet<String>)>,
    /// Like `read`, for every node any request may have touched (the path and its
    /// ancestors): an over-approximation used only to relax checks.
    touched: BTreeMap<String, (Option<Vec<u8>>, BTreeSet<String>)>,
    /// Events to fire on commit.
    events: BTreeSet<String>,
    /// A touched node was seen changed at some request's turn: it may have changed back since
    /// (written, then removed), but the engine may have seen it changed.
    was_unsure: bool,
    /// The transaction wrote something, even a value equal to the old one: its commit changes
    /// the committed tree's generations, so other transactions may conflict with it.
    wrote: bool,
}

fn changed_since(
    model: &Tree,
    seen: &BTreeMap<String, (Option<Vec<u8>>, BTreeSet<String>)>,
) -> bool {
    seen.iter()
        .any(|(p, (v, kids))| model.get(p) != v.as_ref() || &m_children(model, p) != kids)
}

impl Tx {
    /// The tree as the transaction sees it.
    fn view(&self, model: &Tree) -> Tree {
        let mut t = model.clone();
        for (k, v) in &self.overlay {
            match v {
                Some(v) => t.insert(k.clone(), v.clone()),
                None => t.remove(k),
            };
        }
        t
    }

    /// Records the differences between `before` and `after` in the overlay.
    fn record(&mut self, before: &Tree, after: &Tree) {
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for k in keys {
            if before.get(k) != after.get(k) {
                self.overlay.insert(k.clone(), after.get(k).cloned());
            }
        }
    }

    /// Whether a node the transaction read has changed since: it is doomed to EAGAIN, and
    /// what it reads in the meantime is unspecified.
    fn doomed(&self, model: &Tree) -> bool {
        changed_since(model, &self.read)
    }

    /// Whether some node the transaction may have touched changed since: its replies may
    /// then differ from the model.
    fn unsure(&mut self, model: &Tree) -> bool {
        self.was_unsure |= changed_since(model, &self.touched);
        self.was_unsure
    }

    fn touch(&mut self, model: &Tree, p: &str) {
        let mut cur = p;
        loop {
            if !self.overlay.contains_key(cur) {
                self.touched
                    .entry(cur.to_string())
                    .or_insert_with(|| (model.get(cur).cloned(), m_children(model, cur)));
            }
            if cur == "/m" {
                break;
            }
            cur = parent(cur);
        }
    }

    fn note_read(&mut self, model: &Tree, p: &str) {
        if !self.overlay.contains_key(p) {
            self.read
                .entry(p.to_string())
                .or_insert_with(|| (model.get(p).cloned(), m_children(model, p)));
        }
    }
}

fn engine_tree(h: &Harness) -> Tree {
    let mut t = Tree::new();
    h.engine.store().walk(xsstate::store::NodeId::ROOT, |p, n| {
        if below(p, "/m") {
            t.insert(p.to_string(), n.value().to_vec());
        }
    });
    t
}

fn run(nconns: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    let conns: Vec<ConnId> = (0..nconns).map(|_| h.dom0()).collect();
    let watcher = h.dom0();
    prop_assert_eq!(h.mkdir(conns[0], "/m"), okr());
    prop_assert_eq!(h.watch(watcher, WATCHED, "w"), okr());
    h.events(watcher);
    let mut model: Tree = BTreeMap::from([("/m".to_string(), vec![])]);
    // Bumped by every committed change (even one the model cannot see, like rewriting a value).
    let mut changes: u64 = 0;
    let mut txs: Vec<Option<Tx>> = (0..nconns).map(|_| None).collect();

    for op in ops {
        // Before every request, so that a change undone later still counts.
        for tx in txs.iter_mut().flatten() {
            tx.unsure(&model);
        }
        let mut fired: BTreeSet<String> = BTreeSet::new();
        match op {
            Op::Write(ci, p, v) => {
                let c = conns[ci];
                match &mut txs[ci] {
                    Some(tx) => {
                        tx.touch(&model, &p);
                        prop_assert_eq!(h.write_tx(c, tx.id, &p, &v), okr());
                        let before = tx.view(&model);
                        let mut after = before.clone();
                        let ch = m_write(&mut after, &p, &v);
                        tx.wrote = true;
                        tx.record(&before, &after);
                        tx.events.extend(expected_events(&ch, None));
                    }
                    None => {
                        prop_assert_eq!(h.write(c, &p, &v), okr());
                        let ch = m_write(&mut model, &p, &v);
                        changes += 1;
                        fired.extend(expected_events(&ch, None));
                    }
                }
            }
            Op::Mkdir(ci, p) => {
                let c = conns[ci];
                match &mut txs[ci] {
                    Some(tx) => {
                        tx.touch(&model, &p);
                        prop_assert_eq!(h.call(c, MsgType::Mkdir, tx.id, &z(&p)), okr());
                        let before = tx.view(&model);
                        let mut after = before.clone();
                        let ch = m_mkdir(&mut after, &p);
                        tx.wrote |= !ch.is_empty();
                        tx.record(&before, &after);
                        tx.events.extend(expected_events(&ch, None));
                    }
                    None => {
                        prop_assert_eq!(h.mkdir(c, &p), okr());
                        let ch = m_mkdir(&mut model, &p);
                        changes += u64::from(!ch.is_empty());
                        fired.extend(expected_events(&ch, None));
                    }
                }
            }
            Op::Rm(ci, p) => {
                let c = conns[ci];
                match &mut txs[ci] {
                    Some(tx) => {
                        let got = h.call(c, MsgType::Rm, tx.id, &z(&p));
                        tx.touch(&model, &p);
                        let doomed = tx.unsure(&model);
                        let before = tx.view(&model);
                        let mut after = before.clone();
                        match m_rm(&mut after, &p) {
                            Ok(ch) => {
                                prop_assert!(doomed || got == okr());
                                tx.wrote |= !ch.is_empty();
                                tx.events.extend(expected_events(&ch, Some(&p)));
                            }
                            Err(err) => prop_assert!(doomed || got == Got::Err(err)),
                        }
                        tx.record(&before, &after);
                    }
                    None => {
                        let got = h.rm(c, &p);
                        match m_rm(&mut model, &p) {
                            Ok(ch) => {
                                prop_assert_eq!(got, okr());
                                changes += u64::from(!ch.is_empty());
                                fired.extend(expected_events(&ch, Some(&p)));
                            }
                            Err(err) => prop_assert_eq!(got, Got::Err(err)),
                        }
                    }
                }
            }
            Op::Read(ci, p) => {
                let c = conns[ci];
                let (got, tree) = match &mut txs[ci] {
                    Some(tx) => {
                        tx.note_read(&model, &p);
                        tx.touch(&model, &p);
                        let got = h.read_tx(c, tx.id, &p);
                        if tx.unsure(&model) {
                            continue;
                        }
                        (got, tx.view(&model))
                    }
                    None => (h.read(c, &p), model.clone()),
                };
                let want = tree
                    .get(&p)
                    .map_or(Got::Err(XsError::Enoent), |v| Got::Ok(v.clone()));
                prop_assert_eq!(got, want);
            }
            Op::Dir(ci, p) => {
                let c = conns[ci];
                let (got, tree) = match &mut txs[ci] {
                    Some(tx) => {
                        tx.note_read(&model, &p);
                        tx.touch(&model, &p);
                        let got = h.call(c, MsgType::Directory, tx.id, &z(&p));
                        if tx.unsure(&model) {
                            continue;
                        }
                        (got, tx.view(&model))
                    }
                    None => (h.dir(c, &p), model.clone()),
                };
                match (got, tree.contains_key(&p)) {
                    (Got::Ok(payload), true) => {
                        let names: Vec<String> = payload
                            .split(|&b| b == 0)
                            .filter(|s| !s.is_empty())
                            .map(|s| String::from_utf8(s.to_vec()).unwrap())
                            .collect();
                        let set: BTreeSet<String> = names.iter().cloned().collect();
                        prop_assert_eq!(set.len(), names.len(), "duplicate children");
                        prop_assert_eq!(set, m_children(&tree, &p));
                    }
                    (got, false) => prop_assert_eq!(got, Got::Err(XsError::Enoent)),
                    (got, true) => prop_assert!(false, "unexpected {:?}", got),
                }
            }
            Op::Start(ci) => {
                let c = conns[ci];
                if let Some(tx) = &txs[ci] {
                    prop_assert_eq!(
                        h.call(c, MsgType::TransactionStart, tx.id, b"\0"),
                        Got::Err(XsError::Ebusy)
                    );
                } else {
                    let id = h.start(c);
                    txs[ci] = Some(Tx {
                        id,
                        started_at: changes,
                        overlay: BTreeMap::new(),
                        read: BTreeMap::new(),
                        touched: BTreeMap::new(),
                        events: BTreeSet::new(),
                        was_unsure: false,
                        wrote: false,
                    });
                }
            }
            Op::End(ci, commit) => {
                let c = conns[ci];
                match txs[ci].take() {
                    None => {
                        prop_assert_eq!(h.end(c, TxId(4242), commit), Got::Err(XsError::Enoent))
                    }
                    Some(tx) => {
                        let got = h.end(c, tx.id, commit);
                        if !commit {
                            prop_assert_eq!(got, okr());
                        } else {
                            if changes == tx.started_at {
                                prop_assert_eq!(
                                    &got,
                                    &okr(),
                                    "no concurrent change: commit succeeds"
                                );
                            }
                            if tx.doomed(&model) {
                                prop_assert_eq!(
                                    &got,
                                    &Got::Err(XsError::Eagain),
                                    "a read node changed"
                                );
                            }
                            match got {
                                Got::Ok(_) => {
                                    // The transaction's changes apply atomically.
                                    for (k, v) in &tx.overlay {
                                        match v {
                                            Some(v) => model.insert(k.clone(), v.clone()),
                                            None => model.remove(k),
                                        };
                                    }
                                    changes += u64::from(tx.wrote);
                                    fired.extend(tx.events);
                                }
                                Got::Err(err) => prop_assert_eq!(err, XsError::Eagain),
                            }
                        }
                    }
                }
            }
        }
        prop_assert_eq!(engine_tree(&h), model.clone(), "committed state");
        prop_assert!(
            h.engine.store().check().is_ok(),
            "{:?}",
            h.engine.store().check()
        );
        let got: Vec<(String, String)> = h.events(watcher);
        prop_assert!(got.iter().all(|(_, t)| t == "w"));
        let got_set: BTreeSet<String> = got.iter().map(|(p, _)| p.clone()).collect();
        prop_assert_eq!(
            got_set.len(),
            got.len(),
            "duplicate events in one step: {:?}",
            got
        );
        prop_assert_eq!(got_set, fired);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn transactions_and_watches_match_the_model(
        (n, ops) in (1usize..=3).prop_flat_map(|n| (Just(n), prop::collection::vec(op_strategy(n), 1..40)))
    ) {
        run(n, ops)?;
    }

    /// A single connection without concurrency: every commit must succeed.
    #[test]
    fn lone_transactions_always_commit(ops in prop::collection::vec(op_strategy(1), 1..40)) {
        run(1, ops)?;
    }
}

/// The case proptest found: the transaction touched /m/b while it was absent, another
/// connection created and then removed it, and the engine's transaction saw it in between.
#[test]
fn a_touched_node_changed_and_changed_back_keeps_the_model_unsure() {
    let s = |p: &str| p.to_string();
    let ops = vec![
        Op::Mkdir(0, s("/m/a")),
        Op::Start(1),
        Op::Dir(1, s("/m/b")),
        Op::Write(0, s("/m/b"), Vec::new()),
        Op::Write(1, s("/m/b/a"), Vec::new()),
        Op::Rm(2, s("/m/b")),
        Op::Rm(1, s("/m/b")),
        Op::Read(1, s("/m/b/a")),
    ];
    run(3, ops).expect("the model allows what the engine answers");
}

#[test]
fn conflicting_commit_applies_nothing() {
    let mut h = Harness::new();
    let a = h.dom0();
    let b = h.dom0();
    h.write(a, "/m/a", b"0");
    let t = h.start(a);
    assert_eq!(h.read_tx(a, t, "/m/a"), Got::Ok(b"0".to_vec()));
    assert_eq!(h.write_tx(a, t, "/m/b/c", b"1"), okr());
    assert_eq!(h.write_tx(a, t, "/m/a", b"2"), okr());
    assert_eq!(h.write(b, "/m/a", b"other"), okr());
    let before = engine_tree(&h);
    assert_eq!(h.end(a, t, true), Got::Err(XsError::Eagain));
    assert_eq!(engine_tree(&h), before);
}

/// The case proptest found in CI: a transaction rewrote a node with its own value and
/// committed; the engine counts that as a change (C does too), so a transaction started
/// before it may conflict.
#[test]
fn mkdir_of_an_existing_node_and_a_concurrent_same_value_rewrite() {
    let s = |p: &str| p.to_string();
    let ops = vec![
        Op::Write(0, s("/m/b"), Vec::new()),
        Op::Start(1),
        Op::Mkdir(1, s("/m/b")),
        Op::Start(0),
        Op::Write(0, s("/m/b"), Vec::new()),
        Op::End(0, true),
        Op::End(1, true),
    ];
    run(2, ops).expect("the model allows what the engine answers");
}
