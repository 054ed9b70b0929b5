/**
 * Command dispatch. One executable serves several names, like busybox:
 * `ulvsadm`/`ipvsadm` (the ipvsadm drop-in), `ipvsadm-save`, `ipvsadm-restore`,
 * and `ulvs <subcommand>`. Subcommands are imported lazily so e.g. `ulvs replay`
 * never loads the packet-I/O backends.
 */
import { basename } from 'node:path';

const USAGE = `Usage: ulvs <command> [options]

Commands:
  replay      run the director offline over a pcap file (see README)
  daemon      run the director (foreground)
  lab         build a network-namespace lab (\`ulvs lab demo\`)
  tun-decap   userspace IPIP/GUE/GRE decapsulator for real servers
  bench       benchmarks (\`ulvs bench wire\`; hot path: npm run bench)
  ipvsadm     the ipvsadm drop-in (same as running \`ulvsadm\`)
`;

export async function main(argv: string[]): Promise<number> {
  const invokedAs = basename(argv[1] ?? 'ulvs').replace(/\.js$/, '');
  const args = argv.slice(2);
  if (invokedAs === 'ipvsadm' || invokedAs === 'ulvsadm') return ipvsadm(invokedAs, args);
  if (invokedAs === 'ipvsadm-save') return ipvsadm('ipvsadm', ['-S', ...args]);
  if (invokedAs === 'ipvsadm-restore') return ipvsadm('ipvsadm', ['-R', ...args]);
  const [cmd, ...rest] = args;
  switch (cmd) {
    case 'replay':
      return (await import('./replay.js')).replayMain(rest);
    case 'ipvsadm':
    case 'ulvsadm':
      return ipvsadm(cmd, rest);
    case 'daemon':
    case 'lab':
    case 'tun-decap':
    case 'bench': {
      const mod = await import(`./${cmd}.js`).catch((e: Error) => {
        process.stderr.write(`ulvs: cannot load '${cmd}': ${e.message}\n`);
        return null;
      });
      if (mod === null) return 2;
      return mod.default(rest) as Promise<number>;
    }
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`ulvs: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

async function ipvsadm(argv0: string, args: string[]): Promise<number> {
  const mod = await import('./ulvsadm.js').catch((e: Error) => {
    process.stderr.write(`${argv0}: cannot load: ${e.message}\n`);
    return null;
  });
  if (mod === null) return 2;
  return mod.default(argv0, args) as Promise<number>;
}
