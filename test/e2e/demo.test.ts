/**
 * `ulvs lab demo` as a user runs it: it finishes, shows NAT, DR and TUN with every
 * request answered, prints the director's statistics, and leaves no namespace or
 * process behind, also when interrupted with Ctrl-C (SIGINT).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { processRunning, ULVS_BIN } from '../../src/lab/lab-topology.js';
import { runDemo } from '../../src/lab/demo.js';
import { E2E_SKIP } from './helpers.js';

interface DemoRun {
  code: number | null;
  out: string;
  seconds: number;
}

/** Runs the demo; `interruptOn` sends SIGINT once the output matches it. */
function demo(args: string[], interruptOn?: RegExp): Promise<DemoRun> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ULVS_BIN, 'lab', 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const on = (d: Buffer) => {
      out += d.toString();
      if (interruptOn && !sent && interruptOn.test(out)) {
        sent = true;
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

function prefixOf(out: string): string | null {
  return /network namespaces (ulvs-\d+-[0-9a-f]+-)\*/.exec(out)?.[1] ?? null;
}

const leftovers = (prefix: string) => readdirSync('/var/run/netns').filter((n) => n.startsWith(prefix));
const pidsIn = (out: string) => [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
const alive = processRunning;

t.test('ulvs lab demo', E2E_SKIP, async (t) => {
  const r = await demo(['--burst', '50']);
  t.equal(r.code, 0, `exits 0 (output:\n${r.out.slice(-3000)})`);
  t.ok(r.seconds < 60, `finishes in under a minute (${r.seconds.toFixed(1)} s)`);
  for (const title of ['1/3  NAT', '2/3  DR', '3/3  TUN']) t.match(r.out, title, `shows ${title}`);
  for (const flag of ['-m', '-g', '-i']) {
    t.match(r.out, new RegExp(`director# ipvsadm -a -t 10\\.0\\.0\\.100:80 -r 10\\.0\\.1\\.1:80 ${flag}`), `prints the ipvsadm commands (${flag})`);
  }
  const summaries = [...r.out.matchAll(/(\d+) requests, (\d+) answered: (.*?) {2}\((\d+) requests\/s/g)];
  t.equal(summaries.length, 3, 'one curl-loop summary per method');
  for (const s of summaries) {
    t.equal(s[1], s[2], `every request answered (${s[3]})`);
    t.match(s[3], /rs1 ×\d+, rs2 ×\d+, rs3 ×\d+/, 'by every real server');
  }
  t.match(r.out, /rs1 ×3, rs2 ×2, rs3 ×1/, 'DR with wrr answers in proportion to the weights 3:2:1');
  t.equal([...r.out.matchAll(/^IP Virtual Server version/gm)].length, 3, 'ipvsadm -Ln --stats after each method');
  t.match(r.out, /^TCP {2}10\.0\.0\.100:80 +\d+ +\d+ +0 /m, 'DR/TUN stats show OutPkts 0');
  const prefix = prefixOf(r.out);
  t.ok(prefix, 'names its namespaces');
  if (prefix) t.same(leftovers(prefix), [], 'no namespace left');
  t.same(pidsIn(r.out).filter(alive), [], 'the director daemon is gone');
});

t.test('ulvs lab demo cleans up on Ctrl-C', E2E_SKIP, async (t) => {
  const r = await demo(['--burst', '0'], /^client# /m);
  t.equal(r.code, 130, 'exits 130 like a program killed by SIGINT');
  t.match(r.out, 'interrupted; removing the lab', 'says what it does');
  const prefix = prefixOf(r.out);
  t.ok(prefix, 'had built its lab');
  if (prefix) t.same(leftovers(prefix), [], 'no namespace left');
  await new Promise((res) => setTimeout(res, 200));
  t.same(pidsIn(r.out).filter(alive), [], 'the director daemon is gone');
});

t.test('a demo whose director cannot be reached fails clearly and cleans up', E2E_SKIP, async (t) => {
  let out = '';
  let err = '';
  // A daemon serving only d1 never answers ARP for the VIP on d0: the first request fails.
  const code = await runDemo({
    burst: 0, daemonArgs: ['--interface', 'd1'], out: (s) => { out += s; }, err: (s) => { err += s; },
  });
  t.equal(code, 1, 'exits 1');
  t.match(err, /ulvs lab demo: FAILED: NAT \(masquerading\), round robin: request 1 of 6 got no answer through the director/,
    'says which step failed');
  t.match(err, /director daemon \(pid \d+\) is running; its last output:/, 'and shows what the director said');
  t.notMatch(out, 'FAILED', 'the failure goes to stderr');
  const prefix = prefixOf(out);
  t.ok(prefix, 'had built its lab');
  if (prefix) t.same(leftovers(prefix), [], 'no namespace left');
});
