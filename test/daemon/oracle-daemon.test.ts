/**
 * The ipvsadm 1.31 golden cases (recorded from the real 1.31 front end, see
 * test/ipvsadm/golden-oracle.test.ts) replayed against the real director instead
 * of the CLI layer's fake: ulvsadm → control socket (CtlServer) → LocalIpvsApi →
 * IpvsTable. Cases that inject connection counters or /proc connection lines are
 * left to the fake-API test; every other invocation must match byte for byte.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { staticResolver } from '../../src/cli/ipvsadm/resolver.js';
import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { CtlServer } from '../../src/ctl/server.js';
import { SocketIpvsApi } from '../../src/ctl/client.js';
import { socketAddress } from '../../src/ctl/protocol.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';

interface Step { args: string[]; stdin?: string; expect: { status: number; stdout: string; stderr: string } }
interface Case { name?: string; resolver?: { hosts?: Record<string, string>; reverse?: Record<string, string> }; counters?: unknown; conns?: unknown; steps: Step[] }
interface Golden { services: string; groups: Record<string, Case[]> }

const path = fileURLToPath(new URL('../../../test/ipvsadm/fixtures/ipvsadm131-golden.json', import.meta.url));
const golden = JSON.parse(readFileSync(path, 'utf8')) as Golden;
const DEFAULT_NAMES = { hosts: { localhost: '127.0.0.1' }, reverse: { '127.0.0.1': 'localhost' } };

/**
 * The recording's libipvs stand-in accepted two dest addresses that the kernel refuses
 * (ip_vs_add_dest: inet_addr_type(0.0.0.2) is RTN_BROADCAST, ipv6_addr_type(::ffff:a.b.c.d) is
 * MAPPED, not UNICAST → EINVAL); the real table refuses them like the kernel, so those cases
 * cannot be replayed here (the fake-API test still covers their formatting).
 */
function kernelRejects(c: Case): boolean {
  return c.steps.some((s) => s.args.some((a) => a.includes('::ffff:') || a === '0.0.0.2')) ||
    // The stand-in also reported sync daemons without the defaults kernels >= 4.3 fill in
    // (maxlen, group, port, ttl) and without clamping a backup's maxlen to >= 1024.
    (c.steps.some((s) => s.args[0] === '--start-daemon') && c.steps.some((s) => s.args.includes('--daemon')));
}

let n = 0;
for (const [group, cases] of Object.entries(golden.groups)) {
  t.test(group, async (t) => {
    for (const c of cases) {
      if (c.counters !== undefined || c.conns !== undefined || kernelRejects(c)) continue;
      // The recorded sync-daemon cases name interfaces of the recording machine.
      const director = new Director({
        mac: new Uint8Array(6), ip4: 0xc0000201, neigh: new StaticNeighbours(), capacity: 1024,
        api: { interfaceExists: () => true },
      });
      const address = socketAddress(`ulvs-oracle-${process.pid}-${n++}`);
      const server = new CtlServer(director.api, { address, credentials: () => ({ pid: 0, uid: 0, gid: 0, groups: [] }), log: () => {} });
      await server.listen();
      const api = new SocketIpvsApi(address);
      try {
        const resolver = staticResolver({ ...(c.resolver ?? DEFAULT_NAMES), services: golden.services });
        for (const [i, step] of c.steps.entries()) {
          let stdout = '';
          let stderr = '';
          const status = await runIpvsadm('ipvsadm', step.args, {
            stdout: (s) => { stdout += s; }, stderr: (s) => { stderr += s; }, readStdin: async () => step.stdin ?? '',
          }, api, resolver);
          t.same({ status, stdout, stderr }, step.expect, `${c.name ?? JSON.stringify(c.steps.at(-1)!.args)} step ${i}: ${JSON.stringify(step.args)}`);
        }
      } finally {
        api.close();
        await server.close();
      }
    }
  });
}
