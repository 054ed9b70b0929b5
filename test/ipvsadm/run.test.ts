/**
 * The program around the parser: startup, ipvs_strerror texts per operation,
 * listing failures, -R line handling, and the hooks replay uses.
 */
import t from 'tap';
import { run, apply } from './helpers.js';
import { FakeApi } from './fake-api.js';
import { ipvsStrerror } from '../../src/cli/ipvsadm/errors.js';
import { parseSaveText, splitRestoreInput } from '../../src/cli/ipvsadm/run.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';

const INIT_HINT = 'Are you sure that IP Virtual Server is built in the kernel or as module?\n';

t.test('startup failure: Can\'t initialize ipvs, exit 2, even for -h', async (t) => {
  const api = new FakeApi();
  api.failNext.getInfo = 'EPERM';
  t.same(await run(api, ['-h']), {
    status: 2, stdout: '', stderr: `Can't initialize ipvs: Permission denied (you must be root)\n${INIT_HINT}`,
  });
  const down = new FakeApi();
  down.getInfo = async () => { throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }); };
  t.same(await run(down, ['-Ln']), { status: 2, stdout: '', stderr: `Can't initialize ipvs: Protocol not available\n${INIT_HINT}` },
    'no daemon to talk to reads like a missing ip_vs module');
});

t.test('an old IPVS version warns, then carries on', async (t) => {
  const api = new FakeApi();
  api.info.version = 0x010100;
  const r = await run(api, ['-L', '--timeout']);
  t.equal(r.stderr, 'Warning: IPVS version mismatch: \n  Kernel compiled with IPVS version 1.1.0\n' +
    '  ipvsadm v1.31  requires minimum IPVS version 1.1.4\n\n');
  t.equal(r.stdout, 'Timeout (tcp tcpfin udp): 900 120 300\n');
  t.equal(r.status, 0);
});

t.test('ipvs_strerror: specific rows, generic rows, strerror', async (t) => {
  t.equal(ipvsStrerror('add-service', 'ENOENT'), 'Scheduler or persistence engine not found');
  t.equal(ipvsStrerror('update-dest', 'ENOENT'), 'No such destination');
  t.equal(ipvsStrerror('add-dest', 'ENOENT'), 'No such file or directory', 'no specific row: C strerror');
  t.equal(ipvsStrerror('set-timeout', 'EINVAL'), 'Invalid operation.  Possibly wrong module version, address not unicast, ...');
  t.equal(ipvsStrerror('add-dest', 'ERANGE'), 'Numerical result out of range');
  t.equal(ipvsStrerror('start-daemon', 'ENODEV'), 'No such device');
  t.equal(ipvsStrerror('get-service', 'ESRCH'), 'No such service');
  t.equal(ipvsStrerror('init', 'EMSGSIZE'), 'Module is wrong version');
});

t.test('operation failures print the text and exit 255', async (t) => {
  const api = new FakeApi();
  await apply(api, ['-A -t 10.0.0.1:80']);
  t.same(await run(api, ['-A', '-t', '10.0.0.1:80']), { status: 255, stdout: '', stderr: 'Service already exists\n' });
  t.same(await run(api, ['-a', '-t', '10.0.0.1:80', '-r', '10.0.0.2', '-y', '5']), { status: 255, stdout: '', stderr: 'Numerical result out of range\n' },
    '-y without -x: the kernel sees l > u');
  api.failNext.addDest = 'EINVAL';
  t.same(await run(api, ['-a', '-t', '10.0.0.1:80', '-r', '0.0.0.2']), {
    status: 255, stdout: '', stderr: 'Invalid operation.  Possibly wrong module version, address not unicast, ...\n',
  });
  api.failNext.startDaemon = 'ENODEV';
  t.same(await run(api, ['--start-daemon', 'master', '--mcast-interface', 'nope0']), { status: 255, stdout: '', stderr: 'No such device\n' });
  t.same(await run(api, ['--stop-daemon', 'backup']), { status: 255, stdout: '', stderr: 'No daemon is running\n' });
  api.failNext.flush = 'EEXIST';
  t.same(await run(api, ['-C']), { status: 255, stdout: '', stderr: 'File exists\n' }, 'flush has no rows of its own');
});

t.test('flush reports with the previous operation\'s rows (libipvs keeps ipvs_func)', async (t) => {
  const api = new FakeApi();
  api.failNext.flush = 'EEXIST';
  const r = await run(api, ['-R'], { stdin: '-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n-C\n' });
  t.same(r, { status: 255, stdout: '', stderr: 'Service already exists\nService already exists\n' });
});

t.test('listing failures exit 1', async (t) => {
  const api = new FakeApi();
  api.failNext.getServices = 'EPERM';
  t.same(await run(api, ['-Ln']), {
    status: 1, stdout: 'IP Virtual Server version 1.2.1 (size=4096)\n', stderr: 'Permission denied (you must be root)\n',
  }, 'the banner is already out');
  t.same(await run(api, ['-Ln', '-t', '10.9.9.9:80']), { status: 1, stdout: '', stderr: 'No such service\n' });
  api.failNext.getTimeouts = 'EPERM';
  t.same(await run(api, ['-L', '--timeout']), { status: 1, stdout: '', stderr: '' }, 'list_timeout exits quietly');
  api.failNext.getDaemons = 'EPERM';
  t.same(await run(api, ['-L', '--daemon']), { status: 1, stdout: '', stderr: '' });
  api.failNext.getConnections = 'EPERM';
  t.same(await run(api, ['-Lnc']), { status: 1, stdout: '', stderr: 'cannot open file /proc/net/ip_vs_conn\n' });
  api.getService = async () => { throw new (await import('../../src/ctl/types.js')).CtlError('ENOENT'); };
  t.same(await run(api, ['-Ln', '-t', '10.9.9.9:80']), { status: 1, stdout: '', stderr: 'No such service\n' }, 'ENOENT from the table reads as the kernel\'s ESRCH');
});

t.test('-S on a control channel without mark rules', async (t) => {
  const api = new FakeApi();
  await apply(api, ['-A -t 10.0.0.1:80']);
  api.getMarkRules = async () => { throw new (await import('../../src/ctl/types.js')).CtlError('ENOSYS'); };
  t.same(await run(api, ['-S', '-n']), { status: 0, stdout: '-A -t 10.0.0.1:80 -s wlc\n', stderr: '' });
});

t.test('-R: line numbers, skipped lines, status of the last line, fatal errors', async (t) => {
  const api = new FakeApi();
  const seen: number[] = [];
  const r = await run(api, ['-R'], {
    stdin: '\n-A -t 10.0.0.1:80\n  \t\n-A -t 10.0.0.1:80\nipvsadm\n-L -n --timeout\n',
    onLine: (n) => seen.push(n),
  });
  t.same(seen, [2, 4, 6], 'blank and ipvsadm-only lines are not run');
  t.same(r, { status: 0, stdout: 'Timeout (tcp tcpfin udp): 900 120 300\n', stderr: 'Service already exists\n' });

  const last: number[] = [];
  const bad = await run(new FakeApi(), ['-R'], { stdin: '-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80 -w 3\n-A -t 10.0.0.3:80\n', onLine: (n) => last.push(n) });
  t.same(bad, { status: 2, stdout: '', stderr: "Illegal 'weight' option with the 'add-service' command\n" });
  t.equal(last.at(-1), 2, 'the hook names the failing line');

  const nested = await run(new FakeApi(), ['-R'], { stdin: '-R\n-C\n', argv0: 'ulvsadm' });
  t.same(nested, { status: 255, stdout: '', stderr: "Try `ulvsadm -h' or 'ulvsadm --help' for more information.\n" });
});

t.test('restore tokenizer quirks', async (t) => {
  t.same(splitRestoreInput('a\tb\r\nipvsadm c ipvsadm\n\nd'), [
    { lineNo: 1, args: ['a', 'b'] }, { lineNo: 2, args: ['c'] }, { lineNo: 3, args: [] }, { lineNo: 4, args: ['d'] },
  ]);
  t.same(splitRestoreInput('-C\n-L  '), [{ lineNo: 1, args: ['-C'] }],
    'white space at the very end (no newline) loses that line, as in config_stream_read');
  t.same(splitRestoreInput('-L '), [{ lineNo: 1, args: ['-L'] }], 'one separator is eaten with the token');
  t.same(splitRestoreInput('x'.repeat(4100)).map((l) => l.args.map((a) => a.length)), [[4096, 4]], 'tokens are cut at 4096');
});

t.test('parseSaveText: a save file checked without applying it', async (t) => {
  const ok = await parseSaveText('-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2 -m\n', numericResolver);
  t.same(ok.commands.map((c) => [c.lineNo, c.command.cmd]), [[1, 'add-service'], [2, 'add-server']]);
  t.equal(ok.error, undefined);
  const bad = await parseSaveText('-A -t 10.0.0.1:80\n# a comment\n-C\n', numericResolver);
  t.same(bad.error, { lineNo: 2, message: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", exit: 255 });
  t.equal(bad.commands.length, 1);
  const v = await parseSaveText('\n\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000\n', numericResolver);
  t.same(v.error, { lineNo: 3, message: 'illegal weight specified', exit: 2 });
});

t.test('no arguments: the table with names', async (t) => {
  const api = new FakeApi();
  await apply(api, ['-A -t 127.0.0.1:80', '-a -t 127.0.0.1:80 -r 127.0.0.1 -m']);
  const { staticResolver } = await import('../../src/cli/ipvsadm/resolver.js');
  const r = await run(api, [], { resolver: staticResolver({ reverse: { '127.0.0.1': 'localhost' }, services: 'http 80/tcp www\n' }) });
  t.equal(r.stdout.split('\n').slice(3).join('\n'),
    // %-28s of the 14-character name, then one separating space.
    `TCP  localhost:http wlc\n  -> localhost:http${' '.repeat(15)}Masq    1      0          0${' '.repeat(9)}\n`);
});
