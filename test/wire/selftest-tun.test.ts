/**
 * The kernel IPVS selftest's TUN check (tools/testing/selftests/net/netfilter/ipvs.sh) against
 * `ulvs daemon`, with checksum offload on and off on the senders. See helpers.ts.
 */
import t from 'tap';
import { selftestCase, WIRE_SKIP } from './helpers.js';

for (const tx of [false, true]) {
  t.test(`TUN through ulvs daemon, sender checksum offload ${tx ? 'on' : 'off'}`, WIRE_SKIP, async (t) => {
    const r = await selftestCase(t, 'tun', tx);
    t.comment(`tun tx ${tx ? 'on' : 'off'}: ${r.bytes} bytes in ${r.ms.toFixed(0)} ms (${(r.bytes * 8 / r.ms / 1000).toFixed(1)} Mbit/s)`);
  });
}
