/**
 * set_sctp_state's one look-ahead: a COOKIE ECHO followed by an ABORT in the same packet
 * drives the connection as an ABORT, not as a COOKIE ECHO.
 */
import t from 'tap';
import { TestDirector, CLIENT_MAC, DIR_MAC } from './harness.js';
import { buildSctp } from '../../src/packet/build.js';

const RS_MAC = '02:00:00:00:01:01';
const INIT = 1, INIT_ACK = 2, ABORT = 6, COOKIE_ECHO = 10;

async function director(): Promise<TestDirector> {
  const td = new TestDirector({ neigh: { '10.0.1.1': RS_MAC, '10.0.0.1': CLIENT_MAC } });
  await td.rules('-A --sctp-service 10.0.0.100:3868 -s rr\n-a --sctp-service 10.0.0.100:3868 -r 10.0.1.1:3868 -m -w 1\n');
  return td;
}

const fromClient = (chunks: { type: number; body?: Uint8Array }[]) => buildSctp({
  srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 5000, dport: 3868, chunks,
});
const fromServer = (chunks: { type: number; body?: Uint8Array }[]) => buildSctp({
  srcMac: RS_MAC, dstMac: DIR_MAC, saddr: '10.0.1.1', daddr: '10.0.0.1', sport: 3868, dport: 5000, chunks,
});

async function stateAfter(td: TestDirector, last: Uint8Array): Promise<string> {
  td.send(fromClient([{ type: INIT, body: new Uint8Array(16) }]));
  td.send(fromServer([{ type: INIT_ACK, body: new Uint8Array(16) }]));
  t.equal(td.send(last).verdict, 'forward');
  const conns = await td.ipvsadm('-L', '-n', '-c');
  const line = conns.out.split('\n').find((l) => l.startsWith('SCTP'));
  return (line ?? '').split(/ +/)[2] ?? '';
}

t.test('COOKIE ECHO alone moves on; COOKIE ECHO + ABORT closes the connection', async (t) => {
  const plain = await stateAfter(await director(), fromClient([{ type: COOKIE_ECHO, body: new Uint8Array(8) }]));
  t.not(plain, 'CLOSED', `a lone COOKIE ECHO does not close (${plain})`);
  const aborted = await stateAfter(await director(),
    fromClient([{ type: COOKIE_ECHO, body: new Uint8Array(8) }, { type: ABORT }]));
  t.equal(aborted, 'CLOSED', 'the bundled ABORT decides the state');
});
