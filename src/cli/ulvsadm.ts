/**
 * `ulvsadm` / `ipvsadm` / `ipvsadm-save` / `ipvsadm-restore`: the ipvsadm program
 * (cli/ipvsadm/run.ts) talking to the director of this network namespace over
 * its control socket ($ULVS_SOCKET, default the abstract name `ulvs`). With no
 * director running it fails the way ipvsadm does without the ip_vs module.
 */
import { runIpvsadm, type IpvsadmIo } from './ipvsadm/run.js';
import { systemResolver } from './ipvsadm/resolver.js';
import { SocketIpvsApi } from '../ctl/client.js';
import { clientSocketAddress } from '../ctl/protocol.js';

function readAllStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => parts.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    process.stdin.once('error', reject);
  });
}

/** Output to a closed pipe (`ipvsadm -Ln | head`) ends the program quietly, as SIGPIPE would. */
function quietOnEpipe(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
}

export default async function ulvsadm(argv0: string, args: string[]): Promise<number> {
  quietOnEpipe();
  let api: SocketIpvsApi;
  try {
    api = new SocketIpvsApi(clientSocketAddress());
  } catch (e) {
    process.stderr.write(`${argv0}: ${(e as Error).message}\n`);
    return 2;
  }
  const io: IpvsadmIo = {
    stdout: (s) => { process.stdout.write(s); },
    stderr: (s) => { process.stderr.write(s); },
    readStdin: readAllStdin,
  };
  try {
    return await runIpvsadm(argv0, args, io, api, systemResolver());
  } finally {
    api.close();
  }
}
