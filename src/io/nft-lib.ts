/**
 * nftables in-process through libnftables (the library the `nft` program is a front
 * end of), bound with koffi.
 *
 * Why: the nftables guard (kernel-guard.ts) writes one small transaction per control
 * change that alters what is hidden, and starting the nft program costs 5–40 ms each
 * time — most of an `ipvsadm -a` when packet I/O runs, and minutes for `ipvsadm -R` of
 * a big save file. A context kept open does the same transaction in about a millisecond.
 *
 * A context works in the network namespace of the thread that calls it, so a guard
 * for another namespace (DataPlane's `netns` option) keeps running `ip netns exec nft`.
 * When the library cannot be loaded the guard runs the nft program as before.
 */
import koffi from 'koffi';

interface NftLib {
  ctxNew: (flags: number) => unknown;
  ctxFree: (ctx: unknown) => void;
  bufferOutput: (ctx: unknown) => number;
  bufferError: (ctx: unknown) => number;
  run: (ctx: unknown, text: string) => number;
  output: (ctx: unknown) => string | null;
  error: (ctx: unknown) => string | null;
}

let lib: NftLib | null | undefined;

function load(): NftLib | null {
  if (lib !== undefined) return lib;
  try {
    const l = koffi.load('libnftables.so.1');
    lib = {
      ctxNew: l.func('void *nft_ctx_new(uint32_t flags)'),
      ctxFree: l.func('void nft_ctx_free(void *ctx)'),
      bufferOutput: l.func('int nft_ctx_buffer_output(void *ctx)'),
      bufferError: l.func('int nft_ctx_buffer_error(void *ctx)'),
      run: l.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
      output: l.func('const char *nft_ctx_get_output_buffer(void *ctx)'),
      error: l.func('const char *nft_ctx_get_error_buffer(void *ctx)'),
    };
  } catch {
    lib = null;
  }
  return lib;
}

/** One libnftables context (NFT_CTX_DEFAULT), its output and errors captured instead of printed. */
export class NftContext {
  private ctx: unknown;

  private constructor(private readonly l: NftLib, ctx: unknown) {
    this.ctx = ctx;
  }

  /** A context, or null when libnftables is not available. */
  static open(): NftContext | null {
    const l = load();
    if (l === null) return null;
    const ctx = l.ctxNew(0);
    if (ctx === null) return null;
    if (l.bufferOutput(ctx) !== 0 || l.bufferError(ctx) !== 0) {
      l.ctxFree(ctx);
      return null;
    }
    return new NftContext(l, ctx);
  }

  /** Runs a script like `nft -f -` (one transaction); `out` is what nft would print. */
  run(text: string): { ok: boolean; out: string } {
    if (this.ctx === null) return { ok: false, out: 'nftables context closed' };
    const rc = this.l.run(this.ctx, text);
    // Reading the buffers also empties them for the next command.
    const out = `${this.l.output(this.ctx) ?? ''}${this.l.error(this.ctx) ?? ''}`;
    return { ok: rc === 0, out };
  }

  close(): void {
    if (this.ctx === null) return;
    this.l.ctxFree(this.ctx);
    this.ctx = null;
  }
}
