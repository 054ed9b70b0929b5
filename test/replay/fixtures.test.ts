/**
 * The committed replay fixtures (test/fixtures/replay/): they are exactly what their generator
 * produces, and `ulvs replay` over them gives the documented outcome — the pcap and the pcapng
 * of the same frames the same output, which tshark finds clean (the broken ones: errors.test.ts).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_DIR, replayFixtures } from '../fixtures/gen-replay-fixtures.js';
import { Scratch, readTrace, replayAll } from './helpers.js';
import { badChecksums, dissectFile, tsharkMissing, tsharkTestOptions } from '../util/tshark.js';

const fx = (name: string): string => join(FIXTURE_DIR, name);

t.test('committed fixtures equal the generator output', async (t) => {
  for (const [name, bytes] of Object.entries(replayFixtures())) {
    let onDisk: Uint8Array | null = null;
    try { onDisk = new Uint8Array(readFileSync(fx(name))); } catch { /* reported below */ }
    t.ok(onDisk !== null && Buffer.from(onDisk).equals(Buffer.from(bytes)),
      `${name} is up to date (regenerate: node dist/test/fixtures/gen-replay-fixtures.js)`);
  }
});

const s = new Scratch();
t.teardown(() => s.done());
const neigh = readFileSync(fx('demo.args'), 'utf8').split('\n').filter((l) => l.length > 0);
const runs = replayAll([
  ['--rules', fx('demo.rules'), '--in', fx('demo.pcap'), '--out', s.path('a.pcap'), '--trace', s.path('a.trace'), ...neigh, '--conns', '--stats'],
  ['--rules', fx('demo.rules'), '--in', fx('demo.pcapng'), '--out', s.path('b.pcap'), '--trace', s.path('b.trace'), ...neigh, '--conns', '--stats'],
]);

t.test('demo.pcap and demo.pcapng: the same, documented outcome', async (t) => {
  const [a, b] = await runs;
  t.equal(a!.status, 0, a!.stderr);
  t.equal(b!.status, 0, b!.stderr);
  t.equal(b!.stdout, a!.stdout, 'same listings');
  t.same(readFileSync(s.path('b.pcap')), readFileSync(s.path('a.pcap')), 'same OUT.pcap bytes');
  const trace = readTrace(s.path('a.trace'));
  t.same(readTrace(s.path('b.trace')), trace, 'same trace');
  t.same(trace.map((l) => `${l.verdict}/${l.reason}`), [
    'reply/arp-reply', 'forward/nat-in', 'forward/nat-out', 'forward/nat-in', 'forward/dr', 'forward/icmp-in',
    'forward/tunnel', 'drop/fragment-no-conn', 'forward/nat-in',
  ]);
  t.match(a!.stdout, /\nTCP 01:00  CLOSE_WAIT  10\.0\.0\.1:40000 +10\.0\.0\.100:80 +10\.0\.1\.1:8080\n/, 'the client FIN: ESTABLISHED → CLOSE_WAIT (60 s)');
  t.match(a!.stdout, /\nTCP 04:58  NONE        10\.0\.0\.1:0 +10\.0\.0\.101:22 +10\.0\.1\.3:22\n/, 'the -p 300 template, used 2 s before the last frame');
});

t.test('OUT.pcap of the demo is clean for tshark', tsharkTestOptions(), async (t) => {
  if (tsharkMissing(t)) return;
  await runs;
  const rows = dissectFile(s.path('a.pcap'), ['ip.dst']);
  t.equal(rows.length, 8);
  rows.forEach((r, i) => {
    t.same([r.problems, badChecksums(r)], [[], []], `frame ${i + 1}: no problems, no bad checksum`);
  });
  t.equal(rows[5]!.one('ip.dst'), '10.0.0.100', 'the ICMP error is relayed unchanged over DR (to the RS MAC)');
});

// truncated.pcap and raw-ip.pcap are exercised by errors.test.ts.
