/**
 * The subset of popt's poptGetNextOpt() that ipvsadm relies on, step for step
 * (popt 1.16+ semantics, as in the distributions' libpopt):
 * - words not starting with '-' (and a lone "-") are kept as leftovers, and the
 *   scan goes on; after "--" every word is a leftover;
 * - "--name" and "--name=value" long options, exact names only (no abbreviation);
 *   "-name" with one dash is not a long option: it is a bundle of short options;
 * - short options bundle ("-Ln"); a short option that takes a value takes the rest
 *   of the bundle (an initial '=' skipped) or else the next word, whatever it
 *   starts with; an optional value is only taken from a next word that exists and
 *   does not start with '-';
 * - errors: unknown option, missing argument, option does not take an argument;
 *   the offending word reported is argv[next-1] (poptBadOption).
 */

export type ArgKind = 'none' | 'string' | 'optional';

export interface PoptOption {
  long: string | null;
  short: string | null;
  arg: ArgKind;
  /** Tag returned for the option (popt's `val`). */
  val: string;
}

export type PoptErrorCode = 'missing argument' | 'unknown option' | 'option does not take an argument';

export type PoptStep =
  | { kind: 'option'; val: string; arg: string | null }
  | { kind: 'end' }
  | { kind: 'error'; error: PoptErrorCode };

export class Popt {
  private next = 1;
  private nextCharArg: string | null = null;
  private restLeftover = false;
  private readonly leftovers: string[] = [];
  private nextLeftover = 0;

  /** `argv` includes argv[0], like popt's. */
  constructor(private readonly argv: readonly string[], private readonly table: readonly PoptOption[]) {}

  getNextOpt(): PoptStep {
    for (;;) {
      let opt: PoptOption | null = null;
      let longArg: string | null = null;
      if (this.nextCharArg === null && this.next >= this.argv.length) return { kind: 'end' };

      if (this.nextCharArg === null) {
        const word = this.argv[this.next++]!;
        if (this.restLeftover || word[0] !== '-' || word === '-') {
          this.leftovers.push(word);
          continue;
        }
        if (word === '--') {
          this.restLeftover = true;
          continue;
        }
        const doubleDash = word[1] === '-';
        const body = word.slice(doubleDash ? 2 : 1);
        const eq = body.indexOf('=');
        const name = eq >= 0 ? body.slice(0, eq) : body;
        if (eq >= 0) longArg = body.slice(eq + 1);
        if (doubleDash) {
          opt = this.table.find((o) => o.long === name) ?? null;
          if (opt === null) return { kind: 'error', error: 'unknown option' };
        } else {
          // A single dash never names a long option here (no POPT_ARGFLAG_ONEDASH options).
          this.nextCharArg = word.slice(1);
          longArg = null;
        }
      }

      if (this.nextCharArg !== null) {
        const chars = this.nextCharArg;
        this.nextCharArg = null;
        opt = this.table.find((o) => o.short !== null && o.short === chars[0]) ?? null;
        if (opt === null) return { kind: 'error', error: 'unknown option' };
        if (chars.length > 1) this.nextCharArg = chars.slice(1);
      }
      const o = opt!;

      if (o.arg === 'none') {
        if (longArg !== null || (this.nextCharArg !== null && this.nextCharArg[0] === '=')) {
          return { kind: 'error', error: 'option does not take an argument' };
        }
        return { kind: 'option', val: o.val, arg: null };
      }

      let value: string | null;
      if (longArg !== null) {
        value = longArg;
      } else if (this.nextCharArg !== null) {
        value = this.nextCharArg[0] === '=' ? this.nextCharArg.slice(1) : this.nextCharArg;
        this.nextCharArg = null;
      } else if (this.next >= this.argv.length) {
        if (o.arg !== 'optional') return { kind: 'error', error: 'missing argument' };
        value = null;
      } else if (o.arg === 'optional' && this.argv[this.next]![0] === '-') {
        value = null;
      } else {
        value = this.argv[this.next++]!;
      }
      return { kind: 'option', val: o.val, arg: value };
    }
  }

  /** poptBadOption(con, POPT_BADOPTION_NOALIAS): the last word consumed. */
  badOption(): string {
    return this.argv[this.next - 1] ?? '';
  }

  /** poptGetArg(): the next leftover word, or null. Only meaningful once options are exhausted. */
  getArg(): string | null {
    if (this.nextLeftover >= this.leftovers.length) return null;
    return this.leftovers[this.nextLeftover++]!;
  }
}
