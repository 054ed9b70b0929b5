/**
 * Two `ulvs daemon`s with the same rules in one PACKET_FANOUT group (`--fanout-group`): the
 * kernel splits the client's connections between them by flow, and both must resolve the
 * real server's MAC — the kernel's flow hash sends every ARP frame to one member of a group,
 * so the daemons read ARP from sockets outside it (io/afpacket-fanout.ts). DR: no reply
 * crosses the director, so each connection lives in one daemon's table only.
 */
import t from 'tap';
import { ADDR, BIN, DAEMON_ENV, WIRE_SKIP, buildSelftest } from './helpers.js';

const REQUESTS = 200;

t.test('two daemons in one fanout group share the connections (DR)', WIRE_SKIP, async (t) => {
  const st = await buildSelftest('dr', true);
  t.teardown(() => st.lab.teardown());
  const svc = `${ADDR.vip}:${ADDR.port}`;
  const ipvsadm = async (sock: string, args: string[]) => (await st.lab.exec('ns1', process.execPath, [BIN, 'ipvsadm', ...args],
    { timeoutMs: 15_000, env: { ...DAEMON_ENV, ULVS_SOCKET: sock } })).stdout;
  const socks = ['fanout-a', 'fanout-b'];
  for (const sock of socks) {
    // The second one busy-polls (up to 1 ms without a frame): it must forward alike and still answer ipvsadm.
    const busy = sock === 'fanout-b' ? ['--busy-poll', '1000'] : [];
    const p = st.lab.spawn('ns1', process.execPath, [BIN, 'daemon', '--capacity', '4096', '--socket', sock, '--fanout-group', '4242', ...busy],
      DAEMON_ENV);
    t.match((await p.waitFor(/^ulvs: director ready .*$/m, 15_000))[0], busy.length ? /busy-poll 1000 µs, fanout group 4242\)$/ : /nft table ulvs_\d+, fanout group 4242\)$/);
    await ipvsadm(sock, ['-A', '-t', svc, '-s', 'rr']);
    await ipvsadm(sock, ['-a', '-t', svc, '-r', `${ADDR.rip}:${ADDR.port}`, '-g']);
  }
  const server = st.lab.spawn('ns2', process.execPath,
    ['-e', `require('node:http').createServer((q, r) => r.end('ok')).listen(${ADDR.port}, () => console.log('listening'))`], DAEMON_ENV);
  await server.waitFor(/listening/, 10_000);
  // One connection per request, each from its own source port: the flow hash spreads them.
  const client = `
    const http = require('node:http');
    const one = () => new Promise((res) => {
      const q = http.get({ host: '${ADDR.vip}', port: ${ADDR.port}, agent: false, timeout: 4000 }, (r) => {
        let b = ''; r.on('data', (d) => b += d); r.on('end', () => res(b === 'ok'));
      });
      q.on('error', () => res(false)); q.on('timeout', () => { q.destroy(); res(false); });
    });
    (async () => { let ok = 0; for (let i = 0; i < ${REQUESTS}; i++) if (await one()) ok++; console.log(ok); })();`;
  const run = st.lab.exec('ns0', process.execPath, ['-e', client], { timeoutMs: 120_000, env: DAEMON_ENV });
  // While the requests flow, the busy-polling daemon still answers its control socket.
  await new Promise((res) => setTimeout(res, 300));
  const t0 = performance.now();
  t.match(await ipvsadm('fanout-b', ['-Ln']), `TCP  ${svc} rr`, 'the busy-polling daemon answers -Ln under load');
  t.ok(performance.now() - t0 < 5000, `within ${Math.round(performance.now() - t0)} ms`);
  const r = await run;
  t.equal(Number(r.stdout.trim()), REQUESTS, `all ${REQUESTS} requests answered through the VIP`);
  const conns = [];
  for (const sock of socks) {
    const stats = await ipvsadm(sock, ['-Ln', '--stats', '--exact']);
    const row = new RegExp(`->\\s+${ADDR.rip.replace(/\./g, '\\.')}:${ADDR.port}\\s+(\\d+)\\s`).exec(stats);
    conns.push(Number(row?.[1] ?? NaN));
  }
  t.equal(conns[0]! + conns[1]!, REQUESTS, `each connection was scheduled by one daemon (${conns.join(' + ')})`);
  t.ok(conns[0]! > 0 && conns[1]! > 0, 'and both daemons forwarded some: both resolved the real server');
});
