/**
 * The reference's worked examples (ipvs-facts.md f.6), verbatim: produced by the
 * real ipvsadm 1.31 printing code. Trailing spaces matter.
 */
import t from 'tap';
import { run, exampleTable } from './helpers.js';

t.test('example 1: -Ln', async (t) => {
  const api = await exampleTable();
  const r = await run(api, ['-Ln']);
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  t.equal(r.stdout, [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  172.20.0.10:443 sh (sh-port) persistent 900 mask 255.255.0.0',
    '  -> 172.20.1.1:443               Route   10     12         3         ',
    '  -> 172.20.1.2:443               Route   20     7          1         ',
    'UDP  172.20.0.10:514 wlc ops',
    '  -> 172.20.1.3:514               Masq    1      0          0         ',
    'FWM  100 rr',
    '  -> 172.20.1.4:0                 Tunnel  1      0          0         ',
    '',
  ].join('\n'));
});

t.test('example 2: -Ln --thresholds', async (t) => {
  const api = await exampleTable();
  const r = await run(api, ['-Ln', '--thresholds']);
  t.equal(r.status, 0);
  t.equal(r.stdout, [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ',
    '  -> RemoteAddress:Port',
    'TCP  172.20.0.10:443 sh (sh-port) persistent 900 mask 255.255.0.0',
    '  -> 172.20.1.1:443               0          0          12         3         ',
    '  -> 172.20.1.2:443               500        300        7          1         ',
    'UDP  172.20.0.10:514 wlc ops',
    '  -> 172.20.1.3:514               0          0          0          0         ',
    'FWM  100 rr',
    '  -> 172.20.1.4:0                 0          0          0          0         ',
    '',
  ].join('\n'));
});

async function countersTable() {
  const api = await exampleTable();
  const svc = api.services[0]!;
  Object.assign(svc.stats, {
    conns: 123456, inpkts: 98765432, outpkts: 123456789, inbytes: 5000000000, outbytes: 250000000000000,
    cps: 12, inpps: 3456, outpps: 3100, inbps: 450000, outbps: 120000000000,
  });
  Object.assign(api.dest(0, '172.20.1.2').stats, {
    conns: 123000, inpkts: 98000000, outpkts: 123000000, inbytes: 4990000000, outbytes: 249000000000000,
    cps: 12, inpps: 3400, outpps: 3050, inbps: 440000, outbps: 119000000000,
  });
  return api;
}

t.test('example 3: --stats, --rate, --stats --exact', async (t) => {
  const api = await countersTable();
  const stats = await run(api, ['-Ln', '--stats']);
  t.equal(stats.stdout.split('\n').slice(1, 6).join('\n'), [
    'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
    '  -> RemoteAddress:Port',
    'TCP  172.20.0.10:443                123456 98765432  123456K    5000M     250T',
    '  -> 172.20.1.1:443                      0        0        0        0        0',
    '  -> 172.20.1.2:443                 123000 98000000  123000K    4990M     249T',
  ].join('\n'));

  const rate = await run(api, ['-Ln', '--rate']);
  t.equal(rate.stdout.split('\n').slice(1, 6).join('\n'), [
    'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS',
    '  -> RemoteAddress:Port',
    'TCP  172.20.0.10:443                    12     3456     3100   450000     120G',
    '  -> 172.20.1.1:443                      0        0        0        0        0',
    '  -> 172.20.1.2:443                     12     3400     3050   440000     119G',
  ].join('\n'));

  const exact = await run(api, ['-Ln', '--stats', '--exact']);
  const lines = exact.stdout.split('\n');
  t.ok(lines.includes('TCP  172.20.0.10:443                123456 98765432 123456789 5000000000 250000000000000'));
  t.ok(lines.includes('  -> 172.20.1.2:443                 123000 98000000 123000000 4990000000 249000000000000'));
});

t.test('example 4: -S -n (thresholds not saved)', async (t) => {
  const api = await exampleTable();
  const r = await run(api, ['-S', '-n']);
  t.equal(r.status, 0);
  t.equal(r.stdout, [
    '-A -t 172.20.0.10:443 -s sh -p 900 -M 255.255.0.0 -b sh-port',
    '-a -t 172.20.0.10:443 -r 172.20.1.1:443 -g -w 10',
    '-a -t 172.20.0.10:443 -r 172.20.1.2:443 -g -w 20',
    '-A -u 172.20.0.10:514 -s wlc -o',
    '-a -u 172.20.0.10:514 -r 172.20.1.3:514 -m -w 1',
    '-A -f 100 -s rr',
    '-a -f 100 -r 172.20.1.4:0 -i -w 1 --tun-type gre --tun-csum',
    '',
  ].join('\n'));
});

t.test('the -S output restores to the same table', async (t) => {
  const api = await exampleTable();
  const saved = (await run(api, ['-S', '-n'])).stdout;
  const { FakeApi } = await import('./fake-api.js');
  const fresh = new FakeApi();
  const r = await run(fresh, ['-R'], { stdin: saved });
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  t.equal((await run(fresh, ['-S', '-n'])).stdout, saved);
});
