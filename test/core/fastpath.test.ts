/**
 * The established fast path must be invisible: the same frames through a director with
 * it and one without give byte-identical output, verdicts, reasons, counters and
 * connection states.
 */
import t from 'tap';
import { TestDirector, CLIENT_MAC, DIR_MAC, type Step } from './harness.js';
import { buildTcp, buildUdp } from '../../src/packet/build.js';
import { parseIp } from '../../src/util/ip.js';
import { parseMac } from '../../src/util/mac.js';
import { FrameBatch, TxQueue, FRAME_CSUM_NOT_READY, FRAME_GSO } from '../../src/io/batch.js';
import { CONN_F_NO_CPORT, TCP_S_ESTABLISHED } from '../../src/conn/flags.js';

const RS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
const RS_MAC = ['02:00:00:00:01:01', '02:00:00:00:01:02', '02:00:00:00:01:03'];
const SYN = 0x02, ACK = 0x10, PSH = 0x08, FIN = 0x01, RST = 0x04;

function xorshift(seed: number): () => number {
  let x = seed;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

/** Per live connection: state, timeout, expiry and the inbound packet count (not shown by ipvsadm). */
function connDump(td: TestDirector): string {
  const c = td.d.engine.conns;
  const out: string[] = [];
  for (let id = 0; id < c.capacity; id++) {
    if (c.isLive(id)) out.push(`${id}:${c.stateOf(id)}/${c.timeoutOf(id)}/${c.expiresOf(id)}/${c.inPktsOf(id)}`);
  }
  return out.join(' ');
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
      const a = fast.send(frame);
      const b = slow.send(frame);
      if (differs(a, b)) {
        t.fail(`packet ${n} differs: fast ${a.verdict}/${a.reason} vs general ${b.verdict}/${b.reason}`);
        return;
      }
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
    t.equal(connDump(fast), connDump(slow), 'identical connection records');
  });
}

/**
 * One frame through a director's engine in a batch of our own, with the offload metadata the
 * harness does not set: flags, partial checksum position, the batch's txOffload.
 */
function run(td: TestDirector, batch: FrameBatch, frame: Uint8Array, flags: number, csumOffset: number): string {
  const tx = new TxQueue(4);
  batch.put(0, frame, flags);
  batch.count = 1;
  batch.csumStart[0] = 34;
  batch.csumOffset[0] = csumOffset;
  batch.gsoType[0] = (flags & FRAME_GSO) !== 0 ? 1 : 0;
  batch.gsoSize[0] = (flags & FRAME_GSO) !== 0 ? 600 : 0;
  td.d.engine.process(batch, tx);
  const out = [batch.verdict[0], batch.reason[0], batch.off[0], batch.flags[0], batch.csumStart[0], batch.csumOffset[0],
    Buffer.from(batch.frame(0)).toString('hex')];
  for (let k = 0; k < tx.count; k++) out.push(Buffer.from(tx.frame(k)).toString('hex'));
  return out.join(' ');
}

// Tunnel connections: IPIP to three servers (the fast path's case), GUE to a fourth (never on it);
// TTL, TOS/ECN, DF, lengths around the tunnel MTU (1480), partial checksums with and without the
// batch's offload, GSO frames, and pmtu_disc switched on and off in between.

/** Whether two directors' steps for the same frame differ: verdict, reason or any frame sent. */
function differs(a: Step, b: Step): boolean {
  return a.verdict !== b.verdict || a.reason !== b.reason || a.out.length !== b.out.length ||
    a.out.some((f, k) => Buffer.compare(Buffer.from(f), Buffer.from(b.out[k]!)) !== 0);
}

t.test('TUN: fast path and general path agree on 4000 random packets', async (t) => {
  const rules = '-A -t 10.0.0.100:80 -s rr\n' + RS.map((r) => `-a -t 10.0.0.100:80 -r ${r}:80 -i -w 1`).join('\n') +
    '\n-a -t 10.0.0.100:80 -r 10.0.1.4:80 -i --tun-type gue --tun-port 6080 -w 1' +
    '\n-A -u 10.0.0.100:5000 -s rr\n' + RS.map((r) => `-a -u 10.0.0.100:5000 -r ${r}:5000 -i -w 1`).join('\n') + '\n';
  const [fast, slow] = await pair(rules);
  for (const td of [fast, slow]) td.neigh.set(parseIp('10.0.1.4')!, parseMac('02:00:00:00:01:04')!);
  const batches = (off: boolean): FrameBatch => { const b = new FrameBatch(1); b.txOffload = off; return b; };
  const fb = [batches(false), batches(true)];
  const sb = [batches(false), batches(true)];
  const rnd = xorshift(23);
  for (let n = 0; n < 4000; n++) {
    const client = `10.0.${rnd() % 2}.${1 + (rnd() % 4)}`;
    const cport = 30000 + (rnd() % 5);
    const udp = rnd() % 4 === 0;
    const flagsPick = [ACK, ACK | PSH, ACK, SYN, ACK | FIN, RST, ACK, ACK, ACK, ACK | PSH, ACK, ACK][rnd() % 12]!;
    const ttl = rnd() % 40 === 0 ? 1 : rnd() % 40 === 0 ? 2 : 64;
    const tos = [0, 0, 1, 2, 3, 0xb8, 0xbb][rnd() % 7]!;
    const df = rnd() % 3 !== 0;
    const size = rnd() % 8 === 0 ? 1400 + (rnd() % 100) : rnd() % 200;
    const payload = 'x'.repeat(size);
    const frame = udp
      ? buildUdp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: client, daddr: '10.0.0.100', sport: cport, dport: 5000, payload, ttl, tos, df })
      : buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: client, daddr: '10.0.0.100', sport: cport, dport: 80, flags: flagsPick, payload, ttl, tos, df });
    const r = rnd() % 16;
    const flags = r === 0 ? FRAME_CSUM_NOT_READY | FRAME_GSO : r < 4 ? FRAME_CSUM_NOT_READY : 0;
    const csumOffset = rnd() % 10 === 0 ? 0 : udp ? 6 : 16;
    const b = rnd() % 2;
    const a = run(fast, fb[b]!, frame, flags, csumOffset);
    const g = run(slow, sb[b]!, frame, flags, csumOffset);
    if (a !== g) {
      t.fail(`packet ${n} differs:\nfast    ${a}\ngeneral ${g}`);
      return;
    }
    if (n % 500 === 0) { fast.advance(1); slow.advance(1); }
    if (n % 1000 === 999) {
      const v = Math.floor(n / 1000) % 2 === 0 ? 0 : 1;
      fast.d.engine.sysctls.pmtu_disc = v;
      slow.d.engine.sysctls.pmtu_disc = v;
    }
  }
  t.ok(fast.d.engine.fast.hits > 800, `the fast path forwarded many of them (${fast.d.engine.fast.hits})`);
  t.equal(slow.d.engine.fast.hits, 0, 'the general-path director never used it');
  for (const args of [['-L', '-n', '--stats', '--exact'], ['-L', '-n', '-c'], ['-L', '-n']]) {
    const fl = await fast.ipvsadm(...args);
    const sl = await slow.ipvsadm(...args);
    t.equal(fl.out, sl.out, `identical ipvsadm ${args.join(' ')}`);
  }
  t.equal(connDump(fast), connDump(slow), 'identical connection records');
});

// Whole batches: Engine.process runs FastPath.run, the fast path inline in one loop over the
// batch, with the general path called for the other frames in order. Batches of up to 48
// frames that open, use, close and reopen connections in the same batch (so a frame depends on
// what the general path did for the frames before it), replies, UDP, NAT, DR and IPIP, TTL 1,
// partial checksums: the batch loop with and without a tracer (which sees every frame) and the
// general path must agree on everything, frame by frame and batch by batch — the two fast
// ones on the last outcome, the current frame and the fast-path count too — and the tracer
// must see each frame's verdict, reason and outcome as the general path's tracer does.
t.test('batches: batch loop, traced batch loop and general path agree', async (t) => {
  const rules = '-A -t 10.0.0.100:80 -s rr\n' + RS.map((r) => `-a -t 10.0.0.100:80 -r ${r}:8080 -m -w 1`).join('\n') +
    '\n-A -u 10.0.0.100:5000 -s rr\n' + RS.map((r) => `-a -u 10.0.0.100:5000 -r ${r}:6000 -m -w 1`).join('\n') +
    '\n-A -t 10.0.0.101:80 -s rr\n' + RS.map((r) => `-a -t 10.0.0.101:80 -r ${r}:80 -g -w 1`).join('\n') +
    '\n-A -t 10.0.0.102:80 -s rr\n' + RS.map((r) => `-a -t 10.0.0.102:80 -r ${r}:80 -i -w 1`).join('\n') + '\n';
  const [batchLoop, general] = await pair(rules);
  const [frameLoop] = await pair(rules);
  // The traced batch loop's and the general path's traces, frame by frame.
  const traces: string[][] = [[], []];
  const tracer = (log: string[]) => (i: number, verdict: number, reason: number, o: { destId: number; isNew: boolean; svcId: number }) => {
    log.push(`${i} ${verdict} ${reason} ${o.destId} ${o.svcId} ${o.isNew}`);
  };
  frameLoop.d.engine.trace = tracer(traces[0]!);
  general.d.engine.trace = tracer(traces[1]!);
  let traced = 0;
  const tds = [batchLoop, frameLoop, general];
  const batches = tds.map(() => { const b = new FrameBatch(48); b.txOffload = true; return b; });
  const txs = tds.map(() => new TxQueue(64));
  const rnd = xorshift(31);
  const vips = ['10.0.0.100', '10.0.0.101', '10.0.0.102'];
  for (let n = 0; n < 400; n++) {
    const count = 1 + (rnd() % 48);
    const frames: Uint8Array[] = [];
    const flagsOf: number[] = [];
    for (let k = 0; k < count; k++) {
      const client = `10.0.${rnd() % 2}.${1 + (rnd() % 3)}`;
      const cport = 30000 + (rnd() % 3);
      const vip = vips[rnd() % 3]!;
      const udp = vip === '10.0.0.100' && rnd() % 4 === 0;
      const reply = vip === '10.0.0.100' && rnd() % 3 === 0;
      const rsIdx = rnd() % 3;
      const flagsPick = [ACK, ACK | PSH, ACK, SYN, ACK | FIN, RST, ACK, SYN | ACK, ACK, ACK, ACK, ACK][rnd() % 12]!;
      const ttl = rnd() % 40 === 0 ? 1 : 64;
      const payload = 'x'.repeat(rnd() % 100);
      let frame: Uint8Array;
      if (udp) {
        frame = reply
          ? buildUdp({ srcMac: RS_MAC[rsIdx], dstMac: DIR_MAC, saddr: RS[rsIdx], daddr: client, sport: 6000, dport: cport, payload, ttl })
          : buildUdp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: client, daddr: vip, sport: cport, dport: 5000, payload, ttl });
      } else {
        frame = reply
          ? buildTcp({ srcMac: RS_MAC[rsIdx], dstMac: DIR_MAC, saddr: RS[rsIdx], daddr: client, sport: 8080, dport: cport, flags: flagsPick, payload, ttl })
          : buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: client, daddr: vip, sport: cport, dport: 80, flags: flagsPick, payload, ttl });
      }
      frames.push(frame);
      flagsOf.push(rnd() % 8 === 0 ? FRAME_CSUM_NOT_READY : 0);
    }
    const results = tds.map((td, j) => {
      const b = batches[j]!;
      const tx = txs[j]!;
      tx.clear();
      for (let k = 0; k < count; k++) {
        b.put(k, frames[k]!, flagsOf[k]!);
        b.csumStart[k] = 34;
        b.csumOffset[k] = frames[k]![23] === 17 ? 6 : 16;
      }
      b.count = count;
      td.d.engine.process(b, tx);
      const out: string[] = [];
      for (let k = 0; k < count; k++) {
        out.push(`${b.verdict[k]} ${b.reason[k]} ${b.off[k]} ${b.len[k]} ${b.csumStart[k]} ${Buffer.from(b.frame(k)).toString('hex')}`);
      }
      for (let k = 0; k < tx.count; k++) out.push(`tx ${tx.cause[k]} ${Buffer.from(tx.frame(k)).toString('hex')}`);
      out.push(Array.from(td.d.engine.reasonCount).join(','));
      return out.join('\n');
    });
    if (results[0] !== results[2] || results[1] !== results[2]) {
      const a = (results[0] !== results[2] ? results[0]! : results[1]!).split('\n');
      const g = results[2]!.split('\n');
      const k = a.findIndex((l, x) => l !== g[x]);
      t.fail(`batch ${n} differs (${results[0] !== results[2] ? 'batch' : 'traced batch'} loop), line ${k}:\n${a[k]}\n${g[k]}`);
      return;
    }
    if (traces[0]!.length !== count || traces[0]!.join('\n') !== traces[1]!.join('\n')) {
      t.fail(`batch ${n}: traces differ:\n${traces[0]!.join('\n')}\n--\n${traces[1]!.join('\n')}`);
      return;
    }
    traced += count;
    traces[0]!.length = 0;
    traces[1]!.length = 0;
    const e0 = batchLoop.d.engine;
    const e1 = frameLoop.d.engine;
    const o0 = e0.outcome;
    const o1 = e1.outcome;
    if (o0.destId !== o1.destId || o0.svcId !== o1.svcId || o0.isNew !== o1.isNew || e0.currentCause !== e1.currentCause ||
        e0.ifindex !== e1.ifindex || e0.fast.hits !== e1.fast.hits) {
      t.fail(`batch ${n}: traced and untraced loops leave different outcomes, current frames or fast-path counts`);
      return;
    }
    if (n % 50 === 0) {
      const dt = rnd() % 3 === 0 ? 130 : 1;
      for (const td of tds) td.advance(dt);
    }
  }
  t.ok(batchLoop.d.engine.fast.hits > 2000, `the fast path forwarded many frames (${batchLoop.d.engine.fast.hits})`);
  t.ok(traced > 4000, `the tracer saw every frame, as the general path's did (${traced})`);
  for (const args of [['-L', '-n', '--stats', '--exact'], ['-L', '-n', '-c'], ['-L', '-n']]) {
    const outs = await Promise.all(tds.map((td) => td.ipvsadm(...args)));
    t.equal(outs[0]!.out, outs[2]!.out, `batch loop: identical ipvsadm ${args.join(' ')}`);
    t.equal(outs[1]!.out, outs[2]!.out, `traced batch loop: identical ipvsadm ${args.join(' ')}`);
  }
  t.equal(connDump(batchLoop), connDump(general), 'batch loop: identical connection records');
  t.equal(connDump(frameLoop), connDump(general), 'traced batch loop: identical connection records');
});

// A connection without a client port (CONN_F_NO_CPORT, as sync or a helper makes them): an inbound
// lookup that misses retries with cport 0 (ConnTable.findIn4At), and the fast path does the same.
t.test('NAT: a NO_CPORT connection is found and forwarded alike by both paths', async (t) => {
  const rules = '-A -t 10.0.0.100:80 -s rr\n' + RS.map((r) => `-a -t 10.0.0.100:80 -r ${r}:8080 -m -w 1`).join('\n') + '\n';
  const [fast, slow] = await pair(rules);
  for (const td of [fast, slow]) {
    const c = td.d.engine.conns;
    const dest = td.d.table.services()[0]!.dests[1]!;
    const id = c.create(4, 6, Uint32Array.of(parseIp('10.0.0.1')!.w0 >>> 0, 0, 0, 0), 0,
      Uint32Array.of(parseIp('10.0.0.100')!.w0 >>> 0, 0, 0, 0), 80, Uint32Array.of(dest.addr.w0, 0, 0, 0), dest.port,
      CONN_F_NO_CPORT, 0, dest.svc.id, dest.id, td.d.now);
    t.ok(id >= 0, 'NO_CPORT connection created');
    c.setState(id, TCP_S_ESTABLISHED);
    c.setTimeout(id, c.timeouts.tcp[TCP_S_ESTABLISHED]!, td.d.now);
  }
  for (let n = 0; n < 40; n++) {
    // Client packets from several ports (none has a connection of its own), and replies.
    const cport = 40000 + (n % 4);
    const frame = n % 5 === 4
      ? buildTcp({ srcMac: RS_MAC[1], dstMac: DIR_MAC, saddr: RS[1]!, daddr: '10.0.0.1', sport: 8080, dport: cport, flags: ACK, payload: 'r' })
      : buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1', daddr: '10.0.0.100', sport: cport, dport: 80, flags: ACK, payload: 'x'.repeat(n) });
    const a = fast.send(frame);
    const b = slow.send(frame);
    if (differs(a, b)) {
      t.fail(`packet ${n} differs: fast ${a.verdict}/${a.reason} vs general ${b.verdict}/${b.reason}`);
      return;
    }
  }
  // All 32 client packets but the first, which the general path forwards and so caches the next hop.
  t.equal(fast.d.engine.fast.hits, 31, 'the fast path forwarded the client packets');
  const fl = await fast.ipvsadm('-L', '-n', '--stats', '--exact');
  const sl = await slow.ipvsadm('-L', '-n', '--stats', '--exact');
  t.equal(fl.out, sl.out, 'identical counters');
  t.equal(connDump(fast), connDump(slow), 'identical connection records');
});
