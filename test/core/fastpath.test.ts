/**
 * The established fast path must be invisible: the same frames through a director with
 * it and one without give byte-identical output, verdicts, reasons, counters and
 * connection states.
 */
import t from 'tap';
import { TestDirector, CLIENT_MAC, DIR_MAC } from './harness.js';
import { buildTcp, buildUdp } from '../../src/packet/build.js';

const RS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
const RS_MAC = ['02:00:00:00:01:01', '02:00:00:00:01:02', '02:00:00:00:01:03'];
const SYN = 0x02, ACK = 0x10, PSH = 0x08, FIN = 0x01, RST = 0x04;

function xorshift(seed: number): () => number {
  let x = seed;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

async function pair(rules: string): Promise<[TestDirector, TestDirector]> {
  const neigh: Record<string, string> = { '10.0.0.1': CLIENT_MAC };
  RS.forEach((ip, i) => { neigh[ip] = RS_MAC[i]!; });
  const fast = new TestDirector({ neigh, gw: '02:00:00:00:00:99' });
  const slow = new TestDirector({ neigh, gw: '02:00:00:00:00:99' });
  slow.d.engine.fast.enabled = false;
  await fast.rules(rules);
  await slow.rules(rules);
  return [fast, slow];
}

for (const [name, rules] of [
  ['NAT', '-A -t 10.0.0.100:80 -s rr\n' + RS.map((r) => `-a -t 10.0.0.100:80 -r ${r}:8080 -m -w 1`).join('\n') +
    '\n-A -u 10.0.0.100:5000 -s rr\n' + RS.map((r) => `-a -u 10.0.0.100:5000 -r ${r}:6000 -m -w 1`).join('\n') + '\n'],
  ['DR', '-A -t 10.0.0.100:80 -s wlc\n' + RS.map((r) => `-a -t 10.0.0.100:80 -r ${r}:80 -g -w 2`).join('\n') + '\n'],
] as const) {
  t.test(`${name}: fast path and general path agree on 3000 random packets`, async (t) => {
    const [fast, slow] = await pair(rules);
    const rnd = xorshift(name === 'NAT' ? 7 : 11);
    let fastHits = 0;
    for (let n = 0; n < 3000; n++) {
      const client = `10.0.${rnd() % 2}.${1 + (rnd() % 4)}`;
      const cport = 30000 + (rnd() % 4);
      const udp = name === 'NAT' && rnd() % 4 === 0;
      const reply = name === 'NAT' && rnd() % 3 === 0;
      const rsIdx = rnd() % 3;
      const flagsPick = [ACK, ACK | PSH, ACK, SYN, ACK | FIN, RST, ACK, SYN | ACK, ACK, ACK | PSH, ACK, ACK, ACK, ACK, ACK, ACK][rnd() % 16]!;
      const ttl = rnd() % 50 === 0 ? 1 : 64;
      const payload = 'x'.repeat(rnd() % 200);
      let frame: Uint8Array;
      if (udp) {
        frame = reply
          ? buildUdp({ srcMac: RS_MAC[rsIdx], dstMac: DIR_MAC, saddr: RS[rsIdx], daddr: client, sport: 6000, dport: cport, payload, ttl })
          : buildUdp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: client, daddr: '10.0.0.100', sport: cport, dport: 5000, payload, ttl });
      } else {
        frame = reply
          ? buildTcp({ srcMac: RS_MAC[rsIdx], dstMac: DIR_MAC, saddr: RS[rsIdx], daddr: client, sport: 8080, dport: cport, flags: flagsPick, payload, ttl })
          : buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: client, daddr: '10.0.0.100', sport: cport, dport: 80, flags: flagsPick, payload, ttl });
      }
      const before = fast.d.engine.reasonCount.slice();
      const a = fast.send(frame);
      const b = slow.send(frame);
      if (a.verdict !== b.verdict || a.reason !== b.reason || a.out.length !== b.out.length ||
          a.out.some((f, k) => Buffer.compare(Buffer.from(f), Buffer.from(b.out[k]!)) !== 0)) {
        t.fail(`packet ${n} differs: fast ${a.verdict}/${a.reason} vs general ${b.verdict}/${b.reason}`);
        return;
      }
      void before;
      if (n % 500 === 0) { fast.advance(1); slow.advance(1); }
    }
    fastHits = fast.d.engine.fast.hits;
    t.ok(fastHits > 300, `the fast path forwarded many of them (${fastHits})`);
    t.equal(slow.d.engine.fast.hits, 0, 'the general-path director never used it');
    const fl = await fast.ipvsadm('-L', '-n', '--stats', '--exact');
    const sl = await slow.ipvsadm('-L', '-n', '--stats', '--exact');
    t.equal(fl.out, sl.out, 'identical counters');
    const fc = await fast.ipvsadm('-L', '-n', '-c');
    const sc = await slow.ipvsadm('-L', '-n', '-c');
    t.equal(fc.out, sc.out, 'identical connection table');
    const fa = await fast.ipvsadm('-L', '-n');
    const sa = await slow.ipvsadm('-L', '-n');
    t.equal(fa.out, sa.out, 'identical active/inactive counts');
  });
}
