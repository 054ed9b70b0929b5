/**
 * `ulvs replay` on bad input: unreadable, truncated or non-Ethernet captures, a bad rules line
 * (the message names RULES:LINE), bad flags. Every failure is one line on stderr starting with
 * "ulvs replay:", a non-zero exit and never a stack trace; odd but valid input (an empty
 * capture, a frame larger than any slot) is processed.
 */
import t, { type Test } from 'tap';
import { basename, join } from 'node:path';
import { buildTcp } from '../../src/packet/build.js';
import { FIXTURE_DIR } from '../fixtures/gen-replay-fixtures.js';
import { Scratch, hasStack, pcapBytes, readTrace, replay, replayAll } from './helpers.js';

const RULES = '-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.1.1:80 -g -w 1\n';
const SYN = buildTcp({ srcMac: '02:00:00:00:00:c1', dstMac: '02:00:00:00:00:01', saddr: '10.0.0.1', daddr: '10.0.0.100', dport: 80, flags: 0x02 });

const s = new Scratch();
t.teardown(() => s.done());
const rules = s.write('rules', RULES);
const good = s.write('good.pcap', pcapBytes([{ ts: 1_700_000_000, frame: SYN }, { ts: 1_700_000_001, frame: SYN }]));
const out = s.path('out.pcap');

interface ErrorCase {
  args: string[];
  /** What the one line must say. */
  says: RegExp;
  status: number;
}

/** Runs the cases at once and asserts, for each, a one-line error saying `says`, the exit status and no stack trace. */
async function expectErrors(tt: Test, cases: ErrorCase[]): Promise<void> {
  const runs = await replayAll(cases.map((c) => c.args));
  cases.forEach((c, i) => {
    const r = runs[i]!;
    const name = c.args.map((a) => (a.startsWith('/') ? basename(a) : a)).join(' ') || '(no arguments)';
    tt.same([r.status, r.stdout], [c.status, ''], `${name}: exit ${c.status}, nothing on stdout`);
    tt.match(r.stderr, /^ulvs replay: [^\n]+\n$/, `${name}: exactly one line on stderr`);
    tt.match(r.stderr, c.says, `${name}: says what is wrong`);
    tt.notOk(hasStack(r.stderr), `${name}: no stack trace`);
  });
}

t.test('unreadable, truncated and foreign captures', async (t) => {
  const text = s.write('text.pcap', 'this is not a capture file\n');
  // The committed fixtures: demo.pcap cut inside its last record; IP packets with LINKTYPE_RAW (101).
  const cut = join(FIXTURE_DIR, 'truncated.pcap');
  const rawPath = join(FIXTURE_DIR, 'raw-ip.pcap');
  const base = ['--rules', rules, '--out', out];
  await expectErrors(t, [
    { args: [...base, '--in', s.path('missing.pcap')], says: /cannot read .*missing\.pcap: ENOENT/, status: 1 },
    { args: [...base, '--in', cut], says: /truncated\.pcap: truncated pcap record at byte \d+/, status: 1 },
    { args: [...base, '--in', text], says: /text\.pcap: not a pcap or pcapng file/, status: 1 },
    { args: [...base, '--in', rawPath], says: /raw-ip\.pcap: link type 101 is not Ethernet/, status: 1 },
  ]);
});

t.test('rules: unreadable file, and a bad line named FILE:LINE', async (t) => {
  const bad = s.write('bad.rules', RULES + '-a -t 10.0.0.100:80 -r 10.0.1.2:80 -w 70000\n-A -t 10.0.0.101:80\n');
  const unknown = s.write('unknown.rules', '-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.200:80 -r 10.0.1.2:80\n');
  const base = ['--in', good, '--out', out];
  await expectErrors(t, [
    { args: ['--rules', s.path('nope'), ...base], says: /cannot read rules .*nope: ENOENT/, status: 1 },
    { args: ['--rules', bad, ...base], says: /bad\.rules:3: illegal weight specified$/m, status: 1 },
    { args: ['--rules', unknown, ...base], says: /unknown\.rules:2: /, status: 1 },
  ]);
});

t.test('bad flags and values: one-line error', async (t) => {
  const base = ['--rules', rules, '--in', good, '--out', out];
  const usage: [string[], RegExp][] = [
    [[...base, '--bogus'], /unknown option '--bogus'/],
    [[...base, '--in'], /option --in needs a value/],
    [[...base, '--seed', 'x'], /bad --seed value 'x'/],
    [[...base, '--set', '1', '2'], /option --set needs a value/],
    [['--rules', rules, '--in', good], /--rules, --in and --out are required/],
  ];
  const value: [string[], RegExp][] = [
    [[...base, '--mac', 'zz:zz'], /bad --mac 'zz:zz'/],
    [[...base, '--neigh', '10.0.1.1'], /bad --neigh '10\.0\.1\.1' \(expected IP=MAC\)/],
    [[...base, '--set', '99999999999', '0', '0'], /bad --set/],
    [['--rules', rules, '--in', good, '--out', s.path('no/such/dir/out.pcap')], /cannot write output: ENOENT/],
  ];
  await expectErrors(t, [
    ...usage.map(([args, says]) => ({ args, says, status: 2 })),
    ...value.map(([args, says]) => ({ args, says, status: 1 })),
  ]);
});

t.test('--help goes to stdout with exit 0', async (t) => {
  const r = replay(['--help']);
  t.equal(r.status, 0);
  t.match(r.stdout, /^usage: ulvs replay --rules RULES --in IN\.pcap --out OUT\.pcap/);
  t.equal(r.stderr, '');
});

t.test('odd but valid input is processed', async (t) => {
  const empty = s.write('empty.pcap', pcapBytes([]));
  const r = replay(['--rules', rules, '--in', empty, '--out', s.path('empty-out.pcap'), '--trace', s.path('empty.trace'), '--conns']);
  t.equal(r.status, 0, r.stderr);
  t.same(readTrace(s.path('empty.trace')), [], 'no frames, no trace lines');
  t.equal(r.stdout, 'IPVS connection entries\npro expire state       source             virtual            destination\n');

  const big = new Uint8Array(12000);
  big.set(SYN);
  const withBig = s.write('big.pcap', pcapBytes([{ ts: 1, frame: big }, { ts: 2, frame: SYN }]));
  const r2 = replay(['--rules', rules, '--in', withBig, '--out', s.path('big-out.pcap'), '--trace', s.path('big.trace'), '--gw', '02:00:00:00:00:99']);
  t.equal(r2.status, 0, r2.stderr);
  t.same(readTrace(s.path('big.trace')).map((l) => [l.frame, l.verdict, l.reason]), [[1, 'drop', 'oversize'], [2, 'forward', 'dr']],
    'a frame larger than any slot is dropped and named; the next one goes on');
});
