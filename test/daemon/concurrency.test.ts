/**
 * Listings are atomic snapshots: while one client adds and removes services and
 * destinations (some changes touch many entries at once: deleting a service with
 * 20 dests, a flush), other clients list the table as fast as they can — over
 * their own connections and as separate `ulvsadm -Sn` processes. Every listing
 * must be exactly the table as it was between two of the writer's changes, and
 * each reader must see those states in order.
 */
import t from 'tap';
import { freshWhere, startDaemon, clientIn, ulvsadm, type Where } from './helpers.js';
import type { ServiceEntry } from '../../src/ctl/types.js';
import type { SocketIpvsApi } from '../../src/ctl/client.js';
import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';

function canon(list: ServiceEntry[]): string {
  const svcs = list.map((s) => ({
    k: `${s.af}/${s.protocol}/${s.addr}/${s.port}/${s.fwmark}`, sched: s.schedName, flags: s.flags, n: s.numDests,
    dests: s.dests.map((d) => `${d.addr}:${d.port}/${d.fwdMethod}/${d.weight}/${d.uThreshold}/${d.lThreshold}`).sort(),
  }));
  svcs.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return JSON.stringify(svcs);
}

async function saveText(api: SocketIpvsApi): Promise<string> {
  let out = '';
  const io = { stdout: (s: string) => { out += s; }, stderr: (s: string) => { out += `ERR ${s}`; }, readStdin: async () => '' };
  await runIpvsadm('ipvsadm', ['-S', '-n'], io, api, numericResolver);
  return out;
}

const svc = (a: string, port = 80, sched = 'rr') => ({
  af: 4 as const, protocol: 6, addr: a, port, fwmark: 0, schedName: sched, flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '',
});
const dest = (a: string, weight = 1) => ({
  af: 4 as const, addr: a, port: 80, fwdMethod: 0, weight, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
});

/** The writer's changes: each one request, several of them touching many entries. */
function changes(api: SocketIpvsApi): Array<(() => Promise<void>) & { label?: string }> {
  const out: Array<(() => Promise<void>) & { label?: string }> = [];
  for (let r = 0; r < 3; r++) {
    const s = svc(`10.1.${r}.1`);
    const u = svc(`10.2.${r}.1`, 443, 'wlc');
    out.push(() => api.addService(s));
    for (let i = 1; i <= 20; i++) out.push(() => api.addDest(s, dest(`10.9.${r}.${i}`, i)));
    out.push(() => api.editService({ ...s, schedName: 'wlc' }));
    for (let i = 1; i <= 5; i++) out.push(() => api.editDest(s, dest(`10.9.${r}.${i}`, 100 + i)));
    out.push(() => api.addService(u));
    for (let i = 1; i <= 10; i++) out.push(() => api.addDest(u, dest(`10.8.${r}.${i}`)));
    for (let i = 1; i <= 3; i++) out.push(() => api.delDest(u, dest(`10.8.${r}.${i}`)));
    // 20 dests at once; their weights were edited after the last add, so no half-deleted state ever existed.
    out.push(Object.assign(() => api.delService(s), { label: `delService ${r}` }));
    out.push(() => api.addService(svc(`10.3.${r}.1`)));
    out.push(() => api.flush()); // everything at once
  }
  return out;
}

/** The smallest state index ≥ `from` whose listing is `seen`, or -1. */
function indexOf(states: string[], seen: string, from: number): number {
  for (let i = from; i < states.length; i++) if (states[i] === seen) return i;
  return -1;
}

t.test('listings under concurrent changes are whole snapshots, in order', async (t) => {
  const where: Where = freshWhere(t);
  const daemon = await startDaemon(where);
  t.teardown(() => daemon.stop());

  const writer = clientIn(where);
  t.teardown(() => writer.close());
  const states = [canon(await writer.getServices())];
  const saves = [await saveText(writer)];
  let done = false;

  const readerConns = [clientIn(where), clientIn(where), clientIn(where)];
  t.teardown(() => readerConns.forEach((c) => c.close()));
  const socketReads: string[][] = readerConns.map(() => []);
  const readers = readerConns.map(async (c, i) => {
    while (!done) socketReads[i]!.push(canon(await c.getServices()));
  });
  const processReads: string[][] = [[], []];
  const procReaders = processReads.map(async (into) => {
    while (!done) {
      const r = await ulvsadm(['-Sn'], where);
      into.push(r.status === 0 && r.stderr === '' ? r.stdout : `FAILED ${r.status} ${r.stderr}`);
    }
  });

  let beforeDelete = -1;
  for (const change of changes(writer)) {
    if (change.label === 'delService 0') beforeDelete = states.length - 1;
    await change();
    // Only this client writes, so what it reads now is exactly the state after its change.
    states.push(canon(await writer.getServices()));
    saves.push(await saveText(writer));
    // Give the readers a moment to interleave with the next change.
    await new Promise((r) => setImmediate(r));
  }
  // Let the process readers get a few listings in after the last change too.
  await new Promise((r) => setTimeout(r, 300));
  done = true;
  await Promise.all([...readers, ...procReaders]);

  let total = 0;
  const distinct = new Set<string>();
  for (const [i, seq] of socketReads.entries()) {
    let at = 0;
    let bad = 0;
    for (const seen of seq) {
      const j = indexOf(states, seen, at);
      if (j < 0) bad++;
      else at = j;
      distinct.add(seen);
    }
    total += seq.length;
    t.equal(bad, 0, `socket reader ${i}: ${seq.length} listings, each a whole state, in order`);
  }
  for (const [i, seq] of processReads.entries()) {
    let at = 0;
    let bad = 0;
    for (const seen of seq) {
      const j = indexOf(saves, seen, at);
      if (j < 0) bad++;
      else at = j;
    }
    t.ok(seq.length > 0, `process reader ${i} ran`);
    t.equal(bad, 0, `process reader ${i}: ${seq.length} ulvsadm -Sn listings, each a whole state, in order`);
  }
  t.ok(total > states.length, `the readers really overlapped the writer (${total} listings over ${states.length} states)`);
  t.ok(distinct.size > 10, `and saw many different states (${distinct.size})`);

  // The check has teeth: a listing showing a service halfway through its deletion matches no state.
  const half = JSON.parse(states[beforeDelete]!) as Array<{ k: string; n: number; dests: string[] }>;
  const victim = half.find((x) => x.dests.length === 20)!;
  victim.dests.splice(0, 7);
  victim.n = 13;
  t.equal(indexOf(states, JSON.stringify(half), 0), -1, 'a half-done delete would have been caught');
});
