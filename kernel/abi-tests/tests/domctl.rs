//! The domain-state domctls against a model of each Xen release from 4.17 to 4.22: the layout
//! in bytes, the interface version each expects (and the probe that finds it), and how every
//! answer reads — above all that no refusal is ever taken for a death.

use xsstub_abi_tests::domctl_abi::*;

/// The domctl as the 144 bytes Xen sees.
fn bytes(w: &DomctlWords) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn words(b: &[u8]) -> DomctlWords {
    let mut w = [0u64; 18];
    for (i, chunk) in b.chunks_exact(8).enumerate() {
        w[i] = u64::from_le_bytes(chunk.try_into().unwrap());
    }
    w
}

#[derive(Clone, Copy)]
struct Dom {
    id: u16,
    shutdown: bool,
    dying: bool,
    dead: bool,
    unique: u64,
}

const fn dom(id: u16) -> Dom {
    Dom {
        id,
        shutdown: false,
        dying: false,
        dead: false,
        unique: 0x1000 + id as u64,
    }
}

/// A model of one release's `do_domctl` for the two commands, as read in xen.git (see
/// `domctl_abi`'s header), for a caller that is the xenstore domain and `VIRQ_DOM_EXC`
/// handler, not the control domain.
struct Xen {
    version: XenVersion,
    domains: Vec<Dom>,
    changed: Vec<u16>,
}

impl Xen {
    fn new(major: u16, minor: u16) -> Xen {
        let mut d3 = dom(3);
        d3.shutdown = true;
        let mut d5 = dom(5);
        d5.dead = true;
        let mut d6 = dom(6);
        d6.dying = true;
        Xen {
            version: XenVersion::new(major, minor),
            domains: vec![dom(0), dom(1), dom(2), d3, d5, d6],
            changed: Vec::new(),
        }
    }

    fn find(&self, id: u16) -> Option<&Dom> {
        self.domains.iter().find(|d| d.id == id)
    }

    /// `-ESRCH`, or `-EPERM` on 4.22 for a caller other than the control domain.
    fn missing(&self) -> i64 {
        if self.version >= XenVersion::new(4, 22) {
            -EPERM
        } else {
            -ESRCH
        }
    }

    fn call(&mut self, w: DomctlWords) -> Result<DomctlWords, i64> {
        let b = bytes(&w);
        let cmd = u32::from_le_bytes(b[0..4].try_into().unwrap());
        let iv = u32::from_le_bytes(b[4..8].try_into().unwrap());
        let domain = u16::from_le_bytes(b[8..10].try_into().unwrap());
        let stable = cmd == XEN_DOMCTL_GET_DOMAIN_STATE && self.version >= XenVersion::new(4, 21);
        let want = if stable {
            0
        } else {
            expected_interface_version(self.version).unwrap()
        };
        if iv != want {
            return Err(-EACCES);
        }
        let mut out = b.clone();
        match cmd {
            XEN_DOMCTL_GETDOMAININFO => {
                let d = if self.version >= XenVersion::new(4, 18) {
                    *self.find(domain).ok_or(self.missing())?
                } else {
                    if domain >= DOMID_FIRST_RESERVED {
                        return Err(-EINVAL);
                    }
                    let mut ids: Vec<&Dom> =
                        self.domains.iter().filter(|d| d.id >= domain).collect();
                    ids.sort_by_key(|d| d.id);
                    *ids.first().copied().ok_or(-ESRCH)?
                };
                // A running domain's shutdown code is ~0: bits 16..31 all set.
                let mut flags = 0xffff_0000u32 | 0x20;
                if d.shutdown {
                    flags = (flags & 0xffff) | 4 | (3 << 16);
                }
                if d.dead {
                    flags |= 1;
                }
                out[8..10].copy_from_slice(&d.id.to_le_bytes());
                out[16..18].copy_from_slice(&d.id.to_le_bytes());
                out[20..24].copy_from_slice(&flags.to_le_bytes());
                out[24..32].copy_from_slice(&4096u64.to_le_bytes());
            }
            XEN_DOMCTL_GET_DOMAIN_STATE if stable => {
                if u32::from_le_bytes(b[20..24].try_into().unwrap()) != 0 {
                    return Err(-EINVAL);
                }
                let d = if domain == DOMID_INVALID {
                    if self.changed.is_empty() {
                        return Err(-ENOENT);
                    }
                    let id = self.changed.remove(0);
                    out[8..10].copy_from_slice(&id.to_le_bytes());
                    match self.find(id) {
                        Some(d) => *d,
                        None => {
                            out[16..32].fill(0);
                            return Ok(words(&out));
                        }
                    }
                } else {
                    *self.find(domain).ok_or(self.missing())?
                };
                let state = STATE_EXIST
                    | if d.shutdown { STATE_SHUTDOWN } else { 0 }
                    | if d.dying { STATE_DYING } else { 0 }
                    | if d.dead { STATE_DEAD } else { 0 };
                out[16..18].copy_from_slice(&state.to_le_bytes());
                out[18..20].copy_from_slice(&4u16.to_le_bytes());
                out[24..32].copy_from_slice(&d.unique.to_le_bytes());
            }
            // An unknown command (get_domain_state before 4.21) passes the version check
            // only with the release's version, then fails.
            _ => return Err(-38),
        }
        Ok(words(&out))
    }

    /// What the kernel's `DomainQueries::detect` does, on our own domain 1.
    fn detect(&mut self) -> (Option<u32>, bool) {
        let state = has_domain_state(self.version)
            && self
                .call(encode_get_domain_state(1))
                .is_ok_and(|w| answer_domain_state(1, Ok(&w), Eperm::Refused) != Answer::NotFound);
        let v = probe_order(expected_interface_version(self.version))
            .find(|&v| self.call(encode_getdomaininfo(v, 1)).err() != Some(-EACCES));
        (v, state)
    }

    /// The kernel's per-domain answer (`DomainQueries::answer`).
    fn answer(&mut self, id: u16, eperm: Eperm) -> Answer {
        let (v, state) = self.detect();
        if state {
            let r = self.call(encode_get_domain_state(id));
            return answer_domain_state(id, r.as_ref().map_err(|e| *e), eperm);
        }
        let v = v.unwrap();
        let r = self.call(encode_getdomaininfo(v, id));
        answer_getdomaininfo(id, r.as_ref().map_err(|e| *e), info_semantics(v), eperm)
    }
}

const RELEASES: [(u16, u16); 6] = [(4, 17), (4, 18), (4, 19), (4, 20), (4, 21), (4, 22)];

#[test]
fn each_release_expects_its_interface_version() {
    let want = [0x15, 0x16, 0x17, 0x17, 0x17, 0x18];
    for ((maj, min), v) in RELEASES.iter().zip(want) {
        assert_eq!(
            expected_interface_version(XenVersion::new(*maj, *min)),
            Some(v),
            "{maj}.{min}"
        );
    }
    assert_eq!(expected_interface_version(XenVersion::new(4, 16)), None);
    assert_eq!(expected_interface_version(XenVersion::new(4, 23)), None);
    assert_eq!(XenVersion::from_raw((4 << 16) | 20), XenVersion::new(4, 20));
    assert_eq!(format!("{}", XenVersion::new(4, 20)), "4.20");
}

#[test]
fn detection_finds_each_releases_queries() {
    for (maj, min) in RELEASES {
        let mut xen = Xen::new(maj, min);
        let (v, state) = xen.detect();
        assert_eq!(v, expected_interface_version(xen.version), "{maj}.{min}");
        assert_eq!(state, min >= 21, "{maj}.{min}");
    }
}

#[test]
fn an_unknown_release_is_probed() {
    // 4.23 with a newer interface version nobody told us about, and a patched 4.20.
    for (xen, iv) in [
        (XenVersion::new(4, 23), 0x1a),
        (XenVersion::new(4, 20), 0x16),
    ] {
        let accepted = probe_order(expected_interface_version(xen))
            .find(|&v| v == iv)
            .is_some();
        assert!(accepted, "{xen}: {iv:#x} never tried");
    }
    let order: Vec<u32> = probe_order(Some(0x17)).collect();
    assert_eq!(order.first(), Some(&0x17));
    let mut sorted = order.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        order.len(),
        "a version tried twice: {order:x?}"
    );
    assert!(order.contains(&0x15) && order.contains(&0x18) && order.contains(&0x20));
}

#[test]
fn layout_in_bytes() {
    let w = encode_getdomaininfo(0x17, 0x1234);
    let b = bytes(&w);
    assert_eq!(b.len(), DOMCTL_BYTES);
    assert_eq!(&b[0..4], &5u32.to_le_bytes());
    assert_eq!(&b[4..8], &0x17u32.to_le_bytes());
    assert_eq!(&b[8..10], &0x1234u16.to_le_bytes());
    assert!(b[10..].iter().all(|&x| x == 0));
    let w = encode_get_domain_state(DOMID_INVALID);
    let b = bytes(&w);
    assert_eq!(&b[0..4], &90u32.to_le_bytes());
    assert_eq!(
        &b[4..8],
        &0u32.to_le_bytes(),
        "the stable interface is version 0"
    );
    assert_eq!(&b[8..10], &0x7ff4u16.to_le_bytes());
    assert!(b[16..32].iter().all(|&x| x == 0), "pad0 must be 0");

    let mut b = vec![0u8; DOMCTL_BYTES];
    b[16..18].copy_from_slice(&7u16.to_le_bytes());
    b[20..24].copy_from_slice(&0xffff_0024u32.to_le_bytes());
    assert_eq!(decode_getdomaininfo(&words(&b)), (7, 0xffff_0024));
    let mut b = vec![0u8; DOMCTL_BYTES];
    b[8..10].copy_from_slice(&9u16.to_le_bytes());
    b[16..18].copy_from_slice(&(STATE_EXIST | STATE_DEAD).to_le_bytes());
    b[18..20].copy_from_slice(&4u16.to_le_bytes());
    b[24..32].copy_from_slice(&0xdead_beef_0000_0001u64.to_le_bytes());
    let w = words(&b);
    assert_eq!(domain_field(&w), 9);
    assert_eq!(
        decode_domain_state(&w),
        DomainStateReply {
            state: STATE_EXIST | STATE_DEAD,
            caps: 4,
            pad0: 0,
            unique_id: 0xdead_beef_0000_0001
        }
    );
}

#[test]
fn each_release_reads_running_shutdown_dying_dead_and_missing_domains() {
    for (maj, min) in RELEASES {
        let at = format!("{maj}.{min}");
        let mut xen = Xen::new(maj, min);
        // A running domain's flags carry ~0 as shutdown code: not a shutdown.
        assert_eq!(
            xen.answer(2, Eperm::Refused).liveness(),
            Liveness::Running,
            "{at}"
        );
        assert_eq!(
            xen.answer(3, Eperm::Refused).liveness(),
            Liveness::Shutdown,
            "{at}"
        );
        assert_eq!(
            xen.answer(5, Eperm::Refused).liveness(),
            Liveness::Gone,
            "{at}"
        );
        // A dying (not yet dead) domain is kept and still exists.
        assert_eq!(
            xen.answer(6, Eperm::Refused).liveness(),
            Liveness::Running,
            "{at}"
        );
        assert_eq!(
            xen.answer(5, Eperm::Refused).exists(),
            Some(true),
            "{at}: dead exists"
        );
        // Domain 4 does not exist: 4.17 answers for domain 5, later releases ESRCH; 4.22
        // says EPERM, which is "not found" only where we established we may ask.
        let missing = xen.answer(4, Eperm::Refused);
        if (maj, min) == (4, 22) {
            assert_eq!(missing, Answer::Refused(-EPERM), "{at}");
            assert_eq!(missing.liveness(), Liveness::Unknown(-EPERM), "{at}: kept");
            assert_eq!(xen.answer(4, Eperm::NotFound).exists(), Some(false), "{at}");
        } else {
            assert_eq!(missing, Answer::NotFound, "{at}");
            assert_eq!(missing.liveness(), Liveness::Gone, "{at}");
            assert_eq!(missing.exists(), Some(false), "{at}");
        }
        // Above every domain: 4.17 has no next domain (ESRCH).
        assert_eq!(
            xen.answer(100, Eperm::NotFound).exists(),
            Some(false),
            "{at}"
        );
    }
}

#[test]
fn unique_ids_come_with_the_stable_query() {
    let mut xen = Xen::new(4, 21);
    match xen.answer(2, Eperm::Refused) {
        Answer::Exists { unique_id, .. } => assert_eq!(unique_id, Some(0x1002)),
        other => panic!("{other:?}"),
    }
    let mut xen = Xen::new(4, 20);
    match xen.answer(2, Eperm::Refused) {
        Answer::Exists { unique_id, .. } => assert_eq!(unique_id, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refusal_is_never_a_death() {
    let w = encode_getdomaininfo(0x17, 2);
    for errno in [-EACCES, -EPERM, -EINVAL, -ENOENT, -12, -38, -1000] {
        for semantics in [InfoSemantics::NextDomain, InfoSemantics::Exact] {
            let a = answer_getdomaininfo(2, Err(errno), semantics, Eperm::Refused);
            assert_eq!(
                a.liveness(),
                Liveness::Unknown(errno),
                "getdomaininfo {errno}"
            );
            assert_eq!(a.exists(), None);
        }
        let a = answer_domain_state(2, Err(errno), Eperm::Refused);
        assert_eq!(
            a.liveness(),
            Liveness::Unknown(errno),
            "get_domain_state {errno}"
        );
    }
    // An answer about another domain from the exact query is not believed either.
    let mut b = bytes(&w);
    b[16..18].copy_from_slice(&9u16.to_le_bytes());
    let a = answer_getdomaininfo(2, Ok(&words(&b)), InfoSemantics::Exact, Eperm::Refused);
    assert!(matches!(a.liveness(), Liveness::Unknown(_)));
    // The one "not found" errno of each query is.
    let a = answer_getdomaininfo(2, Err(-ESRCH), InfoSemantics::Exact, Eperm::Refused);
    assert_eq!(a.liveness(), Liveness::Gone);
}

#[test]
fn changed_domain_poll() {
    let mut xen = Xen::new(4, 22);
    xen.changed = vec![3, 4, 5];
    let mut seen = Vec::new();
    loop {
        match changed(
            xen.call(encode_get_domain_state(DOMID_INVALID))
                .as_ref()
                .map_err(|e| *e),
        ) {
            Changed::Domain(d, a) => seen.push((d, a.liveness())),
            Changed::Done => break,
            Changed::Failed(e) => panic!("{e}"),
        }
    }
    // 4 no longer exists: an all-zero payload.
    assert_eq!(
        seen,
        [
            (3, Liveness::Shutdown),
            (4, Liveness::Gone),
            (5, Liveness::Gone)
        ]
    );
    // Before 4.21 the command does not exist (EACCES: the version check comes first).
    let mut old = Xen::new(4, 20);
    let r = old.call(encode_get_domain_state(DOMID_INVALID));
    assert_eq!(
        changed(r.as_ref().map_err(|e| *e)),
        Changed::Failed(-EACCES)
    );
    assert_eq!(changed(Err(-EACCES)), Changed::Failed(-EACCES));
}
