/**
 * `ulvs daemon --restore FILE`: applies an ipvsadm save file (what `ipvsadm -S`
 * prints, or /etc/sysconfig/ipvsadm) through the same ipvsadm code as `ipvsadm -R`,
 * but strictly: the first line that ipvsadm would reject or that the table refuses
 * makes the load fail with that line's number and message (later lines may still
 * have been applied, as `ipvsadm -R` goes on after a refused line). The caller applies it to a
 * director nobody can see yet and throws that director away on failure, so a bad
 * file never leaves a half-configured daemon.
 */
import type { IpvsApi } from './api.js';
import { runIpvsadm } from '../cli/ipvsadm/run.js';
import type { Resolver } from '../cli/ipvsadm/resolver.js';

export type RestoreResult =
  | { ok: true; lines: number }
  | { ok: false; lineNo: number; message: string };

export async function restoreSaveText(api: IpvsApi, text: string, resolver: Resolver): Promise<RestoreResult> {
  let lineNo = 0;
  let lines = 0;
  let firstError: { lineNo: number; message: string } | null = null;
  const io = {
    stdout: (): void => { /* -R prints nothing on success */ },
    stderr: (s: string): void => {
      if (firstError === null) firstError = { lineNo, message: s.replace(/\s+$/, '') };
    },
    readStdin: async (): Promise<string> => text,
    onLine: (n: number): void => {
      lineNo = n;
      lines++;
    },
  };
  const status = await runIpvsadm('ipvsadm', ['-R'], io, api, resolver);
  const err = firstError as { lineNo: number; message: string } | null;
  if (err !== null) return { ok: false, lineNo: err.lineNo, message: err.message };
  if (status !== 0) return { ok: false, lineNo, message: `exit status ${status}` };
  return { ok: true, lines };
}
