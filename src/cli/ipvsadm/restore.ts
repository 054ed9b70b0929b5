/**
 * `ipvsadm -R` input handling (config_stream_read): the input is cut into
 * lines at '\n'; tokens are separated by spaces, tabs and CRs; a token that is
 * exactly `ipvsadm` is dropped wherever it stands; a line left without tokens is
 * skipped. There is no comment syntax and no quoting. Two quirks of the C
 * reader are kept: a token longer than 4096 characters is split, and white
 * space at the very end of the input (no final newline) discards the tokens of
 * that last line.
 *
 * Also `parseSaveText`, for tools that want to check a save file without
 * applying it (each line through the same parser, first error with its line).
 */
import { parseIpvsadmArgs, type ParsedCommand, type ParseExit } from './parse.js';
import type { Resolver } from './resolver.js';
import { tryHelpText } from './help.js';

export interface RestoreLine {
  /** 1-based line number in the input. */
  lineNo: number;
  /** The words of the line, `ipvsadm` tokens removed (may be empty: such lines are skipped). */
  args: string[];
}

const MAX_TOKEN = 4096;

function isSep(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

/** Splits restore input exactly as ipvsadm's reader does. */
export function splitRestoreInput(text: string): RestoreLine[] {
  const out: RestoreLine[] = [];
  let pos = 0;
  let line = 1;
  for (;;) {
    const lineNo = line;
    const args: string[] = [];
    // 'line': ended at '\n'; 'eof': input ended after a token; 'drop': the C reader returns NULL.
    let ended: 'line' | 'eof' | 'drop';
    for (;;) {
      if (pos >= text.length) {
        ended = args.length === 0 ? 'drop' : 'eof';
        break;
      }
      if (isSep(text[pos])) {
        // fscanf matched nothing: skip blanks up to the newline; end of input here loses the line.
        let result: 'line' | 'drop' | null = null;
        while (result === null) {
          if (pos >= text.length) {
            result = 'drop';
            break;
          }
          const d = text[pos++];
          if (d === '\n') {
            line++;
            result = 'line';
          } else if (d !== ' ' && d !== '\t' && d !== '\r') {
            pos--;
            break;
          }
        }
        if (result !== null) {
          ended = result;
          break;
        }
        continue;
      }
      let end = pos;
      while (end < text.length && !isSep(text[end]) && end - pos < MAX_TOKEN) end++;
      const tok = text.slice(pos, end);
      pos = end;
      if (tok !== 'ipvsadm') args.push(tok);
      if (pos < text.length && isSep(text[pos])) {
        const sep = text[pos++];
        if (sep === '\n') {
          line++;
          ended = 'line';
          break;
        }
      }
    }
    if (ended === 'drop') break;
    out.push({ lineNo, args });
    if (ended === 'eof') break;
  }
  return out;
}

export interface SaveTextError {
  lineNo: number;
  message: string;
  exit: number;
}

export interface ParsedSaveLine {
  lineNo: number;
  command: ParsedCommand;
}

/**
 * Parses restore/save text line by line without applying it. Stops at the first
 * line ipvsadm -R would reject (a validation error, a popt error, a leading
 * non-command word, or a nested -R); kernel-side errors cannot be seen here.
 */
export async function parseSaveText(
  text: string, resolver: Resolver, program = 'ipvsadm',
): Promise<{ commands: ParsedSaveLine[]; error?: SaveTextError }> {
  const commands: ParsedSaveLine[] = [];
  for (const l of splitRestoreInput(text)) {
    if (l.args.length === 0) continue;
    const r = await parseIpvsadmArgs(l.args, { program, resolver });
    if (!r.ok) {
      const e: ParseExit = r.exit;
      return { commands, error: { lineNo: l.lineNo, message: e.message.replace(/\n+$/, ''), exit: e.exit } };
    }
    if (r.command.cmd === 'restore') {
      return { commands, error: { lineNo: l.lineNo, message: tryHelpText(program).replace(/\n$/, ''), exit: 255 } };
    }
    commands.push({ lineNo: l.lineNo, command: r.command });
  }
  return { commands };
}
