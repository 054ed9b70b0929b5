/**
 * Helper process for netns.test.ts: builds a small lab with a server inside, prints
 * `ready <json>` with its namespaces and the server's pid, then waits to be killed.
 * `--crash` throws an uncaught exception instead of waiting.
 */
import { Lab } from '../../src/lab/netns.js';
import { startNameServer } from '../../src/lab/servers.js';

const lab = Lab.create('child');
await lab.addNs('x');
await lab.addNs('y');
await lab.veth({ ns: 'x', ifname: 'x0', addrs: ['10.77.0.1/24'] }, { ns: 'y', ifname: 'y0', addrs: ['10.77.0.2/24'] });
const srv = await startNameServer(lab, 'y', { name: 'child', httpPort: 8080 });
process.stdout.write(`ready ${JSON.stringify({ namespaces: lab.namespaceNames, serverPid: srv.proc.pid })}\n`);
if (process.argv.includes('--crash')) {
  setTimeout(() => { throw new Error('deliberate crash'); }, 50);
}
setInterval(() => undefined, 1000);
