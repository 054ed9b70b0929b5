import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { numericResolver, type Resolver } from '../../src/cli/ipvsadm/resolver.js';
import { FakeApi, type RunResult } from './fake-api.js';

export interface RunOptions {
  stdin?: string;
  resolver?: Resolver;
  argv0?: string;
  onLine?: (n: number) => void;
}

/** Runs the CLI once; captures both streams and the status. */
export async function run(api: FakeApi, argv: string[], o: RunOptions = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: (s: string) => { stdout += s; },
    stderr: (s: string) => { stderr += s; },
    readStdin: async () => o.stdin ?? '',
    ...(o.onLine ? { onLine: o.onLine } : {}),
  };
  const status = await runIpvsadm(o.argv0 ?? 'ipvsadm', argv, io, api, o.resolver ?? numericResolver);
  return { status, stdout, stderr };
}

/** Applies command lines (split on spaces); throws if any fails. */
export async function apply(api: FakeApi, lines: string[], resolver?: Resolver): Promise<void> {
  for (const l of lines) {
    const r = await run(api, l.split(' '), resolver ? { resolver } : {});
    if (r.status !== 0) throw new Error(`${l}: ${r.status} ${r.stderr}`);
  }
}

/** The configuration of the reference's worked examples (f.6). */
export const EXAMPLE_RULES = [
  '-A -t 172.20.0.10:443 -s sh -b sh-port -p 900 -M 255.255.0.0',
  '-a -t 172.20.0.10:443 -r 172.20.1.1 -w 10',
  '-a -t 172.20.0.10:443 -r 172.20.1.2 -w 20 -x 500 -y 300',
  '-A -u 172.20.0.10:514 -s wlc -o',
  '-a -u 172.20.0.10:514 -r 172.20.1.3 -m',
  '-A -f 100 -s rr',
  '-a -f 100 -r 172.20.1.4 -i --tun-type gre --tun-csum',
];

export async function exampleTable(): Promise<FakeApi> {
  const api = new FakeApi();
  await apply(api, EXAMPLE_RULES);
  const d1 = api.dest(0, '172.20.1.1');
  d1.activeConns = 12;
  d1.inactConns = 3;
  const d2 = api.dest(0, '172.20.1.2');
  d2.activeConns = 7;
  d2.inactConns = 1;
  return api;
}
