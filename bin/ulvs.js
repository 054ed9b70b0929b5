#!/usr/bin/env node
// Entry point for the `ulvs` command (and, via its name, `ulvsadm`/`ipvsadm`).
import { main } from '../dist/src/cli/main.js';
main(process.argv).then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`ulvs: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
