import t from 'tap';
import { SCHEDULER_NAMES, getScheduler, isKnownScheduler } from '../../src/sched/registry.js';
import { SVC_F_SCHED_MH_FALLBACK } from '../../src/svc/types.js';
import { addDests, initSched, mkEnv, mkService, picks, pkt4, setOverloaded } from './fixtures.js';

const KERNEL = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

t.test('the 14 kernel schedulers are registered under their ipvsadm names', async (t) => {
  t.same([...SCHEDULER_NAMES].sort(), [...KERNEL].sort());
  for (const name of KERNEL) {
    const s = getScheduler(name);
    t.equal(s?.name, name, name);
    t.equal(typeof s?.schedule, 'function');
    t.ok(isKnownScheduler(name));
  }
});

t.test('"none" is accepted but has no scheduler object; other names are unknown', async (t) => {
  t.equal(getScheduler('none'), undefined);
  t.ok(isKnownScheduler('none'));
  for (const bad of ['', 'WLC', 'rr ', 'mhs', 'random']) {
    t.equal(getScheduler(bad), undefined, JSON.stringify(bad));
    t.notOk(isKnownScheduler(bad), JSON.stringify(bad));
  }
});

t.test('every scheduler returns null for an empty service, all-overloaded and all-weight-0 dests', async (t) => {
  for (const name of KERNEL) {
    const s = getScheduler(name)!;
    const env = mkEnv();
    const svc = mkService(s, { flags: SVC_F_SCHED_MH_FALLBACK });
    initSched(svc, env);
    t.same(picks(svc, env, 2), ['null', 'null'], `${name}: empty`);
    const ds = addDests(svc, env, [['A', { weight: 2 }], ['B', { weight: 3 }]]);
    t.not(picks(svc, env, 1)[0], 'null', `${name}: usable dests`);
    for (const d of ds) setOverloaded(d, true);
    // lblc's cache check ignores the OVERLOAD flag (see lblc.test.ts), so ask for a new address
    const fresh = name === 'lblc' ? pkt4('198.51.100.1', '10.99.0.1') : undefined;
    t.same(picks(svc, env, 2, fresh), ['null', 'null'], `${name}: all overloaded`);
    for (const d of ds) {
      setOverloaded(d, false);
      d.weight = 0;
      s.updDest?.(svc, d, env);
    }
    t.same(picks(svc, env, 2), ['null', 'null'], `${name}: all weight 0`);
    s.done?.(svc);
    t.same(ds.map((d) => d.refcnt), [0, 0], `${name}: no reference left after done()`);
  }
});
