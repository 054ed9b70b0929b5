/**
 * The optional libpcap (`cap`) backend on a veth pair: frames in and out, the
 * `inbound` filter, and batches handed out by recv().
 */
import t from 'tap';
import { Lab } from '../../src/lab/netns.js';
import { AfPacketIo } from '../../src/io/afpacket.js';
import { PcapCapIo, capAvailable } from '../../src/io/pcap-cap.js';
import { FrameBatch } from '../../src/io/batch.js';
import { LAB_SKIP, collect, sendFrames } from './helpers.js';

const haveCap = await capAvailable();
const SKIP = LAB_SKIP.skip ? LAB_SKIP : haveCap ? {} : { skip: 'optional package "cap" not installed (needs libpcap-dev + compiler)' };

function frame(dst: Uint8Array, src: Uint8Array, seq: number): Uint8Array {
  const f = new Uint8Array(64);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = seq;
  for (let i = 15; i < 64; i++) f[i] = (seq * 7 + i) & 255;
  return f;
}

t.test('libpcap backend', SKIP, async (t) => {
  const lab = Lab.create('pcap-cap');
  t.teardown(() => lab.teardown());
  const quiet = { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 };
  const a = await lab.addNs('a', quiet);
  const b = await lab.addNs('b', quiet);
  await lab.veth({ ns: 'a', ifname: 'va' }, { ns: 'b', ifname: 'vb' });
  const af = AfPacketIo.open('va', { netns: a });
  const pc = await PcapCapIo.open('vb', { netns: b });
  t.teardown(() => { af.close(); pc.close(); });
  const macA = af.interfaces[0]!.mac;
  const macB = pc.interfaces[0]!.mac;

  t.test('receives what the peer sends, in batches, with the interface index', async (t) => {
    const sent = Array.from({ length: 20 }, (_, i) => frame(macB, macA, i));
    sendFrames(af, sent);
    const batch = new FrameBatch(8);
    const got: Uint8Array[] = [];
    let calls = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.length} frames`)), 3000);
      const stop = pc.watch(() => {
        for (;;) {
          const n = pc.recv(batch);
          if (n === 0) break;
          calls++;
          for (let i = 0; i < n; i++) {
            if (batch.ifindex[i] !== pc.interfaces[0]!.index) reject(new Error('wrong ifindex'));
            got.push(batch.frame(i));
          }
        }
        if (got.length >= 20) { clearTimeout(timer); stop(); resolve(); }
      });
    });
    t.equal(got.length, 20, 'all frames');
    t.ok(got.every((g, i) => g.every((v, k) => v === sent[i]![k])), 'identical and in order');
    t.ok(calls >= 3, `handed out in batches of at most 8 (${calls} recv calls)`);
  });

  t.test('sends frames out of the interface; its own frames are not read back', async (t) => {
    const out = [frame(macA, macB, 100), frame(macA, macB, 101)];
    t.equal(sendFrames(pc, out), 2, 'two frames sent');
    const atA = await collect(af, 1500, (c) => c.bytes[12] === 0x88 && c.bytes[13] === 0xb5, (g) => g.length >= 2);
    t.same(atA.map((c) => c.bytes[14]), [100, 101], 'the peer received them');
    await new Promise((r) => setTimeout(r, 200));
    const batch = new FrameBatch(8);
    t.equal(pc.recv(batch), 0, 'the source-MAC filter kept them out of our own queue');
  });
});
