/**
 * Golden cases recorded from the real ipvsadm 1.31 front end (ipvsadm.c and
 * config_stream.c of the 1.31 release with popt 1.19, linked against an
 * in-memory stand-in for libipvs that answers like the kernel: EEXIST, ESRCH,
 * ENOENT for unknown schedulers, ERANGE for l > u thresholds, dests newest
 * first). Host names came from a fixed table, service names from the recorded
 * services(5) file. Each case is a sequence of invocations on one table; every
 * invocation's status, stdout and stderr must match byte for byte.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { staticResolver } from '../../src/cli/ipvsadm/resolver.js';
import type { ConnEntry } from '../../src/ctl/types.js';
import { FakeApi } from './fake-api.js';
import { run } from './helpers.js';

interface Step { args: string[]; stdin?: string; expect: { status: number; stdout: string; stderr: string } }
interface Case {
  name?: string;
  resolver?: { hosts?: Record<string, string>; reverse?: Record<string, string> };
  counters?: Record<string, [number, number, number]>;
  conns?: ConnEntry[];
  steps: Step[];
}
interface Golden { generatedBy: string; services: string; groups: Record<string, Case[]> }

const path = fileURLToPath(new URL('../../../test/ipvsadm/fixtures/ipvsadm131-golden.json', import.meta.url));
const golden = JSON.parse(readFileSync(path, 'utf8')) as Golden;
const DEFAULT_NAMES = { hosts: { localhost: '127.0.0.1' }, reverse: { '127.0.0.1': 'localhost' } };

for (const [group, cases] of Object.entries(golden.groups)) {
  t.test(group, async (t) => {
    for (const c of cases) {
      const names = c.resolver ?? DEFAULT_NAMES;
      const resolver = staticResolver({ ...names, services: golden.services });
      const api = new FakeApi();
      if (c.conns) api.conns = c.conns;
      for (const [i, step] of c.steps.entries()) {
        // The recorded stand-in reported these active/inactive/persistent counts for these dests.
        for (const [addr, [a, ia, p]] of Object.entries(c.counters ?? {})) {
          for (const s of api.services) for (const d of s.dests) if (d.addr === addr) Object.assign(d, { activeConns: a, inactConns: ia, persistConns: p });
        }
        const label = `${c.name ?? JSON.stringify(c.steps.at(-1)!.args)} step ${i}: ${JSON.stringify(step.args)}`;
        const r = await run(api, step.args, { resolver, ...(step.stdin !== undefined ? { stdin: step.stdin } : {}) });
        t.same(r, step.expect, label);
      }
    }
  });
}
