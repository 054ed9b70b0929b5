/**
 * State is per network namespace, like kernel IPVS: the default abstract socket
 * name is scoped to the namespace, so `ip netns exec X ulvsadm` reaches the
 * director of X only, and two directors never see each other.
 */
import t from 'tap';
import { createNetns, deleteNetns, startDaemon, ulvsadm, runDaemonToExit, NETNS_SKIP, uniqueSocketName } from './helpers.js';

t.test('two namespaces, two directors, same socket name, separate tables', NETNS_SKIP, async (t) => {
  const a = createNetns();
  const b = createNetns();
  const empty = createNetns();
  t.teardown(() => { deleteNetns(a); deleteNetns(b); deleteNetns(empty); });
  const da = await startDaemon({ netns: a });
  const db = await startDaemon({ netns: b });
  t.teardown(async () => { await da.stop(); await db.stop(); });
  t.match(da.ready, 'socket @ulvs');
  t.match(db.ready, 'socket @ulvs', 'both use the default name');

  t.equal((await ulvsadm(['-A', '-t', '10.0.0.1:80', '-s', 'rr'], { netns: a })).status, 0);
  t.equal((await ulvsadm(['-A', '-u', '10.0.0.2:53', '-s', 'sh'], { netns: b })).status, 0);
  t.equal((await ulvsadm(['-A', '-t', '10.0.0.3:443'], { netns: b })).status, 0);
  t.equal((await ulvsadm(['-Sn'], { netns: a })).stdout, '-A -t 10.0.0.1:80 -s rr\n', 'A sees only its own service');
  t.equal((await ulvsadm(['-Sn'], { netns: b })).stdout, '-A -t 10.0.0.3:443 -s wlc\n-A -u 10.0.0.2:53 -s sh\n', 'B sees only its own');
  t.equal((await ulvsadm(['-C'], { netns: a })).status, 0);
  t.equal((await ulvsadm(['-Sn'], { netns: b })).stdout.split('\n').length, 3, 'clearing A leaves B alone');

  const none = await ulvsadm(['-Ln'], { netns: empty });
  t.equal(none.status, 2, 'a namespace without a director has none to talk to');
  t.match(none.stderr, /^Can't initialize ipvs: Protocol not available\n/);
  // And the namespace we run in does not see them either (unless someone runs a director here by default name).
  const mine = await ulvsadm(['-Ln'], { socket: uniqueSocketName() });
  t.equal(mine.status, 2);
});

t.test('one director per namespace: a second one on the same name refuses to start', NETNS_SKIP, async (t) => {
  const ns = createNetns();
  t.teardown(() => deleteNetns(ns));
  const d = await startDaemon({ netns: ns });
  t.teardown(() => d.stop());
  const second = await runDaemonToExit({ netns: ns }, []);
  t.equal(second.status, 1);
  t.equal(second.stderr, 'ulvs: socket @ulvs is in use: another director is running in this network namespace\n');
  t.equal(second.stdout, '', 'no ready line');
  t.ok(d.alive(), 'the first one keeps running');
  t.equal((await ulvsadm(['-Ln'], { netns: ns })).status, 0);
});
