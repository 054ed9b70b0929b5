/**
 * Loading an ipvsadm save file for `ulvs daemon --restore`: a good file gives the
 * table `ipvsadm -S` describes; the first bad line is reported with its number
 * and ipvsadm's message.
 */
import t from 'tap';
import { restoreSaveText } from '../../src/ctl/restore-file.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';

function director(): Director {
  return new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
}

async function save(d: Director): Promise<string> {
  let out = '';
  const io = { stdout: (s: string) => { out += s; }, stderr: (s: string) => { out += `ERR ${s}`; }, readStdin: async () => '' };
  await runIpvsadm('ipvsadm', ['-S', '-n'], io, d.api, numericResolver);
  return out;
}

const GOOD = [
  '-A -t 172.20.150.8:80 -s rr',
  '-a -t 172.20.150.8:80 -r 172.20.150.21:8080 -m -w 1',
  '-a -t 172.20.150.8:80 -r 172.20.150.22:8080 -m -w 2',
  '',
  '-A -u [2001:db8::8]:53 -s sh -b sh-port',
  '-a -u [2001:db8::8]:53 -r [2001:db8::21]:53 -g -w 4',
  '-A -f 7 -s wlc -p 600',
  '-a -f 7 -r 10.1.1.1:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum',
  '',
].join('\n');

t.test('a good save file gives back the same save text', async (t) => {
  const d = director();
  const r = await restoreSaveText(d.api, GOOD, numericResolver);
  t.same(r, { ok: true, lines: 7 });
  t.equal(await save(d), [
    '-A -t 172.20.150.8:80 -s rr',
    '-a -t 172.20.150.8:80 -r 172.20.150.21:8080 -m -w 1',
    '-a -t 172.20.150.8:80 -r 172.20.150.22:8080 -m -w 2',
    '-A -u [2001:db8::8]:53 -s sh -b sh-port',
    '-a -u [2001:db8::8]:53 -r [2001:db8::21]:53 -g -w 4',
    '-A -f 7 -s wlc -p 600',
    '-a -f 7 -r 10.1.1.1:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum',
    '',
  ].join('\n'));
  // What -S printed restores to the same table again.
  const d2 = director();
  t.same(await restoreSaveText(d2.api, await save(d), numericResolver), { ok: true, lines: 7 });
  t.equal(await save(d2), await save(d));
});

t.test('the first bad line is reported with its number and ipvsadm\'s text', async (t) => {
  const lines = GOOD.split('\n');
  const cases: Array<[string[], number, string]> = [
    // the table refuses (kernel error text)
    [[...lines.slice(0, 3), '-A -t 172.20.150.8:80 -s wlc'], 4, 'Service already exists'],
    [[lines[0]!, '-a -t 172.20.150.9:80 -r 10.0.0.1 -m'], 2, 'Service not defined'],
    [[lines[0]!, '-a -t 172.20.150.8:80 -r 10.0.0.1 -m -x 5 -y 10'], 2, 'Numerical result out of range'],
    [['-A -t 1.2.3.4:80 -s nosuch'], 1, 'Scheduler or persistence engine not found'],
    // ipvsadm refuses the line itself
    [[lines[0]!, '', '-A -t 1.2.3.4:80 -s rr -w 3'], 3, "Illegal 'weight' option with the 'add-service' command"],
    [[lines[0]!, '-a -t 172.20.150.8:80 -r 10.0.0.1 -w 70000'], 2, 'illegal weight specified'],
    [[lines[0]!, '# a comment'], 2, "Try `ipvsadm -h' or 'ipvsadm --help' for more information."],
    [['-A -t 1.2.3.4:80 --bogus'], 1, '--bogus: unknown option'],
  ];
  for (const [text, lineNo, message] of cases) {
    const r = await restoreSaveText(director().api, text.join('\n') + '\n', numericResolver);
    t.same(r, { ok: false, lineNo, message }, `${JSON.stringify(text.at(-1))} at line ${lineNo}`);
  }
});

t.test('an empty file is a valid, empty configuration', async (t) => {
  const d = director();
  t.same(await restoreSaveText(d.api, '', numericResolver), { ok: true, lines: 0 });
  t.same(await restoreSaveText(d.api, '\n  \n\t\n', numericResolver), { ok: true, lines: 0 });
  t.equal(await save(d), '');
});
