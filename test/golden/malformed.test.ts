/**
 * The malformed-frame corpus (test/packet/corpus.ts) through process() with a NAT + DR + TUN
 * table whose services sit on the corpus' addresses, so mutated frames reach every path:
 * process() never throws, every frame that does not parse is dropped (or passed, not IP) with
 * its parser reason, every verdict carries a named reason, every frame sent out parses, and
 * afterwards the table, the connection list and the counters agree with the connections the
 * engine reported creating.
 */
import t from 'tap';
import { malformedFrames, validFrames, type CorpusFrame } from '../packet/corpus.js';
import { PacketInfo, PARSE_OK, PARSE_NOT_IP, PARSE_REASON_NAMES } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { REASON_NAMES } from '../../src/core/reasons.js';
import { TestDirector, CLIENT_MAC, GW_MAC } from './helpers.js';

const RULES = `-A -t 10.0.0.2:80 -s rr
-a -t 10.0.0.2:80 -r 10.0.1.1:8080 -m -w 1
-a -t 10.0.0.2:80 -r 10.0.1.2:8080 -m -w 2
-A -u 10.0.0.2:80 -s wrr
-a -u 10.0.0.2:80 -r 10.0.1.2 -g -w 1
--add-service --sctp-service 10.0.0.2:80 -s rr
-a --sctp-service 10.0.0.2:80 -r 10.0.1.3 -i -w 1
-A -t [2001:db8::2]:80 -s wlc
-a -t [2001:db8::2]:80 -r [2001:db8:1::1]:8080 -m -w 1
-A -u [2001:db8::2]:80 -s rr -p 60
-a -u [2001:db8::2]:80 -r 10.0.1.3 -i --tun-type gue --tun-port 6080 -w 1
--add-service --sctp-service [2001:db8::2]:80 -s sh
-a --sctp-service [2001:db8::2]:80 -r [2001:db8:1::1]:80 -g -w 1
`;

const SERVICES = ['TCP  10.0.0.2:80 rr', 'UDP  10.0.0.2:80 wrr', 'SCTP 10.0.0.2:80 rr', 'TCP  [2001:db8::2]:80 wlc',
  'UDP  [2001:db8::2]:80 rr persistent 60', 'SCTP [2001:db8::2]:80 sh'];

const VERDICTS = new Set(['drop', 'forward', 'pass', 'reply']);

async function corpusDirector(): Promise<TestDirector> {
  const td = new TestDirector({
    neigh: { '10.0.1.1': '02:00:00:00:01:01', '10.0.1.2': '02:00:00:00:01:02', '10.0.1.3': '02:00:00:00:01:03', '2001:db8:1::1': '02:00:00:00:06:01', '10.0.0.1': CLIENT_MAC },
    gw: GW_MAC,
    capacity: 1 << 16,
  });
  await td.rules(RULES);
  return td;
}

t.test('the corpus through process(): no throw, named reasons, parse failures dropped with their reason', async (t) => {
  const td = await corpusDirector();
  let created = 0;
  td.d.engine.trace = (_i, _v, _r, o) => { if (o.isNew) created++; };
  const info = new PacketInfo();
  const failures: string[] = [];
  const verdicts = new Map<string, number>();
  let n = 0;
  const frames: CorpusFrame[] = [...validFrames(), ...malformedFrames({ seed: 4242, garbage: 10_000 })];
  for (const c of frames) {
    n++;
    const code = parseFrame(c.frame, 0, c.frame.length, info);
    let step;
    try {
      step = td.send(c.frame);
    } catch (e) {
      failures.push(`${c.name}: process() threw ${(e as Error).stack ?? String(e)}`);
      continue;
    }
    verdicts.set(step.verdict, (verdicts.get(step.verdict) ?? 0) + 1);
    if (!VERDICTS.has(step.verdict)) failures.push(`${c.name}: verdict ${step.verdict}`);
    if (!REASON_NAMES.includes(step.reason)) failures.push(`${c.name}: unnamed reason ${step.reason}`);
    if (code !== PARSE_OK) {
      const want = code === PARSE_NOT_IP ? { verdict: 'pass', reason: 'not-ours' } : { verdict: 'drop', reason: PARSE_REASON_NAMES[code] };
      if (step.verdict !== want.verdict || step.reason !== want.reason || step.out.length !== 0) {
        failures.push(`${c.name}: parse ${PARSE_REASON_NAMES[code]} → ${step.verdict}/${step.reason}/${step.out.length} frames, want ${want.verdict}/${want.reason}`);
      }
    }
    for (const [k, o] of step.out.entries()) {
      const rc = parseFrame(o, 0, o.length, new PacketInfo());
      if (rc !== PARSE_OK) failures.push(`${c.name}: output frame ${k} does not parse (${PARSE_REASON_NAMES[rc]})`);
    }
    if (failures.length > 20) break;
  }
  t.same(failures, [], `${n} frames`);
  t.ok(n > 10_000, 'the whole corpus ran');
  t.ok((verdicts.get('forward') ?? 0) > 0 && (verdicts.get('drop') ?? 0) > 0 && (verdicts.get('pass') ?? 0) > 0,
    `all paths were exercised: ${JSON.stringify(Object.fromEntries(verdicts))}`);
  t.ok(created > 0, `${created} connections created`);

  // The table is intact and agrees with itself and with what the engine reported.
  const list = await td.ipvsadm('-L', '-n', '--stats', '--exact');
  t.equal(list.rc, 0);
  const totalConns = list.out.split('\n').filter((l) => /^(TCP|UDP|SCTP) /.test(l))
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[2]), 0);
  t.equal(totalConns, created, 'Conns counters add up to the connections created');
  const lc = await td.ipvsadm('-L', '-n', '-c');
  const entries = lc.out.split('\n').slice(2).filter((l) => l.length > 0);
  t.equal(entries.length, td.d.conns.count, '-Lnc lists every entry of the table');
  let templates = 0;
  td.d.conns.forEach((id) => { if (td.d.conns.isTemplate(id)) templates++; });
  const counts = await td.ipvsadm('-L', '-n');
  for (const s of SERVICES) t.ok(counts.out.includes(`\n${s}\n`), `still listed: ${s}`);
  const destSum = counts.out.split('\n').filter((l) => /^ +-> [0-9[]/.test(l))
    .reduce((sum, l) => { const f = l.trim().split(/\s+/); return sum + Number(f[4]) + Number(f[5]); }, 0);
  t.equal(destSum, td.d.conns.count - templates, 'ActiveConn + InActConn over all servers = live connections (templates excluded)');
  t.ok(td.d.conns.count - templates <= created, 'no connection appeared from nowhere');
});

t.test('specific malformed frames get their parser reason (codes do not collide with engine reasons)', async (t) => {
  const td = await corpusDirector();
  const want: Record<string, string> = {
    'tcp-doff0': 'bad-l4-header', 'tcp-doff4': 'bad-l4-header', 'tcp-doff15': 'bad-l4-header',
    'ipv4-ihl3': 'bad-ihl', 'ipv4-version6': 'bad-ip-version', 'ipv4-totlen19': 'bad-ip-length', 'ipv4-totlen65535': 'truncated-ip',
    'tcp4/trunc10': 'truncated-ethernet', 'tcp4/trunc40': 'truncated-ip', 'ipv6-dstopts-x8-cut': 'bad-ipv6-exthdr',
  };
  const seen = new Set<string>();
  for (const c of malformedFrames({ garbage: 0 })) {
    const w = want[c.name];
    if (w === undefined) continue;
    seen.add(c.name);
    const s = td.send(c.frame);
    t.same([s.verdict, s.reason], ['drop', w], c.name);
  }
  t.same([...seen].sort(), Object.keys(want).sort(), 'every named case exists in the corpus');
});
